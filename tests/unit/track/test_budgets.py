"""Separate budgets: unconfirmed entries (pending_max_entries) vs established calls
(calls_max_entries) vs bindings; each evicts only its own kind, oldest first, counted."""

from __future__ import annotations

from collections import Counter

from sipcm.track.tracker import Tracker
from tests.unit.track.msgs import (
    ALICE,
    PROXY,
    ack,
    brief,
    feed,
    in_dialog,
    invite,
    na,
    ns,
    request,
    resp,
)

SCANNER = "198.51.100.66:5060"


def tracker(**kw: object) -> Tracker:
    return Tracker(Counter(), **kw)  # type: ignore[arg-type]


def established(cid: str, ts: float) -> list:
    inv = invite(cid, "f", 1, ts)
    return [inv, resp(inv, 200, ts + 0.5, "t"), ack(inv, "t", ts + 0.6)]


def test_flood_of_unanswered_invites_never_evicts_an_established_call() -> None:
    """An established call, then 1,500 INVITEs nobody answers (another source, pending budget
    1,000): the oldest 500 unanswered ones are evicted, the call is not, and its BYE gives a
    normal call-end with its duration."""
    t = tracker(max_pending=1000, max_calls=10)
    assert [o.action for o in feed(t, established("call", 0.0))] == ["call-start"]
    flood = [invite(f"scan-{i}", f"s{i}", 1, 1.0 + i / 1000, SCANNER) for i in range(1500)]
    assert feed(t, flood) == []
    assert t.counters["pending_evicted"] == 500
    assert t.counters["calls_evicted"] == 0
    assert t.stats()["calls"] == 1001
    bye = in_dialog("BYE", invite("call", "f", 1, 0.0), "t", 2, 30.0)
    out = feed(t, [bye, resp(bye, 200, 30.05)])
    assert brief(out) == [("call-end", "call", 200, "OK", 30.0)]
    end = out[0].call
    assert end.reconstructed is False
    assert end.originator == "caller"
    assert end.duration_ns == ns(29.5)  # 200 OK at 0.5 s to BYE at 30 s
    # The 1,000 kept ones still time out (one call-attempt each), the evicted ones never.
    late = t.advance(ns(1000))
    assert [o.action for o in late] == ["call-attempt"] * 1000
    assert {o.call_id for o in late} == {f"scan-{i}" for i in range(500, 1500)}


def test_established_budget_evicts_the_least_recent_call_only() -> None:
    t = tracker(max_pending=10, max_calls=2)
    feed(t, established("a", 0.0) + established("b", 1.0))
    pend = invite("p", "f", 1, 1.5)
    feed(t, [pend])
    out = feed(t, established("c", 2.0))  # a third established call: "a" goes, "p" stays
    assert [o.action for o in out] == ["call-start"]
    assert t.counters["calls_evicted"] == 1
    assert t.counters["pending_evicted"] == 0
    assert sorted(t.entries) == ["b", "c", "p"]


def test_other_transactions_share_the_pending_budget() -> None:
    t = tracker(max_pending=3, max_calls=10)
    feed(t, established("call", 0.0))
    opts = [request("OPTIONS", f"o{i}", "f", 1, 1.0 + i) for i in range(5)]
    feed(t, opts)
    assert t.counters["pending_evicted"] == 2
    assert set(t.entries) == {"call", ("o2", "OPTIONS"), ("o3", "OPTIONS"), ("o4", "OPTIONS")}


def test_bindings_have_their_own_budget() -> None:
    t = tracker(max_pending=2, max_regs=2)
    for i in range(3):
        reg = request("REGISTER", f"r{i}", "r", 1, float(i), ALICE, PROXY,
                      to=f"sip:u{i}@example.com", contacts=[na(f"sip:u{i}@10.0.0.1")])  # fmt: skip
        feed(t, [reg, resp(reg, 200, i + 0.1, "x")])
    assert t.counters["regs_evicted"] == 1
    assert t.counters["pending_evicted"] == 1  # the first REGISTER transaction, still lingering
    assert [r["aor"] for r in t.registrations()] == ["sip:u1@example.com", "sip:u2@example.com"]
