"""The composition root: every part of a sensor is built here from the configuration.

Capture source (`build_capture`), decoder, shard (parse/track/build/anonymize), collector
(blacklist, rates), outputs and web state. The single-process pipeline and each worker
process build their shard with `build_shard`, so a worker correlates exactly as the single
process does; everything else is built once per sensor, in the main process. Modules that
only some runs need are imported where they are built, so a worker starts light.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TextIO

from sipcm.errors import CaptureError, ConfigError
from sipcm.events.anonymize import Anonymizer
from sipcm.events.build import EventBuilder
from sipcm.events.filters import TypeBlacklist
from sipcm.flows import FlowStore, pcap_bytes
from sipcm.shard import Shard
from sipcm.track.tracker import Tracker

if TYPE_CHECKING:
    from sipcm.capture.live import LiveCapture
    from sipcm.collector import Collector
    from sipcm.config import Config
    from sipcm.counters import Counters
    from sipcm.decode.decoder import Decoder
    from sipcm.outputs.base import Output
    from sipcm.pipeline import Pipeline
    from sipcm.web.server import WebServer
    from sipcm.web.state import WebState


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
    from sipcm.decode.decoder import Decoder  # numpy: the dispatcher's, not a worker's
    from sipcm.decode.stream import TcpReassembler

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
    """Build a shard here once, so what a worker would refuse at start-up (timer names, key
    files, passphrases) fails in this process with the user's words, before any starts."""
    from sipcm.counters import Counters

    build_shard(cfg, Counters(), hostname="", ifnames=None, share=(1, max(1, worker_count(cfg))))


def build_shard(
    cfg: Config,
    counters: Counters,
    *,
    hostname: str,
    ifnames: Mapping[int, str] | None,
    blacklist: TypeBlacklist | None = None,
    share: tuple[int, int] = (1, 1),
) -> Shard:
    """Parse/track/build/anonymize (and the message store) for a shard owning `share`
    (numerator, denominator) of the keys; each holds that share of the entry and byte
    limits, so the sensor's memory bound is the same for every worker count."""

    def part(limit: int) -> int:
        return -(-limit * share[0] // share[1])  # ceil

    try:
        tracker = Tracker(
            counters.group("track"),
            timeouts=dict(cfg.calls_timeouts),
            reg_grace_s=cfg.reg_exp_delta,
            max_calls=max(1, part(cfg.calls_max_entries)),
            max_regs=max(1, part(cfg.regs_max_entries)),
            max_pending=max(1, part(cfg.pending_max_entries)),
            requests=counters.group("sip_requests"),
            responses=counters.group("sip_responses"),
            call_times=counters.group("call_times"),
        )
    except ValueError as exc:
        raise ConfigError(f"calls_timeouts: {exc}", "see `sipcm config-keys`") from exc
    anonymizer = build_anonymizer(cfg, counters)
    if blacklist is None:
        blacklist = TypeBlacklist(cfg.event_types_blst, counters.group("events"))
    builder = EventBuilder(cfg.observer_name or hostname, ifnames)
    flows = FlowStore(
        counters.group("flows"),
        max_calls=part(cfg.flow_max_calls),
        max_call_bytes=cfg.flow_max_call_bytes,
        max_bytes=part(cfg.flow_max_bytes),
        anon=anonymizer,
    )
    return Shard(counters, tracker, builder, anonymizer, blacklist, flows)


def build_anonymizer(cfg: Config, counters: Counters) -> Anonymizer:
    """The event anonymization the encrypt_* switches select (counted in group `anon`)."""
    return Anonymizer(
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


def build_collector(
    cfg: Config,
    counters: Counters,
    outputs: Sequence[Output],
    *,
    blacklist: TypeBlacklist,
    recent_events: int = 1000,
) -> Collector:
    """Blacklist, rate limiter and outputs: one per sensor."""
    from sipcm.collector import BY_ACTION_GROUP, Collector
    from sipcm.events.rates import RateLimiter

    rates = RateLimiter(
        counters.group("rates"),
        intervals_s=cfg.evr_intervals,
        limits=cfg.evr_limits,
        max_entries=cfg.evr_max_entries,
        report_min=cfg.evr_conseq_report_min,
        report_max=cfg.evr_conseq_report_max,
        limited=counters.group("rates_limited"),
    )
    return Collector(
        counters.group("events"),
        blacklist,
        rates,
        outputs,
        recent_events=recent_events,
        by_action=counters.group(BY_ACTION_GROUP),
    )


def build_outputs(
    cfg: Config, counters: Counters, *, stdout: TextIO | None = None, pretty: bool | None = None
) -> list[Output]:
    """Instantiate the outputs the configuration enables, each with its own counter group."""
    from sipcm.outputs.console import ConsoleOutput
    from sipcm.outputs.file import FileOutput

    outs: list[Output] = []
    oc = cfg.outputs
    if oc.console.enabled:
        outs.append(
            ConsoleOutput(
                stdout or sys.stdout,
                pretty=oc.console.pretty if pretty is None else pretty,
                counters=counters.group("output_console"),
            )
        )
    if oc.file.enabled:
        outs.append(
            FileOutput(
                oc.file.path,
                rotate_bytes=oc.file.rotate_bytes,
                keep=oc.file.keep,
                counters=counters.group("output_file"),
            )
        )
    if oc.elasticsearch.enabled:
        from sipcm.outputs.elasticsearch import ElasticsearchOutput

        es = oc.elasticsearch
        outs.append(
            ElasticsearchOutput(
                list(es.hosts),
                counters=counters.group("output_elasticsearch"),
                data_stream=es.data_stream,
                api_key=es.api_key or None,
                username=es.username or None,
                password=es.password or None,
                ca_file=es.ca_file or None,
                fingerprint=es.fingerprint or None,
                verify_certs=es.verify_certs,
                batch_size=es.batch_size,
                flush_interval_s=es.flush_interval,
                spool_dir=es.spool_dir,
                spool_max_bytes=es.spool_max_bytes,
                spool_fsync_interval_s=es.spool_fsync_interval,
                dead_letter_file=es.dead_letter_file or None,
                dead_letter_max_bytes=es.dead_letter_max_bytes,
                retention=es.retention or None,
                max_retries=es.max_retries,
            )
        )
    return outs


def build_capture(cfg: Config, ifaces: Sequence[str], counters: Counters) -> LiveCapture:
    """The live capture source (kernel program, ring, attachments) for `ifaces`."""
    from sipcm.capture.live import LiveCapture

    return LiveCapture(
        list(ifaces),
        counters=counters.group("capture"),
        sip_ports=tuple(cfg.sip_ports),
        vxlan_ports=tuple(cfg.vxlan_ports),
        heuristic=cfg.sip_detect == "heuristic",
        snap_len=cfg.snap_len,
        ring_size=cfg.ring_size,
        attach_mode=cfg.attach_mode,
        egress=cfg.egress,
        poll_interval_s=cfg.poll_interval,
    )


def ifindexes(ifaces: Sequence[str]) -> dict[int, str]:
    """Map interface index to name, failing clearly on a name that does not exist."""
    out: dict[int, str] = {}
    for name in ifaces:
        try:
            out[socket.if_nametoindex(name)] = name
        except OSError:
            raise CaptureError(
                f"interface {name!r} not found", "`ip link` lists the interfaces"
            ) from None
    return out


def reserve_web(cfg: Config) -> WebServer | None:
    """The web interface, bound but not serving yet (None when http_port is 0): a sensor binds
    before dropping privileges and serves once its pipeline exists (`web_state`)."""
    if not cfg.http_port:
        return None
    from sipcm.web.server import WebServer

    web = WebServer(
        cfg.http_addr,
        cfg.http_port,
        token=cfg.access_token or None,
        allowed_hosts=cfg.http_allowed_hosts,
    )
    web.bind()
    return web


def build_web(cfg: Config, pipe: Pipeline) -> WebServer | None:
    """The web interface serving `pipe` (None when http_port is 0): bound and started at once,
    for runs that drop no privileges (`replay --serve`)."""
    web = reserve_web(cfg)
    if web is not None:
        web.start(web_state(cfg, pipe))
    return web


def web_state(cfg: Config, pipe: Pipeline, *, live: bool = False) -> WebState:
    """What the web interface reads of `pipe`: every row anonymized as the events are (the
    shards anonymize calls and registrations; the rate table and the auth-failure sources are
    the collector's). `live`: the capture clock follows wall time."""
    from sipcm.events.build import ACTIONS
    from sipcm.events.rows import AUTH_SOURCE_ROW, RATE_ROW, anonymize_rows
    from sipcm.web.state import WebState

    published = pipe.counters.group("events")
    anonymizer = build_anonymizer(cfg, pipe.counters)

    def auth_sources(limit: int) -> dict:
        view = pipe.collector.auth_sources.top(limit)
        view["top"] = anonymize_rows(anonymizer, view["top"], AUTH_SOURCE_ROW)
        return view

    return WebState(
        lock=pipe.lock,
        counters=pipe.snapshot,
        recent=pipe.recent_docs,
        active_calls=pipe.active_calls,
        registrations=pipe.registrations,
        get_blacklist=lambda: pipe.blacklist.names,
        set_blacklist=pipe.set_blacklist,
        valid_events=sorted(ACTIONS | {"stats"}),
        rate_table=lambda: anonymize_rows(anonymizer, pipe.rates.table(), RATE_ROW),
        config=lambda: cfg.to_dict(mask_secrets=True),
        published=lambda: published["published"],
        flow=pipe.flow,
        pcap_of=pcap_bytes,
        worker_pids=pipe.worker_pids,
        history=pipe.history.view,
        auth_sources=auth_sources,
        clock=lambda: pipe.clock,
        live=live,
    )
