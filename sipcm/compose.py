"""The composition root: every stage is built here from the configuration, and nowhere else.

The single-process pipeline and each worker process build their shard with `build_shard`,
so a worker correlates exactly as the single process does; the dispatcher side (decoder,
collector) is built once per sensor.
"""

from __future__ import annotations

import gc
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from sipcm.collector import Collector
from sipcm.decode.decoder import Decoder
from sipcm.decode.stream import TcpReassembler
from sipcm.errors import ConfigError
from sipcm.events.anonymize import Anonymizer
from sipcm.events.build import EventBuilder
from sipcm.events.filters import TypeBlacklist
from sipcm.events.rates import RateLimiter
from sipcm.shard import Shard
from sipcm.track.tracker import Tracker

if TYPE_CHECKING:
    from sipcm.config import Config
    from sipcm.counters import Counters
    from sipcm.outputs.base import Output


# The hot path makes no reference cycles: its ~30 containers per message die by reference
# counting, while dialogs, slim messages and fingerprints live for seconds. At the default
# gen0 threshold (700) the cycle collector ran ~16 times per 1,000 messages and its gen1/gen2
# passes re-scanned that live set: about 20% of replay time, growing with the active entries.
# A large young generation keeps collection (still on, for rare cycles) to a few passes.
_GC_GEN0 = 100_000


def tune_gc() -> None:
    """Raise the cycle collector's gen0 threshold once per process (never lowers it)."""
    gen0, gen1, gen2 = gc.get_threshold()
    if 0 < gen0 < _GC_GEN0:
        gc.set_threshold(_GC_GEN0, gen1, gen2)


def worker_count(cfg: Config) -> int:
    """`workers` resolved: auto (stored as 0) is the usable CPUs minus one, at least 1."""
    if cfg.workers:
        return int(cfg.workers)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, cpus - 1)


def build_decoder(cfg: Config, counters: Counters, *, heuristic: bool) -> Decoder:
    """Link/IP/transport decoding with fragment and TCP reassembly (dispatcher side)."""
    tcp = TcpReassembler(
        counters.group("tcp"),
        max_streams=cfg.tcp_max_streams,
        max_stream_bytes=cfg.tcp_max_stream_bytes,
        max_message_bytes=cfg.tcp_max_message_bytes,
        max_ooo_segments=cfg.tcp_max_ooo_segments,
        idle_timeout_s=cfg.tcp_idle_timeout,
    )
    return Decoder(
        counters.group("decode"),
        sip_ports=tuple(cfg.sip_ports),
        vxlan_ports=tuple(cfg.vxlan_ports),
        heuristic=heuristic,
        frag_max_datagrams=cfg.frag_max_datagrams,
        frag_timeout_s=cfg.frag_timeout,
        frag_max_bytes=cfg.frag_max_bytes,
        tcp=tcp,
    )


def check_shard_config(cfg: Config) -> None:
    """Fail here, with the user's words, on what a worker would refuse at start-up."""
    try:
        Tracker(Counter(), timeouts=dict(cfg.calls_timeouts), max_calls=1, max_regs=1)
    except ValueError as exc:
        raise ConfigError(f"calls_timeouts: {exc}", "see `sipcm config-keys`") from exc


def build_shard(
    cfg: Config,
    counters: Counters,
    *,
    hostname: str,
    ifnames: Mapping[int, str] | None,
    blacklist: TypeBlacklist | None = None,
    shards: int = 1,
) -> Shard:
    """Parse/track/build/anonymize for one shard of `shards`; each holds its share of the
    entry limits, so the sensor's memory bound is the same for every worker count."""
    try:
        tracker = Tracker(
            counters.group("track"),
            timeouts=dict(cfg.calls_timeouts),
            reg_grace_s=cfg.reg_exp_delta,
            max_calls=math.ceil(cfg.calls_max_entries / shards),
            max_regs=math.ceil(cfg.regs_max_entries / shards),
        )
    except ValueError as exc:
        raise ConfigError(f"calls_timeouts: {exc}", "see `sipcm config-keys`") from exc
    anonymizer = Anonymizer(
        ip=cfg.encrypt_ip_addresses,
        ipcipher=cfg.encrypt_ipcipher,
        uris=cfg.encrypt_uris,
        call_ids=cfg.encrypt_call_ids,
        ua=cfg.encrypt_ua,
        passphrase=cfg.encryption_passphrase or None,
        key_hex=cfg.encryption_key or None,
        key_file=cfg.encryption_key_file or None,
        salt=cfg.encryption_salt,
        counters=counters.group("anon"),
    )
    if blacklist is None:
        blacklist = TypeBlacklist(cfg.event_types_blst, counters.group("events"))
    builder = EventBuilder(cfg.observer_name or hostname, ifnames)
    return Shard(counters, tracker, builder, anonymizer, blacklist)


def build_collector(
    cfg: Config,
    counters: Counters,
    outputs: Sequence[Output],
    *,
    blacklist: TypeBlacklist,
    recent_events: int = 1000,
) -> Collector:
    """Blacklist, rate limiter and outputs: one per sensor."""
    rates = RateLimiter(
        counters.group("rates"),
        intervals_s=cfg.evr_intervals,
        limits=cfg.evr_limits,
        max_entries=cfg.evr_max_entries,
        report_min=cfg.evr_conseq_report_min,
        report_max=cfg.evr_conseq_report_max,
    )
    return Collector(
        counters.group("events"), blacklist, rates, outputs, recent_events=recent_events
    )
