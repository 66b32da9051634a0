"""Live capture: load the kernel program, attach it, and yield RecordBatches from its ring.

Input: interface names and capture settings (plain values). Output: `RecordBatch`es of
Ethernet frames (ts_ns in Unix-epoch nanoseconds), one per poll, possibly empty so that the
caller's clock advances on idle links. A poll comes `poll_interval` after the previous one
began, or sooner when the ring fills towards a quarter of its size at the rate records have
been arriving: records wait at most that long, and each batch carries what came meanwhile,
so that the per-batch costs downstream (decoding set-up, chunks sent to workers) are paid
once per interval rather than once per handful of records. The kernel program's counters are read by
`kernel_counters()` (the pipeline's `kernel` group, sipcm.counterdefs). It never parses
packets and never leaves a program attached on exit or on error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from types import TracebackType

from sipcm.capture.attach import Attachment, attach, release, split_netlink
from sipcm.capture.records import RecordBatch
from sipcm.capture.ring import RingReader

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 4 << 20  # bound one batch; the rest is read without sleeping
# A poll comes early once the ring may hold this fraction of its size: the sleep is cut
# short at the arrival rate of the last interval, so a burst has 3/4 of the ring to spare.
EAGER_FRACTION = 4
# After this many empty polls in a row (0.2 s at the default interval) the ring is polled
# every IDLE_POLL_S until a record comes: an idle sensor used 1.4% of a core polling every
# 5 ms. The first record after a quiet spell waits at most IDLE_POLL_S; a 16 MiB ring takes
# 160 MB/s for that long before a quarter of it is used.
IDLE_POLLS = 40
IDLE_POLL_S = 0.025


def clock_offset_ns() -> int:
    """Wall clock minus CLOCK_MONOTONIC (what bpf_ktime_get_ns reads), in ns.

    Takes the tightest of a few bracketed samples so the offset is good to ~1 us."""
    best, offset = None, 0
    for _ in range(3):
        m0 = time.monotonic_ns()
        wall = time.time_ns()
        m1 = time.monotonic_ns()
        if best is None or m1 - m0 < best:
            best, offset = m1 - m0, wall - (m0 + m1) // 2
    return offset


def poll_wait(left_s: float, pending: int, eager: int, rate: float) -> float:
    """Seconds to sleep before the next poll: `left_s` (what is left of the interval), cut
    to the time the ring takes to hold `eager` bytes at `rate` bytes per second from the
    `pending` it holds; 0 when it holds that much already or the interval is over."""
    if pending >= eager or left_s <= 0:
        return 0.0
    if rate > 0:
        return min(left_s, (eager - pending) / rate)
    return left_s


def poll_interval(base_s: float, empty_polls: int) -> float:
    """The interval to the next poll after `empty_polls` empty ones in a row: `base_s`, or
    IDLE_POLL_S (if longer) once the ring has been idle for IDLE_POLLS polls."""
    return max(base_s, IDLE_POLL_S) if empty_polls >= IDLE_POLLS else base_s


class LiveCapture:
    """Context manager: attach on enter, detach always on exit; `batches()` drains the ring."""

    def __init__(
        self,
        ifaces: list[str],
        *,
        counters: Counter[str],
        sip_ports: Iterable[int] = (5060,),
        vxlan_ports: Iterable[int] = (4789,),
        heuristic: bool = False,
        snap_len: int = 65535,
        ring_size: int = 16 << 20,
        attach_mode: str = "auto",
        egress: bool = True,
        poll_interval_s: float = 0.005,
    ) -> None:
        self.ifaces = list(ifaces)
        self.counters = counters
        self.sip_ports = tuple(sip_ports)
        self.vxlan_ports = tuple(vxlan_ports)
        self.heuristic = heuristic
        self.snap_len = snap_len
        self.ring_size = ring_size
        self.attach_mode = attach_mode
        self.egress = egress
        self.poll_interval_s = poll_interval_s
        self._program = None
        self._ring: RingReader | None = None
        self._attached: list[Attachment] = []
        self._kernel: dict[str, int] = {}

    def __enter__(self) -> LiveCapture:
        from sipcm.capture.program import BuildOptions, Program

        self._program = Program(BuildOptions(snap_len=self.snap_len, ring_size=self.ring_size))
        try:
            self._program.set_ports(self.sip_ports, self.vxlan_ports)
            self._program.set_heuristic(self.heuristic)
            self._ring = RingReader(self._program.ring_fd, self.ring_size)
            egress_fd = self._program.egress_fd if self.egress else None
            for ifname in self.ifaces:
                att = attach(ifname, self._program.xdp_fd, egress_fd, self.attach_mode)
                self._attached.append(att)
                log.info(
                    "%s: XDP in %s mode via %s (%s)",
                    ifname, att.xdp_mode, att.xdp_via, att.mode_reason,
                )  # fmt: skip
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Detach from every interface, then unload (idempotent)."""
        while self._attached:
            release(self._attached.pop())
        if self._program is not None:
            self.kernel_counters()  # keep the final values readable after unloading
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._program is not None:
            self._program.close()
            self._program = None

    def take_netlink(self) -> list[Attachment]:
        """Remove the netlink-attached parts from what `close()` detaches and return them
        (whoever takes them detaches them, e.g. a privileged helper)."""
        return [p for a in self._attached if (p := split_netlink(a)) is not None]

    def attachments(self) -> list[Attachment]:
        """What is attached where (mode, link or netlink)."""
        return list(self._attached)

    def ifnames(self) -> dict[int, str]:
        """Interface index -> name of the watched interfaces."""
        return {a.ifindex: a.ifname for a in self._attached}

    def set_ports(self, sip_ports: Iterable[int], vxlan_ports: Iterable[int]) -> None:
        """Change the SIP and VXLAN port sets while running."""
        if self._program is None:
            raise RuntimeError("capture not started")
        self._program.set_ports(sip_ports, vxlan_ports)
        self.sip_ports, self.vxlan_ports = tuple(sip_ports), tuple(vxlan_ports)

    def kernel_counters(self) -> dict[str, int]:
        """The program's per-CPU counters, summed (the final values once closed)."""
        if self._program is not None:
            self._kernel = self._program.counters()
        return dict(self._kernel)

    def read(self) -> RecordBatch:
        """One non-blocking drain of the ring (bounded by MAX_BATCH_BYTES)."""
        batch = self._ring.read(clock_offset_ns(), MAX_BATCH_BYTES)
        if len(batch):
            self.counters["ring_records"] += len(batch)
            self.counters["ring_batches"] += 1
        return batch

    def batches(self, stop: threading.Event) -> Iterator[RecordBatch]:
        """Yield a batch per poll until `stop` is set: a poll `poll_interval_s` after the
        previous one began (`poll_interval`: longer once the ring has been idle), sooner when
        the ring may reach a quarter of its size first at the arrival rate of the last
        interval (at once when a batch was cut at MAX_BATCH_BYTES or the caller took longer
        than the interval); after the stop, one last batch of what the ring holds."""
        ring = self._ring
        if ring is None:
            raise RuntimeError("capture not started")
        eager = self.ring_size // EAGER_FRACTION
        rate = 0.0  # bytes per second into the ring over the last interval
        empty = 0  # empty polls in a row
        began = time.monotonic()
        while not stop.is_set():
            pending = ring.pending()
            batch = self.read()
            now = time.monotonic()
            if now > began:
                rate = pending / (now - began)
            began = now
            empty = 0 if len(batch) else empty + 1
            yield batch
            if self._ring is None:
                return
            interval = poll_interval(self.poll_interval_s, empty)
            wait = poll_wait(began + interval - time.monotonic(), ring.pending(), eager, rate)
            if wait > 0:
                stop.wait(wait)
        # Stopping: what the ring held when the stop came is read too (one bounded read, so
        # traffic that keeps arriving cannot hold the stop up): a capture stops with nothing
        # it already copied left behind.
        if self._ring is not None and ring.pending():
            yield self.read()
