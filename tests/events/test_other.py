"""End-to-end non-dialog outcomes (other-ok/-failed/-timeout), in-dialog requests, parse-error,
msg-probe, stats events and replay determinism (SPEC 4, 6, 7, 10, 11)."""

from __future__ import annotations

from pathlib import Path

from sipcm.outputs.base import ndjson_line
from tests.ecs import assert_valid
from tests.events.scen import (
    MS,
    SDP,
    T0,
    Capture,
    Leg,
    S,
    briefs,
    iso,
    ndjson,
    run,
    ts_of,
)
from tests.replayutil import replay_docs
from tests.sipgen import basic_call

A = ("192.0.2.10", 5060)
B = ("192.0.2.20", 5060)

NO_CALL_ID = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbad1\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)
BINARY = b"\x80\x00\x12\x34\xde\xad\xbe\xef"  # 8 bytes, not text


def test_options_ok(tmp_path: Path) -> None:
    cap, leg = Capture(), Leg("opt@test")
    opt = leg.req("OPTIONS")
    cap.a2b(leg, T0, opt.raw)
    cap.b2a(leg, T0 + 20 * MS, leg.resp(opt, 200, "OK", to_tag="o1"))
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("other-ok", "opt@test", "OPTIONS", 200)]
    (d,) = docs
    assert ts_of(d) >= T0 + 20 * MS
    assert d["event"]["type"] == ["info", "protocol"]
    assert d["event"]["outcome"] == "success"
    assert d["client"] == {"ip": A[0], "port": A[1]}
    assert d["server"] == {"ip": B[0], "port": B[1]}


def test_message_404(tmp_path: Path) -> None:
    cap, leg = Capture(), Leg("msg@test")
    msg = leg.req("MESSAGE", body="hello", headers=("Content-Type: text/plain",))
    cap.a2b(leg, T0, msg.raw)
    cap.b2a(leg, T0 + 20 * MS, leg.resp(msg, 404, "Not Found", to_tag="m1"))
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("other-failed", "msg@test", "MESSAGE", 404)]
    (d,) = docs
    assert ts_of(d) >= T0 + 20 * MS
    assert d["sip"]["status"] == "Not Found"
    assert d["event"]["outcome"] == "failure"


def test_options_timeout(tmp_path: Path) -> None:
    """No reply: the pending transaction's timer is run at the end of the replay (conclude);
    `--end none` leaves it."""
    cap, leg = Capture(), Leg("lost@test")
    cap.a2b(leg, T0, leg.req("OPTIONS").raw)
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("other-timeout", "lost@test", "OPTIONS", 408)]
    assert ts_of(docs[0]) > T0
    assert docs[0]["event"]["outcome"] == "failure"
    assert docs[0]["event"]["reason"]
    assert run(tmp_path, cap, end="none", name="none.pcap") == []


def test_in_dialog_requests_have_no_event(tmp_path: Path) -> None:
    """INFO, OPTIONS and UPDATE inside an established call (each answered 200): only the
    call's own two events."""
    cap, leg = Capture(), Leg("indlg@test")
    inv = leg.req("INVITE", body=SDP, headers=("Content-Type: application/sdp",))
    cap.a2b(leg, T0, inv.raw)
    cap.b2a(leg, T0 + S, leg.resp(inv, 200, "OK", to_tag="it", body=SDP))
    leg.to_tag = "it"
    cap.a2b(leg, T0 + S + 10 * MS, leg.req("ACK", cseq=inv.cseq).raw)
    for k, method in enumerate(("INFO", "OPTIONS", "UPDATE")):
        r = leg.req(method)
        cap.a2b(leg, T0 + (2 + k) * S, r.raw)
        cap.b2a(leg, T0 + (2 + k) * S + 20 * MS, leg.resp(r, 200, "OK"))
    bye = leg.req("BYE")
    cap.a2b(leg, T0 + 10 * S, bye.raw)
    cap.b2a(leg, T0 + 10 * S + 20 * MS, leg.resp(bye, 200, "OK"))
    docs = run(tmp_path, cap)
    assert briefs(docs) == [
        ("call-start", "indlg@test", "INVITE", 200),
        ("call-end", "indlg@test", "INVITE", 200),
    ]
    assert docs[1]["event"]["duration"] == 9 * S


def test_parse_error(tmp_path: Path) -> None:
    """SIP-looking text on port 5060 without a Call-ID: one parse-error at the packet's time.
    The same bytes between two non-SIP ports give nothing (SPEC 4)."""
    cap = Capture()
    cap.udp(T0, A, B, NO_CALL_ID)
    cap.udp(T0 + S, ("192.0.2.10", 40000), ("192.0.2.20", 40002), NO_CALL_ID)
    docs = run(tmp_path, cap)
    assert [d["event"]["action"] for d in docs] == ["parse-error"]
    (d,) = docs
    assert d["@timestamp"] == iso(T0)
    assert "call_id" not in d.get("sip", {})
    assert d["source"] == {"ip": A[0], "port": A[1]}
    assert d["destination"] == {"ip": B[0], "port": B[1]}
    assert d["network"]["transport"] == "udp"
    assert d["event"]["outcome"] == "failure"
    assert d["error"]["code"]
    assert d["sipcm"]["payload"]["size"] == len(NO_CALL_ID)


def test_msg_probe(tmp_path: Path) -> None:
    """8 binary bytes on port 5060: msg-probe, blacklisted by default; a binary payload on
    other ports is never reported."""
    cap = Capture()
    cap.udp(T0, A, B, BINARY)
    cap.udp(T0 + S, ("192.0.2.10", 40000), ("192.0.2.20", 40002), BINARY)
    assert run(tmp_path, cap) == []
    docs = run(tmp_path, cap, "event_types_blst=[]", name="all.pcap")
    assert [d["event"]["action"] for d in docs] == ["msg-probe"]
    (d,) = docs
    assert d["@timestamp"] == iso(T0)
    assert "call_id" not in d.get("sip", {})
    assert d["source"] == {"ip": A[0], "port": A[1]}
    assert d["sipcm"]["payload"]["size"] == len(BINARY)


def _pings(cap: Capture, n: int) -> None:
    """OPTIONS/200 pings, one per second from T0, each in its own Call-ID."""
    for k in range(n):
        leg = Leg(f"ping{k}@test")
        opt = leg.req("OPTIONS")
        cap.a2b(leg, T0 + k * S, opt.raw)
        cap.b2a(leg, T0 + k * S + 20 * MS, leg.resp(opt, 200, "OK", to_tag=f"p{k}"))


def test_stats_events(tmp_path: Path) -> None:
    """Pings from T0 to T0+34.02 s with stats_interval=10s: stats at T0+10 s, +20 s, +30 s of
    capture time (one more at the very end is allowed), in time order with the other events."""
    cap = Capture()
    _pings(cap, 35)
    docs = run(tmp_path, cap, "stats_interval=10s")
    stats = [d for d in docs if d["event"]["action"] == "stats"]
    inside = [d for d in stats if ts_of(d) < T0 + 34 * S]
    assert len(inside) == 3
    for k, d in enumerate(inside, start=1):
        assert T0 + 10 * k * S <= ts_of(d) < T0 + (10 * k + 1) * S
        assert d["event"]["kind"] == "metric"
        assert d["sipcm"]["counters"]["sip"]["messages"] >= 20 * k - 1
    assert len(stats) - len(inside) <= 1
    others = [d for d in docs if d["event"]["action"] != "stats"]
    assert [brief[0] for brief in briefs(others)] == ["other-ok"] * 35
    stamps = [ts_of(d) for d in docs]
    assert stamps == sorted(stamps)


def test_stats_disabled_by_zero(tmp_path: Path) -> None:
    cap = Capture()
    _pings(cap, 35)
    docs = run(tmp_path, cap, "stats_interval=0")
    assert [d["event"]["action"] for d in docs] == ["other-ok"] * 35


def _mixed(cap: Capture) -> None:
    basic_call(cap, Leg("mix-call@test"), T0)
    busy = Leg("mix-busy@test", a_ip="192.0.2.11")
    inv = busy.req("INVITE")
    cap.a2b(busy, T0 + S, inv.raw)
    cap.b2a(busy, T0 + S + 300 * MS, busy.resp(inv, 486, "Busy Here", to_tag="b"))
    reg = Leg("mix-reg@test", a_user="carol", b_user="carol", a_ip="192.0.2.12")
    r = reg.req("REGISTER", ruri="sip:example.com", headers=("Expires: 600",))
    cap.a2b(reg, T0 + 3 * S, r.raw)
    cap.b2a(
        reg,
        T0 + 3 * S + 40 * MS,
        reg.resp(
            r, 200, "OK", to_tag="r", headers=("Contact: <sip:carol@192.0.2.12:5060>;expires=600",)
        ),
    )
    _pings(cap, 3)
    cap.udp(T0 + 5 * S, A, B, NO_CALL_ID)
    cap.udp(T0 + 6 * S, A, B, BINARY)


def test_replay_is_deterministic(tmp_path: Path) -> None:
    cap = Capture()
    _mixed(cap)
    path = cap.write(tmp_path / "mixed.pcap")
    first, _ = replay_docs([path], "event_types_blst=[]", end="expire-all")
    second, _ = replay_docs([path], "event_types_blst=[]", end="expire-all")
    for d in first:
        assert_valid(d)
    assert len(first) >= 9
    assert ndjson(first) == ndjson(second)
    assert "".join(map(ndjson_line, first)) == "".join(map(ndjson_line, second))
    assert sorted({d["event"]["action"] for d in first}) == sorted(
        [
            "call-start",
            "call-end",
            "call-attempt",
            "reg-new",
            "reg-expired",
            "other-ok",
            "parse-error",
            "msg-probe",
        ]
    )
