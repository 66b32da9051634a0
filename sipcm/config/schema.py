"""The configuration schema: every key's name, kind, default and one-line help, declared once.

Each key is a dataclass field whose metadata carries its Kind (parse/expect/format), help text
and secret flag; defaults are written in human form and parsed by their kind when this module
loads, so a bad default fails at import. Nested sections (outputs.console, ...) are fields
whose metadata names the section class. This module never reads files or the environment.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sipcm.config import kinds as k
from sipcm.errors import redact_url_passwords

EVENT_NAMES = (
    "call-start",
    "call-end",
    "call-attempt",
    "reg-new",
    "reg-del",
    "reg-expired",
    "auth-failed",
    "other-ok",
    "other-failed",
    "other-timeout",
    "parse-error",
    "msg-probe",
    "stats",
)


# Server-confirmed outcomes (a real server's 2xx): the call records, never rate-limited by default.
CONFIRMED_EVENTS = ("call-start", "call-end", "reg-new", "reg-del", "reg-expired")
_LIMITS = k.list_of(k.integer(0), 3)
_LIMITS_DEFAULT = {"default": _LIMITS.convert([20, 240, 3600])} | {
    name: _LIMITS.convert([0, 0, 0]) for name in CONFIRMED_EVENTS
}


# The timers of `calls_timeouts`: name -> (default, meaning). Most are per-state timeouts of
# the call/transaction table (reference notes 1.4); the tracker holds the same defaults
# (`sipcm.track.states.DEFAULT_TIMEOUTS`, `sipcm.track.tracker.DUP_WINDOW_S`; a unit test keeps
# them equal, as config knows no pipeline stage).
CALL_TIMERS: dict[str, tuple[str, str]] = {
    "inv_1st": ("2m", "INVITE sent, no reply with a to-tag: then call-attempt 408"),
    "inv_early_dlg": ("3m", "early dialog (1xx with a to-tag), no final reply: then call-attempt"),
    "inv_neg": ("30s", "after a negative final reply to INVITE, wait for a fork or retry"),
    "inv_established": ("1h", "established call with no in-dialog message: then call-end timeout"),
    "inv_bye_seen": ("30s", "BYE seen, waiting for its reply"),
    "inv_bye_repl": ("5s", "BYE answered; absorbs late retransmissions"),
    "inv_canceled": ("5s", "INVITE canceled: wait for the 487 before call-attempt"),
    "non_inv_1st": ("30s", "non-INVITE request with no final reply: then other-timeout"),
    "non_inv_neg": ("5s", "after a negative final reply to a non-INVITE request"),
    "non_inv_fin": ("5s", "non-INVITE transaction answered 2xx; absorbs retransmissions"),
    "auth_wait": ("1m", "a 401/407 waits this long for the credentialed retry of the attempt"),
    "dup_window": ("32s", "a message seen again within this is a copy, not a new message"),
}


def key(kind: k.Kind, default: Any, help: str, *, secret: bool = False) -> Any:
    """Declare one configuration key (`default` is parsed by `kind`)."""
    value = kind.convert(default)
    meta = {"kind": kind, "help": help, "secret": secret}
    if isinstance(value, dict):
        return field(default_factory=lambda: dict(value), metadata=meta)
    return field(default=value, metadata=meta)


def section(cls: type, help: str) -> Any:
    """Declare a nested section of keys."""
    return field(default_factory=cls, metadata={"section": cls, "help": help})


MASK = "***"


class _Section:
    """Behaviour shared by every section dataclass."""

    def to_dict(self, mask_secrets: bool = True) -> dict[str, Any]:
        """Plain JSON-able data (lists, dicts, float seconds, int bytes); set secrets as ***,
        and so the password of a URL (https://user:***@host)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if "section" in f.metadata:
                out[f.name] = value.to_dict(mask_secrets)
            elif f.metadata["secret"] and mask_secrets and value:
                out[f.name] = MASK
            elif mask_secrets and isinstance(value, str):
                out[f.name] = redact_url_passwords(value)
            elif isinstance(value, tuple):
                out[f.name] = [
                    redact_url_passwords(v) if mask_secrets and isinstance(v, str) else v
                    for v in value
                ]
            elif isinstance(value, dict):
                out[f.name] = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
            else:
                out[f.name] = value
        return out


_SECRET = k.string("a string", quote_hint=False)
_PATH = k.string("a file system path", quote_hint=False)
_POS = k.integer(1)


@dataclass(frozen=True)
class ConsoleOutput(_Section):
    """NDJSON (or readable lines) on standard output."""

    enabled: bool = key(k.boolean(), True, "write events to standard output")
    pretty: bool = key(k.boolean(), False, "one readable line per event instead of NDJSON")


@dataclass(frozen=True)
class FileOutput(_Section):
    """NDJSON files with size-based rotation."""

    enabled: bool = key(k.boolean(), False, "write events to an NDJSON file")
    path: str = key(
        _PATH,
        "",
        "the NDJSON file (required when enabled; attach creates its directory for run_as)",
    )
    rotate_bytes: int = key(k.size(1), "100MiB", "rotate the file when it reaches this size")
    keep: int = key(k.integer(0), 7, "rotated files to keep (older ones are deleted)")


@dataclass(frozen=True)
class ElasticsearchOutput(_Section):
    """Bulk indexing into an Elasticsearch data stream through a write-ahead disk queue."""

    enabled: bool = key(k.boolean(), False, "send events to Elasticsearch")
    hosts: tuple[str, ...] = key(
        k.list_of(
            k.string("an http(s)://host[:port] URL", k.is_http_url, quote_hint=False),
            non_empty=True,
        ),
        ["http://127.0.0.1:9200"],
        "Elasticsearch node URLs",
    )
    api_key: str = key(
        _SECRET, "", "API key (base64 'id:key' form); excludes username", secret=True
    )
    username: str = key(k.string(quote_hint=False), "", "basic auth user")
    password: str = key(_SECRET, "", "basic auth password", secret=True)
    ca_file: str = key(_PATH, "", "PEM CA certificate file to verify the server")
    fingerprint: str = key(
        k.string("a SHA-256 fingerprint (64 hex digits, colons allowed)", k.is_fingerprint),
        "",
        "pin the server certificate by its SHA-256 fingerprint",
    )
    verify_certs: bool = key(k.boolean(), True, "verify the server TLS certificate")
    data_stream: str = key(
        k.string(
            'a lower-case data stream name without spaces or \\/*?"<>|,#:',
            k.is_data_stream,
            quote_hint=False,
        ),
        "logs-sipcm.sip-default",
        "target data stream",
    )
    batch_size: int = key(_POS, 500, "events per bulk request")
    flush_interval: float = key(k.duration(0, above=True), "1s", "send a partial batch after this")
    spool_dir: str = key(
        _PATH,
        "/var/lib/sipcm/spool",
        "write-ahead queue directory: every event waits here (created for run_as if missing)",
    )
    spool_max_bytes: int = key(
        k.size(1), "1GiB", "queue size cap; beyond it the oldest events are dropped (counted)"
    )
    spool_fsync_interval: float = key(
        k.duration(0),
        "1s",
        "fsync the queue at least this often (power loss may cost that much; kill -9 nothing); "
        "0: fsync every batch before accepting it",
    )
    dead_letter_file: str = key(
        _PATH, "", "NDJSON file for rejected documents (default: dead-letter.ndjson in spool_dir)"
    )
    dead_letter_max_bytes: int = key(
        k.size(1), "100MiB", "dead-letter file cap; beyond it rejections are only counted"
    )
    retention: str = key(
        k.string('an Elasticsearch time unit, e.g. "30d" or "12h"', k.is_time_unit),
        "",
        "data stream lifecycle retention set by the index template (empty: keep forever)",
    )
    max_retries: int = key(
        k.integer(0), 5, "attempts before Elasticsearch is reported down (retries never stop)"
    )


@dataclass(frozen=True)
class Outputs(_Section):
    """Event destinations; several may be enabled at once."""

    console: ConsoleOutput = section(ConsoleOutput, "console output")  # noqa: RUF009
    file: FileOutput = section(FileOutput, "file output")  # noqa: RUF009
    elasticsearch: ElasticsearchOutput = section(ElasticsearchOutput, "Elasticsearch output")  # noqa: RUF009


@dataclass(frozen=True)
class Logging(_Section):
    """Diagnostic log lines on standard error (events never go there)."""

    json: bool = key(k.boolean(), False, "ECS JSON log lines instead of text")
    repeat_interval: float = key(
        k.duration(0), "1m", "a repeated warning is logged at most once per this (0: every time)"
    )


@dataclass(frozen=True)
class Config(_Section):
    """The whole sipcm configuration (the keys under `sipcm:`)."""

    # capture
    interfaces: tuple[str, ...] = key(
        k.list_of(
            k.string(
                "an interface name (1-15 chars, no '/', ':' or spaces)",
                k.is_ifname,
                quote_hint=False,
            )
        ),
        [],
        "interfaces to attach to (the attach command line adds to these)",
    )
    attach_mode: str = key(
        k.choice(("auto", "native", "generic")),
        "auto",
        "XDP mode: auto tries native (driver) then generic (SKB); native/generic force one",
    )
    run_as: str = key(
        k.string("a user name, 'auto' or ''", k.is_user_name),
        "auto",
        "user attach runs as once attached (auto: sipcm if it exists, else nobody; '': root)",
    )
    egress: bool = key(k.boolean(), True, "capture outgoing as well as incoming traffic")
    sip_ports: tuple[int, ...] = key(k.list_of(k.port()), [5060], "UDP/TCP ports that carry SIP")
    vxlan_ports: tuple[int, ...] = key(
        k.list_of(k.port()), [4789], "UDP ports decapsulated as VXLAN"
    )
    sip_detect: str = key(
        k.choice(("port", "heuristic")),
        "port",
        "live SIP selection: by port, or by payload heuristic (replay always uses both)",
    )
    snap_len: int = key(k.size(64, 65535), 65535, "bytes copied per packet")
    ring_size: int = key(
        k.size(4096, 1024**3, power_of_two=True), "16MiB", "BPF ring buffer size (per sensor)"
    )
    poll_interval: float = key(
        k.duration(0, 5, above=True), "5ms", "longest wait for ring data before a batch is cut"
    )
    workers: int = key(
        k.count_or_auto(256),
        "auto",
        "correlation shards by Call-ID (REGISTER by address-of-record): N - 1 worker processes "
        "plus one in the main process; 1 = one process; auto = usable CPUs minus one, at least 1",
    )
    # decode limits
    frag_max_datagrams: int = key(_POS, 1024, "IP datagrams under reassembly at once")
    frag_timeout: float = key(k.duration(0, above=True), "30s", "drop an incomplete datagram")
    frag_max_bytes: int = key(k.size(1, 65535), 65535, "largest reassembled IP datagram")
    tcp_max_streams: int = key(_POS, 10000, "TCP streams tracked at once")
    tcp_max_stream_bytes: int = key(k.size(1), "1MiB", "buffered bytes per TCP stream")
    tcp_max_message_bytes: int = key(k.size(1), "1MiB", "largest SIP message framed from TCP")
    tcp_max_ooo_segments: int = key(k.integer(0), 64, "out-of-order segments held per stream")
    tcp_idle_timeout: float = key(k.duration(0, above=True), "300s", "forget an idle TCP stream")
    # tracking
    calls_timeouts: dict[str, float] = key(  # noqa: RUF009 - a dataclasses.Field
        k.fixed_map(k.duration(), CALL_TIMERS, "timer"),
        {},
        "per-state timers, e.g. {inv_established: 2h} (0 restores the default)",
    )
    reg_exp_delta: float = key(k.duration(), "30s", "grace added to a registration's expiry")
    pending_max_entries: int = key(
        _POS,
        100000,
        "unconfirmed entries tracked at once (INVITEs not answered 2xx, other transactions); "
        "the oldest is evicted first, never an established call",
    )
    calls_max_entries: int = key(
        _POS, 100000, "established calls (a dialog answered 2xx) tracked at once"
    )
    regs_max_entries: int = key(_POS, 100000, "registration bindings tracked at once")
    flow_max_calls: int = key(
        k.integer(0),
        10000,
        "calls whose messages are kept for ladders and per-call pcaps (0 = keep none)",
    )
    flow_max_call_bytes: int = key(k.size(1), "256KiB", "message bytes kept per call")
    flow_max_bytes: int = key(k.size(1), "64MiB", "message bytes kept for all calls")
    state_file: str = key(
        _PATH,
        "/var/lib/sipcm/state.json",
        "attach: open calls, registrations and pending transactions are saved here on stop "
        "and restored on the next start (empty disables); a missing directory is created for "
        "run_as at start",
    )
    state_max_age: float = key(
        k.duration(0, above=True), "5m", "a saved state older than this is discarded at start"
    )
    replay_end: str = key(
        k.choice(("conclude", "expire-all", "none")),
        "conclude",
        "at end of replay: conclude pending state, expire all entries, or do nothing",
    )
    # events
    event_types_blst: tuple[str, ...] = key(
        k.list_of(k.choice(EVENT_NAMES)), ["msg-probe"], "event types never generated"
    )
    evr_intervals: tuple[float, ...] = key(
        k.list_of(k.duration(), 3), [1, 60, 3600], "event rate windows (0 disables a window)"
    )
    evr_limits: dict[str, tuple[int, ...]] = key(  # noqa: RUF009 - a dataclasses.Field
        k.list_or_map(_LIMITS, [n for n in EVENT_NAMES if n != "stats"], _LIMITS_DEFAULT),
        {},
        "event rate limits per window (0: not limited), per event name; a list sets the default "
        "for events not named (call records are never limited unless named)",
    )
    evr_max_entries: int = key(_POS, 65536, "keys in the event rate table (about 600 B each)")
    evr_conseq_report_min: int = key(_POS, 100, "first repeat count reported when over a limit")
    evr_conseq_report_max: int = key(_POS, 10000, "cap of the doubling repeat report interval")
    stats_interval: float = key(k.duration(), "5m", "interval of stats events (0 disables)")
    observer_name: str = key(k.string(), "", "observer.name in events (empty = host name)")
    # anonymization
    encrypt_ip_addresses: bool = key(k.boolean(), False, "encrypt IP addresses")
    encrypt_ipcipher: bool = key(
        k.boolean(), False, "ipcipher for IPv4 too, instead of prefix-preserving"
    )
    encrypt_uris: bool = key(k.boolean(), False, "encrypt URIs (From/To/Contact/R-URI/PAI)")
    encrypt_call_ids: bool = key(k.boolean(), False, "encrypt Call-IDs")
    encrypt_ua: bool = key(k.boolean(), False, "encrypt User-Agent/Server")
    encryption_passphrase: str = key(
        _SECRET, "", "derive the key from this passphrase (needs encryption_salt)", secret=True
    )
    encryption_key: str = key(
        k.string("32 hex digits", k.is_hex_key), "", "the 128-bit key as hex", secret=True
    )
    encryption_key_file: str = key(
        _PATH, "", "file holding the key as 32 hex digits (mode 600 or 640, else refused)"
    )
    encryption_salt: str = key(k.string(quote_hint=False), "", "salt for the passphrase")
    # outputs
    outputs: Outputs = section(Outputs, "event destinations")  # noqa: RUF009
    logging: Logging = section(Logging, "diagnostic logging on standard error")  # noqa: RUF009
    # web
    http_addr: str = key(
        k.string("an IP address or host name", k.is_hostname_or_ip),
        "127.0.0.1",
        "web interface listen address",
    )
    http_port: int = key(k.port(0), 8080, "web interface port (0 disables it)")
    access_token: str = key(
        _SECRET, "", "bearer token for the web API (required off loopback)", secret=True
    )
    http_allowed_hosts: tuple[str, ...] = key(
        k.list_of(k.string("a host name or IP address", k.is_hostname_or_ip)),
        [],
        "extra Host header names the web interface answers without access_token "
        "(loopback names and http_addr always)",
    )


@dataclass(frozen=True)
class KeyDoc:
    """One key for `describe()`: dotted path, expected form, default (as text), help."""

    path: str
    expected: str
    default: str
    help: str
    secret: bool


def key_docs(cls: type = Config, prefix: str = "") -> list[KeyDoc]:
    """Every leaf key of `cls`, depth first, in declaration order."""
    docs: list[KeyDoc] = []
    for f in dataclasses.fields(cls):
        path = prefix + f.name
        if "section" in f.metadata:
            docs.extend(key_docs(f.metadata["section"], path + "."))
            continue
        kind: k.Kind = f.metadata["kind"]
        if kind.entries is not None and kind.item is not None:
            for name, (default, text) in kind.entries.items():
                docs.append(KeyDoc(f"{path}.{name}", kind.item.expected,
                                   kind.item.format(default), text, False))  # fmt: skip
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        docs.append(KeyDoc(path, kind.expected, kind.format(default), f.metadata["help"],
                           f.metadata["secret"]))  # fmt: skip
    return docs
