"""When the live capture polls its ring next (sipcm.capture.live.poll_wait)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from sipcm.capture.live import (
    EAGER_FRACTION,
    IDLE_POLL_S,
    IDLE_POLLS,
    LiveCapture,
    poll_interval,
    poll_wait,
)

RING = 16 << 20
EAGER = RING // EAGER_FRACTION
INTERVAL = 0.005


def test_idle_ring_waits_out_the_interval():
    assert poll_wait(INTERVAL, 0, EAGER, 0.0) == INTERVAL
    assert poll_wait(0.002, 0, EAGER, 0.0) == 0.002


def test_slow_arrivals_wait_out_the_interval():
    # 30,000 records of 550 bytes a second fill 4 MiB in 0.25 s: the interval comes first
    assert poll_wait(INTERVAL, 4096, EAGER, 30_000 * 550.0) == INTERVAL


def test_fast_arrivals_poll_before_the_ring_reaches_a_quarter():
    rate = 2e9  # bytes per second: 4 MiB in about 2 ms
    wait = poll_wait(INTERVAL, 1 << 20, EAGER, rate)
    assert wait == pytest.approx((EAGER - (1 << 20)) / rate)
    assert wait < INTERVAL


def test_no_wait_once_a_quarter_is_pending_or_the_interval_is_over():
    assert poll_wait(INTERVAL, EAGER, EAGER, 0.0) == 0.0
    assert poll_wait(INTERVAL, RING, EAGER, 1e6) == 0.0
    assert poll_wait(0.0, 0, EAGER, 0.0) == 0.0
    assert poll_wait(-0.001, 100, EAGER, 1e6) == 0.0


class FakeRing:
    """A ring that holds `records` (ints); each read takes them all."""

    def __init__(self) -> None:
        self.records: list[int] = []

    def pending(self) -> int:
        return 100 * len(self.records)

    def read(self, _offset: int, _max_bytes: int) -> list[int]:
        out, self.records = self.records, []
        return out


def test_records_in_the_ring_at_the_stop_are_read():
    cap = LiveCapture(["x"], counters=Counter(), poll_interval_s=0.001)
    ring = FakeRing()
    cap._ring = ring  # type: ignore[assignment]
    stop = threading.Event()
    ring.records = [1, 2]
    got = []
    for batch in cap.batches(stop):
        got.append(list(batch))
        if len(got) == 2:
            ring.records = [3, 4]  # copied by the kernel while the stop comes
            stop.set()
    assert got == [[1, 2], [], [3, 4]]
    assert cap.counters == Counter(ring_records=4, ring_batches=2)


def test_an_empty_ring_at_the_stop_gives_no_last_batch():
    cap = LiveCapture(["x"], counters=Counter(), poll_interval_s=0.001)
    cap._ring = FakeRing()  # type: ignore[assignment]
    stop = threading.Event()
    got = []
    for batch in cap.batches(stop):
        got.append(list(batch))
        stop.set()
    assert got == [[]]


def test_an_idle_ring_is_polled_less_often_until_a_record_comes():
    assert [poll_interval(INTERVAL, n) for n in (0, 1, IDLE_POLLS - 1)] == [INTERVAL] * 3
    assert poll_interval(INTERVAL, IDLE_POLLS) == IDLE_POLL_S > INTERVAL
    assert poll_interval(1.0, IDLE_POLLS) == 1.0  # never shorter than the configured interval


def test_the_capture_backs_off_while_idle_and_not_after_a_record():
    cap = LiveCapture(["x"], counters=Counter(), poll_interval_s=0.001)
    ring = FakeRing()
    cap._ring = ring  # type: ignore[assignment]
    stop = threading.Event()
    waits: list[float] = []
    real_wait = stop.wait

    def wait(timeout: float | None = None) -> bool:
        waits.append(timeout or 0.0)
        return real_wait(0)

    stop.wait = wait  # type: ignore[method-assign]
    for polls, _ in enumerate(cap.batches(stop), 1):
        if polls == IDLE_POLLS + 2:
            ring.records = [1]  # a record after the quiet spell, read by the next poll
        if polls == IDLE_POLLS + 5:
            stop.set()
    idle = [i + 1 for i, w in enumerate(waits) if w > 0.002]  # the polls they followed
    # from the 40th empty poll in a row to the last empty one the waits are long; from the
    # poll that read the record on they are the interval again
    assert idle == [IDLE_POLLS, IDLE_POLLS + 1, IDLE_POLLS + 2]
    assert all(w <= IDLE_POLL_S for w in waits)
