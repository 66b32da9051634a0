"""Tracker facade: configuration, clock, finish modes, bounded memory, determinism, views."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sipcm.decode.packet import Payload
from sipcm.sip.message import SipMessage
from sipcm.track.core import CallSet, Leg, Trans
from sipcm.track.states import State
from sipcm.track.tracker import Tracker
from tests.unit.track.msgs import (
    ALICE,
    PROXY,
    ack,
    brief,
    cancel,
    feed,
    in_dialog,
    invite,
    na,
    ns,
    request,
    resp,
)


def tracker(**kw: object) -> Tracker:
    return Tracker(Counter(), **kw)  # type: ignore[arg-type]


def test_timeout_names_and_validation() -> None:
    assert Tracker.timeout_names == (
        "inv_1st", "inv_early_dlg", "inv_neg", "inv_established", "inv_bye_seen",
        "inv_bye_repl", "inv_canceled", "non_inv_1st", "non_inv_neg", "non_inv_fin",
        "auth_wait", "dup_window",
    )  # fmt: skip
    msg = "unknown timeout 'inv_establised', did you mean 'inv_established'"
    with pytest.raises(ValueError, match=msg):
        tracker(timeouts={"inv_establised": 10})
    with pytest.raises(ValueError, match="did you mean 'non_inv_fin'"):
        tracker(timeouts={"non_inv_final": 10})
    t = tracker(timeouts={"inv_neg": 2, "non_inv_fin": 0})
    assert t.timeouts["inv_neg"] == 2
    assert t.timeouts["non_inv_fin"] == 5
    with pytest.raises(ValueError, match="max_calls"):
        tracker(max_calls=0)


def test_configured_timeout_is_used() -> None:
    t = tracker(timeouts={"inv_neg": 2})
    inv = invite("c", "f", 1, 0.0)
    out = feed(t, [inv, resp(inv, 486, 1.0, "x")], until=3.0)
    assert brief(out) == [("call-attempt", "c", 486, "Busy Here", 3.0)]


def test_due_timers_fire_before_the_message_that_passes_them() -> None:
    t = tracker()
    o = request("OPTIONS", "o", "f", 1, 0.0)
    inv = invite("c", "f", 1, 10.0)
    out = feed(t, [o, resp(o, 200, 0.1, "x")])
    assert out == []
    out = t.process(inv)
    assert brief(out) == [("other-ok", "o", 200, "OK", 5.1)]
    ok = resp(inv, 200, 11.0, "t")
    assert [o.action for o in t.process(ok)] == ["call-start"]


def test_clock_never_goes_back() -> None:
    t = tracker()
    assert t.advance(ns(100)) == []
    assert t.now_ns == ns(100)
    assert t.advance(ns(50)) == []
    assert t.now_ns == ns(100)
    o = request("OPTIONS", "o", "f", 1, 90.0)  # late packet: its own time, clock unchanged
    feed(t, [o, resp(o, 200, 90.1, "x")])
    assert t.now_ns == ns(100)
    assert brief(t.advance(ns(100))) == [("other-ok", "o", 200, "OK", 95.1)]


def mixed_traffic() -> list:
    """One of each: established call, ringing call, challenged INVITE, pending OPTIONS,
    answered OPTIONS, registration."""
    est = invite("est", "f", 1, 0.0)
    ring = invite("ring", "f", 1, 1.0)
    chal = invite("chal", "f", 1, 2.0)
    opt = request("OPTIONS", "opt", "f", 1, 3.0)
    opt2 = request("OPTIONS", "opt2", "f", 1, 3.5)
    reg = request("REGISTER", "reg", "r", 1, 4.0, ALICE, PROXY, contacts=[na("sip:a@10.0.0.1")])
    return [
        est,
        resp(est, 200, 0.5, "t"),
        ack(est, "t", 0.6),
        ring,
        resp(ring, 180, 1.5, "t"),
        chal,
        resp(chal, 407, 2.1, "t"),
        opt,
        opt2,
        resp(opt2, 200, 3.6, "x"),
        reg,
        resp(reg, 200, 4.1, "x", contacts=[na("sip:a@10.0.0.1", expires="600")]),
    ]


def test_finish_none_keeps_everything() -> None:
    t = tracker()
    assert [o.action for o in feed(t, mixed_traffic())] == ["call-start", "reg-new"]
    assert t.finish("none") == []
    assert t.stats()["calls"] == 3
    assert len(t.registrations()) == 1


def test_finish_conclude_runs_pending_timers_only() -> None:
    t = tracker()
    feed(t, mixed_traffic())
    out = t.finish("conclude")
    assert brief(out) == [
        ("other-ok", "opt2", 200, "OK", 8.6),
        ("other-timeout", "opt", 408, "timeout non_inv_1st", 33.0),
        ("call-attempt", "chal", 407, "Proxy Authentication Required", 62.1),
        ("call-attempt", "ring", 408, "timeout inv_early_dlg", 181.5),
    ]
    assert t.stats()["calls_established"] == 1
    assert len(t.registrations()) == 1
    assert [c["call_id"] for c in t.active_calls()] == ["est"]


def test_finish_expire_all_ends_calls_and_bindings_now() -> None:
    t = tracker()
    feed(t, mixed_traffic())
    out = t.finish("expire-all")
    # In (time, Call-ID) order: what is open ends now (4.1 s), the call "est" before the
    # binding of "reg"; then the pending transactions at their expiries.
    assert brief(out)[:2] == [
        ("call-end", "est", 408, "timeout end of replay", 4.1),
        ("reg-expired", "reg", 408, "timeout end of replay", 4.1),
    ]
    actions = [o.action for o in out[2:]]
    assert actions == ["other-ok", "other-timeout", "call-attempt", "call-attempt"]
    end = out[0].call
    assert end.originator == "timeout"
    assert end.duration_ns == ns(3.6)
    assert out[1].reg.lifetime_ns == 0
    assert t.stats()["timers"] == 0
    assert len(t.entries) == 0
    assert t.registrations() == []
    with pytest.raises(ValueError, match="conclude, expire-all, decided, none"):
        t.finish("all")


def test_finish_decided_publishes_only_what_a_final_reply_settled() -> None:
    """A live sensor stopping: of mixed_traffic only the answered OPTIONS is decided (other-ok
    at its non_inv_fin expiry, as if the sensor had kept running); the challenged INVITE may
    still be retried, the ringing call and the unanswered OPTIONS have no final reply, the
    call and the binding go on: all of them stay."""
    t = tracker()
    feed(t, mixed_traffic())
    assert brief(t.finish("decided")) == [("other-ok", "opt2", 200, "OK", 8.6)]
    assert t.stats()["calls"] == 3
    # the REGISTER's answered transaction was decided too (its linger publishes nothing:
    # reg-new covered it); the unanswered OPTIONS stays
    assert t.stats()["transactions"] == 1
    assert len(t.registrations()) == 1
    assert brief(t.finish("conclude"))[0] == (
        "other-timeout",
        "opt",
        408,
        "timeout non_inv_1st",
        33.0,
    )


def test_finish_decided_negative_replies() -> None:
    """486 to an INVITE, 404 to a MESSAGE, CANCEL answered 487: decided (call-attempt,
    other-failed, call-attempt 487 at their timers). 401 to a REGISTER without credentials
    and a CANCEL whose INVITE got no final reply yet: not decided."""
    t = tracker()
    busy = invite("busy", "f", 1, 0.0)
    msg = request("MESSAGE", "msg", "f", 1, 0.5)
    can = invite("can", "f", 1, 1.0)
    open_can = invite("open-can", "f", 1, 1.2)
    reg = request("REGISTER", "reg", "r", 1, 1.5, ALICE, PROXY)
    feed(t, [
        busy, resp(busy, 486, 0.1, "b"),
        msg, resp(msg, 404, 0.6, "m"),
        can, resp(can, 180, 1.1, "c"), cancel(can, 2.0), resp(can, 487, 2.1, "c"),
        open_can, cancel(open_can, 2.2),
        reg, resp(reg, 401, 1.6, "r"),
    ])  # fmt: skip
    assert brief(t.finish("decided")) == [
        ("other-failed", "msg", 404, "Not Found", 5.6),
        ("call-attempt", "can", 487, "Request Terminated", 7.1),  # the 487 extended it
        ("call-attempt", "busy", 486, "Busy Here", 30.1),
    ]
    assert sorted(str(k) for k in t.entries) == ["('reg', 'REGISTER')", "open-can"]


def test_finish_decided_waits_for_an_unanswered_fork() -> None:
    """One fork answered 486 while another still rings: the call may yet start, so the
    negative reply is not decided; once the ringing fork answers 603 too, it is (one
    call-attempt for the attempt)."""
    t = tracker()
    inv = invite("fork", "f", 1, 0.0)
    feed(t, [inv, resp(inv, 180, 0.1, "a"), resp(inv, 486, 0.2, "b")])
    assert t.finish("decided") == []
    feed(t, [resp(inv, 603, 0.3, "a")])
    assert brief(t.finish("decided")) == [("call-attempt", "fork", 486, "Busy Here", 30.2)]


def test_stats_and_views() -> None:
    t = tracker()
    feed(t, mixed_traffic())
    st = t.stats()
    assert st == {
        "calls": 3,
        "dialogs": 3,
        "calls_established": 1,
        "transactions": 3,
        "registrations": 1,
        "timers": 7,
        "fingerprints": 12,
    }
    row = t.active_calls()[0]
    assert row == {
        "call_id": "est",
        "state": "inv_established",
        "state_text": "answered",
        "ended": False,
        "duration_ns": t.now_ns - ns(0.5),  # answered at 0.5 s, still open at the clock
        "from": "sip:alice@example.com",
        "to": "sip:bob@example.com",
        "to_tag": "t",
        "client": ["10.0.0.1", 5060],
        "server": ["10.0.0.2", 5060],
        "invite_ns": 0,
        "answer_ns": ns(0.5),
        "last_ns": ns(0.6),
        "reconstructed_from": None,
    }


def test_flood_of_random_call_ids_stays_bounded() -> None:
    rnd = random.Random(7)
    t = tracker(max_pending=10_000, max_calls=10_000)
    n = 200_000
    peak = 0
    tpl = invite("tpl", "f", 1, 0.0)
    p = tpl.payload
    for i in range(n):
        cid = f"{rnd.getrandbits(64):016x}"
        pay = Payload(b"", i * 100_000, p.src_ip, p.dst_ip, 5060, 5060, "udp", 4, True)
        msg = SipMessage(True, "INVITE", tpl.uri, None, None, cid, tpl.from_, tpl.to, 1,
                         "INVITE", vias=tpl.vias, payload=pay)  # fmt: skip
        assert t.process(msg) == []
        if i % 5000 == 0:
            peak = max(peak, len(t.entries))
    assert len(t.entries) <= 10_000
    assert peak <= 10_000
    assert t.counters["pending_evicted"] == n - 10_000
    assert t.counters["calls_evicted"] == 0
    assert len(t._dups) <= 2 * 10_000 + 1024
    assert len(t._core.timers._heap) <= 3 * 10_000 + 1024
    # the survivors still time out normally, the evicted ones produce nothing
    out = t.advance(ns(10_000))
    assert len(out) == 10_000
    assert {o.action for o in out} == {"call-attempt"}


def scenario() -> list:
    msgs = []
    for i in range(50):
        base = i * 3.0
        inv = invite(f"c{i}", "f", 1, base)
        msgs.append(inv)
        if i % 3 == 0:
            msgs += [resp(inv, 180, base + 0.1, "t"), resp(inv, 200, base + 0.2, "t")]
            msgs.append(in_dialog("BYE", inv, "t", 2, base + 2.0))
        elif i % 3 == 1:
            msgs += [resp(inv, 486, base + 0.1, "t")]
        else:
            msgs.append(cancel(inv, base + 1.0))
    return msgs


def test_identical_input_gives_identical_outcomes() -> None:
    def run() -> list:
        t = tracker()
        out = feed(t, scenario(), until=400)
        return [(o.action, o.call_id, o.ts_ns, o.status, o.reason, o.call) for o in out]

    first, second = run(), run()
    assert first == second
    assert [a for a, *_ in first].count("call-start") == 17
    assert [a for a, *_ in first].count("call-end") == 17
    assert [a for a, *_ in first].count("call-attempt") == 33


def test_entries_have_no_instance_dict() -> None:
    cs = CallSet("x")
    for obj in (cs, Leg(cs, State.INIT), Trans(("x", "OPTIONS"), "OPTIONS")):
        assert not hasattr(obj, "__dict__"), type(obj).__name__


@pytest.mark.parametrize("mode", ["conclude", "expire-all"])
def test_finish_in_chunks_gives_the_same_outcomes(mode: str) -> None:
    whole, chunked = tracker(), tracker()
    feed(whole, mixed_traffic())
    feed(chunked, mixed_traffic())
    expected = brief(whole.finish(mode))
    chunks = list(chunked.finish_chunks(mode, size=2))
    assert [len(c) for c in chunks] == ([2, 2] if mode == "conclude" else [2, 2, 2])
    assert [b for c in chunks for b in brief(c)] == expected
    times = [o.ts_ns for c in chunks for o in c]
    assert times == sorted(times)
    assert chunked.stats() == whole.stats()
    with pytest.raises(ValueError, match="at least 1"):
        next(tracker().finish_chunks("conclude", size=0))
    assert list(tracker().finish_chunks("none")) == []


def test_finish_chunks_never_split_one_time_and_call_id() -> None:
    """Two dialogs of one call (forked 2xx) and one other call, ended by expire-all at the
    same clock: with lists of 1 the forked call's two call-ends still share a list."""
    t = tracker()
    inv = invite("fork", "f", 1, 0.0)
    other = invite("other", "f", 1, 0.5)
    feed(t, [inv, resp(inv, 200, 1.0, "a"), resp(inv, 200, 1.1, "b")])
    feed(t, [other, resp(other, 200, 1.5, "c")])
    chunks = list(t.finish_chunks("expire-all", size=1))
    assert [[(o.action, o.call_id) for o in c] for c in chunks] == [
        [("call-end", "fork"), ("call-end", "fork")],
        [("call-end", "other")],
    ]
