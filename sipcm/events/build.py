"""EventBuilder: turns a track `Outcome` (or a counters snapshot) into one nested ECS document.

Input: Outcome objects from `track/`; output: plain nested dicts (no dotted keys), keys inserted
in a fixed order, empty values omitted (never None, "", [] or {}). Times come only from the
Outcome (capture time), never from the wall clock, so a replay always gives the same documents.
It never touches state machines, I/O or configuration.

Categorisation (ECS allowed values; every `event.type` is expected for every category listed):

| action | event.category | event.type | event.outcome |
|---|---|---|---|
| call-start | network, session (+authentication if the INVITE had credentials) | start | success |
| call-end | network, session | end | success; unknown when it ended by timeout |
| call-attempt | network, session | start | failure (a session that failed to start) |
| reg-new | network, session (+authentication if the REGISTER had credentials) | start | success |
| reg-del | network, session | end | success |
| reg-expired | network, session | end | failure (the client stopped refreshing) |
| auth-failed | authentication, network | start | failure (ECS's "failed login" shape) |
| other-ok / other-failed / other-timeout | network | info, protocol | success / failure / failure |
| parse-error | network | protocol | failure |
| msg-probe | network | info | unknown |
| stats | (event.kind metric, no category) | | |

A registration binding is modelled as a session (it starts, lives, ends); ECS `session` expects
exactly start/end/info. Caller-side facts (From, To, request URI, User-Agent, CSeq) come from
`Outcome.request`, falling back to the triggering message; callee-side ones (Server) from
`Outcome.response`. `source.*`/`destination.*` are who acted: the sender and receiver of the
request the event reports on, on its leg (`Outcome.flow`; the packet itself for parse-error and
msg-probe), and `network.community_id` hashes that 5-tuple (Community ID v1, seed 0).
`client.*`/`server.*` stay the caller and callee side of the dialog or transaction.
VXLAN and other tunnels: `source.*`/`destination.*` and the community id are the inner flow;
ECS has no tunnel fields (`network.inner` only describes an inner VLAN), so the outer addresses
and the VNI go under `sipcm.tunnel.*`. `Outcome.extra` maps dotted field names (declared in
`schema.py`, e.g. `sipcm.rate.exceeded`) to values; they are set last, nested.

`line(o)` gives the bytes `orjson.dumps(build(o), option=OPT_APPEND_NEWLINE)` would give (what
the shard writes when anonymization is off), without building the document: it joins JSON
pieces encoded once for the documents that share them (the event heads, `ecs`, `observer`,
flows and endpoints, URIs, From, To and Contact, user agents, a call-start's sip section head
for its call-end) with the values of the event, each encoded by orjson.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

import orjson

from sipcm import __version__
from sipcm.events.community_id import community_id, ipv4_value
from sipcm.events.schema import ECS_VERSION
from sipcm.sip.nameaddr import parse_uri

if TYPE_CHECKING:
    from sipcm.decode.packet import Payload
    from sipcm.sip.message import Credentials, NameAddr, SipMessage, Uri
    from sipcm.track.outcome import CallMetrics, Outcome

DATASET = "sipcm.sip"
MODULE = "sipcm"

_NET_SESS = ("network", "session")
_OTHER = (("network",), ("info", "protocol"))
# action -> (categories, types, outcome)
_CATEGORISE: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "call-start": (_NET_SESS, ("start",), "success"),
    "call-end": (_NET_SESS, ("end",), "success"),
    "call-attempt": (_NET_SESS, ("start",), "failure"),
    "reg-new": (_NET_SESS, ("start",), "success"),
    "reg-del": (_NET_SESS, ("end",), "success"),
    "reg-expired": (_NET_SESS, ("end",), "failure"),
    "auth-failed": (("authentication", "network"), ("start",), "failure"),
    "other-ok": (*_OTHER, "success"),
    "other-failed": (*_OTHER, "failure"),
    "other-timeout": (*_OTHER, "failure"),
    "parse-error": (("network",), ("protocol",), "failure"),
    "msg-probe": (("network",), ("info",), "unknown"),
}
ACTIONS = frozenset(_CATEGORISE)
_WITH_AUTH = ("authentication", "network", "session")
_AUTH_ACTIONS = ("call-start", "reg-new")  # +authentication when the request had credentials


# Final copies of orjson's names (compiled: a C static instead of a module attribute lookup).
_DUMPS: Final = orjson.dumps
_FRAGMENT: Final = orjson.Fragment
# A line ends with a newline, like the outputs' NDJSON (events sit left of outputs: no import).
_NDJSON: Final = orjson.OPT_APPEND_NEWLINE


def _event_head(
    action: str, cats: tuple[str, ...], types: tuple[str, ...], outcome: str
) -> dict[str, Any]:
    return {"action": action, "kind": "event", "category": list(cats), "type": list(types),
            "outcome": outcome, "dataset": DATASET, "module": MODULE}  # fmt: skip


_TIMEOUT_HEAD: Final = "call-end timeout"
_AUTH_PREFIX: Final = "auth "


def _event_heads() -> dict[str, dict[str, Any]]:
    """The fixed start of each `event` section (`_head_key` names them): each action's, the
    two with credentials, and call-end by timeout; documents copy them (the copies share
    the category and type lists)."""
    cats = _CATEGORISE
    heads = {a: _event_head(a, *c) for a, c in cats.items()}
    for a in _AUTH_ACTIONS:
        heads[_AUTH_PREFIX + a] = _event_head(a, _WITH_AUTH, *cats[a][1:])
    heads[_TIMEOUT_HEAD] = _event_head("call-end", *cats["call-end"][:2], "unknown")
    return heads


def _head_key(action: str, call: CallMetrics | None, creds: object) -> str:
    """The key of an event's fixed head in `_HEADS`."""
    if action == "call-end" and call is not None and call.originator == "timeout":
        return _TIMEOUT_HEAD
    if creds is not None and action in _AUTH_ACTIONS:
        return _AUTH_PREFIX + action
    return action


_HEADS: Final = _event_heads()
# The same as the JSON that opens an encoded event section (no closing brace).
_HEADS_JSON: Final = {k: _DUMPS(h)[:-1] for k, h in _HEADS.items()}
_ECS: Final = {"version": ECS_VERSION}  # shared by every document
# An encoded document up to its @timestamp's value, and from there to its event section.
_OPEN: Final = b'{"@timestamp":'
_TO_EVENT: Final = b',"ecs":' + _DUMPS(_ECS) + b',"event":'
# `,"name":` of the sections of an encoded document, in their order.
_REASON: Final = b',"reason":'
_DURATION: Final = b',"duration":'
_START: Final = b',"start":'
_END: Final = b',"end":'
_SOURCE: Final = b',"source":'
_DESTINATION: Final = b',"destination":'
_CLIENT: Final = b',"client":'
_SERVER: Final = b',"server":'
_NETWORK: Final = b',"network":'
_OBSERVER: Final = b',"observer":'
_URL: Final = b',"url":'
_USER_AGENT: Final = b',"user_agent":'
_USER: Final = b',"user":{"name":'
_ERROR: Final = b',"error":'
_RELATED: Final = b',"related":'
_SIP: Final = b',"sip":'
_SIPCM: Final = b',"sipcm":'
_FRAME: Final = b',"sipcm":{"frame":'

# Second -> "YYYY-MM-DDTHH:MM:SS.": one document's times (start, end, @timestamp) and
# consecutive documents fall in a few recent seconds. Cleared when it reaches the bound.
_ts_prefix: Final[dict[int, str]] = {}
_TS_PREFIXES: Final = 4096


def _second_prefix(sec: int) -> str:
    """ "YYYY-MM-DDTHH:MM:SS." of a second since the epoch (cached)."""
    prefix = _ts_prefix.get(sec)
    if prefix is None:
        if len(_ts_prefix) >= _TS_PREFIXES:
            _ts_prefix.clear()
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
        _ts_prefix[sec] = prefix
    return prefix


def _fraction(ts_ns: int) -> str:
    """The 9 digits of the nanoseconds: those of 1e9 + ns after its leading 1 (str() of an
    int, a slice and % are native in the compiled build; a format spec is a generic call,
    and so is a product past 31 bits)."""
    return str(ts_ns % 1_000_000_000 + 1_000_000_000)[1:]


def rfc3339(ts_ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339 UTC with 9 fractional digits."""
    return f"{_second_prefix(ts_ns // 1_000_000_000)}{_fraction(ts_ns)}Z"


def _ip_literal(host: str) -> str | None:
    """The IP address in a URI host (brackets removed), or None for a host name. A dotted
    quad in canonical form is its own text form: checking that is ~10x cheaper than
    ipaddress, whose cache misses on every new address."""
    if ipv4_value(host) >= 0:
        return host
    return _ip_literal_slow(host)


@lru_cache(maxsize=4096)
def _ip_literal_slow(host: str) -> str | None:
    h = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not h or not (h[0].isdigit() or ":" in h):
        return None
    try:
        return str(ipaddress.ip_address(h))
    except ValueError:
        return None


class Shared:
    """A section shared by documents, read-only once built: nothing may mutate `doc` (the
    anonymizer replaces the dicts it changes instead). Its JSON is encoded at the first use
    in an encoded document: measured, that already pays when a flow's two events share it."""

    __slots__ = ("_frag", "_json", "_key", "_keyed", "doc")

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self._json: bytes | None = None
        self._frag: orjson.Fragment | None = None
        self._key = b""
        self._keyed = b""

    def keyed(self, key: bytes) -> bytes:
        """`key` (`,"name":`) and `json()`, one piece (the last key's is kept)."""
        if key is not self._key:
            self._keyed = key + self.json()
            self._key = key
        return self._keyed

    def json(self) -> bytes:
        """`doc` as JSON (orjson's bytes), encoded at the first use."""
        j = self._json
        if j is None:
            # orjson's bytes keep its 4 KiB working buffer whatever their length: a cached
            # section is copied to its own size (thousands are cached at once).
            j = self._json = bytes(memoryview(_DUMPS(self.doc)))
        return j

    def section(self, encoded: bool) -> Any:
        """`doc`, or for an encoded section around it its JSON, as an orjson Fragment."""
        if not encoded:
            return self.doc
        f = self._frag
        if f is None:
            f = self._frag = _FRAGMENT(self.json())
        return f


class UriDoc(Shared):
    """A parsed URI as a document's `uri` sub-document, and what it adds to related.*.

    Built once per URI text and shared by every document that shows it."""

    __slots__ = ("host", "ip", "user")

    def __init__(self, u: Uri) -> None:
        d: dict[str, Any] = {"original": u.original}
        if u.scheme:
            d["scheme"] = u.scheme
        user = u.user or None
        if user is not None:
            d["username"] = user
        host = u.host
        if host:
            d["host"] = host
        if u.port is not None:
            d["port"] = u.port
        super().__init__(d)
        self.user = user
        ip = _ip_literal(host) if host else None
        self.ip = ip
        self.host: str | None = host if host and ip is None else None

    def relate(self, users: list[str], hosts: list[str], ips: list[str]) -> None:
        """Add the URI's user and host (name or IP literal) to the related.* lists."""
        if self.user is not None:
            _add(users, self.user)
        if self.host is not None:
            _add(hosts, self.host)
        elif self.ip is not None:
            _add(ips, self.ip)


class NameAddrDoc:
    """A From or To section (with the name-addr's own tag), or a message's Contact section
    (with its expires, without tag), built once per `NameAddr` object and shared like
    `UriDoc`: the parser hands out one object for each repeated header text. Its encoded
    form is a dict holding the URI's JSON: a name-addr with a tag serves the few documents
    of one dialog, the URI those of many."""

    __slots__ = ("_enc", "doc", "na", "uri")

    def __init__(self, na: NameAddr, uri: UriDoc, contact: bool) -> None:
        self.na = na  # keeps it alive, so no other object gets its id() while this is cached
        self.uri = uri
        d: dict[str, Any] = {}
        if na.display:
            d["display_info"] = na.display
        if not contact and na.tag:
            d["tag"] = na.tag
        d["uri"] = uri.doc
        if contact:
            expires = na.expires
            if expires is not None:
                d["expires"] = expires
        self.doc = d
        self._enc: dict[str, Any] | None = None

    def section(self, encoded: bool) -> dict[str, Any]:
        """`doc`, or for an encoded document `doc` with the URI's JSON (made at the first
        use; "uri" keeps its place)."""
        if not encoded:
            return self.doc
        e = self._enc
        if e is None:
            e = self._enc = dict(self.doc)
            e["uri"] = self.uri.section(True)
        return e


class FlowParts:
    """The sections of one flow (5-tuple), shared by the documents about it: `source` and
    `destination`, the Community ID, and the `network` section last built for it (rebuilt
    when the packet's transport, IP version, direction or VLAN differ)."""

    __slots__ = ("_ends", "_net", "_net_of", "_with_ends", "cid", "destination", "source")

    def __init__(self, source: Shared, destination: Shared, cid: str | None) -> None:
        self.source = source
        self.destination = destination
        self.cid = cid
        self._net: Shared | None = None
        self._net_of: tuple[str, str, str | None, int | None] = ("", "", None, None)
        self._ends: bytes | None = None
        self._with_ends: bytes | None = None

    def ends_json(self) -> bytes:
        """`,"source":{..},"destination":{..}` of an encoded document (made at the first use)."""
        j = self._ends
        if j is None:
            j = self._ends = _SOURCE + self.source.json() + _DESTINATION + self.destination.json()
        return j

    def ends_json_with_ends(self) -> bytes:
        """`ends_json()` then the same ends as `client` and `server` (the request's sender is
        the caller side), one piece."""
        j = self._with_ends
        if j is None:
            j = self._with_ends = (
                self.ends_json() + _CLIENT + self.source.json() + _SERVER + self.destination.json()
            )
        return j

    def network(
        self, transport: str, ntype: str, direction: str | None, vlan: int | None
    ) -> Shared:
        """The network section of a packet of this flow (see `_network`)."""
        net = self._net
        of = self._net_of
        if (
            net is None
            or transport != of[0]
            or ntype != of[1]
            or direction != of[2]
            or vlan != of[3]
        ):
            net = self._net = Shared(_network(transport, ntype, self.cid, direction, vlan))
            self._net_of = (transport, ntype, direction, vlan)
        return net


class SipHead:
    """The start of an encoded sip section (call_id to auth: `EventBuilder._sip_head`, as JSON
    without its closing brace), the URIs it adds to related.*, and what it was made from. A
    call-start's is kept for its call-end, which shows the same call-id, method, status,
    INVITE and answer (the objects are held here: the dialog holds them too, and no other
    object can take their id())."""

    __slots__ = ("call_id", "contact", "first", "method", "opening", "reason", "resp", "status",
                 "uris")  # fmt: skip

    def __init__(
        self,
        first: SipMessage,
        resp: SipMessage | None,
        contact: NameAddr | None,
        call_id: str | None,
        method: str | None,
        status: int | None,
        reason: str | None,
        opening: bytes,
        uris: list[UriDoc],
    ) -> None:
        self.first = first
        self.resp = resp
        self.contact = contact
        self.call_id = call_id
        self.method = method
        self.status = status
        self.reason = reason
        self.opening = opening
        self.uris = uris

    def shows(
        self,
        first: SipMessage,
        resp: SipMessage | None,
        contact: NameAddr | None,
        call_id: str | None,
        method: str | None,
        status: int | None,
        reason: str | None,
    ) -> bool:
        """Whether this head is the one of a sip section made from these."""
        return (
            first is self.first
            and resp is self.resp
            and contact is self.contact
            and call_id == self.call_id
            and method == self.method
            and status == self.status
            and reason == self.reason
        )


def _network(
    transport: str | None, ntype: str, cid: str | None, direction: str | None, vlan: int | None
) -> dict[str, Any]:
    """The network section; no transport and type without a packet or flow."""
    d: dict[str, Any] = {}
    if transport is not None:
        d["transport"] = transport
        d["type"] = ntype
    if cid is not None:
        d["community_id"] = cid
    d["protocol"] = "sip"
    if direction:
        d["direction"] = direction
    if vlan is not None:
        d["vlan"] = {"id": str(vlan)}
    return d


# Bound of each cache of shared document parts (URIs, name-addrs, observers, flows): emptied
# when full.
_CACHE_ENTRIES: Final = 4096


def round_ms(x: float) -> float:
    """round(x, 3), without its costly decimal conversion when x is already the double nearest
    to a multiple of 0.001 (a time measured in microseconds): round gives x back then."""
    if -1e9 < x < 1e9 and math.floor(x * 1000.0 + 0.5) / 1000.0 == x:
        return x  # floor(y + 0.5): native when compiled, round(y) is a generic call
    return round(x, 3)


def _call_metrics(call: CallMetrics) -> dict[str, Any]:
    """The sip.call section."""
    cm: dict[str, Any] = {}
    if call.pdd_ms is not None:
        cm["pdd"] = round_ms(float(call.pdd_ms))
    if call.ring_time_ms is not None:
        cm["ring_time"] = round_ms(float(call.ring_time_ms))
    if call.setup_time_ms is not None:
        cm["setup_time"] = round_ms(float(call.setup_time_ms))
    if call.originator:
        cm["originator"] = call.originator
    cm["reconstructed"] = call.reconstructed
    if call.reconstructed_from:
        cm["reconstructed_from"] = call.reconstructed_from
    cm["retransmissions"] = call.retransmissions
    return cm


def _add(items: list[str], x: str) -> None:
    """Append `x` unless `items` holds it already: the related.* lists keep each value once,
    in first-seen order (a few items: a scan is cheaper than a dict)."""
    for y in items:
        if y == x:
            return
    items.append(x)


def _duration(o: Outcome) -> int | None:
    """event.duration: the call's, else the binding's lifetime."""
    call = o.call
    if call is not None and call.duration_ns is not None:
        return call.duration_ns
    reg = o.reg
    if reg is not None:
        return reg.lifetime_ns
    return None


def _related(ips: list[str], users: list[str], hosts: list[str]) -> dict[str, list[str]] | None:
    """The related section, None when empty."""
    if not (ips or users or hosts):
        return None
    related: dict[str, list[str]] = {}
    if ips:
        related["ip"] = ips
    if users:
        related["user"] = users
    if hosts:
        related["hosts"] = hosts
    return related


def _call_id_method(o: Outcome, first: SipMessage | None) -> tuple[str | None, str | None]:
    """sip.call_id and sip.method: the Outcome's, else the first message's."""
    call_id = o.call_id
    if not call_id and first is not None:
        call_id = first.call_id
    method = o.method
    if not method and first is not None:
        method = first.cseq_method
    return call_id, method


class _Facts:
    """What a document about an Outcome is made from, the same for `build` and `line`: its
    first message (the request, else the message, else the response) and response, the
    request's credentials, the reason, the triggering packet (`trig`) and the packet that
    gives the network context (`ctx`), the flow and the network section's values.
    A timer event of an entry rebuilt from replies has only the response: its From/To are
    the request's too."""

    __slots__ = ("creds", "ctx", "direction", "first", "first_req", "flow", "ntype", "reason",
                 "resp", "transport", "trig", "vlan")  # fmt: skip

    def __init__(self, o: Outcome) -> None:
        msg = o.msg
        resp = o.response
        first = o.request
        if first is None:
            first = msg if msg is not None else resp
        if resp is None and msg is not None and not msg.is_request:
            resp = msg
        self.first: SipMessage | None = first
        self.resp: SipMessage | None = resp
        self.first_req: bool = first is not None and first.is_request
        first_req = self.first_req
        self.creds: Credentials | None = (
            first.credentials if first is not None and first_req else None
        )
        err = o.error
        reason = o.reason
        if not reason and err is not None:
            reason = err.reason
        self.reason: str | None = reason
        trig = msg.payload if msg is not None else None
        if trig is None:
            trig = o.payload
            if trig is None and err is not None:
                trig = err.payload
        self.trig: Payload | None = trig
        ctx = trig
        if ctx is None:
            req = o.request
            if req is not None and req.payload is not None:
                ctx = req.payload
            elif o.response is not None:
                ctx = o.response.payload
        self.ctx: Payload | None = ctx
        fl: tuple[str, int, str, int, str] | None = o.flow
        if fl is None and trig is not None:
            fl = (trig.src_ip, trig.src_port, trig.dst_ip, trig.dst_port, trig.transport)
        self.flow: tuple[str, int, str, int, str] | None = fl
        self.transport: str | None = None
        self.ntype: str = ""
        self.vlan: int | None = None
        if ctx is not None:
            self.transport = ctx.transport
            self.ntype = "ipv6" if ctx.ip_version == 6 else "ipv4"
            self.vlan = ctx.vlan
        elif fl is not None:  # reg-expired: the binding remembers its REGISTER's flow
            self.transport = fl[4]
            self.ntype = "ipv6" if ":" in fl[0] else "ipv4"
        self.direction: str | None = trig.direction if trig is not None else None


def _put(doc: dict[str, Any], dotted: str, value: object) -> None:
    """Set a dotted field name in a nested document."""
    *parents, last = dotted.split(".")
    node = doc
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value


class EventBuilder:
    """Builds ECS documents; one instance per sensor (it holds the observer description).

    Parts that repeat between documents are built once and shared by them: the `uri`
    sub-document of each parsed URI (`UriDoc`), the From, To and Contact sections of each
    parsed name-addr (`NameAddrDoc`), the `observer` section of each interface and direction,
    and the Community ID of each flow. Each cache is bounded (emptied when full).
    Shared sections are never mutated after they are built; whoever changes a document
    (the anonymizer) replaces the dicts on the path to what it changes.
    """

    def __init__(
        self,
        hostname: str,
        ifnames: Mapping[int, str] | None = None,
        product_version: str = __version__,
    ) -> None:
        self.ifnames = dict(ifnames or {})
        self._observer: dict[str, Any] = {}
        if hostname:
            self._observer["hostname"] = hostname
        self._observer.update(
            product="sipcm", vendor="sipcm", version=product_version, type="sensor"
        )
        self._observer_shared = Shared(self._observer)
        # (direction, ifindex) -> the observer section
        self._observers: dict[tuple[str, int], Shared] = {}
        self._uris: dict[str, UriDoc] = {}
        self._parties: dict[int, NameAddrDoc] = {}  # From and To with their own tag
        self._contacts: dict[int, NameAddrDoc] = {}
        self._flows: dict[tuple[str, int, str, int, str], FlowParts] = {}
        self._endpoints: dict[tuple[str, int], Shared] = {}  # {"ip": .., "port": ..}
        self._originals: dict[str, Shared] = {}  # {"original": ..} of user agents and URLs
        self._sip_heads: dict[int, SipHead] = {}  # id(request) -> a call-start's sip head
        # The last time rendered (an event's start or end is often its @timestamp), and the
        # last second's prefix (consecutive events fall in the same second).
        self._last_ns = -1
        self._last_ts = rfc3339(-1)
        self._last_json_ns = -1
        self._last_json = b'"' + self._last_ts.encode() + b'"'
        self._json_prefixes: dict[int, bytes] = {}  # second -> '"YYYY-MM-DDTHH:MM:SS.'
        self._reasons: dict[str, bytes] = {}  # reason -> `,"reason":` and its JSON
        self._last_sec = -1
        self._last_prefix = _second_prefix(-1)

    def _time(self, ts_ns: int) -> str:
        """`rfc3339(ts_ns)`, from what this builder rendered last when it can."""
        if ts_ns == self._last_ns:
            return self._last_ts
        sec = ts_ns // 1_000_000_000
        if sec != self._last_sec:
            self._last_prefix = _second_prefix(sec)
            self._last_sec = sec
        ts = self._last_ts = f"{self._last_prefix}{_fraction(ts_ns)}Z"
        self._last_ns = ts_ns
        return ts

    def _observer_for(self, pl: Payload | None) -> Shared:
        """The observer section (shared): the interface and direction of the packet, if any."""
        if pl is None:
            return self._observer_shared
        direction = pl.direction
        ifindex = pl.ifindex
        if not ifindex or (direction != "ingress" and direction != "egress"):
            return self._observer_shared
        key = (direction, ifindex)
        e = self._observers.get(key)
        if e is None:
            obs = dict(self._observer)
            iface = {"id": str(ifindex)}
            name = self.ifnames.get(ifindex)
            if name:
                iface["name"] = name
            obs[direction] = {"interface": iface}
            if len(self._observers) >= _CACHE_ENTRIES:
                self._observers.clear()
            e = self._observers[key] = Shared(obs)
        return e

    def _uri_doc(self, u: Uri) -> UriDoc:
        """The shared UriDoc of a parsed URI, by its text: the parser gives the same text the
        same fields, and each call's From and To are new objects around the same URIs."""
        key = u.original
        e = self._uris.get(key)
        if e is None:
            if len(self._uris) >= _CACHE_ENTRIES:
                self._uris.clear()
            e = self._uris[key] = UriDoc(u)
        return e

    def _section(self, cache: dict[int, NameAddrDoc], na: NameAddr, contact: bool) -> NameAddrDoc:
        """The shared NameAddrDoc of a parsed name-addr object, from `cache`."""
        key = id(na)
        e = cache.get(key)
        if e is None or e.na is not na:
            if len(cache) >= _CACHE_ENTRIES:
                cache.clear()
            e = cache[key] = NameAddrDoc(na, self._uri_doc(na.uri), contact)
        return e

    def _flow_parts(self, fl: tuple[str, int, str, int, str]) -> FlowParts:
        """The shared sections of a flow (call-start and call-end of a dialog share one)."""
        flows = self._flows
        parts = flows.get(fl)
        if parts is None:
            cid = community_id(fl[4], fl[0], fl[1], fl[2], fl[3])
            src = self._shared_endpoint((fl[0], fl[1]))
            dst = self._shared_endpoint((fl[2], fl[3]))
            if len(flows) >= _CACHE_ENTRIES:
                flows.clear()
            parts = flows[fl] = FlowParts(src, dst, cid)
        return parts

    def _endpoint(
        self,
        ep: tuple[str, int],
        fl: tuple[str, int, str, int, str] | None,
        parts: FlowParts | None,
    ) -> Shared:
        """The shared {"ip", "port"} section of a client or server: usually one end of the
        flow, whose section `parts` holds."""
        ip, port = ep
        if fl is not None and parts is not None:
            if port == fl[1] and ip == fl[0]:
                return parts.source
            if port == fl[3] and ip == fl[2]:
                return parts.destination
        return self._shared_endpoint(ep)

    def _shared_endpoint(self, ep: tuple[str, int]) -> Shared:
        e = self._endpoints.get(ep)
        if e is None:
            if len(self._endpoints) >= _CACHE_ENTRIES:
                self._endpoints.clear()
            e = self._endpoints[ep] = Shared({"ip": ep[0], "port": ep[1]})
        return e

    def _original(self, text: str, encoded: bool) -> Any:
        """{"original": text}, shared by text in encoded sections."""
        if not encoded:
            return {"original": text}
        return self._shared_original(text).section(True)

    def _shared_original(self, text: str) -> Shared:
        e = self._originals.get(text)
        if e is None:
            if len(self._originals) >= _CACHE_ENTRIES:
                self._originals.clear()
            e = self._originals[text] = Shared({"original": text})
        return e

    def _name_addr(
        self, na: NameAddr, tag: str | None, uris: list[UriDoc], encoded: bool
    ) -> dict[str, Any]:
        """A From/To/Contact section with `tag` (not the name-addr's own); its URI joins
        `uris` (for related.*)."""
        e = self._uri_doc(na.uri)
        uris.append(e)
        uri = e.section(encoded)
        display = na.display
        if display:
            if tag:
                return {"display_info": display, "tag": tag, "uri": uri}
            return {"display_info": display, "uri": uri}
        if tag:
            return {"tag": tag, "uri": uri}
        return {"uri": uri}

    def build(self, o: Outcome) -> dict[str, Any]:
        """The ECS document for one Outcome (any action in ACTIONS)."""
        f = _Facts(o)
        first: SipMessage | None = f.first
        creds: Credentials | None = f.creds
        trig: Payload | None = f.trig
        err = o.error
        event = dict(_HEADS[_head_key(o.action, o.call, creds)])
        if f.reason:
            event["reason"] = f.reason
        duration = _duration(o)
        if duration is not None:
            event["duration"] = duration
        if o.start_ns is not None:
            event["start"] = self._time(o.start_ns)
        if o.end_ns is not None:
            event["end"] = self._time(o.end_ns)
        doc: dict[str, Any] = {"@timestamp": self._time(o.ts_ns), "ecs": _ECS, "event": event}

        ips: list[str] = []
        users: list[str] = []
        hosts: list[str] = []
        fl = f.flow
        # Plain documents get their own endpoint and network dicts, as callers may change them.
        parts = self._flow_parts(fl) if fl is not None else None
        if fl is not None:
            doc["source"] = {"ip": fl[0], "port": fl[1]}
            doc["destination"] = {"ip": fl[2], "port": fl[3]}
            ips.append(fl[0])
            _add(ips, fl[2])
        client = o.client
        if client is not None:
            doc["client"] = {"ip": client[0], "port": client[1]}
            _add(ips, client[0])
        server = o.server
        if server is not None:
            doc["server"] = {"ip": server[0], "port": server[1]}
            _add(ips, server[0])
        cid = parts.cid if parts is not None else None
        doc["network"] = _network(f.transport, f.ntype, cid, f.direction, f.vlan)
        doc["observer"] = self._observer_for(trig).doc
        if first is not None and f.first_req:
            if first.uri is not None:
                doc["url"] = {"original": first.uri.original}
            ua = first.user_agent
            if ua:
                doc["user_agent"] = {"original": ua}
        if creds is not None and creds.username:
            doc["user"] = {"name": creds.username}
            _add(users, creds.username)
        if err is not None:
            doc["error"] = self._error(o, trig)

        sip = self._sip(o, first, f.first_req, f.resp, users, hosts, ips)
        sipcm = self._sipcm(trig, f.ctx, err, ips)
        related = _related(ips, users, hosts)
        if related is not None:
            doc["related"] = related
        if sip is not None:
            doc["sip"] = sip
        if sipcm:
            doc["sipcm"] = sipcm
        for dotted, value in o.extra.items():
            _put(doc, dotted, value)
        return doc

    def line(self, o: Outcome) -> bytes:
        """`build(o)` as one NDJSON line: exactly the bytes of `orjson.dumps(build(o),
        option=OPT_APPEND_NEWLINE)`, written from JSON pieces that are encoded once for the
        documents that share them (the event heads, flows, endpoints, observers, URIs and
        user agents, and a call-start's sip section head for its call-end); the values of
        each event are encoded by orjson one by one. With extra fields, `build`'s document."""
        if o.extra:
            return _DUMPS(self.build(o), option=_NDJSON)
        f = _Facts(o)
        first: SipMessage | None = f.first
        creds: Credentials | None = f.creds
        trig: Payload | None = f.trig
        err = o.error
        out = [_OPEN, self._time_json(o.ts_ns), _TO_EVENT]
        out.append(_HEADS_JSON[_head_key(o.action, o.call, creds)])
        if f.reason:
            out.append(self._reason_json(f.reason))
        duration = _duration(o)
        if duration is not None:
            out.append(_DURATION)
            out.append(str(duration).encode())
        if o.start_ns is not None:
            out.append(_START)
            out.append(self._time_json(o.start_ns))
        if o.end_ns is not None:
            out.append(_END)
            out.append(self._time_json(o.end_ns))
        out.append(b"}")

        ips: list[str] = []
        users: list[str] = []
        hosts: list[str] = []
        fl = f.flow
        parts = self._flow_parts(fl) if fl is not None else None
        client = o.client
        server = o.server
        if fl is not None and parts is not None:
            if (
                client is not None
                and server is not None
                and client[1] == fl[1]
                and server[1] == fl[3]
                and client[0] == fl[0]
                and server[0] == fl[2]
            ):
                out.append(parts.ends_json_with_ends())
                client = server = None  # written
            else:
                out.append(parts.ends_json())
            ips.append(fl[0])
            _add(ips, fl[2])
        if client is not None:
            out.append(_CLIENT)
            out.append(self._endpoint(client, fl, parts).json())
        if server is not None:
            out.append(_SERVER)
            out.append(self._endpoint(server, fl, parts).json())
        if o.client is not None:
            _add(ips, o.client[0])
        if o.server is not None:
            _add(ips, o.server[0])
        transport = f.transport
        if parts is not None and transport is not None:
            net = parts.network(transport, f.ntype, f.direction, f.vlan)
            out.append(net.keyed(_NETWORK))
        else:
            cid = parts.cid if parts is not None else None
            out.append(_NETWORK)
            out.append(_DUMPS(_network(transport, f.ntype, cid, f.direction, f.vlan)))
        out.append(self._observer_for(trig).keyed(_OBSERVER))
        if first is not None and f.first_req:
            if first.uri is not None:
                out.append(self._shared_original(first.uri.original).keyed(_URL))
            ua = first.user_agent
            if ua:
                out.append(self._shared_original(ua).keyed(_USER_AGENT))
        if creds is not None and creds.username:
            out.append(_USER)
            out.append(_DUMPS(creds.username))
            out.append(b"}")
            _add(users, creds.username)
        if err is not None:
            out.append(_ERROR)
            out.append(_DUMPS(self._error(o, trig)))

        if first is not None:
            sip = self._sip_line(o, first, f.first_req, f.resp, users, hosts, ips)
        else:
            plain = self._sip(o, first, f.first_req, f.resp, users, hosts, ips)
            sip = b"" if plain is None else _DUMPS(plain)
        sipcm = self._sipcm(trig, f.ctx, err, ips)
        related = _related(ips, users, hosts)
        if related is not None:
            out.append(_RELATED)
            out.append(_DUMPS(related))
        if sip:
            out.append(_SIP)
            out.append(sip)
        if sipcm:
            frame = sipcm.get("frame")
            if len(sipcm) == 1 and frame is not None:
                out.append(_FRAME)
                out.append(str(frame).encode())
                out.append(b"}}\n")
                return b"".join(out)
            out.append(_SIPCM)
            out.append(_DUMPS(sipcm))
        out.append(b"}\n")
        return b"".join(out)

    def _time_json(self, ts_ns: int) -> bytes:
        """`_time(ts_ns)` as a JSON string; the last one is kept (an event's start or end is
        often its @timestamp). The prefixes of the seconds seen are kept as JSON: a call-end
        goes back to its start's second and forth again."""
        if ts_ns == self._last_json_ns:
            return self._last_json
        sec = ts_ns // 1_000_000_000
        prefix = self._json_prefixes.get(sec)
        if prefix is None:
            if len(self._json_prefixes) >= _TS_PREFIXES:
                self._json_prefixes.clear()
            prefix = self._json_prefixes[sec] = b'"' + _second_prefix(sec).encode()
        j = self._last_json = b"".join((prefix, _fraction(ts_ns).encode(), b'Z"'))
        self._last_json_ns = ts_ns
        return j

    def _reason_json(self, reason: str) -> bytes:
        """`,"reason":` and the reason as JSON (cached by text: a few phrases repeat)."""
        j = self._reasons.get(reason)
        if j is None:
            if len(self._reasons) >= _CACHE_ENTRIES:
                self._reasons.clear()
            j = self._reasons[reason] = _REASON + _DUMPS(reason)
        return j

    @staticmethod
    def _error(o: Outcome, pl: Payload | None) -> dict[str, Any]:
        err = o.error
        assert err is not None
        if err.probe:
            size = f" ({len(pl.data)} bytes)" if pl is not None else ""
            message = f"not a SIP message: {err.reason}{size}"
        else:
            message = f"SIP parse error: {err.reason} at byte {err.offset}"
        return {"code": err.reason, "message": message}

    def _sip(
        self,
        o: Outcome,
        first: SipMessage | None,
        first_req: bool,
        resp: SipMessage | None,
        users: list[str],
        hosts: list[str],
        ips: list[str],
    ) -> dict[str, Any] | None:
        """The sip section, None when empty."""
        call_id, method = _call_id_method(o, first)
        reg = o.reg
        uris: list[UriDoc] = []
        sip = self._sip_head(o, call_id, method, first, first_req, resp, uris, False)
        if first is None and reg is not None:
            # reg-expired keeps no message: the binding names its address-of-record and contact.
            # The parsed AOR is new each time, so its UriDoc is not cached.
            aor = parse_uri(reg.aor)
            if aor is not None:
                e = UriDoc(aor)
                uris.append(e)
                sip["to"] = {"uri": e.doc}
            if reg.contact is not None:
                sip["contact"] = self._name_addr(reg.contact, None, uris, False)
        for e in uris:
            e.relate(users, hosts, ips)
        self._sip_tail(o, sip)
        return sip or None

    def _sip_line(
        self,
        o: Outcome,
        first: SipMessage,
        first_req: bool,
        resp: SipMessage | None,
        users: list[str],
        hosts: list[str],
        ips: list[str],
    ) -> bytes:
        """The JSON of the sip section of a document about a message (`_sip`; b"" when
        empty): its head, the call-start's (`SipHead`) when this is the call-end, then the
        `_sip_tail`."""
        call_id, method = _call_id_method(o, first)
        reg = o.reg
        contact = reg.contact if reg is not None else None
        status = o.status
        reason = o.reason
        heads = self._sip_heads
        key = id(first)
        h = heads.get(key)
        if h is not None and h.shows(first, resp, contact, call_id, method, status, reason):
            del heads[key]  # a call-end: the dialog has no further event
            opening = h.opening
            uris = h.uris
        else:
            uris = []
            head = self._sip_head(o, call_id, method, first, first_req, resp, uris, True)
            opening = _DUMPS(head)[:-1]
            if o.action == "call-start":
                if len(heads) >= _CACHE_ENTRIES:
                    heads.clear()
                heads[key] = SipHead(
                    first, resp, contact, call_id, method, status, reason, opening, uris
                )
        for e in uris:
            e.relate(users, hosts, ips)
        tail: dict[str, Any] = {}
        self._sip_tail(o, tail)
        if not tail:
            return opening + b"}" if len(opening) > 1 else b""
        rest = _DUMPS(tail)
        if len(opening) == 1:
            return rest
        return b"".join((opening, b",", rest[1:]))

    def _sip_head(
        self,
        o: Outcome,
        call_id: str | None,
        method: str | None,
        first: SipMessage | None,
        first_req: bool,
        resp: SipMessage | None,
        uris: list[UriDoc],
        encoded: bool,
    ) -> dict[str, Any]:
        """The sip section from call_id to auth: what the Outcome's call-id, method and status
        and its request and answer show (the same for a call's start and end); the URIs it
        shows join `uris`, in order, for related.*."""
        sip: dict[str, Any] = {}
        if call_id:
            sip["call_id"] = call_id
        if method:
            sip["method"] = method
        if o.status is not None:
            sip["code"] = o.status
        if o.reason:
            sip["status"] = o.reason
        if first is None:
            return sip
        reg = o.reg
        if first_req:
            ruri = first.uri
            if ruri is not None:
                e = self._uri_doc(ruri)
                uris.append(e)
                sip["uri"] = e.section(encoded)
        p = self._section(self._parties, first.from_, False)
        uris.append(p.uri)
        sip["from"] = p.section(encoded)
        to = first.to
        resp_tag = resp.to.tag if resp is not None and not to.tag else None
        if resp_tag:  # To of a request sent before the dialog had its tag
            sip["to"] = self._name_addr(to, resp_tag, uris, encoded)
        else:
            p = self._section(self._parties, to, False)
            uris.append(p.uri)
            sip["to"] = p.section(encoded)
        contact = reg.contact if reg is not None else None
        if contact is None:
            contacts = first.contacts
            if contacts:
                contact = contacts[0]
        if contact is not None:
            p = self._section(self._contacts, contact, True)
            uris.append(p.uri)
            sip["contact"] = p.section(encoded)
        elif first.contact_star:
            sip["contact"] = {"uri": {"original": "*"}}
        cseq_method = first.cseq_method
        if cseq_method:
            sip["cseq"] = {"code": first.cseq, "method": cseq_method}
        else:
            sip["cseq"] = {"code": first.cseq}
        if resp is not None:
            callee_ua = resp.server or resp.user_agent
            if callee_ua:
                sip["user_agent"] = self._original(callee_ua, encoded)
        pai = first.pai
        if pai:
            pai_docs = [self._uri_doc(p.uri) for p in pai]
            sip["pai"] = [e.doc["original"] for e in pai_docs]
            uris.extend(pai_docs)
        creds = first.credentials
        if creds is not None:
            auth = {}
            if creds.scheme:
                auth["scheme"] = creds.scheme
            if creds.realm:
                auth["realm"] = creds.realm
            if auth:
                sip["auth"] = auth
        return sip

    @staticmethod
    def _sip_tail(o: Outcome, sip: dict[str, Any]) -> None:
        """Add the sip section's call metrics and registration (they change within a call)."""
        call = o.call
        if call is not None:
            sip["call"] = _call_metrics(call)
        reg = o.reg
        if reg is not None:
            rg: dict[str, Any] = {}
            if reg.aor:
                rg["aor"] = reg.aor
            if reg.expires is not None:
                rg["expires"] = reg.expires
            if reg.lifetime_ns is not None:
                rg["lifetime"] = reg.lifetime_ns // 1_000_000_000
            if rg:
                sip["reg"] = rg

    @staticmethod
    def _sipcm(
        trig: Payload | None, ctx: Payload | None, err: Any, ips: list[str]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if ctx is not None and ctx.tunnel is not None:
            t = ctx.tunnel
            tun: dict[str, Any] = {"type": t.kind}
            if t.vni is not None:
                tun["vni"] = t.vni
            src: dict[str, Any] = {"ip": t.src_ip}
            if t.src_port is not None:
                src["port"] = t.src_port
            dst: dict[str, Any] = {"ip": t.dst_ip}
            if t.dst_port is not None:
                dst["port"] = t.dst_port
            tun["source"] = src
            tun["destination"] = dst
            out["tunnel"] = tun
            _add(ips, t.src_ip)
            _add(ips, t.dst_ip)
        if trig is not None:
            if trig.frame_no:
                out["frame"] = trig.frame_no
            if trig.reassembled:
                out["reassembled"] = True
        if err is not None:
            if not err.probe:
                out["parse"] = {"offset": err.offset}
            if trig is not None:
                out["payload"] = {"size": len(trig.data)}
        return out

    def build_stats(self, ts_ns: int, counters_snapshot: Mapping[str, Mapping[str, int]]) -> dict:
        """A `stats` document (event.kind metric) carrying the non-zero counters by group."""
        counters = {g: dict(c) for g, c in counters_snapshot.items() if c}
        doc: dict[str, Any] = {
            "@timestamp": rfc3339(ts_ns),
            "ecs": {"version": ECS_VERSION},
            "event": {"action": "stats", "kind": "metric", "dataset": DATASET, "module": MODULE},
            "observer": dict(self._observer),
        }
        if counters:
            doc["sipcm"] = {"counters": counters}
        return doc
