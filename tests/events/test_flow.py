"""Per-call message store and `sipcm flow`: the ladder of a call through a proxy (with a
retransmission and the proxy's copies), the same for every worker count; unknown Call-IDs;
anonymized flows; a corpus capture."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sipcm.config import load_config
from sipcm.run import replay
from tests.conftest import CORPUS, REPO
from tests.ecs import assert_valid
from tests.events.scen import MS, SDP, T0, Capture, Leg, S, proxy_copy
from tests.replayutil import Collect

CALL = "flow-1@example.com"
A, P, B = ("192.0.2.10", 5060), ("192.0.2.1", 5060), ("192.0.2.20", 5060)


def proxied_call() -> Capture:
    """A -> proxy P -> B: INVITE (retransmitted once by A), 100 from P, 180 and 200 from B
    copied by P, ACK and BYE from A copied by P, 200 to the BYE."""
    cap = Capture()
    leg = Leg(CALL, a_ip=A[0], b_ip=P[0])
    inv = leg.req("INVITE", body=SDP, headers=("Content-Type: application/sdp",))
    cap.udp(T0, A, P, inv.raw)
    cap.udp(T0 + 500 * MS, A, P, inv.raw)
    cap.udp(T0 + 510 * MS, P, A, leg.resp(inv, 100, "Trying"))
    cap.udp(T0 + 520 * MS, P, B, proxy_copy(inv.raw, P[0], "z9hG4bKp1", request=True))
    leg.to_tag = "tb1"
    for dt, status, reason in ((1 * S, 180, "Ringing"), (3 * S, 200, "OK")):
        resp = leg.resp(inv, status, reason)
        cap.udp(T0 + dt, B, P, proxy_copy(resp, P[0], "z9hG4bKp1", request=False))
        cap.udp(T0 + dt + 5 * MS, P, A, resp)
    ack = leg.req("ACK", cseq=inv.cseq, ruri="sip:bob@192.0.2.20:5060")
    cap.udp(T0 + 3 * S + 20 * MS, A, P, ack.raw)
    cap.udp(T0 + 3 * S + 25 * MS, P, B, proxy_copy(ack.raw, P[0], "z9hG4bKp2", request=True))
    bye = leg.req("BYE", ruri="sip:bob@192.0.2.20:5060")
    cap.udp(T0 + 10 * S, A, B, bye.raw)
    cap.udp(T0 + 10 * S + 30 * MS, B, A, leg.resp(bye, 200, "OK"))
    return cap


LADDER = [
    f"Call-ID {CALL}: 12 messages between 3 hosts, first at 2023-11-14T22:13:20.000000Z",
    "                                    192.0.2.10:5060   192.0.2.1:5060    192.0.2.20:5060",
    "22:13:20.000000    +0.000000  UDP          |---------------->|                 |"
    "  INVITE sip:bob@example.com SIP/2.0",
    "22:13:20.500000    +0.500000  UDP          |---------------->|                 |"
    "  INVITE sip:bob@example.com SIP/2.0 [retransmission]",
    "22:13:20.510000    +0.510000  UDP          |<----------------|                 |"
    "  SIP/2.0 100 Trying",
    "22:13:20.520000    +0.520000  UDP          |                 |---------------->|"
    "  INVITE sip:bob@example.com SIP/2.0 [copy]",
    "22:13:21.000000    +1.000000  UDP          |                 |<----------------|"
    "  SIP/2.0 180 Ringing",
    "22:13:21.005000    +1.005000  UDP          |<----------------|                 |"
    "  SIP/2.0 180 Ringing [copy]",
    "22:13:23.000000    +3.000000  UDP          |                 |<----------------|"
    "  SIP/2.0 200 OK",
    "22:13:23.005000    +3.005000  UDP          |<----------------|                 |"
    "  SIP/2.0 200 OK [copy]",
    "22:13:23.020000    +3.020000  UDP          |---------------->|                 |"
    "  ACK sip:bob@192.0.2.20:5060 SIP/2.0",
    "22:13:23.025000    +3.025000  UDP          |                 |---------------->|"
    "  ACK sip:bob@192.0.2.20:5060 SIP/2.0 [copy]",
    "22:13:30.000000   +10.000000  UDP          |---------------------------------->|"
    "  BYE sip:bob@192.0.2.20:5060 SIP/2.0",
    "22:13:30.030000   +10.030000  UDP          |<----------------------------------|"
    "  SIP/2.0 200 OK",
]


def sipcm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sipcm", *args],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip


def replay_flow(path: Path, call_id: str, *overrides: str, workers: int = 1):
    """Replay through the real pipeline; (ECS-validated documents, the call's flow)."""
    cfg = load_config(None, ["stats_interval=0", f"workers={workers}", *overrides])
    out = Collect()
    got: list = []
    replay(cfg, [str(path)], lambda _c: [out], end="conclude", after=lambda p: got.append(
        (p.flow(call_id), p.snapshot().get("flows", {}))))  # fmt: skip
    for d in out.docs:
        assert_valid(d)
    return out.docs, got[0][0], got[0][1]


@pytest.mark.parametrize("workers", [1, 2])
def test_flow_prints_the_ladder_with_retransmissions_and_copies(
    tmp_path: Path, workers: int
) -> None:
    path = proxied_call().write(tmp_path / "p.pcap")
    res = sipcm("flow", str(path), CALL, "-E", f"workers={workers}")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == LADDER


def test_flow_of_an_unknown_call_id_is_a_one_line_error(tmp_path: Path) -> None:
    path = proxied_call().write(tmp_path / "p.pcap")
    res = sipcm("flow", str(path), "nobody@example.com")
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr == (
        f"sipcm: error: no message with Call-ID 'nobody@example.com' in {path} "
        "(`sipcm replay FILE --pretty` shows the Call-IDs)\n"
    )


@pytest.mark.parametrize("workers", [1, 3])
def test_store_keeps_every_message_with_its_network_facts(tmp_path: Path, workers: int) -> None:
    cap = proxied_call()
    path = cap.write(tmp_path / "p.pcap")
    docs, flow, counters = replay_flow(path, CALL, workers=workers)
    assert [d["event"]["action"] for d in docs] == ["call-start", "call-end"]
    msgs = flow["messages"]
    assert [m["raw"] for m in msgs] == [frame[42:] for _ts, frame in cap.packets]
    assert [m["ts_ns"] for m in msgs] == [ts for ts, _frame in cap.packets]
    assert [m["dup"] for m in msgs] == [
        "new", "retrans", "new", "copy", "new", "copy", "new", "copy", "new", "copy", "new", "new"
    ]  # fmt: skip
    first = {k: v for k, v in msgs[0].items() if k not in ("raw", "seq")}
    assert first == {
        "ts_ns": T0, "src_ip": "192.0.2.10", "src_port": 5060, "dst_ip": "192.0.2.1",
        "dst_port": 5060, "transport": "udp", "direction": None, "vlan": None, "tunnel": None,
        "reassembled": False, "leg": None,
        "first_line": "INVITE sip:bob@example.com SIP/2.0", "dup": "new",
        "size": len(cap.packets[0][1]) - 42,
    }  # fmt: skip
    assert msgs[4]["leg"] == "tb1"
    assert (flow["messages_dropped"], flow["raw_dropped"], flow["anonymized"]) == (0, 0, False)
    assert counters == {}


def test_per_call_byte_limit_drops_text_then_messages(tmp_path: Path) -> None:
    cap = proxied_call()
    path = cap.write(tmp_path / "p.pcap")
    # The documented rule: a message costs 400 bytes plus its text; over the call's budget it
    # is kept without text (400 plus its first line), and not at all when even that is over.
    _docs, flow, counters = replay_flow(path, CALL, "flow_max_call_bytes=3000")
    used, expect_text, expect_meta, dropped = 0, 0, 0, 0
    for _ts, frame in cap.packets:
        raw = frame[42:]
        if used + 400 + len(raw) <= 3000:
            used, expect_text = used + 400 + len(raw), expect_text + 1
        elif used + 400 + raw.index(b"\r\n") <= 3000:
            used, expect_meta = used + 400 + raw.index(b"\r\n"), expect_meta + 1
        else:
            dropped += 1
    assert (expect_text, expect_meta, dropped) == (3, 1, 8)  # the rule cut at each stage
    kept = flow["messages"]
    assert len([m for m in kept if m["raw"] is not None]) == 3
    assert len([m for m in kept if m["raw"] is None]) == 1
    assert (flow["raw_dropped"], flow["messages_dropped"]) == (1, 8)
    assert counters == {"messages_dropped": 8, "raw_dropped": 1}


def test_retained_calls_evict_the_least_recently_active(tmp_path: Path) -> None:
    cap = Capture()
    for i in range(3):
        leg = Leg(f"c{i}@example.com")
        cap.udp(T0 + i * S, A, B, leg.req("OPTIONS").raw)
    path = cap.write(tmp_path / "o.pcap")
    _docs, flow, counters = replay_flow(path, "c0@example.com", "flow_max_calls=2")
    assert flow is None
    assert counters == {"calls_evicted": 1}
    _docs, flow, _ = replay_flow(path, "c2@example.com", "flow_max_calls=2")
    assert [m["first_line"] for m in flow["messages"]] == ["OPTIONS sip:bob@example.com SIP/2.0"]


def test_total_bytes_evict_the_least_recently_active(tmp_path: Path) -> None:
    cap = Capture()
    for i in range(3):
        cap.udp(T0 + i * S, A, B, Leg(f"c{i}@example.com").req("OPTIONS").raw)
    sizes = [len(frame) - 42 for _ts, frame in cap.packets]
    assert sum(400 + n for n in sizes[:2]) <= 1600 < sum(400 + n for n in sizes)
    path = cap.write(tmp_path / "o.pcap")
    _docs, flow, counters = replay_flow(path, "c0@example.com", "flow_max_bytes=1600")
    assert flow is None
    assert counters == {"calls_evicted": 1}
    _docs, flow, _ = replay_flow(path, "c1@example.com", "flow_max_bytes=1600")
    assert [m["raw"] for m in flow["messages"]] == [cap.packets[1][1][42:]]


ANON = (
    "encrypt_ip_addresses=true", "encrypt_uris=true", "encrypt_call_ids=true",
    "encryption_passphrase=secret", "encryption_salt=pepper",
)  # fmt: skip


def test_anonymized_flow_keeps_nothing_the_events_hide(tmp_path: Path) -> None:
    path = proxied_call().write(tmp_path / "p.pcap")
    docs, _, _ = replay_flow(path, CALL, *ANON)
    start = docs[0]
    enc_call_id = start["sip"]["call_id"]
    assert enc_call_id != CALL
    _docs, plain, _ = replay_flow(path, CALL, *ANON)
    assert plain is None  # looked up by the Call-ID the events carry
    _docs, flow, _ = replay_flow(path, enc_call_id, *ANON, workers=2)
    msgs = flow["messages"]
    assert flow["anonymized"] is True
    assert all(m["raw"] is None for m in msgs)
    assert msgs[0]["src_ip"] == start["client"]["ip"]  # the caller, as the events show it
    assert len({m["src_ip"] for m in msgs}) == 3  # A, P and B stay distinct
    assert msgs[0]["first_line"] == f"INVITE {start['sip']['uri']['original']} SIP/2.0"
    text = repr(flow)
    for secret in ("192.0.2", "bob", "example.com", CALL):
        assert secret not in text


WIRESHARK_CALL = [
    "Call-ID 105090259-446faf7a@192.168.1.2: 18 messages between 2 hosts, "
    "first at 2005-07-04T09:40:49.188993Z",
    "                                     192.168.1.2:5060    200.68.120.81:5060",
]
_INV = "  INVITE sip:97239287044@voip.brujula.net SIP/2.0"
_CAN = "  CANCEL sip:97239287044@voip.brujula.net SIP/2.0"
_OUT = "           |------------------->|"
_IN = "           |<-------------------|"
WIRESHARK_ROWS = [
    ("09:40:49.188993", "+0.000000", _OUT, _INV),
    ("09:40:49.696866", "+0.507873", _OUT, _INV + " [retransmission]"),
    ("09:40:50.699023", "+1.510030", _OUT, _INV + " [retransmission]"),
    ("09:40:51.405231", "+2.216238", _IN, "  SIP/2.0 100 trying -- your call is important to us"),
    ("09:41:23.308013", "+34.119020", _OUT, _CAN),
    ("09:41:23.815816", "+34.626823", _OUT, _CAN + " [retransmission]"),
    ("09:41:24.827100", "+35.638107", _OUT, _CAN + " [retransmission]"),
    ("09:41:25.961798", "+36.772805", _IN, "  SIP/2.0 408 Request Timeout"),
    ("09:41:25.969731", "+36.780738", _OUT, "  ACK sip:97239287044@voip.brujula.net SIP/2.0"),
    *[
        (t, r, _OUT, _CAN + " [retransmission]")
        for t, r in (
            ("09:41:26.840071", "+37.651078"), ("09:41:30.856381", "+41.667388"),
            ("09:41:34.861859", "+45.672866"), ("09:41:38.867648", "+49.678655"),
            ("09:41:42.883325", "+53.694332"), ("09:41:46.888846", "+57.699853"),
            ("09:41:50.894601", "+61.705608"), ("09:41:54.910372", "+65.721379"),
        )
    ],
    ("09:41:56.279089", "+67.090096", _IN, "  SIP/2.0 408 Request Timeout"),
]  # fmt: skip


def test_flow_of_a_corpus_call() -> None:
    pcap = CORPUS / "zeek" / "sip-wireshark.pcap"
    if not pcap.is_file():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    res = sipcm("flow", str(pcap), "105090259-446faf7a@192.168.1.2", "-E", "workers=2")
    assert res.returncode == 0, res.stderr
    rows = [f"{t}  {r:>11}  UDP {arrow}{line}" for t, r, arrow, line in WIRESHARK_ROWS]
    assert res.stdout.splitlines() == WIRESHARK_CALL + rows
