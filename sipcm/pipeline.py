"""The pipeline: the only module that knows every stage.

RecordBatch (capture) -> Payload (decode) -> SipMessage | ParseError (sip) -> Outcome (track)
-> ECS document (events) -> outputs. Data flows one way; each stage keeps its own counter group
in one `Counters` registry so stats events and tests read a single snapshot.
"""

from __future__ import annotations

import gc
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sipcm.capture.records import DIRECTION_NAMES, RecordBatch
from sipcm.counters import Counters
from sipcm.decode.decoder import Decoder
from sipcm.decode.stream import TcpReassembler
from sipcm.errors import ConfigError
from sipcm.events.anonymize import Anonymizer
from sipcm.events.build import EventBuilder
from sipcm.events.filters import TypeBlacklist
from sipcm.events.rates import RateLimiter
from sipcm.outputs.base import Output
from sipcm.sip.message import ParseError
from sipcm.sip.parser import parse
from sipcm.track.outcome import Outcome
from sipcm.track.tracker import Tracker

if TYPE_CHECKING:
    from sipcm.config import Config

NS = 1_000_000_000
# The hot path makes no reference cycles: its ~30 containers per message die by reference
# counting, while dialogs, slim messages and fingerprints live for seconds. At the default
# gen0 threshold (700) the cycle collector ran ~16 times per 1,000 messages and its gen1/gen2
# passes re-scanned that live set: about 20% of replay time, growing with the active entries.
# A large young generation keeps collection (still on, for rare cycles) to a few passes.
_GC_GEN0 = 100_000


def _tune_gc() -> None:
    """Raise the cycle collector's gen0 threshold once per process (never lowers it)."""
    gen0, gen1, gen2 = gc.get_threshold()
    if 0 < gen0 < _GC_GEN0:
        gc.set_threshold(_GC_GEN0, gen1, gen2)


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
    ) -> None:
        _tune_gc()
        self.cfg = cfg
        self.counters = counters or Counters()
        # Extra counter sources (e.g. the kernel program's per-CPU counters) for snapshots.
        self.gauges: dict[str, Callable[[], dict[str, int]]] = {}
        self.outputs = list(outputs)
        self._sip = self.counters.group("sip")
        self._ev = self.counters.group("events")
        tcp = TcpReassembler(
            self.counters.group("tcp"),
            max_streams=cfg.tcp_max_streams,
            max_stream_bytes=cfg.tcp_max_stream_bytes,
            max_message_bytes=cfg.tcp_max_message_bytes,
            max_ooo_segments=cfg.tcp_max_ooo_segments,
            idle_timeout_s=cfg.tcp_idle_timeout,
        )
        self.decoder = Decoder(
            self.counters.group("decode"),
            sip_ports=tuple(cfg.sip_ports),
            vxlan_ports=tuple(cfg.vxlan_ports),
            heuristic=heuristic,
            frag_max_datagrams=cfg.frag_max_datagrams,
            frag_timeout_s=cfg.frag_timeout,
            frag_max_bytes=cfg.frag_max_bytes,
            tcp=tcp,
        )
        try:
            self.tracker = Tracker(
                self.counters.group("track"),
                timeouts=dict(cfg.calls_timeouts),
                reg_grace_s=cfg.reg_exp_delta,
                max_calls=cfg.calls_max_entries,
                max_regs=cfg.regs_max_entries,
            )
        except ValueError as exc:
            raise ConfigError(f"calls_timeouts: {exc}", "see `sipcm config-keys`") from exc
        self.ifnames = dict(ifnames or {})
        self.per_interface = bool(self.ifnames)
        self._ifaces = self.counters.group("interfaces")
        self.builder = EventBuilder(cfg.observer_name or hostname, self.ifnames)
        # Recent published documents for the web API; `lock` guards what it reads.
        self.recent: deque[dict] = deque(maxlen=recent_events)
        self.lock = threading.Lock()
        self.blacklist = TypeBlacklist(cfg.event_types_blst, self._ev)
        self.anonymizer = Anonymizer(
            ip=cfg.encrypt_ip_addresses,
            ipcipher=cfg.encrypt_ipcipher,
            uris=cfg.encrypt_uris,
            call_ids=cfg.encrypt_call_ids,
            ua=cfg.encrypt_ua,
            passphrase=cfg.encryption_passphrase or None,
            key_hex=cfg.encryption_key or None,
            key_file=cfg.encryption_key_file or None,
            salt=cfg.encryption_salt,
            counters=self.counters.group("anon"),
        )
        self.rates = RateLimiter(
            self.counters.group("rates"),
            intervals_s=cfg.evr_intervals,
            limits=cfg.evr_limits,
            max_entries=cfg.evr_max_entries,
            report_min=cfg.evr_conseq_report_min,
            report_max=cfg.evr_conseq_report_max,
        )
        self._stats_ns = int(cfg.stats_interval * NS)
        self._next_stats: int | None = None
        self._clock = 0
        self.totals: FileTotals | None = None

    # -- input -------------------------------------------------------------------------------

    def feed(self, batch: RecordBatch) -> None:
        """Decode, parse, correlate and publish one batch of frames."""
        with self.lock:
            self._feed(batch)

    def _feed(self, batch: RecordBatch) -> None:
        totals = self.totals
        if totals is not None:
            totals.packets += len(batch)
        if self.per_interface and len(batch):
            self._count_interfaces(batch)
        payloads = self.decoder.decode(batch)
        if not payloads:
            return
        if self._next_stats is None and self._stats_ns > 0:
            self._next_stats = payloads[0].ts_ns + self._stats_ns
        outcomes: list[Outcome] = []
        sip = self._sip
        tracker = self.tracker
        for p in payloads:
            if self._next_stats is not None and p.ts_ns >= self._next_stats:
                # Keep documents in time order: what came before the boundary goes first.
                outcomes.extend(tracker.advance(self._next_stats))
                self._publish(outcomes)
                outcomes = []
                self._stats(p.ts_ns)
            res = parse(p.data)
            if p.reassembled:
                sip["reassembled"] += 1
            if isinstance(res, ParseError):
                res.payload = p
                if not p.on_sip_port:
                    sip["heuristic_not_sip"] += 1
                    continue
                action = "msg-probe" if res.probe else "parse-error"
                sip["probes" if res.probe else "parse_errors"] += 1
                outcomes.extend(tracker.advance(p.ts_ns))
                outcomes.append(Outcome(action, p.ts_ns, error=res, payload=p))
                continue
            sip["messages"] += 1
            res.payload = p
            outcomes.extend(tracker.process(res))
        last = payloads[-1].ts_ns
        if last > self._clock:
            self._clock = last
        self._publish(outcomes)

    def _count_interfaces(self, batch: RecordBatch) -> None:
        # One numpy pass per batch instead of a counter update per frame.
        keys, counts = np.unique(
            batch.ifindex.astype(np.int64) * 4 + batch.direction, return_counts=True
        )
        grp = self._ifaces
        for key, n in zip(keys.tolist(), counts.tolist(), strict=True):
            ifindex, direction = divmod(key, 4)
            name = self.ifnames.get(ifindex, str(ifindex))
            grp[f"{name}/{DIRECTION_NAMES.get(direction) or 'unknown'}"] += n

    def set_ports(self, sip_ports: Sequence[int], vxlan_ports: Sequence[int]) -> None:
        """Change the SIP and VXLAN port sets while running (live reload)."""
        with self.lock:
            self.decoder.set_ports(tuple(sip_ports), tuple(vxlan_ports))

    def tick(self, now_ns: int) -> None:
        """Advance the clock without traffic (live idle links): fire due timers and stats."""
        with self.lock:
            if now_ns <= self._clock:
                return
            self._clock = now_ns
            self.decoder.expire(now_ns)
            self._publish(self.tracker.advance(now_ns))
            if self._next_stats is None and self._stats_ns > 0:
                self._next_stats = now_ns + self._stats_ns
            elif self._next_stats is not None and now_ns >= self._next_stats:
                self._stats(now_ns)

    def finish(self, mode: str) -> None:
        """End of input: conclude pending work per `mode` (in time order) and flush outputs."""
        with self.lock:
            self._publish(sorted(self.tracker.finish(mode), key=_ts))
        for out in self.outputs:
            out.flush()

    def close(self) -> None:
        """Flush and close every output."""
        for out in self.outputs:
            out.close()

    # -- output ------------------------------------------------------------------------------

    def _publish(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        self._ev["generated"] += len(outcomes)
        allows = self.blacklist.allows
        check = self.rates.check
        build = self.builder.build
        docs = []
        for o in outcomes:
            if not allows(o.action):
                continue
            verdict = check(o.action, _source_ip(o), o.ts_ns)
            if verdict is False:
                continue
            if verdict is not True:
                o.extra.update({"sipcm.rate." + k: v for k, v in verdict.items()})
            docs.append(build(o))
        if self.anonymizer.enabled:
            for d in docs:
                self.anonymizer.apply(d)
        self._emit(docs)

    def _emit(self, docs: list[dict]) -> None:
        if not docs:
            return
        self._ev["published"] += len(docs)
        if self.totals is not None:
            self.totals.events += len(docs)
        self.recent.extend(docs)
        for out in self.outputs:
            out.write(docs)

    def _stats(self, now_ns: int) -> None:
        """Publish a stats event stamped with the interval boundary just crossed; after an
        idle gap of several intervals, one event, then the schedule realigns."""
        due = self._next_stats
        assert due is not None
        missed = (now_ns - due) // self._stats_ns
        self._next_stats = due + (missed + 1) * self._stats_ns
        if self.blacklist.allows("stats"):
            self._emit([self.builder.build_stats(due, self.snapshot())])

    def snapshot(self) -> dict[str, dict[str, int]]:
        """All pipeline counters plus the tracker's gauges."""
        snap = self.counters.snapshot()
        snap["track_active"] = dict(self.tracker.stats())
        snap["rates_active"] = dict(self.rates.stats())
        for name, fn in self.gauges.items():
            snap[name] = dict(fn())
        return snap


def _source_ip(o: Outcome) -> str | None:
    """The rate key's IP: the caller side of the dialog or transaction (as sipcmbeat's
    endpoint 0), so a busy server answering many callers is not what gets limited; the
    packet source when there is no caller side (parse errors)."""
    if o.client is not None:
        return o.client[0]
    p = o.msg.payload if o.msg is not None else o.payload
    if p is None and o.request is not None:
        p = o.request.payload
    return p.src_ip if p is not None else None


def _ts(o: Outcome) -> int:
    return o.ts_ns
