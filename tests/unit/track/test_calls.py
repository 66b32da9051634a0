"""INVITE dialog scenarios: exact outcome lists derived by hand from the messages and timers.

Default timeouts (seconds): inv_1st 120, inv_early_dlg 180, inv_neg 30, inv_established 3600,
inv_bye_seen 30, inv_bye_repl 5, inv_canceled 5. A message in the same state extends the timer
to its own time plus the state's timeout.
"""

from __future__ import annotations

from collections import Counter

from sipcm.track.tracker import Tracker
from tests.unit.track.msgs import (
    ALICE,
    BOB,
    PROXY,
    S,
    ack,
    again,
    brief,
    cancel,
    creds,
    feed,
    in_dialog,
    invite,
    kept,
    ns,
    proxied,
    resp,
)


def tracker(**kw: object) -> Tracker:
    return Tracker(Counter(), **kw)  # type: ignore[arg-type]


def simple_call(cid: str = "c1") -> list:
    inv = invite(cid, "ft", 1, 0.0)
    bye = in_dialog("BYE", inv, "tt", 2, 62.5)
    return [
        inv,
        resp(inv, 100, 0.01),
        resp(inv, 180, 0.5, "tt"),
        resp(inv, 200, 2.5, "tt"),
        ack(inv, "tt", 2.6),
        bye,
        resp(bye, 200, 62.6),
    ]


def test_simple_call_start_end_and_metrics() -> None:
    t = tracker()
    msgs = simple_call()
    out = feed(t, msgs, until=1000)
    assert brief(out) == [
        ("call-start", "c1", 200, "OK", 2.5),
        ("call-end", "c1", 200, "OK", 62.5),
    ]
    start, end = out
    assert start.msg is msgs[3]
    assert kept(start.request) == kept(msgs[0])
    assert kept(start.response) == kept(msgs[3])
    assert start.client == ("10.0.0.1", 5060)
    assert start.server == ("10.0.0.2", 5060)
    assert start.method == "INVITE"
    assert start.start_ns == ns(2.5)
    assert start.end_ns is None
    m = start.call
    assert (m.pdd_ms, m.ring_time_ms, m.setup_time_ms) == (500.0, 2000.0, 2500.0)
    assert (m.reconstructed, m.reconstructed_from, m.originator, m.duration_ns) == (
        False, None, None, None
    )  # fmt: skip
    e = end.call
    assert e.originator == "caller"
    assert e.duration_ns == 60 * S
    assert (end.start_ns, end.end_ns) == (ns(2.5), ns(62.5))
    assert end.msg is msgs[5]
    assert kept(end.response) == kept(msgs[3])
    # BYE 200 at 62.6 -> bye_repl for 5 s, then the call is forgotten
    assert len(t.entries) == 0


def test_callee_hangs_up() -> None:
    t = tracker()
    inv = invite("c1", "ft", 1, 0.0)
    bye = in_dialog("BYE", inv, "tt", 7, 10.0, by_callee=True)
    out = feed(t, [inv, resp(inv, 200, 1.0, "tt"), ack(inv, "tt", 1.1), bye, resp(bye, 200, 10.1)])
    assert [o.action for o in out] == ["call-start", "call-end"]
    assert out[1].call.originator == "callee"
    assert out[1].call.duration_ns == 9 * S


def test_bye_reply_alone_ends_the_call() -> None:
    t = tracker()
    inv = invite("c1", "ft", 1, 0.0)
    bye = in_dialog("BYE", inv, "tt", 2, 5.0, by_callee=True)
    out = feed(t, [inv, resp(inv, 200, 1.0, "tt"), resp(bye, 200, 5.1)])
    assert brief(out)[1] == ("call-end", "c1", 200, "OK", 5.1)
    assert out[1].call.originator == "callee"
    assert out[1].call.duration_ns == ns(4.1)


def test_cancel_gives_call_attempt_487_after_canceled_timer() -> None:
    t = tracker()
    inv = invite("c1", "ft", 1, 0.0)
    can = cancel(inv, 3.0)
    msgs = [
        inv,
        resp(inv, 100, 0.01),
        resp(inv, 180, 1.0, "tt"),
        can,
        resp(can, 200, 3.01, "tt"),
        resp(inv, 487, 3.02, "tt"),
        ack(inv, "tt", 3.03),
    ]
    assert feed(t, msgs, until=8.02) == []
    out = t.advance(ns(8.03))  # canceled at 3.0, extended by the ACK at 3.03 to 8.03
    assert brief(out) == [("call-attempt", "c1", 487, "Request Terminated", 8.03)]
    assert out[0].msg is None
    assert kept(out[0].response) == kept(msgs[5])
    assert out[0].call.pdd_ms == 1000.0


def test_cancel_without_487_reports_fake_487() -> None:
    t = tracker()
    inv = invite("c1", "ft", 1, 0.0)
    out = feed(t, [inv, cancel(inv, 2.0)], until=10)
    assert brief(out) == [("call-attempt", "c1", 487, "cancel", 7.0)]


def test_busy_486_waits_for_inv_neg_timer() -> None:
    t = tracker()
    inv = invite("c1", "ft", 1, 0.0)
    msgs = [inv, resp(inv, 180, 0.2, "tt"), resp(inv, 486, 5.0, "tt"), ack(inv, "tt", 5.01)]
    assert feed(t, msgs, until=35.0) == []
    out = t.advance(ns(36))
    assert brief(out) == [("call-attempt", "c1", 486, "Busy Here", 35.01)]
    assert out[0].call.pdd_ms == 200.0
    assert out[0].call.setup_time_ms is None


def test_2xx_from_other_branch_after_negative_reply_starts_the_call() -> None:
    t = tracker()
    inv = invite("c1", "ft", 1, 0.0)
    out = feed(t, [inv, resp(inv, 486, 1.0, "b1"), resp(inv, 200, 2.0, "b2")], until=100)
    assert brief(out) == [("call-start", "c1", 200, "OK", 2.0)]


def test_challenge_then_credentials_then_200_is_one_call_start() -> None:
    t = tracker()
    inv1 = invite("c1", "ft", 1, 0.0)
    inv2 = invite("c1", "ft", 2, 0.03, creds=creds(proxy=True))
    msgs = [
        inv1,
        resp(inv1, 407, 0.01, "x"),
        ack(inv1, "x", 0.02),
        inv2,
        resp(inv2, 100, 0.04),
        resp(inv2, 180, 0.5, "y"),
        resp(inv2, 200, 2.0, "y"),
    ]
    out = feed(t, msgs, until=200) + t.finish("conclude")
    assert brief(out) == [("call-start", "c1", 200, "OK", 2.0)]
    m = out[0].call
    assert kept(out[0].request) == kept(inv2)
    assert (m.pdd_ms, m.ring_time_ms, m.setup_time_ms) == (470.0, 1500.0, 1970.0)


def test_challenge_retry_refused_is_one_auth_failed() -> None:
    t = tracker()
    inv1 = invite("c1", "ft", 1, 0.0)
    inv2 = invite("c1", "ft", 2, 0.03, creds=creds(proxy=True))
    r403 = resp(inv2, 403, 0.05, "y")
    msgs = [inv1, resp(inv1, 407, 0.01, "x"), ack(inv1, "x", 0.02), inv2, r403, again(r403, 0.5)]
    out = feed(t, msgs, until=1000) + t.finish("expire-all")
    assert brief(out) == [("auth-failed", "c1", 403, "Forbidden", 0.05)]
    assert kept(out[0].request) == kept(inv2)
    assert out[0].msg is r403
    assert kept(out[0].response) == kept(r403)


def test_credentials_challenged_again_counts_each_retry() -> None:
    t = tracker()
    msgs = [invite("c1", "ft", 1, 0.0)]
    msgs.append(resp(msgs[0], 407, 0.01, "x"))
    for i in range(2, 5):
        inv = invite("c1", "ft", i, i * 1.0, creds=creds(proxy=True))
        msgs += [inv, resp(inv, 407, i + 0.01, "x"), again(resp(inv, 407, i + 0.01, "x"), i + 0.5)]
    out = feed(t, msgs, until=1000)
    assert brief(out) == [
        ("auth-failed", "c1", 407, "Proxy Authentication Required", 2.01),
        ("auth-failed", "c1", 407, "Proxy Authentication Required", 3.01),
        ("auth-failed", "c1", 407, "Proxy Authentication Required", 4.01),
    ]


def test_challenge_never_answered_is_call_attempt_with_that_status() -> None:
    t = tracker()
    inv = invite("c1", "ft", 1, 0.0)
    out = feed(t, [inv, resp(inv, 407, 0.01, "x"), ack(inv, "x", 0.02)], until=100)
    # auth_wait (60 s) after the 407 without a credentialed retry
    assert brief(out) == [("call-attempt", "c1", 407, "Proxy Authentication Required", 60.02)]


def test_retry_with_new_call_id_continues_the_attempt() -> None:
    t = tracker()
    inv1 = invite("c1", "ft1", 1, 0.0)
    inv2 = invite("c2", "ft2", 1, 0.1, creds=creds(proxy=True))
    msgs = [inv1, resp(inv1, 407, 0.01, "x"), ack(inv1, "x", 0.02), inv2, resp(inv2, 200, 1.0, "y")]
    out = feed(t, msgs, until=100)
    assert brief(out) == [("call-start", "c2", 200, "OK", 1.0)]
    assert t.counters["auth_retry_new_call_id"] == 1


def test_retry_from_another_address_is_not_matched() -> None:
    t = tracker()
    inv1 = invite("c1", "ft1", 1, 0.0)
    inv2 = invite("c2", "ft2", 1, 0.1, src="10.0.0.7:5060", creds=creds(proxy=True))
    out = feed(t, [inv1, resp(inv1, 407, 0.01, "x"), inv2, resp(inv2, 200, 1.0, "y")], until=100)
    assert brief(out) == [
        ("call-start", "c2", 200, "OK", 1.0),
        ("call-attempt", "c1", 407, "Proxy Authentication Required", 60.01),
    ]


def test_no_reply_and_early_dialog_timeouts() -> None:
    t = tracker()
    a = invite("a", "f", 1, 0.0)
    b = invite("b", "f", 1, 1.0)
    out = feed(t, [a, resp(a, 100, 0.1), b, resp(b, 180, 1.5, "t")], until=500)
    assert brief(out) == [
        ("call-attempt", "a", 408, "timeout inv_1st", 120.1),
        ("call-attempt", "b", 408, "timeout inv_early_dlg", 181.5),
    ]


def test_established_call_times_out_after_last_in_dialog_message() -> None:
    t = tracker(timeouts={"inv_established": 100})
    inv = invite("c1", "ft", 1, 0.0)
    info = in_dialog("INFO", inv, "tt", 2, 50.0)
    msgs = [inv, resp(inv, 200, 1.0, "tt"), ack(inv, "tt", 1.1), info, resp(info, 200, 50.1)]
    out = feed(t, msgs, until=150.0)
    assert brief(out) == [("call-start", "c1", 200, "OK", 1.0)]
    out = t.advance(ns(150.1))
    assert brief(out) == [("call-end", "c1", 408, "timeout inv_established", 150.1)]
    m = out[0].call
    assert m.originator == "timeout"
    assert m.duration_ns == ns(49.1)
    assert out[0].end_ns == ns(50.1)


def test_in_dialog_requests_produce_nothing_and_failed_reinvite_keeps_call() -> None:
    t = tracker()
    inv = invite("c1", "ft", 1, 0.0)
    msgs = [inv, resp(inv, 180, 0.1, "tt"), resp(inv, 200, 1.0, "tt"), ack(inv, "tt", 1.1)]
    cseq = 2
    for method in ("UPDATE", "INFO", "NOTIFY", "REFER", "OPTIONS", "PRACK"):
        req = in_dialog(method, inv, "tt", cseq, 2.0 + cseq)
        msgs += [req, resp(req, 200, 2.1 + cseq)]
        cseq += 1
    reinv = in_dialog("INVITE", inv, "tt", cseq, 20.0)
    msgs += [reinv, resp(reinv, 488, 20.1), ack(reinv, "tt", 20.2)]
    bye = in_dialog("BYE", inv, "tt", cseq + 1, 31.0, by_callee=True)
    msgs += [bye, resp(bye, 200, 31.1)]
    out = feed(t, msgs, until=5000)
    assert brief(out) == [
        ("call-start", "c1", 200, "OK", 1.0),
        ("call-end", "c1", 200, "OK", 31.0),
    ]
    assert out[1].call.duration_ns == 30 * S
    assert out[1].call.originator == "callee"


def test_forked_2xx_each_dialog_starts_and_ends_once() -> None:
    t = tracker()
    inv = invite("c1", "ft", 1, 0.0)
    bye_a = in_dialog("BYE", inv, "a", 2, 3.2)
    bye_b = in_dialog("BYE", inv, "b", 3, 40.0)
    msgs = [
        inv,
        resp(inv, 180, 1.0, "a"),
        resp(inv, 183, 1.5, "b"),
        resp(inv, 200, 3.0, "b"),
        resp(inv, 200, 3.1, "a"),
        ack(inv, "b", 3.15),
        ack(inv, "a", 3.16),
        bye_a,  # RFC 3261 13.2.2.4: the caller keeps one dialog and hangs up the other
        resp(bye_a, 200, 3.3),
        bye_b,
        resp(bye_b, 200, 40.1),
    ]
    out = feed(t, msgs, until=1000)
    assert [(o.action, o.ts_ns / S, o.response.to.tag) for o in out] == [
        ("call-start", 3.0, "b"),
        ("call-start", 3.1, "a"),
        ("call-end", 3.2, "a"),
        ("call-end", 40.0, "b"),
    ]
    assert out[0].call.ring_time_ms == 2000.0
    assert out[1].call.ring_time_ms == 2100.0
    assert out[3].call.duration_ns == 37 * S
    assert t.counters["forks"] == 1


def test_forked_early_dialogs_then_busy_is_one_call_attempt() -> None:
    t = tracker()
    inv = invite("c1", "ft", 1, 0.0)
    msgs = [inv, resp(inv, 180, 1.0, "a"), resp(inv, 180, 1.2, "b"), resp(inv, 486, 4.0, "b")]
    out = feed(t, msgs, until=2000)
    # leg b: 486 at 4.0 -> call-attempt at 34.0; leg a: early dialog until 181.0, suppressed
    assert brief(out) == [("call-attempt", "c1", 486, "Busy Here", 34.0)]


def test_bye_only_dialog_is_reconstructed() -> None:
    t = tracker()
    inv = invite("c9", "ft", 1, 0.0)  # never fed: only its dialog's BYE is seen
    bye = in_dialog("BYE", inv, "tt", 5, 10.0)
    out = feed(t, [bye, resp(bye, 200, 10.1), again(bye, 10.5)], until=100)
    assert brief(out) == [("call-end", "c9", None, None, 10.0)]
    m = out[0].call
    assert (m.reconstructed, m.reconstructed_from, m.originator, m.duration_ns) == (
        True, "bye", None, None
    )  # fmt: skip
    assert out[0].request is None
    assert out[0].client is None
    assert t.counters["retransmissions"] == 1


def test_2xx_only_dialog_is_reconstructed() -> None:
    t = tracker()
    inv = invite("c9", "ft", 1, 0.0)  # never fed
    ok = resp(inv, 200, 2.0, "tt")
    bye = in_dialog("BYE", inv, "tt", 2, 12.0)
    out = feed(t, [ok, ack(inv, "tt", 2.1), bye, resp(bye, 200, 12.1)], until=100)
    assert brief(out) == [("call-start", "c9", 200, "OK", 2.0), ("call-end", "c9", 200, "OK", 12.0)]
    for o in out:
        assert (o.call.reconstructed, o.call.reconstructed_from) == (True, "2xx")
        assert o.client == ("10.0.0.1", 5060)
        assert o.server == ("10.0.0.2", 5060)
    assert out[0].call.pdd_ms is None
    assert out[1].call.duration_ns == 10 * S
    assert out[1].call.originator == "caller"


def test_missed_2xx_bye_ends_reconstructed_without_start() -> None:
    t = tracker()
    inv = invite("c1", "ft", 1, 0.0)
    bye = in_dialog("BYE", inv, "tt", 2, 30.0)
    out = feed(t, [inv, resp(inv, 180, 1.0, "tt"), bye], until=1000)
    assert brief(out) == [("call-end", "c1", None, None, 30.0)]
    assert (out[0].call.reconstructed, out[0].call.reconstructed_from) == (True, "bye")


def test_reinvite_only_dialog_is_reconstructed() -> None:
    t = tracker()
    inv = invite("c9", "ft", 1, 0.0)  # never fed
    re = in_dialog("INVITE", inv, "tt", 3, 5.0)
    out = feed(t, [re, resp(re, 200, 5.1)], until=10)
    assert brief(out) == [("call-start", "c9", None, None, 5.0)]
    assert (out[0].call.reconstructed, out[0].call.reconstructed_from) == (True, "reinvite")


def test_proxy_two_legs_give_one_start_and_one_end() -> None:
    t = tracker()
    inv_a = invite("c1", "ft", 1, 0.0, ALICE, PROXY)
    inv_b = proxied(inv_a, 0.001, PROXY, BOB)
    r180_b = resp(inv_b, 180, 0.5, "tt")
    r200_b = resp(inv_b, 200, 2.0, "tt")
    bye_a = in_dialog("BYE", inv_a, "tt", 2, 20.0)
    bye_b = proxied(bye_a, 20.001, PROXY, BOB)
    bye_ok_b = resp(bye_b, 200, 20.01)
    msgs = [
        inv_a,
        inv_b,
        r180_b,
        proxied(r180_b, 0.501, PROXY, ALICE),
        r200_b,
        proxied(r200_b, 2.001, PROXY, ALICE),
        again(r200_b, 2.5),  # Bob retransmits the 2xx
        bye_a,
        bye_b,
        bye_ok_b,
        proxied(bye_ok_b, 20.011, PROXY, ALICE),
    ]
    out = feed(t, msgs, until=1000)
    assert brief(out) == [("call-start", "c1", 200, "OK", 2.0), ("call-end", "c1", 200, "OK", 20.0)]
    assert out[0].call.pdd_ms == 500.0
    assert out[1].call.duration_ns == 18 * S
    assert out[0].client == ("10.0.0.1", 5060)
    assert out[0].server == ("10.0.0.9", 5060)
    assert t.counters["duplicate_copies"] == 5
    assert t.counters["retransmissions"] == 1
    assert out[1].call.retransmissions == 1


def test_retransmissions_are_counted_in_metrics() -> None:
    t = tracker()
    inv = invite("c1", "ft", 1, 0.0)
    ok = resp(inv, 200, 2.0, "tt")
    out = feed(t, [inv, again(inv, 0.5), again(inv, 1.5), ok, again(ok, 2.5)], until=10)
    assert [o.action for o in out] == ["call-start"]
    assert out[0].call.retransmissions == 2
    assert t.counters["retransmissions"] == 3


def test_bye_retransmitted_after_the_call_is_forgotten_is_not_a_second_end() -> None:
    t = tracker()
    msgs = simple_call()
    bye = msgs[5]
    out = feed(t, [*msgs, again(bye, 70.0), again(bye, 80.0)], until=200)
    assert [o.action for o in out] == ["call-start", "call-end"]
    assert len(t.entries) == 0


def test_new_invite_after_negative_reply_concludes_the_first_attempt() -> None:
    t = tracker()
    inv1 = invite("c1", "ft", 1, 0.0)
    inv2 = invite("c1", "ft", 2, 10.0)
    msgs = [inv1, resp(inv1, 480, 1.0, "x"), inv2, resp(inv2, 200, 11.0, "y")]
    out = feed(t, msgs, until=100)
    assert brief(out) == [
        ("call-attempt", "c1", 480, "Whatever", 10.0),
        ("call-start", "c1", 200, "OK", 11.0),
    ]
    assert out[1].call.setup_time_ms == 1000.0


def test_kept_messages_drop_body_headers_and_bytes() -> None:
    t = tracker()
    inv = invite("c1", "ft", 1, 0.0)
    inv.body = b"v=0\r\n"
    inv.headers = {"allow": ["INVITE, ACK, BYE"]}
    inv.payload.data = b"INVITE sip:bob@example.com SIP/2.0\r\n..."
    out = feed(t, [inv, resp(inv, 200, 1.0, "tt")])
    kept = out[0].request
    assert (kept.body, kept.headers, kept.payload.data) == (b"", {}, b"")
    assert (kept.call_id, kept.from_, kept.to, kept.uri, kept.cseq) == (
        inv.call_id, inv.from_, inv.to, inv.uri, inv.cseq
    )  # fmt: skip
    assert kept.payload.src_ip == "10.0.0.1"
    assert inv.body == b"v=0\r\n"  # the message itself is untouched


def test_cancel_reports_the_invite_final_status_when_seen() -> None:
    t = tracker()
    inv = invite("c1", "ft", 1, 0.0)
    msgs = [inv, resp(inv, 100, 1.0), cancel(inv, 30.0), resp(inv, 408, 32.0, "x")]
    out = feed(t, msgs, until=100)
    assert brief(out) == [("call-attempt", "c1", 408, "Request Timeout", 37.0)]
