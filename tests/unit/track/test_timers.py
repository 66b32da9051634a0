"""Timer heap: expiry order, ties in arming order, extend / move earlier / cancel, compaction."""

from __future__ import annotations

from sipcm.track.timers import Timed, TimerHeap


class T(Timed):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


def names(pairs) -> list[tuple[int, str]]:
    return [(due, obj.name) for due, obj in pairs]


def test_order_and_ties_by_arming_order() -> None:
    h = TimerHeap()
    a, b, c, d = T("a"), T("b"), T("c"), T("d")
    h.arm(c, 20)
    h.arm(a, 10)
    h.arm(b, 10)
    h.arm(d, 30)
    assert len(h) == 4
    assert h.next_due() == 10
    assert names(h.pop_due(20)) == [(10, "a"), (10, "b"), (20, "c")]
    assert len(h) == 1
    assert d.due == 30
    assert a.due is None
    assert names(h.pop_due(29)) == []
    assert names(h.pop_due(30)) == [(30, "d")]
    assert h.next_due() is None
    assert len(h) == 0


def test_extend_moves_later_without_firing_early() -> None:
    h = TimerHeap()
    a, b = T("a"), T("b")
    h.arm(a, 10)
    h.arm(b, 15)
    h.extend(a, 25)
    h.extend(a, 5)  # never earlier
    assert names(h.pop_due(20)) == [(15, "b")]
    assert names(h.pop_due(25)) == [(25, "a")]


def test_arm_earlier_and_cancel() -> None:
    h = TimerHeap()
    a, b = T("a"), T("b")
    h.arm(a, 50)
    h.arm(a, 5)
    h.arm(b, 7)
    h.cancel(b)
    h.cancel(b)
    assert len(h) == 1
    assert names(h.pop_due(100)) == [(5, "a")]
    assert len(h) == 0


def test_arming_inside_the_pass_fires_in_the_same_pass() -> None:
    h = TimerHeap()
    a, b = T("a"), T("b")
    h.arm(a, 1)
    fired = []
    for due, obj in h.pop_due(10):
        fired.append((due, obj.name))
        if obj is a:
            h.arm(b, 3)
    assert fired == [(1, "a"), (3, "b")]


def test_armed_lists_in_order_without_disarming() -> None:
    h = TimerHeap()
    objs = [T(str(i)) for i in range(5)]
    for i, o in enumerate(objs):
        h.arm(o, 100 - i * 10 if i != 4 else 80)
    assert [o.name for o in h.armed()] == ["3", "2", "4", "1", "0"]
    assert len(h) == 5


def test_stale_items_are_compacted() -> None:
    h = TimerHeap()
    a = T("a")
    for i in range(10_000):
        h.arm(a, 1_000_000 - i)  # moved earlier each time: a new heap item each time
    assert len(h._heap) <= 2 * len(h) + 1025
    assert names(h.pop_due(10**9)) == [(1_000_000 - 9_999, "a")]
