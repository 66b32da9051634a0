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
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sipcm import __version__
from sipcm.events.community_id import community_id
from sipcm.events.schema import ECS_VERSION
from sipcm.sip.message import NameAddr
from sipcm.sip.nameaddr import parse_uri

if TYPE_CHECKING:
    from sipcm.decode.packet import Payload
    from sipcm.sip.message import SipMessage, Uri
    from sipcm.track.outcome import Outcome

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

# Second -> "YYYY-MM-DDTHH:MM:SS": one document's times (start, end, @timestamp) and
# consecutive documents fall in a few recent seconds. Cleared when it reaches the bound.
_ts_prefix: dict[int, str] = {}
_TS_PREFIXES = 4096


def rfc3339(ts_ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339 UTC with 9 fractional digits."""
    sec, ns = divmod(ts_ns, 1_000_000_000)
    prefix = _ts_prefix.get(sec)
    if prefix is None:
        if len(_ts_prefix) >= _TS_PREFIXES:
            _ts_prefix.clear()
        prefix = _ts_prefix[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{prefix}.{ns:09d}Z"


# A dotted quad in canonical form (no leading zeros, octets <= 255) is its own text form;
# checking that is ~10x cheaper than ipaddress, whose cache misses on every new address.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


def _ip_literal(host: str) -> str | None:
    """The IP address in a URI host (brackets removed), or None for a host name."""
    if _IPV4.fullmatch(host):
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


def _relate(u: Uri, users: list[str], hosts: list[str], ips: list[str]) -> None:
    """Add a URI's user and host (name or IP literal) to the related.* lists."""
    if u.user:
        users.append(u.user)
    if u.host:
        ip = _ip_literal(u.host)
        if ip is None:
            hosts.append(u.host)
        else:
            ips.append(ip)


def _uri(u: Uri, users: list[str], hosts: list[str], ips: list[str]) -> dict[str, Any]:
    d: dict[str, Any] = {"original": u.original}
    if u.scheme:
        d["scheme"] = u.scheme
    if u.user:
        d["username"] = u.user
    if u.host:
        d["host"] = u.host
    if u.port is not None:
        d["port"] = u.port
    _relate(u, users, hosts, ips)
    return d


def _name_addr(
    na: NameAddr, tag: str | None, users: list[str], hosts: list[str], ips: list[str]
) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if na.display:
        d["display_info"] = na.display
    if tag:
        d["tag"] = tag
    d["uri"] = _uri(na.uri, users, hosts, ips)
    return d


def _put(doc: dict[str, Any], dotted: str, value: object) -> None:
    """Set a dotted field name in a nested document."""
    *parents, last = dotted.split(".")
    node = doc
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value


class EventBuilder:
    """Builds ECS documents; one instance per sensor (it holds the observer description)."""

    def __init__(
        self,
        hostname: str,
        ifnames: Mapping[int, str] | None = None,
        product_version: str = __version__,
    ) -> None:
        self.ifnames = dict(ifnames or {})
        self._observer: dict[str, str] = {}
        if hostname:
            self._observer["hostname"] = hostname
        self._observer.update(
            product="sipcm", vendor="sipcm", version=product_version, type="sensor"
        )

    def _observer_for(self, pl: Payload | None) -> dict[str, Any]:
        obs: dict[str, Any] = dict(self._observer)
        if pl is not None and pl.direction in ("ingress", "egress") and pl.ifindex:
            iface = {"id": str(pl.ifindex)}
            name = self.ifnames.get(pl.ifindex)
            if name:
                iface["name"] = name
            obs[pl.direction] = {"interface": iface}
        return obs

    def build(self, o: Outcome) -> dict[str, Any]:
        """The ECS document for one Outcome (any action in ACTIONS)."""
        action = o.action
        cats, types, outcome = _CATEGORISE[action]
        msg = o.msg
        resp = o.response
        # A timer event of an entry rebuilt from replies has only the response: its From/To
        # are the request's too.
        first = o.request or msg or resp
        if resp is None and msg is not None and not msg.is_request:
            resp = msg
        creds = first.credentials if first is not None and first.is_request else None
        call, reg, err = o.call, o.reg, o.error

        if action == "call-end" and call is not None and call.originator == "timeout":
            outcome = "unknown"
        if creds is not None and action in ("call-start", "reg-new"):
            cats = _WITH_AUTH
        event: dict[str, Any] = {
            "action": action,
            "kind": "event",
            "category": list(cats),
            "type": list(types),
            "outcome": outcome,
            "dataset": DATASET,
            "module": MODULE,
        }
        reason = o.reason or (err.reason if err is not None else None)
        if reason:
            event["reason"] = reason
        if call is not None and call.duration_ns is not None:
            event["duration"] = call.duration_ns
        elif reg is not None and reg.lifetime_ns is not None:
            event["duration"] = reg.lifetime_ns
        if o.start_ns is not None:
            event["start"] = rfc3339(o.start_ns)
        if o.end_ns is not None:
            event["end"] = rfc3339(o.end_ns)
        doc: dict[str, Any] = {
            "@timestamp": rfc3339(o.ts_ns),
            "ecs": {"version": ECS_VERSION},
            "event": event,
        }

        ips: list[str] = []
        users: list[str] = []
        hosts: list[str] = []
        trig = msg.payload if msg is not None else None
        if trig is None:
            trig = o.payload
            if trig is None and err is not None:
                trig = err.payload
        ctx = trig
        if ctx is None:
            for m in (o.request, o.response):
                if m is not None and m.payload is not None:
                    ctx = m.payload
                    break
        fl: tuple | None = o.flow
        if fl is None and trig is not None:
            fl = (trig.src_ip, trig.src_port, trig.dst_ip, trig.dst_port, trig.transport)
        if fl is not None:
            doc["source"] = {"ip": fl[0], "port": fl[1]}
            doc["destination"] = {"ip": fl[2], "port": fl[3]}
            ips += (fl[0], fl[2])
        if o.client is not None:
            doc["client"] = {"ip": o.client[0], "port": o.client[1]}
            ips.append(o.client[0])
        if o.server is not None:
            doc["server"] = {"ip": o.server[0], "port": o.server[1]}
            ips.append(o.server[0])
        network: dict[str, Any] = {}
        if ctx is not None:
            network["transport"] = ctx.transport
            network["type"] = "ipv6" if ctx.ip_version == 6 else "ipv4"
        elif fl is not None:  # reg-expired: the binding remembers its REGISTER's flow
            network["transport"] = fl[4]
            network["type"] = "ipv6" if ":" in fl[0] else "ipv4"
        if fl is not None:
            cid = community_id(fl[4], fl[0], fl[1], fl[2], fl[3])
            if cid is not None:
                network["community_id"] = cid
        network["protocol"] = "sip"
        if trig is not None and trig.direction:
            network["direction"] = trig.direction
        if ctx is not None and ctx.vlan is not None:
            network["vlan"] = {"id": str(ctx.vlan)}
        doc["network"] = network
        doc["observer"] = self._observer_for(trig)

        if first is not None and first.is_request:
            if first.uri is not None:
                doc["url"] = {"original": first.uri.original}
            if first.user_agent:
                doc["user_agent"] = {"original": first.user_agent}
        if creds is not None and creds.username:
            doc["user"] = {"name": creds.username}
            users.append(creds.username)
        if err is not None:
            doc["error"] = self._error(o, trig)

        sip = self._sip(o, first, resp, users, hosts, ips)
        sipcm = self._sipcm(trig, ctx, err, ips)
        related: dict[str, list[str]] = {}
        if ips:
            related["ip"] = list(dict.fromkeys(ips))
        if users:
            related["user"] = list(dict.fromkeys(users))
        if hosts:
            related["hosts"] = list(dict.fromkeys(hosts))
        if related:
            doc["related"] = related
        if sip:
            doc["sip"] = sip
        if sipcm:
            doc["sipcm"] = sipcm
        for dotted, value in o.extra.items():
            _put(doc, dotted, value)
        return doc

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

    @staticmethod
    def _sip(
        o: Outcome,
        first: SipMessage | None,
        resp: SipMessage | None,
        users: list[str],
        hosts: list[str],
        ips: list[str],
    ) -> dict[str, Any]:
        sip: dict[str, Any] = {}
        call_id = o.call_id or (first.call_id if first is not None else None)
        if call_id:
            sip["call_id"] = call_id
        method = o.method or (first.cseq_method if first is not None else None)
        if method:
            sip["method"] = method
        if o.status is not None:
            sip["code"] = o.status
        if o.reason:
            sip["status"] = o.reason
        if first is not None:
            if first.is_request and first.uri is not None:
                sip["uri"] = _uri(first.uri, users, hosts, ips)
            sip["from"] = _name_addr(first.from_, first.from_.tag, users, hosts, ips)
            to_tag = first.to.tag or (resp.to.tag if resp is not None else None)
            sip["to"] = _name_addr(first.to, to_tag, users, hosts, ips)
            contact = o.reg.contact if o.reg is not None else None
            if contact is None and first.contacts:
                contact = first.contacts[0]
            if contact is not None:
                c = _name_addr(contact, None, users, hosts, ips)
                if contact.expires is not None:
                    c["expires"] = contact.expires
                sip["contact"] = c
            elif first.contact_star:
                sip["contact"] = {"uri": {"original": "*"}}
            if first.cseq_method:
                sip["cseq"] = {"code": first.cseq, "method": first.cseq_method}
            else:
                sip["cseq"] = {"code": first.cseq}
        elif o.reg is not None:
            # reg-expired keeps no message: the binding names its address-of-record and contact.
            aor = parse_uri(o.reg.aor)
            if aor is not None:
                sip["to"] = _name_addr(NameAddr(aor), None, users, hosts, ips)
            if o.reg.contact is not None:
                sip["contact"] = _name_addr(o.reg.contact, None, users, hosts, ips)
        if resp is not None:
            callee_ua = resp.server or resp.user_agent
            if callee_ua:
                sip["user_agent"] = {"original": callee_ua}
        if first is not None:
            if first.pai:
                sip["pai"] = [p.uri.original for p in first.pai]
                for p in first.pai:
                    _relate(p.uri, users, hosts, ips)
            creds = first.credentials
            if creds is not None:
                auth = {}
                if creds.scheme:
                    auth["scheme"] = creds.scheme
                if creds.realm:
                    auth["realm"] = creds.realm
                if auth:
                    sip["auth"] = auth
        call = o.call
        if call is not None:
            cm: dict[str, Any] = {}
            if call.pdd_ms is not None:
                cm["pdd"] = round(float(call.pdd_ms), 3)
            if call.ring_time_ms is not None:
                cm["ring_time"] = round(float(call.ring_time_ms), 3)
            if call.setup_time_ms is not None:
                cm["setup_time"] = round(float(call.setup_time_ms), 3)
            if call.originator:
                cm["originator"] = call.originator
            cm["reconstructed"] = call.reconstructed
            if call.reconstructed_from:
                cm["reconstructed_from"] = call.reconstructed_from
            cm["retransmissions"] = call.retransmissions
            sip["call"] = cm
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
        return sip

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
            ips += (t.src_ip, t.dst_ip)
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
