"""What the dashboard reads, over a real replay and a real server, with 1 and 2 workers:
call outcomes (ASR, NER, failures by code), the top sources of auth failures, the counter
history on the capture clock, and the calls table's readable states and durations.

The scenario and every expected value are written by hand from the traffic generated here."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipcm.callstats import summary
from tests.conftest import CORPUS
from tests.ecs import assert_valid
from tests.events.scen import MS, SDP, T0, Capture, Leg, S, auth_hdr
from tests.events.test_flow_web import serve_replay
from tests.sipgen import basic_call

SDP_HDR = ("Content-Type: application/sdp",)
PATHS = ["/api/call-outcomes", "/api/auth-sources", "/api/history", "/api/calls"]


def failed_call(cap: Capture, leg: Leg, t: int, code: int, reason: str) -> None:
    """INVITE, 100, final `code`, ACK."""
    inv = leg.req("INVITE", body=SDP, headers=SDP_HDR)
    cap.a2b(leg, t, inv.raw)
    cap.b2a(leg, t + 10 * MS, leg.resp(inv, 100, "Trying"))
    cap.b2a(leg, t + 500 * MS, leg.resp(inv, code, reason, to_tag="neg"))
    cap.a2b(leg, t + 520 * MS, leg.req("ACK", cseq=inv.cseq, to_tag="neg").raw)


def scenario() -> Capture:
    """Nine calls and four auth failures (times from T0, last packet at 17.03 s):
    A answered 2 s, BYE by caller 12 s; B 486 at 1.5 s; C ringing, cancelled at 4.5 s (487);
    D no final reply (times out at conclusion); E 503 at 4.1 s; F answered 7 s, BYE by callee
    17 s; G answered 8 s, still open. REGISTER with credentials refused 401 three times from
    198.51.100.7 (9, 9.5, 10 s); INVITE with credentials refused 403 from 203.0.113.9 (11 s);
    I answered 15 s, BYE by caller 16 s."""
    cap = Capture()
    basic_call(cap, Leg("A@x", a_ip="192.0.2.11"), T0)
    failed_call(cap, Leg("B@x", a_ip="192.0.2.12"), T0 + 1 * S, 486, "Busy Here")
    c = Leg("C@x", a_ip="192.0.2.13")
    inv = c.req("INVITE", body=SDP, headers=SDP_HDR)
    t = T0 + 1500 * MS
    cap.a2b(c, t, inv.raw)
    cap.b2a(c, t + 100 * MS, c.resp(inv, 180, "Ringing", to_tag="c1"))
    cancel = c.req("CANCEL", cseq=inv.cseq, branch=inv.via.split("branch=")[1].split(";")[0])
    cap.a2b(c, t + 3 * S, cancel.raw)
    cap.b2a(c, t + 3010 * MS, c.resp(cancel, 200, "OK", to_tag="c1"))
    cap.b2a(c, t + 3020 * MS, c.resp(inv, 487, "Request Terminated", to_tag="c1"))
    cap.a2b(c, t + 3030 * MS, c.req("ACK", cseq=inv.cseq, to_tag="c1").raw)
    d = Leg("D@x", a_ip="192.0.2.14")
    inv = d.req("INVITE", body=SDP, headers=SDP_HDR)
    cap.a2b(d, T0 + 3 * S, inv.raw)
    cap.b2a(d, T0 + 3 * S + 10 * MS, d.resp(inv, 100, "Trying"))
    failed_call(cap, Leg("E@x", a_ip="192.0.2.15"), T0 + 3600 * MS, 503, "Service Unavailable")
    basic_call(cap, Leg("F@x", a_ip="192.0.2.16"), T0 + 5 * S, bye_from_callee=True)
    g = Leg("G@x", a_ip="192.0.2.17")
    inv = g.req("INVITE", body=SDP, headers=SDP_HDR)
    cap.a2b(g, T0 + 6 * S, inv.raw)
    cap.b2a(g, T0 + 8 * S, g.resp(inv, 200, "OK", to_tag="g1", body=SDP))
    ack = g.req("ACK", cseq=inv.cseq, to_tag="g1")
    cap.a2b(g, T0 + 8 * S + 20 * MS, ack.raw)
    for k, ms in enumerate((9000, 9500, 10000), 1):
        r = Leg(f"R{k}@x", a_ip="198.51.100.7", a_user="carol", b_user="carol")
        req = r.req("REGISTER", ruri="sip:example.com", headers=(auth_hdr("carol", n=k),))
        cap.a2b(r, T0 + ms * MS, req.raw)
        cap.b2a(r, T0 + (ms + 5) * MS, r.resp(req, 401, "Unauthorized", to_tag=f"r{k}"))
    h = Leg("H@x", a_ip="203.0.113.9")
    inv = h.req("INVITE", body=SDP, headers=(*SDP_HDR, auth_hdr("mallory", proxy=True)))
    cap.a2b(h, T0 + 11 * S, inv.raw)
    cap.b2a(h, T0 + 11 * S + 5 * MS, h.resp(inv, 403, "Forbidden", to_tag="h1"))
    basic_call(cap, Leg("I@x", a_ip="192.0.2.19"), T0 + 13 * S, talk_s=1)
    return cap


LAST = T0 + 17030 * MS  # F's 200 to BYE: the capture clock at the end
OUTCOMES = {
    "attempted": 9,  # A, F, G, I answered; B, C, D, E failed; H refused 403
    "answered": 4,
    "effective": 6,  # + 486 (busy) and 487 (cancelled): the user decided
    "asr": 0.4444,
    "ner": 0.6667,
    "ner_user_codes": [480, 486, 487, 600, 603],
    "failures": [
        {"outcome": "403", "meaning": "Forbidden", "calls": 1, "share": 0.1111, "user_side": False},
        {"outcome": "486", "meaning": "Busy Here", "calls": 1, "share": 0.1111, "user_side": True},
        {
            "outcome": "487",
            "meaning": "Request Terminated",
            "calls": 1,
            "share": 0.1111,
            "user_side": True,
        },
        {
            "outcome": "503",
            "meaning": "Service Unavailable",
            "calls": 1,
            "share": 0.1111,
            "user_side": False,
        },
        {
            "outcome": "timeout",
            "meaning": "no final reply (timeout)",
            "calls": 1,
            "share": 0.1111,
            "user_side": False,
        },
    ],
}


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Capture]:
    cap = scenario()
    return cap.write(tmp_path_factory.mktemp("dash") / "dash.pcap"), cap


def _replies(path: Path, *overrides: str, end: str = "conclude", workers: int = 1) -> tuple:
    docs, replies = serve_replay(path, PATHS, *overrides, workers=workers, end=end)
    assert all(r.status == 200 for r in replies), [r.body for r in replies]
    return docs, [r.json() for r in replies]


@pytest.mark.parametrize("workers", [1, 2])
def test_outcomes_auth_sources_history(capture, workers: int) -> None:
    path, cap = capture
    docs, (outcomes, auth, history, _calls) = _replies(path, workers=workers)
    for d in docs:
        assert_valid(d)
    assert outcomes == OUTCOMES
    assert auth == {
        "total": 4,
        "sources": 2,
        "capacity": 10000,
        "untracked": 0,
        "top": [
            {"source_ip": "198.51.100.7", "failures": 3, "first_ns": T0 + 9005 * MS,
             "last_ns": T0 + 10005 * MS},
            {"source_ip": "203.0.113.9", "failures": 1, "first_ns": T0 + 11005 * MS,
             "last_ns": T0 + 11005 * MS},
        ],
    }  # fmt: skip
    # Samples at the 5 s boundaries, each counting the messages before it, and at the end.
    times = [ts for ts, _ in cap.packets]
    samples = history["samples"]
    assert [s["t"] for s in samples] == [T0 + 5 * S, T0 + 10 * S, T0 + 15 * S, LAST]
    assert [s["c"]["sip.messages"] for s in samples] == [
        sum(1 for ts in times if ts < b) for b in (T0 + 5 * S, T0 + 10 * S, T0 + 15 * S)
    ] + [len(times)]
    assert history["interval_s"] == 5.0
    last = samples[-1]
    by_action = {k.split(".", 1)[1]: v for k, v in last["c"].items() if k.startswith("events_p")}
    assert by_action == {
        "auth-failed": 4,
        "call-attempt": 4,  # B 486, C 487, D timeout, E 503
        "call-end": 3,
        "call-start": 4,
    }
    assert last["c"]["events.published"] == len(docs) == 15
    outcome_keys = {k: v for k, v in last["c"].items() if k.startswith("call_outcomes.")}
    assert summary({k.split(".", 1)[1]: v for k, v in outcome_keys.items()}) == OUTCOMES
    assert last["calls"] == {"attempted": 9, "asr": 0.4444, "ner": 0.6667}
    # The sample at 5 s: A answered (2 s), B refused 486 at 1.5 s is decided at its timer
    # (inv_neg, 30 s): only the answer is in.
    assert samples[0]["calls"] == {"attempted": 1, "asr": 1.0, "ner": 1.0}


@pytest.mark.parametrize("workers", [1, 2])
def test_calls_table_states_and_durations(capture, workers: int) -> None:
    path, _ = capture
    _docs, (_o, _a, _h, calls) = _replies(path, end="none", workers=workers)
    assert calls["clock_ns"] == LAST
    assert calls["live"] is False
    rows = {(c["call_id"], c["state_text"], c["ended"], c["duration_ns"]) for c in calls["calls"]}
    # A's BYE linger (inv_bye_repl, 5 s) ended at 17.03 s, C's cancel linger at 9.5 s.
    assert rows == {
        ("B@x", "failed: 486 Busy Here", False, None),
        ("D@x", "calling", False, None),
        ("E@x", "failed: 503 Service Unavailable", False, None),
        ("F@x", "ended: BYE by callee", True, 10 * S),
        ("G@x", "answered", False, LAST - (T0 + 8 * S)),
        ("H@x", "auth failed: 403 Forbidden", False, None),
        ("I@x", "ended: BYE by caller", True, 1 * S),
    }


def test_auth_sources_anonymized_as_the_events(capture) -> None:
    path, _ = capture
    anon = ("encrypt_ip_addresses=true", "encryption_passphrase=dash-test", "encryption_salt=s1")
    docs, (_o, auth, _h, _c) = _replies(path, *anon)
    failed = [d for d in docs if d["event"]["action"] == "auth-failed"]
    shown = {s["source_ip"]: s["failures"] for s in auth["top"]}
    counted: dict[str, int] = {}
    for d in failed:
        counted[d["source"]["ip"]] = counted.get(d["source"]["ip"], 0) + 1
    assert shown == counted
    assert len(shown) == 2
    assert not {"198.51.100.7", "203.0.113.9"} & set(shown)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared corpus is not available")
def test_corpus_capture_outcomes_match_its_events() -> None:
    """On a corpus capture: one outcome per call-start and per call-attempt (by its code),
    the same with 1 and 2 workers."""
    path = CORPUS / "zeek/sip-wireshark.pcap"
    if not path.exists():
        pytest.skip(f"{path.name} is not in the corpus")
    views = [_replies(path, workers=w) for w in (1, 2)]
    assert views[0][1][:3] == views[1][1][:3]
    docs, (outcomes, auth, _h, _c) = views[0]
    starts = sum(1 for d in docs if d["event"]["action"] == "call-start")
    attempts = [d for d in docs if d["event"]["action"] == "call-attempt"]
    invite_auth = [
        d for d in docs if d["event"]["action"] == "auth-failed" and d["sip"]["method"] == "INVITE"
    ]
    assert outcomes["answered"] == starts
    assert outcomes["attempted"] == starts + len(attempts) + len(invite_auth)
    all_auth = [d for d in docs if d["event"]["action"] == "auth-failed"]
    assert auth["total"] == len(all_auth)
