"""A timer heap on the capture-time clock (no wall time anywhere).

Input: objects that carry the `Timed` slots (`due`, `hdue`, `hseq`) and expiry times in
nanoseconds; output: the objects whose expiry is at or before a given time, in expiry order,
ties broken by the order they were armed. It never calls the objects and never reads a clock.

Extending a timer (the common case: every in-dialog message pushes the expiry later) does not
touch the heap; the stale heap item is re-queued when it surfaces. Moving a timer earlier pushes
a new item and leaves the old one stale; the heap is compacted when stale items dominate.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Final, cast

from mypy_extensions import mypyc_attr

# Compiled, a Final name loads from a C static; an imported function is a module dict lookup at
# every call (a push per timer armed earlier, a pop per timer due).
heapify: Final = heapq.heapify
heappop: Final = heapq.heappop
heappush: Final = heapq.heappush


# Compiled (sipcm.accel), a class defined in plain Python may still carry a timer.
@mypyc_attr(allow_interpreted_subclasses=True)
class Timed:
    """Mixin slots for an object with one timer (`due` None = not armed)."""

    __slots__ = ("due", "hdue", "hseq")

    def __init__(self) -> None:
        self.due: int | None = None  # wanted expiry
        self.hdue: int | None = None  # expiry of the live heap item
        self.hseq: int = 0  # sequence of the live heap item (0: none)


class TimerHeap:
    """Deterministic one-timer-per-object heap with arm / extend / cancel."""

    __slots__ = ("_heap", "_seq", "live")

    @property
    def heap(self) -> list[tuple[int, int, Timed]]:
        """The heap itself, earliest (expiry, sequence, object) first; read-only use (a peek
        at heap[0] tells whether `pop_due` could yield anything)."""
        return self._heap

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Timed]] = []
        self._seq = 0
        self.live = 0  # objects with an armed timer

    def __len__(self) -> int:
        return self.live

    def _push(self, obj: Timed, due: int) -> None:
        self._seq += 1
        obj.hdue = due
        obj.hseq = self._seq
        heappush(self._heap, (due, self._seq, obj))

    def arm(self, obj: Timed, due: int) -> None:
        """Set the expiry to `due` (earlier or later than before)."""
        if obj.due is None:
            self.live += 1
        obj.due = due
        if obj.hdue is None or due < obj.hdue:
            self._push(obj, due)
            if len(self._heap) > 2 * self.live + 1024:
                self._compact()

    def extend(self, obj: Timed, due: int) -> None:
        """Move the expiry to `due` only if that is later (arms an unarmed object)."""
        if obj.due is None:
            self.arm(obj, due)
        elif due > obj.due:
            obj.due = due

    def cancel(self, obj: Timed) -> None:
        """Disarm; the heap item becomes stale."""
        if obj.due is not None:
            self.live -= 1
        obj.due = obj.hdue = None
        obj.hseq = 0

    def pop_due(self, now: int) -> Iterator[tuple[int, Timed]]:
        """Yield (expiry, object) for every object due at or before `now`, disarming it, in
        (expiry, arming) order.

        The caller may arm timers while iterating; a timer armed at or before `now` fires in
        the same pass.
        """
        while True:
            item = self.pop_next(now)
            if item is None:
                return
            yield item[0], item[2]

    def pop_next(self, now: int) -> tuple[int, int, Timed] | None:
        """The first object due at or before `now` as its heap item (expiry, sequence,
        object), disarmed; None when nothing is due (`pop_due` one at a time, no generator)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            item = heappop(heap)
            obj = item[2]
            if item[1] != obj.hseq:
                continue  # stale
            want = obj.due
            if want is not None and want > item[0]:
                self._push(obj, want)  # extended since it was queued
                continue
            self.live -= 1
            obj.due = obj.hdue = None
            obj.hseq = 0
            return item
        return None

    def next_due(self) -> int | None:
        """Earliest heap expiry (None when nothing is armed); drops stale items it meets."""
        heap = self._heap
        while heap:
            due, seq, obj = heap[0]
            if seq == obj.hseq:
                return due  # a lower bound: an extended timer re-queues when it surfaces
            heappop(heap)
        return None

    def armed(self) -> list[Timed]:
        """Every armed object in (expiry, arming) order, without disarming."""
        items = [(o.due, s, o) for _, s, o in self._heap if s == o.hseq and o.due is not None]
        items.sort(key=lambda t: (t[0], t[1]))
        return [o for _, _, o in items]

    def _compact(self) -> None:
        # The live items themselves are kept: compiled, keeping the typed tuple read from the
        # list would box it again (a new tuple and two new ints per item).
        items: list[object] = self._heap  # type: ignore[assignment]
        kept: list[object] = []
        for o in items:
            t = cast(tuple[int, int, Timed], o)
            if t[1] == t[2].hseq:
                kept.append(o)
        self._heap = kept  # type: ignore[assignment]
        heapify(self._heap)
