"""Non-INVITE transactions: other-ok / other-failed / other-timeout and auth-failed counting.

Default timeouts (seconds): non_inv_1st 30, non_inv_neg 5, non_inv_fin 5.
"""

from __future__ import annotations

from collections import Counter

from sipcm.track.tracker import Tracker
from tests.unit.track.msgs import (
    ALICE,
    PROXY,
    again,
    brief,
    creds,
    feed,
    in_dialog,
    invite,
    kept,
    ns,
    proxied,
    request,
    resp,
)


def tracker(**kw: object) -> Tracker:
    return Tracker(Counter(), **kw)  # type: ignore[arg-type]


def register(cid: str, cseq: int, ts: float, cred: bool = False, **kw: object):
    return request(
        "REGISTER", cid, "rt", cseq, ts, ALICE, PROXY, to="sip:alice@example.com",
        ruri="sip:example.com", creds=creds() if cred else None, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_options_ok_failed_timeout() -> None:
    t = tracker()
    o1 = request("OPTIONS", "o1", "f", 1, 0.0)
    o2 = request("OPTIONS", "o2", "f", 1, 1.0)
    o3 = request("OPTIONS", "o3", "f", 1, 2.0)
    msgs = [o1, resp(o1, 200, 0.1, "x"), o2, resp(o2, 404, 1.1, "y"), o3, again(o3, 2.5)]
    out = feed(t, msgs, until=100)
    assert brief(out) == [
        ("other-ok", "o1", 200, "OK", 5.1),
        ("other-failed", "o2", 404, "Not Found", 6.1),
        ("other-timeout", "o3", 408, "timeout non_inv_1st", 32.0),
    ]
    ok = out[0]
    assert ok.method == "OPTIONS"
    assert kept(ok.request) == kept(o1)
    assert kept(ok.response) == kept(msgs[1])
    assert ok.msg is None
    assert ok.client == ("10.0.0.1", 5060)
    assert ok.server == ("10.0.0.2", 5060)
    assert t.counters["retransmissions"] == 1
    assert len(t.entries) == 0


def test_options_pings_reusing_call_id_each_report() -> None:
    t = tracker()
    msgs = []
    for i in range(3):
        o = request("OPTIONS", "ping", "f", i + 1, i * 2.0)
        msgs += [o, resp(o, 200, i * 2.0 + 0.1, "x")]
    out = feed(t, msgs, until=100)
    # the second and third pings conclude the previous transaction at once
    assert brief(out) == [
        ("other-ok", "ping", 200, "OK", 2.0),
        ("other-ok", "ping", 200, "OK", 4.0),
        ("other-ok", "ping", 200, "OK", 9.1),
    ]


def test_message_through_proxy_is_reported_once() -> None:
    t = tracker()
    m_a = request("MESSAGE", "m1", "f", 1, 0.0, ALICE, PROXY)
    m_b = proxied(m_a, 0.01, PROXY, "10.0.0.2:5060")
    ok_b = resp(m_b, 202, 0.05, "x")
    out = feed(t, [m_a, m_b, ok_b, proxied(ok_b, 0.06, PROXY, ALICE)], until=100)
    assert brief(out) == [("other-ok", "m1", 202, "Whatever", 5.05)]


def test_password_guessing_each_credentialed_register_counts_once() -> None:
    t = tracker()
    n = 7
    msgs = [register("g", 1, 0.0)]
    msgs.append(resp(msgs[0], 401, 0.01, "x"))  # first challenge: never counted
    for i in range(n):
        ts = 1.0 + i
        r = register("g", i + 2, ts, cred=True)
        c = resp(r, 401, ts + 0.01, "x")
        # retransmitted request and challenge: no double count
        msgs += [r, again(r, ts + 0.5), c, again(c, ts + 0.51)]
    out = feed(t, msgs, until=1000)
    assert [(o.action, o.status, o.ts_ns) for o in out] == [
        ("auth-failed", 401, ns(1.0 + i + 0.01)) for i in range(n)
    ]
    assert [o.request.cseq for o in out] == list(range(2, n + 2))
    assert t.counters["retransmissions"] == 2 * n


def test_password_guessing_with_new_call_ids_counts_each() -> None:
    t = tracker()
    msgs = []
    for i in range(5):
        r = register(f"g{i}", 1, i * 0.1, cred=True)
        msgs += [r, resp(r, 401, i * 0.1 + 0.01, "x")]
    out = feed(t, msgs, until=1000)
    assert brief(out) == [
        ("auth-failed", f"g{i}", 401, "Unauthorized", round(i * 0.1 + 0.01, 2)) for i in range(5)
    ]


def test_register_refused_403() -> None:
    t = tracker()
    r1 = register("r", 1, 0.0)
    r2 = register("r", 2, 0.1, cred=True)
    r3 = register("s", 1, 1.0)
    msgs = [r1, resp(r1, 401, 0.01, "x"), r2, resp(r2, 403, 0.11, "x"), r3, resp(r3, 403, 1.01)]
    out = feed(t, msgs, until=100)
    assert brief(out) == [
        ("auth-failed", "r", 403, "Forbidden", 0.11),
        ("other-failed", "s", 403, "Forbidden", 6.01),  # no credentials: not an auth failure
    ]


def test_register_challenge_never_answered_is_other_failed() -> None:
    t = tracker()
    r = register("r", 1, 0.0)
    out = feed(t, [r, resp(r, 401, 0.01, "x")], until=100)
    # auth_wait (60 s) passes with no credentialed retry
    assert brief(out) == [("other-failed", "r", 401, "Unauthorized", 60.01)]


def test_register_timeout_and_failure() -> None:
    t = tracker()
    r1 = register("r1", 1, 0.0)
    r2 = register("r2", 1, 0.0)
    out = feed(t, [r1, r2, resp(r2, 500, 0.2)], until=100)
    assert brief(out) == [
        ("other-failed", "r2", 500, "Whatever", 5.2),
        ("other-timeout", "r1", 408, "timeout non_inv_1st", 30.0),
    ]


def test_in_dialog_request_of_unknown_dialog_is_not_reported() -> None:
    t = tracker()
    inv = invite("sub", "f", 1, 0.0)  # a dialog this sensor never saw being set up
    n = in_dialog("NOTIFY", inv, "tt", 5, 1.0, by_callee=True)
    out = feed(t, [n, resp(n, 200, 1.1)], until=100)
    assert out == []
    assert t.counters["in_dialog_unmatched"] == 1
    assert t.counters["unmatched_reply"] == 1


def test_subscribe_then_notify() -> None:
    t = tracker()
    sub = request("SUBSCRIBE", "s1", "f", 1, 0.0, expires=3600)
    n = in_dialog("NOTIFY", sub, "tt", 1, 0.2, by_callee=True)
    out = feed(t, [sub, resp(sub, 200, 0.1, "tt"), n, resp(n, 200, 0.3)], until=100)
    assert brief(out) == [("other-ok", "s1", 200, "OK", 5.1)]
