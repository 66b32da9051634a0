"""`GET /api/calls/{call_id}/flow` and `/pcap` over a real replay and a real server: the
flow JSON, the per-call pcap replaying to exactly that call's events, errors."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from sipcm.compose import web_state
from sipcm.config import load_config
from sipcm.run import replay
from sipcm.web.server import WebServer
from tests.conftest import CORPUS
from tests.ecs import assert_valid
from tests.events.scen import MS, T0, Capture, Leg, S
from tests.events.test_flow import ANON, CALL, proxied_call
from tests.replayutil import Collect, replay_docs
from tests.sipgen import basic_call
from tests.unit.web.client import Client, Reply

ODD = "odd/id?x=1%2F#frag@example.com"  # "/", "?", "%" and "#" are all legal in a Call-ID


def mixed_capture() -> Capture:
    """The proxied call, a TCP call, an OPTIONS with an awkward Call-ID, a REGISTER."""
    cap = proxied_call()
    tcp = Leg("tcp-1@example.com", a_ip="198.51.100.1", b_ip="198.51.100.2", transport="TCP")
    basic_call(cap, tcp, T0 + 200 * MS, talk_s=3)
    opt = Leg(ODD, a_ip="203.0.113.5", b_ip="192.0.2.20")
    req = opt.req("OPTIONS")
    cap.udp(T0 + 4 * S, ("203.0.113.5", 5060), ("192.0.2.20", 5060), req.raw)
    cap.udp(T0 + 4 * S + 7 * MS, ("192.0.2.20", 5060), ("203.0.113.5", 5060),
            opt.resp(req, 200, "OK", to_tag="o1"))  # fmt: skip
    reg = Leg("reg-1@example.com", a_user="carol", b_user="carol", b_ip="192.0.2.99")
    rq = reg.req("REGISTER", ruri="sip:example.com", headers=("Expires: 600",))
    cap.a2b(reg, T0 + 5 * S, rq.raw)
    contact = f"Contact: <sip:carol@{reg.a_ip}:5060>;expires=600"
    cap.b2a(reg, T0 + 5 * S + 9 * MS, reg.resp(rq, 200, "OK", to_tag="r1", headers=(contact,)))
    return cap


def serve_replay(
    path: Path, paths: list[str], *overrides: str, workers: int = 1, end: str = "conclude"
):
    """Replay `path`, then GET each of `paths` from a server over the replayed state; the
    ECS-validated documents and the replies."""
    cfg = load_config(None, ["stats_interval=0", f"workers={workers}", *overrides])
    out = Collect()
    replies: list[Reply] = []

    def fetch(pipe) -> None:
        srv = WebServer("127.0.0.1", 0, token=None, state=web_state(cfg, pipe))
        srv.start()
        try:
            client = Client(srv.url)
            replies.extend(client.get(p) for p in paths)
        finally:
            srv.stop()

    replay(cfg, [str(path)], lambda _c: [out], end=end, after=fetch)
    for d in out.docs:
        assert_valid(d)
    return out.docs, replies


def call_path(call_id: str, leaf: str) -> str:
    return f"/api/calls/{quote(call_id, safe='')}/{leaf}"


def test_flow_json_of_a_transaction(tmp_path: Path) -> None:
    path = mixed_capture().write(tmp_path / "m.pcap")
    _docs, (r,) = serve_replay(path, [call_path(ODD, "flow")], workers=2)
    assert r.status == 200
    body = r.json()
    raws = [m.pop("raw") for m in body["messages"]]
    assert raws[0].startswith("OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP ")
    assert raws[1].startswith("SIP/2.0 200 OK\r\n")
    common = {"transport": "udp", "direction": None, "vlan": None, "tunnel": None,
              "reassembled": False}  # fmt: skip
    assert body == {
        "call_id": ODD,
        "hosts": ["203.0.113.5:5060", "192.0.2.20:5060"],
        "messages": [
            {"ts_ns": T0 + 4 * S, "time": "2023-11-14T22:13:24.000000Z", "rel_ns": 0,
             "src": "203.0.113.5:5060", "dst": "192.0.2.20:5060", "from": 0, "to": 1,
             **common, "leg": None, "first_line": "OPTIONS sip:bob@example.com SIP/2.0",
             "dup": "new", "size": len(raws[0])},
            {"ts_ns": T0 + 4 * S + 7 * MS, "time": "2023-11-14T22:13:24.007000Z",
             "rel_ns": 7 * MS, "src": "192.0.2.20:5060", "dst": "203.0.113.5:5060",
             "from": 1, "to": 0, **common, "leg": "o1", "first_line": "SIP/2.0 200 OK",
             "dup": "new", "size": len(raws[1])},
        ],
        "messages_dropped": 0,
        "raw_dropped": 0,
        "anonymized": False,
    }  # fmt: skip


CALLS = (CALL, "tcp-1@example.com", ODD, "reg-1@example.com")


def without_frame(doc: dict) -> dict:
    """A document without sipcm.frame (the frame number in its own capture file)."""
    doc = json.loads(json.dumps(doc))
    doc.get("sipcm", {}).pop("frame", None)
    if doc.get("sipcm") == {}:
        del doc["sipcm"]
    return doc


@pytest.mark.parametrize("workers", [1, 2])
def test_per_call_pcap_replays_to_that_calls_events(tmp_path: Path, workers: int) -> None:
    cap = mixed_capture()
    path = cap.write(tmp_path / "m.pcap")
    docs, replies = serve_replay(path, [call_path(c, "pcap") for c in CALLS], workers=workers)
    assert sorted({d["sip"]["call_id"] for d in docs}) == sorted(CALLS)
    for call_id, r in zip(CALLS, replies, strict=True):
        assert r.status == 200, r.body
        assert r.headers["content-type"] == "application/vnd.tcpdump.pcap"
        one = tmp_path / "one.pcap"
        one.write_bytes(r.body)
        got, (totals,) = replay_docs([one])
        for d in got:
            assert_valid(d)
        want = [without_frame(d) for d in docs if d["sip"]["call_id"] == call_id]
        assert [without_frame(d) for d in got] == want, call_id
        n = sum(1 for _ts, frame in cap.packets if f"Call-ID: {call_id}\r\n".encode() in frame)
        assert totals.packets == totals.messages == n


def test_pcap_disposition_names_the_call(tmp_path: Path) -> None:
    path = mixed_capture().write(tmp_path / "m.pcap")
    _docs, (r,) = serve_replay(path, [call_path(ODD, "pcap")])
    assert r.headers["content-disposition"] == (
        'attachment; filename="call-odd_id_x_1_2F_frag_example.com.pcap"'
    )
    assert r.body[:4] == b"\x4d\x3c\xb2\xa1"  # pcap, nanosecond timestamps


def test_unknown_call_anonymized_and_incomplete_pcaps_are_errors(tmp_path: Path) -> None:
    path = mixed_capture().write(tmp_path / "m.pcap")
    _docs, replies = serve_replay(
        path, [call_path("nobody", "flow"), call_path("nobody", "pcap"), "/api/calls//flow",
               call_path(CALL, "ladder")],
    )  # fmt: skip
    assert [(r.status, r.json()) for r in replies] == [
        (404, {"error": "no stored messages for Call-ID 'nobody'"}),
        (404, {"error": "no stored messages for Call-ID 'nobody'"}),
        (404, {"error": "no such path: /api/calls//flow"}),
        (404, {"error": f"no such path: {call_path(CALL, 'ladder')}"}),
    ]
    _docs, (r,) = serve_replay(path, [call_path(CALL, "pcap")], "flow_max_call_bytes=3000")
    assert (r.status, r.json()) == (409, {
        "error": "no pcap: 9 messages of this call were not kept whole "
        "(flow_max_call_bytes / flow_max_bytes)"
    })  # fmt: skip
    docs, _ = serve_replay(path, [], *ANON)
    enc = next(d["sip"]["call_id"] for d in docs if d["event"]["action"] == "call-start")
    paths = [call_path(enc, "flow"), call_path(enc, "pcap")]
    _docs, (flow, pcap) = serve_replay(path, paths, *ANON)
    assert flow.status == 200
    assert {m["raw"] for m in flow.json()["messages"]} == {None}
    assert (pcap.status, pcap.json()) == (
        409,
        {"error": "no pcap: raw messages are not kept while anonymization is on"},
    )


@pytest.mark.parametrize(
    ("name", "ncalls"),
    [("zeek/sip-wireshark.pcap", 6), ("arkime/gtp-iphone.pcap", 4), ("sngrep/ipip.pcap", 1)],
)
def test_per_call_pcaps_of_corpus_captures_replay_to_their_events(
    tmp_path: Path, name: str, ncalls: int
) -> None:
    """Plain UDP, TCP inside GTP-U (with reassembled messages), TCP partly inside IP-in-IP:
    each call's pcap gives that call's events, tunnel and reassembly fields included."""
    pcap = CORPUS / name
    if not pcap.is_file():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    docs, _ = replay_docs([pcap])
    calls = sorted({d["sip"]["call_id"] for d in docs if "sip" in d})
    assert len(calls) == ncalls
    full, replies = serve_replay(pcap, [call_path(c, "pcap") for c in calls], workers=2)
    assert full == docs
    for call_id, r in zip(calls, replies, strict=True):
        assert r.status == 200, r.body
        one = tmp_path / "one.pcap"
        one.write_bytes(r.body)
        got, _ = replay_docs([one])
        for d in got:
            assert_valid(d)
        want = [without_frame(d) for d in docs if d.get("sip", {}).get("call_id") == call_id]
        assert [without_frame(d) for d in got] == want, call_id
