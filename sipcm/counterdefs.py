"""Every counter sipcm keeps, declared once: group, name, kind, meaning and limit key.

Stages raise counters as plain `Counter` increments (`c["frag_timeout"] += 1`: no call per
message); this table says what each name means. `/metrics` (sipcm.web.metrics) takes its
families, HELP texts and zero values from it, `docs/counters.md` is generated from it
(`python -m sipcm.docs`), and tests fail when the code raises a name declared nowhere
(tests/unit/test_counterdefs.py scans the source and a replay's final snapshot).

A name may hold one `{label}` part (`blacklisted_{action}`, `{interface}/{direction}`): the
counters it matches become one Prometheus family with that label; `values` lists the label
values known in advance, exported as zeros before they are first counted. Histograms are
groups of per-bucket counts (not cumulative: one increment per observation; `/metrics`
accumulates them) plus a sum, so workers' values add up like every other counter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["counter", "gauge"]
PREFIX = "sipcm"


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity (used as a dict key)
class CounterDef:
    """One counter (or a labelled family of counters) of one group."""

    group: str
    name: str  # a plain name, or a pattern with `{label}` parts
    meaning: str
    kind: Kind = "counter"
    limit: str | None = None  # the configuration key whose limit this counter reports
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)  # label -> known values
    metric: str | None = None  # the Prometheus family name when not derived

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(re.findall(r"\{(\w+)\}", self.name))

    @property
    def family(self) -> str:
        """The Prometheus family name (counters end in `_total`)."""
        if self.metric:
            return self.metric
        base = re.sub(r"\{\w+\}", "", self.name).strip("_/")
        parts = [PREFIX, self.group] + ([base] if base else [])
        name = "_".join(re.sub(r"[^a-zA-Z0-9_]", "_", p) for p in parts)
        return name + ("_total" if self.kind == "counter" else "")

    def pattern(self) -> re.Pattern[str]:
        """A regex matching the counter names this declaration covers, labels as groups."""
        out, pos = [], 0
        for m in re.finditer(r"\{(\w+)\}", self.name):
            out.append(re.escape(self.name[pos : m.start()]))
            out.append(f"(?P<{m.group(1)}>.+?)")
            pos = m.end()
        out.append(re.escape(self.name[pos:]))
        return re.compile("".join(out) + r"\Z", re.S)


@dataclass(frozen=True, slots=True)
class HistogramDef:
    """A histogram kept as counters of group `group`: `<key>_b<i>` observations in bucket i
    (above bound i-1, at most bound i; i = len(bounds) for above the last) and `<key>_sum_ms`
    (the sum of the observations, rounded to whole milliseconds each)."""

    group: str
    key: str
    metric: str
    meaning: str
    bounds_s: tuple[float, ...]
    bounds_ms: tuple[float, ...] = field(init=False)
    names: tuple[str, ...] = field(init=False)  # bucket counter names by index, then the sum

    def __post_init__(self) -> None:
        n = len(self.bounds_s) + 1
        object.__setattr__(self, "bounds_ms", tuple(b * 1000 for b in self.bounds_s))
        names = (*(f"{self.key}_b{i}" for i in range(n)), f"{self.key}_sum_ms")
        object.__setattr__(self, "names", names)


# SIP methods counted by name in `sip_requests` / `sip_responses` (others count as `other`):
# RFC 3261 plus the extensions sipcm's tracker knows (RFC 3262, 3265, 3311, 3428, 3515,
# 3903, 6086).
SIP_METHODS = (
    "ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS", "PRACK",
    "PUBLISH", "REFER", "REGISTER", "SUBSCRIBE", "UPDATE",
)  # fmt: skip
OTHER = "other"
CODE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "6xx")
REQUEST_KEYS: dict[str | None, str] = {m: m for m in SIP_METHODS}
# method -> response key per status // 100 (index 1..6; the parser keeps codes in 100..699)
RESPONSE_KEYS: dict[str | None, tuple[str, ...]] = {
    m: ("", *(f"{m}/{c}" for c in CODE_CLASSES)) for m in (*SIP_METHODS, OTHER)
}
RESPONSE_OTHER = RESPONSE_KEYS[OTHER]

# Published event actions (sipcm.events.build.ACTIONS plus stats); duplicated here so this
# module imports nothing heavy; tests/unit/test_counterdefs.py checks they match.
EVENT_ACTIONS = (
    "auth-failed", "call-attempt", "call-end", "call-start", "msg-probe", "other-failed",
    "other-ok", "other-timeout", "parse-error", "reg-del", "reg-expired", "reg-new", "stats",
)  # fmt: skip

_LATENCY_S = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)
_DURATION_S = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
HISTOGRAMS = (
    HistogramDef(
        "call_times", "pdd", "sipcm_call_pdd_seconds",
        "Post-dial delay of calls (INVITE to first 18x or final reply), as in sip.call.pdd of "
        "call-start and call-attempt events.",
        _LATENCY_S,
    ),
    HistogramDef(
        "call_times", "setup", "sipcm_call_setup_seconds",
        "Setup time of answered calls (INVITE to 2xx), as in sip.call.setup_time of "
        "call-start events.",
        _LATENCY_S,
    ),
    HistogramDef(
        "call_times", "duration", "sipcm_call_duration_seconds",
        "Duration of ended calls (answer to BYE or timeout), as in event.duration of call-end "
        "events.",
        _DURATION_S,
    ),
)  # fmt: skip
PDD, SETUP, DURATION = HISTOGRAMS


def _group(group: str, kind: Kind, *rows: tuple) -> list[CounterDef]:
    out = []
    for row in rows:
        name, meaning, *rest = row
        limit = rest[0] if rest else None
        out.append(CounterDef(group, name, meaning, kind, limit))
    return out


# The kernel program's counters, in the order of sipcm.capture.program.COUNTER_NAMES (a
# shared module imports no stage; tests/unit/test_counterdefs.py checks the two agree).
_KERNEL: dict[str, tuple[str, str | None]] = {
    "seen": ("Packets the kernel program looked at.", None),
    "selected": ("Packets the kernel program chose as SIP (ports or heuristic).", None),
    "copied": ("Packets copied into the ring buffer.", None),
    "truncated": ("Packets cut to the snap length when copied.", "snap_len"),
    "ring_full_lost": ("Packets lost because the ring buffer was full.", "ring_size"),
    "load_failed": ("Packets the kernel program could not read.", None),
    "vxlan_inner": ("VXLAN packets whose inner frame was examined.", "vxlan_ports"),
    "frag_first": ("First IP fragments of a SIP datagram.", None),
    "frag_matched": ("Later IP fragments matched to a selected first fragment.", None),
    "frag_unmatched": ("Later IP fragments with no known first fragment.", None),
    "heuristic": ("Packets off the SIP ports selected by the SIP heuristic.", "sip_detect"),
    "short": ("Packets too short to examine.", None),
}

COUNTERS: tuple[CounterDef, ...] = (
    *_group(
        "decode", "counter",
        ("frames", "Frames read from the capture (ring or pcap)."),
        ("payloads", "UDP datagrams and TCP messages handed to the SIP parser."),
        ("link_unsupported", "Frames of a pcap link type sipcm cannot decode."),
        ("decode_error", "Frames that made a decoder layer fail (a sipcm bug; never fatal)."),
        ("not_sip_candidate", "Frames skipped: not on a SIP port and not SIP-looking."),
        ("ethertype_other", "Frames carrying neither IPv4, IPv6, VLAN nor PPPoE."),
        ("too_deep", "Frames nesting more tunnels/VLAN tags than sipcm follows."),
        ("ip_proto_other", "IP packets that are neither UDP, TCP nor a known tunnel."),
        ("udp_empty", "UDP datagrams with no payload."),
        ("udp_keepalive", "CRLF keep-alives (RFC 5626) seen on UDP, not parsed."),
        ("eth_truncated", "Frames cut short inside the Ethernet header."),
        ("vlan_truncated", "Frames cut short inside the 802.1Q VLAN header."),
        ("pppoe_truncated", "Frames cut short inside the PPPoE header."),
        ("pppoe_bad_header", "PPPoE session frames with an invalid header."),
        ("ppp_truncated", "Frames cut short inside the PPP header."),
        ("ppp_other", "PPP frames carrying something other than IP."),
        ("link_truncated", "Frames shorter than their link-layer header (SLL, loopback, raw)."),
        ("link_other_family", "Loopback/SLL frames of an address family other than IP."),
        ("ip_bad_version", "Packets whose IP version nibble is neither 4 nor 6."),
        ("ip4_truncated", "IPv4 packets shorter than their header or total length."),
        ("ip4_bad_header", "IPv4 packets with an invalid header length or total length."),
        ("ip6_truncated", "IPv6 packets shorter than their header or payload length."),
        ("ip6_bad_header", "IPv6 packets with an invalid fixed header."),
        ("ip6_ext_truncated", "IPv6 packets whose extension headers run past the packet."),
        ("ip6_esp", "IPv6 packets encrypted with ESP (cannot be read)."),
        ("ip6_no_next", "IPv6 packets ending with a No Next Header extension."),
        ("udp_truncated", "UDP datagrams shorter than their header or stated length."),
        ("udp_bad_length", "UDP datagrams whose length field is below the header size."),
        ("tcp_truncated", "TCP segments shorter than their header."),
        ("tcp_bad_header", "TCP segments with a data offset below 5 words."),
        ("vxlan_decap", "VXLAN packets unwrapped to their inner frame."),
        ("vxlan_truncated", "VXLAN packets too short for the VXLAN header."),
        ("vxlan_bad_header", "VXLAN packets without the valid-VNI flag."),
        ("gtp_decap", "GTP-U packets unwrapped to their inner IP packet."),
        ("gtp_truncated", "GTP-U packets too short for their headers."),
        ("gtp_bad_header", "GTP packets that are not GTPv1 user plane (or GTP')."),
        ("gtp_not_tpdu", "GTP-U signalling (echo, error indication, end marker): no payload."),
        ("gtp_not_ip", "GTP-U payloads that are not IP packets."),
        ("gre_decap", "GRE packets unwrapped to their inner packet."),
        ("gre_truncated", "GRE packets too short for their header."),
        ("gre_unsupported", "GRE packets with source routing or an unknown version."),
        ("ipip_decap", "IP-in-IP packets unwrapped to their inner packet."),
        ("frag_fragments", "IP fragments received for reassembly."),
        ("frag_reassembled", "Fragmented IP datagrams reassembled whole."),
        ("frag_timeout", "Fragments dropped because their datagram was not complete in time.",
         "frag_timeout"),
        ("frag_too_big", "Fragments dropped because their datagram would exceed the size limit.",
         "frag_max_bytes"),
        ("frag_bad_length", "Fragments with an empty or inconsistent length or end."),
        ("frag_limit_evicted", "Partial datagrams dropped to make room for new ones.",
         "frag_max_datagrams"),
        ("frag_duplicate", "Fragments received twice with the same bytes (ignored)."),
        ("frag_overlap", "Fragments overlapping earlier ones with other bytes (ignored)."),
    ),
    *_group(
        "tcp", "counter",
        ("tcp_midstream_start", "TCP connections first seen after their start (joined mid-way)."),
        ("tcp_retransmit", "TCP segments carrying bytes already received (skipped)."),
        ("tcp_overlap", "TCP segments partly overlapping received bytes (the new part kept)."),
        ("tcp_out_of_order", "TCP segments arriving ahead of a gap, held until it fills."),
        ("tcp_ooo_limit", "Out-of-order TCP segments dropped: too many held for one stream.",
         "tcp_max_ooo_segments"),
        ("tcp_stream_bytes_limit", "TCP segments too far ahead of a gap to buffer.",
         "tcp_max_stream_bytes"),
        ("tcp_gap_skipped", "Gaps in a TCP stream given up on (the missing bytes are lost)."),
        ("tcp_gap_timeout", "TCP gaps given up on because they stayed open too long.",
         "tcp_idle_timeout"),
        ("tcp_stream_expired", "TCP streams forgotten after being idle.", "tcp_idle_timeout"),
        ("tcp_stream_evicted", "TCP streams forgotten to make room for new ones.",
         "tcp_max_streams"),
        ("tcp_incomplete_at_evict", "Evicted TCP streams that held part of a SIP message.",
         "tcp_max_streams"),
        ("tcp_incomplete_at_close", "TCP streams closed (FIN/RST) holding part of a SIP message."),
        ("tcp_incomplete_at_expiry", "Expired TCP streams that held part of a SIP message.",
         "tcp_idle_timeout"),
        ("tcp_garbage_bytes", "Bytes of TCP streams skipped because no SIP message starts there."),
        ("tcp_keepalive", "CRLF keep-alives (RFC 5626) seen on TCP streams."),
        ("tcp_resync", "Times a TCP stream found a SIP start line again after garbage."),
        ("tcp_message_too_big", "SIP messages on TCP dropped for exceeding the size limit.",
         "tcp_max_message_bytes"),
        ("tcp_no_content_length", "SIP messages on TCP without Content-Length (body unknown)."),
        ("tcp_bad_content_length", "SIP messages on TCP with an unreadable Content-Length."),
    ),
    *_group(
        "sip", "counter",
        ("messages", "SIP messages parsed and handed to the tracker (duplicates included)."),
        ("parse_errors", "Payloads on SIP ports that are not valid SIP (parse-error events)."),
        ("probes", "Payloads that look like scanner probes (msg-probe events)."),
        ("heuristic_not_sip", "Payloads off SIP ports that the heuristic took but were not SIP."),
        ("reassembled", "SIP payloads rebuilt from IP fragments or several TCP segments."),
    ),
    CounterDef(
        "sip_requests", "{method}",
        "SIP requests by method, after the duplicate filter (retransmissions and proxy "
        "copies not counted); unknown methods count as `other`.",
        values={"method": (*SIP_METHODS, OTHER)},
        metric="sipcm_sip_requests_total",
    ),
    CounterDef(
        "sip_responses", "{method}/{code_class}",
        "SIP responses by CSeq method and status class, after the duplicate filter; unknown "
        "methods count as `other`.",
        values={"method": (*SIP_METHODS, OTHER), "code_class": CODE_CLASSES},
        metric="sipcm_sip_responses_total",
    ),
    *_group(
        "track", "counter",
        ("retransmissions", "SIP messages seen again from the same sender (retransmissions)."),
        ("duplicate_copies", "SIP messages seen again on another hop or interface (copies)."),
        ("in_dialog_unmatched", "In-dialog requests or replies of no dialog being followed."),
        ("unmatched_reply", "Replies to no transaction being followed."),
        ("forks", "Extra dialogs created by a forking proxy (one INVITE, several To tags)."),
        ("forks_limited", "Forked dialogs not followed: the per-call fork limit was reached."),
        ("pending_evicted", "Unanswered INVITEs and transactions dropped without an event to "
         "make room.", "pending_max_entries"),
        ("calls_evicted", "Established calls dropped without an event to make room.",
         "calls_max_entries"),
        ("regs_evicted", "Registration bindings dropped without an event to make room.",
         "regs_max_entries"),
        ("reg_refreshes", "REGISTER refreshes of a known binding (no event)."),
        ("reg_contact_not_in_reply", "REGISTER 2xx replies missing the registered Contact."),
        ("auth_retry_unmatched", "Credentialed retries after a 401/407 matching no challenge."),
        ("auth_retry_new_call_id", "Credentialed retries sent with a new Call-ID."),
        ("dup_evicted", "Message fingerprints forgotten early: the duplicate table was full.",
         "calls_timeouts.dup_window"),
        ("state_restored", "Tracker entries restored from the state file at start.",
         "state_file"),
        ("state_discarded", "State file entries discarded (too old, corrupt or over limits).",
         "state_max_age"),
    ),
    *[
        CounterDef(h.group, name, h.meaning, metric=h.metric)
        for h in HISTOGRAMS
        for name in h.names
    ],
    *_group(
        "track_active", "gauge",
        ("calls", "Call-IDs of INVITE dialogs being followed."),
        ("dialogs", "Dialogs being followed (forks counted separately).", "calls_max_entries"),
        ("calls_established", "Dialogs answered and not yet ended."),
        ("transactions", "Non-INVITE transactions and unanswered INVITEs being followed.",
         "pending_max_entries"),
        ("registrations", "Registration bindings cached.", "regs_max_entries"),
        ("timers", "Timers armed in the tracker."),
        ("fingerprints", "Message fingerprints remembered for the duplicate filter."),
    ),
    *_group(
        "flows", "counter",
        ("calls_evicted", "Calls whose stored messages were dropped to make room.",
         "flow_max_calls"),
        ("messages_dropped", "Messages not stored because their call's budget was spent.",
         "flow_max_call_bytes"),
        ("raw_dropped", "Messages stored without their raw text (the call's budget was short).",
         "flow_max_call_bytes"),
    ),
    *_group(
        "anon", "counter",
        ("already_anonymized", "Documents not anonymized twice (already done once)."),
        ("invalid_values_dropped", "Values dropped because they could not be encrypted."),
        ("undeclared_row_values_dropped", "Web API row values dropped: not declared safe to "
         "show when anonymizing."),
    ),
    *_group(
        "events", "counter",
        ("generated", "Event documents built by the tracker, before blacklist and rates."),
        ("published", "Event documents written to the outputs (stats included)."),
    ),
    CounterDef(
        "events", "blacklisted_{action}",
        "Events not published because their type is blacklisted (event_types_blst).",
        limit="event_types_blst",
        values={"action": EVENT_ACTIONS},
    ),
    CounterDef(
        "call_outcomes", "{outcome}",
        "Decided calls by outcome: answered, the final response code of a failed INVITE, or "
        "timeout when no final reply came (ASR/NER on the dashboard).",
        values={"outcome": ("answered", "timeout")},
        metric="sipcm_call_outcomes_total",
    ),
    CounterDef(
        "events_published", "{action}",
        "Published events by event.action (after blacklist and rate limits).",
        values={"action": EVENT_ACTIONS},
        metric="sipcm_events_total",
    ),
    *_group(
        "rates", "counter",
        ("rate_reported", "Rate-limit reports: events published with sipcm.rate fields."),
        ("rate_suppressed", "Events held back by the rate limiter.", "evr_limits"),
        ("rate_blacklisted_keys", "Times a rate key went over its limit and was blacklisted.",
         "evr_limits"),
        ("rate_recovered", "Times a blacklisted rate key came back under its limit."),
        ("rate_table_full", "Times the rate table was full when a new key arrived.",
         "evr_max_entries"),
        ("rate_evicted", "Rate keys forgotten to make room for new ones.", "evr_max_entries"),
    ),
    CounterDef(
        "rates_limited", "{action}",
        "Events held back by the rate limiter, by event.action.",
        limit="evr_limits",
        values={"action": EVENT_ACTIONS},
    ),
    *_group(
        "rates_active", "gauge",
        ("rate_entries", "Rate keys tracked (limited or not).", "evr_max_entries"),
        ("rate_blacklisted", "Rate keys currently over their limit."),
        ("rate_max_entries", "Capacity of the rate table.", "evr_max_entries"),
    ),
    *[
        d
        for out in ("console", "file", "elasticsearch")
        for d in _group(
            f"output_{out}", "counter",
            ("published", f"Events the {out} output delivered."),
            ("dropped", f"Events the {out} output lost (see write_errors and the logs)."),
            ("write_errors", f"Failed writes of the {out} output."),
        )
    ],
    *_group(
        "output_file", "counter",
        ("rotations", "Times the output file was rotated.", "outputs.file.rotate_bytes"),
    ),
    *_group(
        "output_elasticsearch", "counter",
        ("bulk_requests", "Bulk requests sent to Elasticsearch."),
        ("bulk_errors", "Bulk requests that failed as a whole (retried from the spool)."),
        ("retried", "Documents sent again after a retryable per-item error (429, 5xx)."),
        ("already_indexed", "Documents Elasticsearch already had (a resend after an outage)."),
        ("sender_errors", "Unexpected errors of the background sender (logged, retried)."),
        ("connect_errors", "Failed attempts to reach Elasticsearch."),
        ("template_errors", "Failed index template installations."),
        ("spooled", "Events written to the on-disk spool.", "outputs.elasticsearch.spool_dir"),
        ("unspooled", "Events read back from the spool and sent."),
        ("fsyncs", "fsync calls on the spool.", "outputs.elasticsearch.spool_fsync_interval"),
        ("dead_lettered", "Documents Elasticsearch rejected, kept in the dead-letter file.",
         "outputs.elasticsearch.dead_letter_file"),
    ),
    CounterDef(
        "output_elasticsearch", "dropped_{reason}",
        "Events the elasticsearch output lost, by reason (unserializable, closed, torn spool "
        "record, spool full, spool I/O error, rejected with no dead-letter room).",
        limit="outputs.elasticsearch.spool_max_bytes",
        values={
            "reason": ("closed", "rejected", "spool_error", "spool_full", "torn", "unserializable")
        },
        metric="sipcm_output_elasticsearch_dropped_by_reason_total",
    ),
    CounterDef(
        "output_elasticsearch", "template_{result}",
        "Index template checks at connection, by result.",
        values={"result": ("installed", "kept", "overwritten", "up_to_date", "upgraded")},
    ),
    *_group(
        "capture", "counter",
        ("ring_records", "Records read from the kernel ring buffer."),
        ("ring_batches", "Non-empty reads of the kernel ring buffer."),
    ),
    *[
        CounterDef("kernel", name, meaning, limit=limit)
        for name, (meaning, limit) in _KERNEL.items()
    ],
    *_group(
        "workers", "counter",
        ("chunks", "Chunks of payloads split between the shards."),
        ("payloads", "Payloads split between the shards (the main process's own included)."),
        ("key_by_parse", "Payloads whose shard key needed a full SIP parse."),
        ("inline_blocks", "Times the dispatcher waited for a worker with a full queue."),
    ),
    CounterDef(
        "workers",
        "workers",
        "Correlation shards: worker processes plus one in the main process (0: one process).",
        "gauge",
        "workers",
    ),
    CounterDef(
        "interfaces", "{interface}/{direction}",
        "Frames captured per interface and direction.",
        metric="sipcm_interface_frames_total",
    ),
)  # fmt: skip

# Levels of the running process, not kept in a counter group.
WEB_GAUGES = (
    ("sipcm_recent_events", "Published events kept for the web API and dashboard."),
    ("sipcm_blacklisted_event_types", "Event types not published (event_types_blst)."),
)

HISTOGRAM_GROUPS = frozenset(h.group for h in HISTOGRAMS)
GAUGE_GROUPS = frozenset(d.group for d in COUNTERS if d.kind == "gauge" and d.group != "workers")


def _index() -> tuple[dict[tuple[str, str], CounterDef], dict[str, list[CounterDef]]]:
    plain: dict[tuple[str, str], CounterDef] = {}
    patterns: dict[str, list[CounterDef]] = {}
    for d in COUNTERS:
        if "{" in d.name and d.labels:  # the brace test spares most names a regex search
            patterns.setdefault(d.group, []).append(d)
        else:
            assert (d.group, d.name) not in plain, f"{d.group}.{d.name} declared twice"
            plain[(d.group, d.name)] = d
    return plain, patterns


PLAIN, PATTERNS = _index()
# The labelled names' regexes, compiled at the first `lookup` (/metrics, tests): compiling them
# is most of this module's import, which every run pays at start-up.
_COMPILED: dict[str, list[tuple[CounterDef, re.Pattern[str]]]] = {}


def lookup(group: str, name: str) -> tuple[CounterDef, dict[str, str]] | None:
    """The declaration of counter `group.name` and its label values; None if undeclared."""
    d = PLAIN.get((group, name))
    if d is not None:
        return d, {}
    if not _COMPILED and PATTERNS:
        _COMPILED.update({g: [(d, d.pattern()) for d in ds] for g, ds in PATTERNS.items()})
    for d, rx in _COMPILED.get(group, ()):
        m = rx.match(name)
        if m is not None:
            return d, m.groupdict()
    return None


def undeclared(snapshot: dict[str, dict[str, int]]) -> list[str]:
    """`group.name` of every counter in `snapshot` that no declaration covers."""
    return [f"{g}.{n}" for g, names in snapshot.items() for n in names if lookup(g, n) is None]
