"""Duplicate filter: retransmission vs copy vs new message, window and size bound."""

from __future__ import annotations

import dataclasses
from collections import Counter

from sipcm.track.dedup import COPY, NEW, RETRANS, DupFilter
from tests.unit.track.msgs import ALICE, BOB, PROXY, S, again, invite, ns, proxied, resp


def test_classification() -> None:
    f = DupFilter(32 * S, 100, Counter())
    inv = invite("c", "f", 1, 0.0, ALICE, PROXY)
    assert f.check(inv, ns(0)) == NEW
    assert f.check(again(inv, 0.5), ns(0.5)) == RETRANS
    fwd = proxied(inv, 0.01, PROXY, BOB)
    assert f.check(fwd, ns(0.01)) == COPY
    assert f.check(again(fwd, 0.51), ns(0.51)) == RETRANS
    # same bytes seen on egress after ingress: a copy, not a retransmission
    p = dataclasses.replace(inv.payload, direction="egress")
    assert f.check(inv.replace(payload=p), ns(0.02)) == COPY
    # other CSeq, other status, other To-tag: other messages
    assert f.check(invite("c", "f", 2, 1.0), ns(1)) == NEW
    assert f.check(resp(inv, 180, 1.0, "a"), ns(1)) == NEW
    assert f.check(resp(inv, 180, 1.0, "b"), ns(1)) == NEW
    assert f.check(resp(inv, 183, 1.0, "b"), ns(1)) == NEW
    assert f.check(resp(inv, 183, 1.1, "b"), ns(1.1)) == RETRANS
    assert len(f) == 5


def test_window_and_bound() -> None:
    c: Counter[str] = Counter()
    f = DupFilter(32 * S, 3, c)
    inv = invite("c", "f", 1, 0.0)
    assert f.check(inv, ns(0)) == NEW
    assert f.check(again(inv, 31.9), ns(31.9)) == RETRANS
    assert f.check(invite("x", "f", 1, 40.0), ns(40)) == NEW  # prunes the first one
    assert len(f) == 1
    assert f.check(again(inv, 40.1), ns(40.1)) == NEW
    for i in range(5):
        f.check(invite(f"y{i}", "f", 1, 41.0), ns(41))
    assert len(f) == 3
    assert c["dup_evicted"] == 4


def test_at_most_four_sightings_remembered_per_fingerprint() -> None:
    # A request through a chain of proxies: the original and three copies are remembered, so
    # their retransmissions are recognised; a fifth leg is a copy each time it is seen.
    f = DupFilter(32 * S, 100, Counter())
    legs = [invite("c", "f", 1, 0.0, ALICE, PROXY)]
    for i in range(4):
        legs.append(proxied(legs[-1], 0.01 * (i + 1), PROXY, BOB))
    assert [f.check(m, ns(0.1)) for m in legs] == [NEW, COPY, COPY, COPY, COPY]
    assert [f.check(again(m, 1.0), ns(1.0)) for m in legs] == [RETRANS] * 4 + [COPY]
    assert len(f) == 1
