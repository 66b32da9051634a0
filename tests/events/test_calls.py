"""End-to-end INVITE dialogs: call-start, call-end, call-attempt and INVITE auth-failed.

Each test generates a capture with tests/sipgen.py, replays it through `sipcm.run.replay` and
compares the exact event list with one derived by hand from the timestamps the test put in
(SPEC 6 and 7; reference notes 1.3-1.10 as baseline).
"""

from __future__ import annotations

from pathlib import Path

from sipcm.events.community_id import community_id
from tests.events.scen import (
    MS,
    SDP,
    T0,
    Capture,
    Leg,
    S,
    auth_hdr,
    branch_of,
    briefs,
    doubled,
    iso,
    proxy_copy,
    rebuild_udp,
    run,
    ts_of,
    v6_fix,
)
from tests.sipgen import basic_call

A = ("192.0.2.10", 5060)
B = ("192.0.2.20", 5060)
SDP_HDR = ("Content-Type: application/sdp",)


def _call_start_end(docs: list[dict], cid: str) -> tuple[dict, dict]:
    assert briefs(docs) == [("call-start", cid, "INVITE", 200), ("call-end", cid, "INVITE", 200)]
    return docs[0], docs[1]


def test_basic_call_caller_hangs_up(tmp_path: Path) -> None:
    """INVITE T0, 100 +10 ms, 180 +200 ms, 200 +2 s, ACK, BYE +12 s, 200 +12.03 s."""
    cap, leg = Capture(), Leg("basic-1@test")
    basic_call(cap, leg, T0)
    start, end = _call_start_end(run(tmp_path, cap), "basic-1@test")

    assert start["@timestamp"] == iso(T0 + 2 * S)
    call = start["sip"]["call"]
    assert call["pdd"] == 200.0  # INVITE -> 180
    assert call["ring_time"] == 1800.0  # 180 -> 200
    assert call["setup_time"] == 2000.0  # INVITE -> 200
    assert call["reconstructed"] is False
    assert start["event"]["outcome"] == "success"
    assert start["event"]["type"] == ["start"]
    assert start["client"] == {"ip": A[0], "port": A[1]}
    assert start["server"] == {"ip": B[0], "port": B[1]}
    # who acted: the INVITE's sender (the 200 that triggered the event travels callee -> caller)
    assert start["source"] == {"ip": A[0], "port": A[1]}
    assert start["destination"] == {"ip": B[0], "port": B[1]}
    flow_id = community_id("udp", A[0], A[1], B[0], B[1])
    assert start["network"]["community_id"] == flow_id
    assert start["url"]["original"] == "sip:bob@example.com"
    assert start["user_agent"]["original"] == "TestPhone/1.0"
    assert start["sip"]["user_agent"]["original"] == "TestServer/2.0"
    assert start["sip"]["from"]["tag"] == "ftag1"
    assert start["sip"]["from"]["display_info"] == "Alice"
    assert start["sip"]["to"]["tag"] == "tt-basic-1@test"
    assert start["sip"]["to"]["uri"]["username"] == "bob"
    assert start["sip"]["cseq"] == {"code": 1, "method": "INVITE"}
    assert start["network"]["transport"] == "udp"
    assert start["network"]["type"] == "ipv4"
    assert start["network"]["protocol"] == "sip"

    assert end["@timestamp"] == iso(T0 + 12 * S)  # the BYE
    assert end["sip"]["call"]["originator"] == "caller"
    assert end["event"]["duration"] == 10 * S  # answer (T0+2 s) to BYE (T0+12 s)
    assert end["event"]["start"] == iso(T0 + 2 * S)
    assert end["event"]["end"] == iso(T0 + 12 * S)
    assert end["event"]["type"] == ["end"]
    assert end["event"]["outcome"] == "success"
    assert end["source"] == {"ip": A[0], "port": A[1]}  # the BYE's sender
    assert end["destination"] == {"ip": B[0], "port": B[1]}
    assert end["network"]["community_id"] == flow_id
    assert end["client"] == {"ip": A[0], "port": A[1]}
    assert end["sip"]["call"]["reconstructed"] is False


def test_callee_hangs_up(tmp_path: Path) -> None:
    cap, leg = Capture(), Leg("basic-2@test")
    basic_call(cap, leg, T0, talk_s=30, bye_from_callee=True)
    _start, end = _call_start_end(run(tmp_path, cap), "basic-2@test")
    assert end["@timestamp"] == iso(T0 + 32 * S)
    assert end["sip"]["call"]["originator"] == "callee"
    assert end["event"]["duration"] == 30 * S
    assert end["source"] == {"ip": B[0], "port": B[1]}  # the callee sent the BYE
    assert end["destination"] == {"ip": A[0], "port": A[1]}
    assert end["client"] == {"ip": A[0], "port": A[1]}  # still the caller side
    assert end["server"] == {"ip": B[0], "port": B[1]}


def test_busy_486(tmp_path: Path) -> None:
    """INVITE T0, 100 +10 ms, 486 +500 ms, ACK: one call-attempt 486 when the timer fires."""
    cap, leg = Capture(), Leg("busy@test")
    inv = leg.req("INVITE", body=SDP, headers=SDP_HDR)
    cap.a2b(leg, T0, inv.raw)
    cap.b2a(leg, T0 + 10 * MS, leg.resp(inv, 100, "Trying"))
    cap.b2a(leg, T0 + 500 * MS, leg.resp(inv, 486, "Busy Here", to_tag="busy-tt"))
    ack = leg.req("ACK", cseq=inv.cseq, branch=branch_of(inv), to_tag="busy-tt")
    cap.a2b(leg, T0 + 510 * MS, ack.raw)
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("call-attempt", "busy@test", "INVITE", 486)]
    (d,) = docs
    assert ts_of(d) > T0 + 500 * MS
    assert d["sip"]["status"] == "Busy Here"
    assert d["event"]["reason"] == "Busy Here"
    assert d["event"]["outcome"] == "failure"
    assert d["sip"]["call"]["pdd"] == 500.0  # INVITE -> final reply, no 18x
    assert "setup_time" not in d["sip"]["call"]
    assert d["client"] == {"ip": A[0], "port": A[1]}
    assert d["server"] == {"ip": B[0], "port": B[1]}


def test_cancel_487(tmp_path: Path) -> None:
    """INVITE, 100, 180, CANCEL +3 s, 200 (CANCEL), 487, ACK: one call-attempt 487 and no
    event for the CANCEL transaction."""
    cap, leg = Capture(), Leg("cancel@test")
    inv = leg.req("INVITE", body=SDP, headers=SDP_HDR)
    cap.a2b(leg, T0, inv.raw)
    cap.b2a(leg, T0 + 10 * MS, leg.resp(inv, 100, "Trying"))
    cap.b2a(leg, T0 + 200 * MS, leg.resp(inv, 180, "Ringing", to_tag="cx"))
    cancel = leg.req("CANCEL", cseq=inv.cseq, branch=branch_of(inv), to_tag="")
    cap.a2b(leg, T0 + 3 * S, cancel.raw)
    cap.b2a(leg, T0 + 3 * S + 10 * MS, leg.resp(cancel, 200, "OK", to_tag="cx"))
    cap.b2a(leg, T0 + 3 * S + 20 * MS, leg.resp(inv, 487, "Request Terminated", to_tag="cx"))
    ack = leg.req("ACK", cseq=inv.cseq, branch=branch_of(inv), to_tag="cx")
    cap.a2b(leg, T0 + 3 * S + 30 * MS, ack.raw)
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("call-attempt", "cancel@test", "INVITE", 487)]
    (d,) = docs
    assert ts_of(d) > T0 + 3 * S
    assert d["sip"]["status"] == "Request Terminated"
    assert d["sip"]["call"]["pdd"] == 200.0


def test_no_final_reply_times_out(tmp_path: Path) -> None:
    """INVITE T0, 100; an unrelated OPTIONS/200 at T0+60 s. With inv_1st at 10 s the
    call-attempt (408, timeout) fires at T0+10 s, during the replay, before the OPTIONS."""
    cap, leg = Capture(), Leg("silent@test")
    inv = leg.req("INVITE", body=SDP, headers=SDP_HDR)
    cap.a2b(leg, T0, inv.raw)
    cap.b2a(leg, T0 + 10 * MS, leg.resp(inv, 100, "Trying"))
    ping = Leg("ping@test", a_ip="192.0.2.30", b_ip="192.0.2.40")
    opt = ping.req("OPTIONS")
    cap.a2b(ping, T0 + 60 * S, opt.raw)
    cap.b2a(ping, T0 + 60 * S + 20 * MS, ping.resp(opt, 200, "OK", to_tag="p1"))

    docs = run(tmp_path, cap, "calls_timeouts={inv_1st: 10s}")
    assert briefs(docs) == [
        ("call-attempt", "silent@test", "INVITE", 408),
        ("other-ok", "ping@test", "OPTIONS", 200),
    ]
    att = docs[0]
    assert T0 + 10 * S <= ts_of(att) <= T0 + 11 * S
    assert att["event"]["reason"]  # says which timer fired
    assert att["event"]["outcome"] == "failure"

    # Default timers (first INVITE: minutes): the OPTIONS concludes first; the INVITE's
    # timer is run at the end of the replay.
    docs = run(tmp_path, cap, name="default.pcap")
    assert briefs(docs) == [
        ("other-ok", "ping@test", "OPTIONS", 200),
        ("call-attempt", "silent@test", "INVITE", 408),
    ]
    assert ts_of(docs[1]) >= T0 + 60 * S
    # --end none: nothing concludes the INVITE, nor the OPTIONS (its timer runs after the
    # last packet).
    assert run(tmp_path, cap, end="none", name="none.pcap") == []


def _challenge(cap: Capture, leg: Leg, t: int, tag: str) -> None:
    """INVITE without credentials at t, 407 at t+50 ms, ACK at t+60 ms."""
    inv = leg.req("INVITE", body=SDP, headers=SDP_HDR)
    cap.a2b(leg, t, inv.raw)
    hdr = ('Proxy-Authenticate: Digest realm="example.com",nonce="abc"',)
    cap.b2a(
        leg,
        t + 50 * MS,
        leg.resp(inv, 407, "Proxy Authentication Required", to_tag=tag, headers=hdr),
    )
    ack = leg.req("ACK", cseq=inv.cseq, branch=branch_of(inv), to_tag=tag)
    cap.a2b(leg, t + 60 * MS, ack.raw)


def test_invite_guesses_reusing_call_id_and_cseq(tmp_path: Path) -> None:
    """INVITE CSeq 1 -> 407; then 4 guesses that all reuse Call-ID and CSeq 2, each with a new
    branch, From-tag and Digest response, each refused 407 and ACKed: 4 auth-failed, one per
    guess (RFC 3261 17.1.3: the branch names the transaction), no call-attempt."""
    cap, leg = Capture(), Leg("inv-crack@test")
    _challenge(cap, leg, T0, "c0")
    for k in range(1, 5):
        t = T0 + k * S
        leg.from_tag = f"g{k}"
        inv = leg.req("INVITE", cseq=2, headers=(auth_hdr(f"u{k}", proxy=True, n=k),))
        rej = leg.resp(inv, 407, "Proxy Authentication Required", to_tag=f"c{k}")
        cap.a2b(leg, t, inv.raw)
        cap.b2a(leg, t + 50 * MS, rej)
        ack = leg.req("ACK", cseq=2, branch=branch_of(inv), to_tag=f"c{k}")
        cap.a2b(leg, t + 60 * MS, ack.raw)
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("auth-failed", "inv-crack@test", "INVITE", 407)] * 4
    assert [(d["user"]["name"], ts_of(d)) for d in docs] == [
        (f"u{k}", T0 + k * S + 50 * MS) for k in range(1, 5)
    ]
    for d in docs:
        assert d["source"] == {"ip": A[0], "port": A[1]}  # the UA that sent the credentials


def test_invite_auth_failed(tmp_path: Path) -> None:
    """407, credentialed INVITE at T0+1 s, 407 again at T0+1.05 s: one auth-failed, at that
    reply, and not also a call-attempt."""
    cap, leg = Capture(), Leg("authfail@test")
    _challenge(cap, leg, T0, "x1")
    inv = leg.req("INVITE", body=SDP, headers=(*SDP_HDR, auth_hdr("alice", proxy=True)))
    cap.a2b(leg, T0 + S, inv.raw)
    cap.b2a(leg, T0 + S + 50 * MS, leg.resp(inv, 407, "Proxy Authentication Required", to_tag="x2"))
    ack = leg.req("ACK", cseq=inv.cseq, branch=branch_of(inv), to_tag="x2")
    cap.a2b(leg, T0 + S + 60 * MS, ack.raw)
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("auth-failed", "authfail@test", "INVITE", 407)]
    (d,) = docs
    assert d["@timestamp"] == iso(T0 + S + 50 * MS)
    assert d["user"]["name"] == "alice"
    assert "alice" in d["related"]["user"]
    assert d["sip"]["auth"]["realm"] == "example.com"
    assert d["sip"]["cseq"]["code"] == 2
    assert d["event"]["category"] == ["authentication", "network"]
    assert d["event"]["outcome"] == "failure"


def test_invite_challenge_answered_continues_the_call(tmp_path: Path) -> None:
    """407, credentialed INVITE at T0+1 s, 180 +300 ms, 200 +2 s, ACK, BYE at T0+8 s: one call
    (no auth-failed, no call-attempt for the challenge); metrics from the credentialed INVITE."""
    cap, leg = Capture(), Leg("authok@test")
    _challenge(cap, leg, T0, "x1")
    inv = leg.req("INVITE", body=SDP, headers=(*SDP_HDR, auth_hdr("alice", proxy=True)))
    t1 = T0 + S
    cap.a2b(leg, t1, inv.raw)
    cap.b2a(leg, t1 + 300 * MS, leg.resp(inv, 180, "Ringing", to_tag="ok"))
    cap.b2a(leg, t1 + 2 * S, leg.resp(inv, 200, "OK", to_tag="ok", body=SDP))
    leg.to_tag = "ok"
    cap.a2b(leg, t1 + 2 * S + 10 * MS, leg.req("ACK", cseq=inv.cseq).raw)
    cap.a2b(leg, T0 + 8 * S, leg.req("BYE").raw)
    start, end = _call_start_end(run(tmp_path, cap), "authok@test")
    assert start["@timestamp"] == iso(t1 + 2 * S)
    assert start["sip"]["call"]["pdd"] == 300.0
    assert start["sip"]["call"]["setup_time"] == 2000.0
    assert "authentication" in start["event"]["category"]
    assert start["user"]["name"] == "alice"
    assert end["@timestamp"] == iso(T0 + 8 * S)
    assert end["event"]["duration"] == 5 * S  # answer at T0+3 s, BYE at T0+8 s


def test_invite_challenge_never_answered(tmp_path: Path) -> None:
    """INVITE, 407, ACK and no retry: not an auth failure; a call-attempt 407 at the timer."""
    cap, leg = Capture(), Leg("noretry@test")
    _challenge(cap, leg, T0, "x1")
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("call-attempt", "noretry@test", "INVITE", 407)]
    assert ts_of(docs[0]) > T0 + 50 * MS
    assert "user" not in docs[0]


def test_forked_2xx(tmp_path: Path) -> None:
    """A forked INVITE answered by two phones (To-tags fa and fb): both dialogs are
    established; the caller BYEs fb at once and fa later: two call-starts, two call-ends."""
    cap, leg = Capture(), Leg("fork@test")
    inv = leg.req("INVITE", body=SDP, headers=SDP_HDR)
    cap.a2b(leg, T0, inv.raw)
    cap.b2a(leg, T0 + 100 * MS, leg.resp(inv, 180, "Ringing", to_tag="fa"))
    cap.b2a(leg, T0 + 150 * MS, leg.resp(inv, 180, "Ringing", to_tag="fb"))
    cap.b2a(leg, T0 + 2 * S, leg.resp(inv, 200, "OK", to_tag="fa", body=SDP))
    cap.b2a(leg, T0 + 2 * S + 100 * MS, leg.resp(inv, 200, "OK", to_tag="fb", body=SDP))
    cap.a2b(leg, T0 + 2 * S + 110 * MS, leg.req("ACK", cseq=inv.cseq, to_tag="fa").raw)
    cap.a2b(leg, T0 + 2 * S + 120 * MS, leg.req("ACK", cseq=inv.cseq, to_tag="fb").raw)
    bye_b = leg.req("BYE", to_tag="fb")
    cap.a2b(leg, T0 + 2 * S + 200 * MS, bye_b.raw)
    cap.b2a(leg, T0 + 2 * S + 230 * MS, leg.resp(bye_b, 200, "OK", to_tag="fb"))
    bye_a = leg.req("BYE", to_tag="fa")
    cap.a2b(leg, T0 + 12 * S, bye_a.raw)
    cap.b2a(leg, T0 + 12 * S + 30 * MS, leg.resp(bye_a, 200, "OK", to_tag="fa"))
    docs = run(tmp_path, cap)
    cid = "fork@test"
    assert briefs(docs) == [
        ("call-start", cid, "INVITE", 200),
        ("call-start", cid, "INVITE", 200),
        ("call-end", cid, "INVITE", 200),
        ("call-end", cid, "INVITE", 200),
    ]
    assert [d["sip"]["to"]["tag"] for d in docs] == ["fa", "fb", "fb", "fa"]
    assert [d["@timestamp"] for d in docs] == [
        iso(T0 + 2 * S),
        iso(T0 + 2 * S + 100 * MS),
        iso(T0 + 2 * S + 200 * MS),
        iso(T0 + 12 * S),
    ]
    assert docs[2]["event"]["duration"] == 100 * MS
    assert docs[3]["event"]["duration"] == 10 * S


def test_failed_reinvite_does_not_end_call(tmp_path: Path) -> None:
    """200 at T0+1 s; re-INVITE at T0+5 s answered 491 (and ACKed); BYE at T0+11 s."""
    cap, leg = Capture(), Leg("reinv@test")
    inv = leg.req("INVITE", body=SDP, headers=SDP_HDR)
    cap.a2b(leg, T0, inv.raw)
    cap.b2a(leg, T0 + 200 * MS, leg.resp(inv, 180, "Ringing", to_tag="rt"))
    cap.b2a(leg, T0 + S, leg.resp(inv, 200, "OK", to_tag="rt", body=SDP))
    leg.to_tag = "rt"
    cap.a2b(leg, T0 + S + 20 * MS, leg.req("ACK", cseq=inv.cseq).raw)
    re = leg.req("INVITE", body=SDP, headers=SDP_HDR)
    cap.a2b(leg, T0 + 5 * S, re.raw)
    cap.b2a(leg, T0 + 5 * S + 50 * MS, leg.resp(re, 491, "Request Pending"))
    cap.a2b(leg, T0 + 5 * S + 60 * MS, leg.req("ACK", cseq=re.cseq, branch=branch_of(re)).raw)
    bye = leg.req("BYE")
    cap.a2b(leg, T0 + 11 * S, bye.raw)
    cap.b2a(leg, T0 + 11 * S + 30 * MS, leg.resp(bye, 200, "OK"))
    start, end = _call_start_end(run(tmp_path, cap), "reinv@test")
    assert start["@timestamp"] == iso(T0 + S)
    assert end["@timestamp"] == iso(T0 + 11 * S)
    assert end["event"]["duration"] == 10 * S
    assert end["sip"]["call"]["originator"] == "caller"


def test_call_through_proxy_seen_on_both_legs(tmp_path: Path) -> None:
    """caller A -> proxy P -> callee B, every message captured on both legs (the proxy adds its
    own Via with a new branch; addresses differ): one call-start and one call-end."""
    p_ip = "192.0.2.1"
    leg = Leg("proxied@test", b_ip=p_ip)  # the caller's leg: A <-> P
    cap = Capture()
    a, p, b = A, (p_ip, 5060), B
    n = iter(range(1, 100))

    def req(t: int, raw: bytes) -> None:
        cap.udp(t, a, p, raw)
        cap.udp(t + MS, p, b, proxy_copy(raw, p_ip, f"z9hG4bKpx{next(n)}", request=True))

    def resp(t: int, raw: bytes) -> None:
        cap.udp(t, b, p, proxy_copy(raw, p_ip, f"z9hG4bKpx{next(n)}", request=False))
        cap.udp(t + MS, p, a, raw)

    inv = leg.req("INVITE", body=SDP, headers=SDP_HDR)
    req(T0, inv.raw)
    resp(T0 + 200 * MS, leg.resp(inv, 180, "Ringing", to_tag="pt"))
    resp(T0 + 2 * S, leg.resp(inv, 200, "OK", to_tag="pt", body=SDP))
    leg.to_tag = "pt"
    req(T0 + 2 * S + 20 * MS, leg.req("ACK", cseq=inv.cseq).raw)
    bye = leg.req("BYE")
    req(T0 + 12 * S, bye.raw)
    resp(T0 + 12 * S + 30 * MS, leg.resp(bye, 200, "OK"))
    start, end = _call_start_end(run(tmp_path, cap), "proxied@test")
    assert start["@timestamp"] == iso(T0 + 2 * S)  # first copy of the 200 (B -> P)
    assert start["sip"]["call"]["pdd"] == 200.0
    assert start["sip"]["call"]["setup_time"] == 2000.0
    assert start["client"]["ip"] == A[0]
    assert end["@timestamp"] == iso(T0 + 12 * S)  # first copy of the BYE (A -> P)
    assert end["event"]["duration"] == 10 * S


def test_ingress_and_egress_copies(tmp_path: Path) -> None:
    """Every frame of a call captured twice, byte for byte, 20 us apart: one event each."""
    cap, leg = Capture(), Leg("dup@test")
    basic_call(cap, leg, T0)
    start, end = _call_start_end(run(tmp_path, doubled(cap)), "dup@test")
    assert start["@timestamp"] == iso(T0 + 2 * S)
    assert end["@timestamp"] == iso(T0 + 12 * S)
    assert start["sip"]["call"]["setup_time"] == 2000.0
    assert end["event"]["duration"] == 10 * S


def test_bye_without_invite_is_reconstructed(tmp_path: Path) -> None:
    """Only an in-dialog BYE (T0) and its 200: a call-end labelled reconstructed."""
    cap, leg = Capture(), Leg("byeonly@test", to_tag="bt", cseq=41)
    bye = leg.req("BYE")
    cap.a2b(leg, T0, bye.raw)
    cap.b2a(leg, T0 + 30 * MS, leg.resp(bye, 200, "OK"))
    docs = run(tmp_path, cap)
    assert [(d["event"]["action"], d["sip"]["call_id"]) for d in docs] == [
        ("call-end", "byeonly@test")
    ]
    (d,) = docs
    assert d["@timestamp"] == iso(T0)
    assert d["sip"]["call"]["reconstructed"] is True
    assert d["source"] == {"ip": A[0], "port": A[1]}


def test_dialog_seen_from_its_2xx(tmp_path: Path) -> None:
    """200 (INVITE) at T0 without the INVITE, ACK, BYE at T0+10 s, 200: call-start and call-end
    labelled reconstructed; the caller is the 200's destination."""
    cap, leg = Capture(), Leg("from2xx@test")
    inv = leg.req("INVITE", body=SDP, headers=SDP_HDR)  # built, never captured
    cap.b2a(leg, T0, leg.resp(inv, 200, "OK", to_tag="zt", body=SDP))
    leg.to_tag = "zt"
    cap.a2b(leg, T0 + 20 * MS, leg.req("ACK", cseq=inv.cseq).raw)
    bye = leg.req("BYE")
    cap.a2b(leg, T0 + 10 * S, bye.raw)
    cap.b2a(leg, T0 + 10 * S + 30 * MS, leg.resp(bye, 200, "OK"))
    start, end = _call_start_end(run(tmp_path, cap), "from2xx@test")
    assert start["@timestamp"] == iso(T0)
    assert start["sip"]["call"]["reconstructed"] is True
    assert end["sip"]["call"]["reconstructed"] is True
    assert start["client"]["ip"] == A[0]
    assert start["server"]["ip"] == B[0]
    assert end["@timestamp"] == iso(T0 + 10 * S)
    assert end["event"]["duration"] == 10 * S


def test_tcp_call(tmp_path: Path) -> None:
    cap, leg = Capture(), Leg("tcp@test", transport="TCP", a_port=40123)
    basic_call(cap, leg, T0)
    start, end = _call_start_end(run(tmp_path, cap), "tcp@test")
    assert start["network"]["transport"] == "tcp"
    assert end["network"]["transport"] == "tcp"
    assert start["client"] == {"ip": A[0], "port": 40123}
    assert start["sip"]["call"]["setup_time"] == 2000.0
    assert end["event"]["duration"] == 10 * S


def test_ipv6_call(tmp_path: Path) -> None:
    a6, b6 = "2001:db8::a", "2001:db8::b"
    raw, leg = Capture(), Leg("v6@test", a_ip=a6, b_ip=b6)
    basic_call(raw, leg, T0)
    cap = rebuild_udp(raw, lambda p: v6_fix(p, a6, b6))
    start, end = _call_start_end(run(tmp_path, cap), "v6@test")
    for d in (start, end):
        assert d["network"]["type"] == "ipv6"
        assert d["client"] == {"ip": a6, "port": 5060}
        assert d["server"] == {"ip": b6, "port": 5060}
        assert a6 in d["related"]["ip"]
    assert end["event"]["duration"] == 10 * S


def test_blacklisted_call_start(tmp_path: Path) -> None:
    cap, leg = Capture(), Leg("blst@test")
    basic_call(cap, leg, T0)
    docs = run(tmp_path, cap, "event_types_blst=[call-start]")
    assert briefs(docs) == [("call-end", "blst@test", "INVITE", 200)]
    assert docs[0]["event"]["duration"] == 10 * S


def test_retransmissions_make_no_second_event(tmp_path: Path) -> None:
    """INVITE at T0 retransmitted at +0.5 s and +1.5 s, 180 at +1.6 s, 200 at +2 s retransmitted
    at +2.5 s (the ACK was lost), ACK x2: one call-start (pdd and setup from the first INVITE
    copy; 2 INVITE retransmissions so far) and one call-end."""
    cap, leg = Capture(), Leg("rtx@test")
    inv = leg.req("INVITE", body=SDP, headers=SDP_HDR)
    for dt in (0, 500 * MS, 1500 * MS):
        cap.a2b(leg, T0 + dt, inv.raw)
    cap.b2a(leg, T0 + 1600 * MS, leg.resp(inv, 180, "Ringing", to_tag="rx"))
    ok = leg.resp(inv, 200, "OK", to_tag="rx", body=SDP)
    cap.b2a(leg, T0 + 2 * S, ok)
    cap.b2a(leg, T0 + 2500 * MS, ok)
    leg.to_tag = "rx"
    ack = leg.req("ACK", cseq=inv.cseq)
    cap.a2b(leg, T0 + 2510 * MS, ack.raw)
    cap.a2b(leg, T0 + 2520 * MS, ack.raw)
    bye = leg.req("BYE")
    cap.a2b(leg, T0 + 12 * S, bye.raw)
    cap.b2a(leg, T0 + 12 * S + 30 * MS, leg.resp(bye, 200, "OK"))
    start, end = _call_start_end(run(tmp_path, cap), "rtx@test")
    assert start["@timestamp"] == iso(T0 + 2 * S)
    assert start["sip"]["call"]["pdd"] == 1600.0
    assert start["sip"]["call"]["setup_time"] == 2000.0
    assert start["sip"]["call"]["retransmissions"] == 2
    assert end["event"]["duration"] == 10 * S


def test_bye_retransmitted_until_answered(tmp_path: Path) -> None:
    """The BYE at T0+12 s is retransmitted (RFC 3261 Timer E: +0.5, +1.5, +3.5, +7.5, +15.5 s)
    and answered only after the last copy: one call-end, at the first BYE."""
    cap, leg = Capture(), Leg("byertx@test")
    inv = leg.req("INVITE", body=SDP, headers=SDP_HDR)
    cap.a2b(leg, T0, inv.raw)
    cap.b2a(leg, T0 + 2 * S, leg.resp(inv, 200, "OK", to_tag="bt", body=SDP))
    leg.to_tag = "bt"
    cap.a2b(leg, T0 + 2 * S + 10 * MS, leg.req("ACK", cseq=inv.cseq).raw)
    bye = leg.req("BYE")
    t = T0 + 12 * S
    for dt in (0, 500 * MS, 1500 * MS, 3500 * MS, 7500 * MS, 15500 * MS):
        cap.a2b(leg, t + dt, bye.raw)
    cap.b2a(leg, t + 15530 * MS, leg.resp(bye, 200, "OK"))
    _start, end = _call_start_end(run(tmp_path, cap), "byertx@test")
    assert end["@timestamp"] == iso(t)
    assert end["event"]["duration"] == 10 * S


def _established(cap: Capture, cid: str) -> None:
    """A call answered at T0+2 s and never hung up."""
    leg = Leg(cid)
    inv = leg.req("INVITE", body=SDP, headers=SDP_HDR)
    cap.a2b(leg, T0, inv.raw)
    cap.b2a(leg, T0 + 2 * S, leg.resp(inv, 200, "OK", to_tag="et", body=SDP))
    leg.to_tag = "et"
    cap.a2b(leg, T0 + 2 * S + 10 * MS, leg.req("ACK", cseq=inv.cseq).raw)


def test_established_call_times_out(tmp_path: Path) -> None:
    """No BYE. With inv_established at 60 s and an unrelated OPTIONS at T0+200 s, the dialog
    times out (last message T0+2.01 s, so at T0+62.01 s): call-end, originator timeout."""
    cap = Capture()
    _established(cap, "est@test")
    ping = Leg("ping@test", a_ip="192.0.2.30", b_ip="192.0.2.40")
    opt = ping.req("OPTIONS")
    cap.a2b(ping, T0 + 200 * S, opt.raw)
    cap.b2a(ping, T0 + 200 * S + 20 * MS, ping.resp(opt, 200, "OK", to_tag="p1"))
    docs = run(tmp_path, cap, "calls_timeouts={inv_established: 60s}")
    assert [(d["event"]["action"], d["sip"]["call_id"]) for d in docs] == [
        ("call-start", "est@test"),
        ("call-end", "est@test"),
        ("other-ok", "ping@test"),
    ]
    end = docs[1]
    assert T0 + 62 * S <= ts_of(end) <= T0 + 63 * S
    assert end["sip"]["call"]["originator"] == "timeout"
    assert end["event"]["outcome"] == "unknown"
    # Default timers: an established call stays open at the end of a replay (conclude) ...
    docs = run(tmp_path, cap, name="default.pcap")
    assert [d["event"]["action"] for d in docs] == ["call-start", "other-ok"]


def test_expire_all_ends_established_call(tmp_path: Path) -> None:
    cap = Capture()
    _established(cap, "est2@test")
    assert [d["event"]["action"] for d in run(tmp_path, cap)] == ["call-start"]
    docs = run(tmp_path, cap, end="expire-all", name="all.pcap")
    assert [(d["event"]["action"], d["sip"]["call_id"]) for d in docs] == [
        ("call-start", "est2@test"),
        ("call-end", "est2@test"),
    ]
    assert docs[1]["sip"]["call"]["originator"] == "timeout"
    assert ts_of(docs[1]) >= T0 + 2 * S + 10 * MS
