"""The pipeline: drives one run from capture batches to published events.

RecordBatch (capture) -> Payload (decode) -> [shard: SipMessage | ParseError (sip) -> Outcome
(track) -> encoded ECS document (events)] -> collector (blacklist, rates) -> outputs. The
shard stage runs in this process (`workers: 1`) or, with N workers, in N shards: N - 1
worker processes and one in this process, each owning the calls whose shard key maps to it
(sipcm.workers); everything else is sensor-wide and stays here. Stages are built by
`sipcm.compose`, from the configuration, the same way in both modes. Each stage keeps its
own counter group in one `Counters` registry (a worker process has its own, summed into
`snapshot()`), so stats events and tests read a single snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sipcm.capture.records import DIRECTION_NAMES, RecordBatch
from sipcm.compose import (
    build_collector,
    build_decoder,
    build_shard,
    check_shard_config,
    worker_count,
)
from sipcm.counters import Counters
from sipcm.events.build import EventBuilder
from sipcm.events.filters import TypeBlacklist
from sipcm.gcpolicy import SurvivorFreezer, tune_gc
from sipcm.history import History
from sipcm.outputs.base import Output
from sipcm.shard import Emitted, Item, Shard

if TYPE_CHECKING:
    from sipcm.config import Config
    from sipcm.track.tracker import Tracker
    from sipcm.workers.pool import WorkerPool

__all__ = ["FINISH_CHUNK", "NS", "FileTotals", "Pipeline"]

NS = 1_000_000_000
# Outcomes concluded at the end of input are built and published this many at a time.
FINISH_CHUNK = 1000


@dataclass(slots=True)
class FileTotals:
    """Per-input counts reported after a replay."""

    name: str
    packets: int = 0
    payloads: int = 0
    messages: int = 0
    parse_errors: int = 0
    probes: int = 0
    reassembled: int = 0
    events: int = 0
    truncated: str | None = None
    skipped: int = 0  # records that could not be replayed (bad timestamp, unknown interface)
    skip_note: str | None = None  # where the first one was and why
    limited: dict[str, int] = field(default_factory=dict)  # events suppressed per event name


class _Local:
    """The single-process backend: one shard holding every key, run as chunks arrive."""

    def __init__(self, shard: Shard) -> None:
        self.shard = shard
        self._done: list[list[Emitted]] = []

    def submit(self, items: list[Item], advance_to: int) -> None:
        self._done.append(self.shard.run(items, advance_to))

    def results(self) -> list[list[Emitted]]:
        out, self._done = self._done, []
        return out

    def poll(self) -> None:
        pass

    drain = results

    def finish_chunks(self, mode: str, size: int) -> Iterator[list[Emitted]]:
        return self.shard.finish_chunks(mode, size)

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {"track_active": self.shard.gauges()}  # its counters are the pipeline's

    def active_calls(self) -> list[dict]:
        return self.shard.call_rows()

    def export_state(self) -> list[dict]:
        return self.shard.tracker.export_state()

    def import_state(self, records: Iterable[dict], now_ns: int) -> tuple[int, int]:
        return self.shard.tracker.import_state(records, now_ns)

    def registrations(self) -> list[dict]:
        return self.shard.registration_rows()

    def flow(self, call_id: str) -> dict | None:
        return self.shard.flows.flow(call_id)

    def set_blacklist(self, names: list[str]) -> None:
        pass  # the shard shares the pipeline's blacklist

    def worker_pids(self) -> list[tuple[int, int]]:
        return []

    def close(self) -> None:
        pass


class Pipeline:
    """Drives one run: feed batches, tick the clock, finish; events go to `outputs`."""

    def __init__(
        self,
        cfg: Config,
        outputs: Sequence[Output],
        *,
        hostname: str,
        ifnames: dict[int, str] | None = None,
        heuristic: bool = True,
        counters: Counters | None = None,
        recent_events: int = 1000,
        workers: int | None = None,
        history: bool = True,
        live: bool = False,
    ) -> None:
        tune_gc()
        self._freezer = SurvivorFreezer()
        self.cfg = cfg
        self.counters = counters or Counters()
        # Extra counter sources (e.g. the kernel program's per-CPU counters) for snapshots.
        self.gauges: dict[str, Callable[[], dict[str, int]]] = {}
        self.decoder = build_decoder(cfg, self.counters, heuristic=heuristic)
        self.ifnames = dict(ifnames or {})
        self.per_interface = bool(self.ifnames)
        self._ifaces = self.counters.group("interfaces")
        self.builder = EventBuilder(cfg.observer_name or hostname, self.ifnames)
        self.blacklist = TypeBlacklist(cfg.event_types_blst, self.counters.group("events"))
        self.collector = build_collector(
            cfg, self.counters, outputs, blacklist=self.blacklist, recent_events=recent_events
        )
        self.rates = self.collector.rates
        # Held while a batch is processed; the web server reads state only under it.
        self.lock = threading.Lock()
        self.workers = worker_count(cfg) if workers is None else workers
        self.backend: _Local | WorkerPool
        share = (1, 1)
        buckets: list[int] = []
        if self.workers > 1:
            from sipcm.sip.shardkey import BUCKETS
            from sipcm.workers.shares import LIVE, REPLAY, weights

            check_shard_config(cfg)
            # N shards: N - 1 worker processes and one here, with the smaller share (smaller
            # still in live capture, where reading the kernel's ring costs this process more).
            buckets = weights(self.workers, local=True, mode=LIVE if live else REPLAY)
            share = (buckets[-1], BUCKETS)
        shard = build_shard(
            cfg,
            self.counters,
            hostname=hostname,
            ifnames=self.ifnames,
            blacklist=self.blacklist,
            share=share,
        )
        if self.workers <= 1:
            self.backend = _Local(shard)
        else:
            from sipcm.workers.pool import WorkerPool

            self.backend = WorkerPool(
                cfg,
                self.workers - 1,
                hostname=hostname,
                ifnames=self.ifnames,
                counters=self.counters.group("workers"),
                local=shard,
                weights=buckets,
            )
        self._stats_ns = int(cfg.stats_interval * NS)
        self._next_stats: int | None = None
        # Counter samples for the dashboard (read under `lock`). Each sample is a capture-time
        # boundary at which every worker's chunks are drained first, so a run whose state
        # nobody will look at (a replay without --serve) takes none.
        self.history = History(enabled=history)
        self._clock = 0  # the sensor-wide capture clock: latest timestamp seen
        self._seq = 0  # payloads numbered across the run (the merge order's tiebreak)

    @property
    def outputs(self) -> list[Output]:
        return self.collector.outputs

    @outputs.setter
    def outputs(self, outs: Sequence[Output]) -> None:
        self.collector.outputs = list(outs)

    @property
    def totals(self) -> FileTotals | None:
        return self.collector.totals

    @totals.setter
    def totals(self, value: FileTotals | None) -> None:
        self.collector.totals = value

    @property
    def clock(self) -> int:
        """The sensor-wide capture clock (ns): the latest timestamp seen."""
        return self._clock

    @property
    def tracker(self) -> Tracker:
        """The tracker of the single-process mode (workers keep theirs to themselves)."""
        if not isinstance(self.backend, _Local):
            raise AttributeError("the tracker lives in the worker processes")
        return self.backend.shard.tracker

    # -- input -------------------------------------------------------------------------------

    def feed(self, batch: RecordBatch) -> None:
        """Decode a batch of frames and correlate it; publish what is decided."""
        with self.lock:
            totals = self.collector.totals
            if totals is not None:
                totals.packets += len(batch)
            if self.per_interface and len(batch):
                self._count_interfaces(batch)
            payloads = self.decoder.decode(batch)
            if payloads:
                self._dispatch(payloads)
            else:
                self.backend.poll()
            self._publish(self.backend.results())
            self._freezer.after_batch()

    def _dispatch(self, payloads: list) -> None:
        """Number the payloads, stamp each with the capture clock and submit them in chunks
        cut at stats and history boundaries (so a stats event or a history sample counts
        exactly what came before it)."""
        if self._next_stats is None and self._stats_ns > 0:
            self._next_stats = payloads[0].ts_ns + self._stats_ns
        self.history.start(payloads[0].ts_ns)
        nxt = self._next_cut()
        clock, seq = self._clock, self._seq
        items: list[Item] = []
        for p in payloads:
            ts = p.ts_ns
            while nxt is not None and ts >= nxt:
                self.backend.submit(items, nxt)
                items = []
                self._publish(self.backend.drain())
                self._boundary(nxt, ts)
                nxt = self._next_cut()
            if ts > clock:
                clock = ts
            items.append((seq, clock, p))
            seq += 1
        self._clock, self._seq = clock, seq
        self.backend.submit(items, clock)

    def _next_cut(self) -> int | None:
        """The next capture-time boundary: a stats event or a history sample."""
        due = [t for t in (self._next_stats, self.history.next_ns) if t is not None]
        return min(due) if due else None

    def _boundary(self, at: int, now_ns: int) -> None:
        """Everything before boundary `at` is published: emit what is due there (`now_ns`:
        the time of the input that crossed it)."""
        if self._next_stats is not None and at >= self._next_stats:
            self._stats(now_ns)
        if self.history.next_ns is not None and at >= self.history.next_ns:
            self.history.add(at, self.running_totals(), now_ns)

    def _count_interfaces(self, batch: RecordBatch) -> None:
        # One numpy pass per batch instead of a counter update per frame. Imported here: only
        # live capture names interfaces, and a replay does without numpy (start-up time).
        import numpy as np

        grp = self._ifaces
        keyed = np.asarray(batch.ifindex, np.int64) * 4 + np.asarray(batch.direction)
        first = int(keyed[0])
        if int(keyed.min()) == int(keyed.max()):  # one interface and direction: no sort
            keys, counts = np.asarray([first]), np.asarray([len(keyed)])
        else:
            keys, counts = np.unique(keyed, return_counts=True)
        for key, n in zip(keys.tolist(), counts.tolist(), strict=True):
            ifindex, direction = divmod(key, 4)
            name = self.ifnames.get(ifindex, str(ifindex))
            grp[f"{name}/{DIRECTION_NAMES.get(direction) or 'unknown'}"] += n

    def set_ports(self, sip_ports: Sequence[int], vxlan_ports: Sequence[int]) -> None:
        """Change the SIP and VXLAN port sets while running (live reload)."""
        with self.lock:
            self.decoder.set_ports(tuple(sip_ports), tuple(vxlan_ports))

    def set_blacklist(self, names: Sequence[str]) -> None:
        """Replace the event-type blacklist while running (web API, reload), in every worker.
        The caller holds `lock` (the web state does)."""
        self.blacklist.replace(names)
        self.backend.set_blacklist(list(self.blacklist.names))

    def tick(self, now_ns: int) -> None:
        """Advance the clock without traffic (live idle links): fire due timers and stats."""
        with self.lock:
            if now_ns <= self._clock:
                self.backend.poll()
                self._publish(self.backend.results())
                return
            self._clock = now_ns
            self.decoder.expire(now_ns)
            self.backend.submit([], now_ns)
            self._publish(self.backend.results())
            if self._next_stats is None and self._stats_ns > 0:
                self._next_stats = now_ns + self._stats_ns
            elif self._next_stats is not None and now_ns >= self._next_stats:
                self._publish(self.backend.drain())
                self._stats(now_ns)
            hist = self.history
            if hist.next_ns is None:
                hist.start(now_ns)
            elif now_ns >= hist.next_ns:  # timers ran up to now: the sample is as of then
                self._publish(self.backend.drain())
                hist.add(hist.last_boundary(now_ns), self.running_totals(), now_ns)

    def sync(self) -> None:
        """Wait for every submitted chunk and publish its events."""
        with self.lock:
            self._publish(self.backend.drain())

    def finish(self, mode: str) -> None:
        """End of input: conclude pending work per `mode` (in time order) and flush outputs;
        in one process the conclusion is built and published FINISH_CHUNK outcomes at a time."""
        with self.lock:
            self._publish(self.backend.drain())
            for rows in self.backend.finish_chunks(mode, FINISH_CHUNK):
                self._publish([rows])
            if self.history.next_ns is not None:  # the last sample holds the conclusion too
                self.history.add(self._clock, self.running_totals(), self._clock)
        for out in self.outputs:
            out.flush()

    def close(self) -> None:
        """Flush and close every output; stop the workers."""
        try:
            for out in self.outputs:
                out.close()
        finally:
            self.backend.close()

    # -- output ------------------------------------------------------------------------------

    def _publish(self, chunks: list[list[Emitted]]) -> None:
        publish = self.collector.publish
        for rows in chunks:
            publish(rows)

    def _stats(self, now_ns: int) -> None:
        """Publish a stats event stamped with the interval boundary just crossed; after an
        idle gap of several intervals, one event, then the schedule realigns."""
        due = self._next_stats
        assert due is not None
        missed = (now_ns - due) // self._stats_ns
        self._next_stats = due + (missed + 1) * self._stats_ns
        if self.blacklist.allows("stats"):
            self.collector.emit_doc(self.builder.build_stats(due, self.snapshot()))

    def snapshot(self) -> dict[str, dict[str, int]]:
        """All counters of the sensor (workers' summed in) plus the table sizes."""
        snap = self.counters.snapshot()
        _add(snap, self.backend.snapshot())
        snap["rates_active"] = dict(self.rates.stats())
        for name, fn in self.gauges.items():
            snap[name] = dict(fn())
        return {g: dict(sorted(snap[g].items())) for g in sorted(snap)}

    def running_totals(self) -> dict[str, dict[str, int]]:
        """The running totals (workers' summed in) without the table sizes, which one
        process would have to count entry by entry: what the history samples."""
        snap = self.counters.snapshot()
        if not isinstance(self.backend, _Local):  # its counters are these
            _add(snap, self.backend.snapshot())
        return snap

    def active_calls(self) -> list[dict]:
        """Every dialog being followed, across workers (anonymized like the events)."""
        return self.backend.active_calls()

    def export_state(self) -> list[dict]:
        """Every tracker entry as a record (sipcm.track.persist), across workers."""
        with self.lock:
            return self.backend.export_state()

    def import_state(self, records: Iterable[dict], now_ns: int) -> tuple[int, int]:
        """Restore `export_state` records, each in the worker its shard key maps to; returns
        (restored, discarded). Raises ValueError (persist.StateError, snapshot.CorruptFile)
        before any entry is restored."""
        with self.lock:
            return self.backend.import_state(records, now_ns)

    def registrations(self) -> list[dict]:
        """Every cached binding, across workers (anonymized like the events)."""
        return self.backend.registrations()

    def flow(self, call_id: str) -> dict | None:
        """The stored messages of one call (sipcm.flows), None when none are held."""
        return self.backend.flow(call_id)

    def worker_pids(self) -> list[tuple[int, int]]:
        """(index, pid) of each worker process; none in the single-process mode."""
        return self.backend.worker_pids()

    def recent_docs(self) -> list[dict]:
        """The recent published documents, oldest first."""
        return self.collector.recent_docs()


def _add(snap: dict[str, dict[str, int]], more: dict[str, dict[str, int]]) -> None:
    """Sum counter groups `more` into `snap`."""
    for group, values in more.items():
        dst = snap.setdefault(group, {})
        for k, v in values.items():
            dst[k] = dst.get(k, 0) + v
