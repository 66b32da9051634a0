"""The web API: one function per endpoint, from a parsed request to a `Response`.

Input: method, path, query parameters and (for PUT) the raw body, already authenticated and
size-checked by `server.py`. Output: status, content type and body bytes. Errors are JSON
`{"error": "..."}` with a 4xx status; this module never touches sockets and never returns a
traceback.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from sipcm import callstats, ladder
from sipcm.web import dashboard, metrics
from sipcm.web.state import WebState

JSON = "application/json; charset=utf-8"
DEFAULT_EVENTS = 100
MAX_EVENTS = 10_000


@dataclass(slots=True)
class Response:
    """What the server sends back."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """A client error that becomes `{"error": message, **extra}` with `status`."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def _default(obj: object) -> object:
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return str(obj)


def json_bytes(obj: object) -> bytes:
    """Compact UTF-8 JSON with a trailing newline; unknown types are rendered as strings."""
    return (json.dumps(obj, ensure_ascii=False, default=_default) + "\n").encode()


def ok(obj: object) -> Response:
    """A 200 JSON response."""
    return Response(200, json_bytes(obj))


def error(status: int, message: str, **extra: Any) -> Response:
    """A JSON error response."""
    return Response(status, json_bytes({"error": message, **extra}))


Query = Mapping[str, list[str]]
Handler = Callable[[WebState, Query, bytes], Response]


def _only(query: Query, allowed: tuple[str, ...]) -> dict[str, str]:
    """The last value of each parameter; unknown parameters are a 400."""
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        expected = ", ".join(allowed) if allowed else "none"
        raise ApiError(400, f"unknown query parameter {unknown[0]!r} (expected: {expected})")
    return {k: v[-1] for k, v in query.items()}


def get_counters(state: WebState, query: Query, _body: bytes) -> Response:
    """All counter groups; the `interfaces` group is nested as interface -> direction."""
    _only(query, ())
    snap = state.counters()
    out: dict[str, Any] = {}
    for group, names in snap.items():
        if group == metrics.INTERFACES_GROUP:
            nested: dict[str, dict[str, int]] = {}
            for key, value in names.items():
                iface, _, direction = key.rpartition("/") if "/" in key else (key, "", "")
                nested.setdefault(iface, {})[direction or "unknown"] = value
            out[group] = nested
        else:
            out[group] = names
    return ok(out)


_EVENT_FILTERS = ("action", "call_id", "user", "ip")


def _matches(doc: Mapping[str, Any], f: Mapping[str, str]) -> bool:
    if "action" in f and (doc.get("event") or {}).get("action") != f["action"]:
        return False
    if "call_id" in f and (doc.get("sip") or {}).get("call_id") != f["call_id"]:
        return False
    related = doc.get("related") or {}
    if "user" in f and f["user"] not in (related.get("user") or ()):
        return False
    return not ("ip" in f and f["ip"] not in (related.get("ip") or ()))


def _int_param(params: dict[str, str], name: str, low: int, high: int) -> int | None:
    raw = params.pop(name, None)
    if raw is None:
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(400, f"{name} must be an integer from {low} to {high}, got {raw!r}")
    return int(raw)


def get_events(state: WebState, query: Query, _body: bytes) -> Response:
    """Recent events, newest first, filtered by exact event name / Call-ID / user / IP.

    `after=N` keeps only events published after the published-events total was N (the
    `published` value of an earlier answer), so a poller fetches just what is new."""
    params = _only(query, (*_EVENT_FILTERS, "limit", "after"))
    limit = _int_param(params, "limit", 1, MAX_EVENTS) or DEFAULT_EVENTS
    after = _int_param(params, "after", 0, 2**63)
    docs, published = state.events()
    if after is not None:
        fresh = min(max(0, published - after), len(docs))
        docs = docs[len(docs) - fresh :]
    picked: list[dict] = []
    for doc in reversed(docs):
        if _matches(doc, params):
            picked.append(doc)
            if len(picked) == limit:
                break
    return ok({"published": published, "count": len(picked), "events": picked})


def get_calls(state: WebState, query: Query, _body: bytes) -> Response:
    """The dialogs being followed (with readable states and durations at `clock_ns`, the
    capture clock; `live`: that clock follows wall time, so open calls' durations grow)."""
    _only(query, ())
    calls, clock = state.calls_at()
    return ok({"count": len(calls), "clock_ns": clock, "live": state.live, "calls": calls})


def get_call_outcomes(state: WebState, query: Query, _body: bytes) -> Response:
    """Calls by outcome since the start: attempted, answered, ASR, NER and the failures by
    response code (sipcm.callstats)."""
    _only(query, ())
    outcomes = state.counters().get(callstats.GROUP, {})
    return ok(callstats.summary(outcomes))


DEFAULT_SOURCES = 20
MAX_SOURCES = 1000


def get_auth_sources(state: WebState, query: Query, _body: bytes) -> Response:
    """The source IPs with the most auth failures (`limit`, default 20), with the totals:
    every failure counted, addresses held, the table's capacity and the failures from
    addresses that found it full."""
    params = _only(query, ("limit",))
    limit = _int_param(params, "limit", 1, MAX_SOURCES) or DEFAULT_SOURCES
    return ok(state.auth_sources(limit))


def get_history(state: WebState, query: Query, _body: bytes) -> Response:
    """Counter samples on the capture clock, oldest first (`after=T`: only those taken after
    capture time T, the `t` of a sample already held)."""
    params = _only(query, ("after",))
    after = _int_param(params, "after", 0, 2**63)
    return ok(state.history(after))


def get_registrations(state: WebState, query: Query, _body: bytes) -> Response:
    """The cached registration bindings."""
    _only(query, ())
    regs = state.registrations()
    return ok({"count": len(regs), "registrations": regs})


def get_blacklist(state: WebState, query: Query, _body: bytes) -> Response:
    """The event-type blacklist and the names it may hold."""
    _only(query, ())
    return ok({"blacklist": state.blacklist(), "valid": list(state.valid_events)})


def put_blacklist(state: WebState, query: Query, body: bytes) -> Response:
    """Replace the blacklist with a JSON list of event names (or {"blacklist": [...]})."""
    _only(query, ())
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    if isinstance(doc, dict) and set(doc) == {"blacklist"}:
        doc = doc["blacklist"]
    if not isinstance(doc, list) or not all(isinstance(n, str) for n in doc):
        raise ApiError(400, 'body must be a JSON list of event names, e.g. ["msg-probe"]')
    valid = state.valid_events
    names = sorted({n.strip().lower() for n in doc})
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ApiError(400, f"unknown event type {unknown[0]!r}", valid=list(valid))
    return ok({"blacklist": state.set_blacklist(names), "valid": list(valid)})


def get_rates(state: WebState, query: Query, _body: bytes) -> Response:
    """The event rate table."""
    _only(query, ())
    rates = state.rates()
    return ok({"count": len(rates), "rates": rates})


def get_config(state: WebState, query: Query, _body: bytes) -> Response:
    """The effective configuration (secrets masked by the provider)."""
    _only(query, ())
    return ok(state.config())


def get_metrics(state: WebState, query: Query, _body: bytes) -> Response:
    """Prometheus text exposition."""
    _only(query, ())
    text = metrics.render(state.metrics())
    return Response(200, text.encode(), metrics.CONTENT_TYPE)


def get_dashboard(_state: WebState, query: Query, _body: bytes) -> Response:
    """The self-contained dashboard page (it carries no data; its script calls the API)."""
    _only(query, ())
    return _html(dashboard.page())


def get_call_page(_state: WebState, query: Query, _body: bytes) -> Response:
    """The call page for `?id=CALL-ID` (it carries no data; its script calls the API)."""
    _only(query, ("id",))
    return _html(dashboard.call_page())


def _html(pg: dashboard.Page) -> Response:
    headers = {"Content-Security-Policy": pg.csp, "X-Frame-Options": "DENY"}
    return Response(200, pg.html, "text/html; charset=utf-8", headers)


def _flow_of(state: WebState, call_id: str) -> dict:
    flow = state.flow(call_id)
    if flow is None:
        raise ApiError(404, f"no stored messages for Call-ID {call_id!r}")
    return flow


def get_call_flow(state: WebState, query: Query, _body: bytes, *, call_id: str) -> Response:
    """A call's ladder: hosts (ip:port, in order of appearance) and its messages in capture
    order (time, relative time, columns, first line, retransmission/copy, raw text)."""
    _only(query, ())
    return ok(ladder.view(_flow_of(state, call_id)))


PCAP = "application/vnd.tcpdump.pcap"


def get_call_pcap(state: WebState, query: Query, _body: bytes, *, call_id: str) -> Response:
    """A pcap of the call's messages in capture order (one frame per message). 409 when the
    store does not hold every message with its text (anonymization on, or flow limits)."""
    _only(query, ())
    flow = _flow_of(state, call_id)
    if flow["anonymized"]:
        raise ApiError(409, "no pcap: raw messages are not kept while anonymization is on")
    missing = flow["messages_dropped"] + flow["raw_dropped"]
    if missing:
        raise ApiError(
            409,
            f"no pcap: {missing} messages of this call were not kept whole "
            "(flow_max_call_bytes / flow_max_bytes)",
        )
    if state.pcap_of is None:
        raise ApiError(404, "no pcap: this server cannot write captures")
    data = state.pcap_of(flow["messages"])
    name = "".join(c if c.isalnum() or c in "-._" else "_" for c in call_id)[:80]
    disposition = f'attachment; filename="call-{name}.pcap"'
    return Response(200, data, PCAP, {"Content-Disposition": disposition})


# /api/calls/{call_id}/<leaf>: the Call-ID percent-encoded (it may hold "/", "?", "%").
CALL_PREFIX = "/api/calls/"
CALL_ROUTES: dict[str, dict[str, Callable[..., Response]]] = {
    "flow": {"GET": get_call_flow},
    "pcap": {"GET": get_call_pcap},
}


def route(path: str) -> dict[str, Handler] | None:
    """The handlers of `path` (the raw, still percent-encoded path), or None."""
    handlers = ROUTES.get(path)
    if handlers is not None or not path.startswith(CALL_PREFIX):
        return handlers
    rest, _, leaf = path[len(CALL_PREFIX) :].rpartition("/")
    per_call = CALL_ROUTES.get(leaf)
    if per_call is None or not rest:
        return None
    call_id = unquote(rest)
    return {m: functools.partial(h, call_id=call_id) for m, h in per_call.items()}


ROUTES: dict[str, dict[str, Handler]] = {
    "/": {"GET": get_dashboard},
    "/call": {"GET": get_call_page},
    "/api/counters": {"GET": get_counters},
    "/api/events": {"GET": get_events},
    "/api/calls": {"GET": get_calls},
    "/api/call-outcomes": {"GET": get_call_outcomes},
    "/api/auth-sources": {"GET": get_auth_sources},
    "/api/history": {"GET": get_history},
    "/api/registrations": {"GET": get_registrations},
    "/api/blacklist": {"GET": get_blacklist, "PUT": put_blacklist},
    "/api/rates": {"GET": get_rates},
    "/api/config": {"GET": get_config},
    "/metrics": {"GET": get_metrics},
}
