"""Outcome: what `track/` decided (an event and everything needed to describe it).

`events/` turns an Outcome into an ECS document; it never looks at state machines. The fields:
- `action`: event name (call-start, call-end, call-attempt, reg-new, reg-del, reg-expired,
  auth-failed, other-ok, other-failed, other-timeout, parse-error, msg-probe).
- `ts_ns`: time of the message or timer that produced the event (capture time).
- `msg`: the message that triggered it (None when a timer did); its packet gives the observer
  interface and direction.
- `flow`: who acted: sender and receiver (and transport) of the request the event reports on,
  on the leg the event describes (the hop where the tracker first saw that request): the UA
  that sent the credentials (auth-failed), the INVITE's sender (call-start, call-attempt, and
  call-end by timeout), the BYE's sender (call-end), the REGISTER's sender (reg-*), the
  request's sender (other-*). Known from a reply alone, it is the reply's receiver and sender.
  None for parse-error and msg-probe (their packet is the flow).
- `request`: the initial request of the dialog or transaction (caller side: From, To, request
  URI, User-Agent); `response`: its final response when seen (callee side: Server/User-Agent).
- `status`/`reason`: final status and reason phrase (a timeout has status 408 and a reason
  saying which timer fired; the event builder renders them as sip.code/sip.status and
  event.reason).
- `client`/`server`: (ip, port) of caller and callee side.
- `call`: call metrics (call-start, call-end, call-attempt); `reg`: binding facts (reg-*).
- `error`: the ParseError of a parse-error or msg-probe event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from sipcm.decode.packet import Payload
    from sipcm.sip.message import NameAddr, ParseError, SipMessage


class Flow(NamedTuple):
    """One leg's request direction: sender and receiver address and port, and transport."""

    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: str  # "udp" or "tcp"


# Compiled, Final names load from C statics: `tuple.__new__` written out is a method lookup
# on the type per call, and `Flow` a module dict lookup.
_TUPLE_NEW: Final = tuple.__new__
_FLOW: Final = Flow


def new_flow(src_ip: str, src_port: int, dst_ip: str, dst_port: int, transport: str) -> Flow:
    """`Flow(...)` without the NamedTuple's generated __new__, which stays interpreted Python
    when the caller is compiled."""
    return _TUPLE_NEW(_FLOW, (src_ip, src_port, dst_ip, dst_port, transport))


# Plain classes with written-out constructors rather than dataclasses: compiled (sipcm.accel),
# a dataclass's generated __init__ stays interpreted Python, several times the cost of a native
# one, and the tracker builds one Outcome per event.


_METRICS_FIELDS: Final = (
    "duration_ns", "originator", "pdd_ms", "reconstructed", "reconstructed_from",
    "retransmissions", "ring_time_ms", "setup_time_ms",
)  # fmt: skip


class CallMetrics:
    """Call measurements of a call-start, call-end or call-attempt."""

    def __init__(
        self,
        pdd_ms: float | None = None,
        ring_time_ms: float | None = None,
        setup_time_ms: float | None = None,
        originator: str | None = None,
        reconstructed: bool = False,
        reconstructed_from: str | None = None,
        retransmissions: int = 0,
        duration_ns: int | None = None,
    ) -> None:
        self.pdd_ms = pdd_ms  # INVITE to first 18x or final reply
        self.ring_time_ms = ring_time_ms  # first 18x to answer
        self.setup_time_ms = setup_time_ms  # INVITE to 2xx
        self.originator = originator  # call-end: "caller", "callee" or "timeout"
        self.reconstructed = reconstructed  # dialog seen without its INVITE or without its 2xx
        self.reconstructed_from = reconstructed_from  # what it was rebuilt from: "bye", "2xx"
        self.retransmissions = retransmissions
        self.duration_ns = duration_ns  # call-end: answer (or first sighting) to end

    def __repr__(self) -> str:
        return _repr(self, _METRICS_FIELDS)

    def __eq__(self, other: object) -> bool:
        return _eq(self, other, _METRICS_FIELDS)


_REG_FIELDS: Final = ("aor", "contact", "expires", "lifetime_ns")


class RegInfo:
    """Binding facts of a reg-new, reg-del or reg-expired."""

    def __init__(
        self,
        aor: str,
        contact: NameAddr | None,
        expires: int | None,
        lifetime_ns: int | None = None,
    ) -> None:
        self.aor = aor  # address-of-record (To URI without parameters)
        self.contact = contact
        self.expires = expires  # seconds granted (from the 2xx when present)
        self.lifetime_ns = lifetime_ns  # reg-del / reg-expired: time the binding existed

    def __repr__(self) -> str:
        return _repr(self, _REG_FIELDS)

    def __eq__(self, other: object) -> bool:
        return _eq(self, other, _REG_FIELDS)


_OUTCOME_FIELDS: Final = (
    "action", "call", "call_id", "client", "end_ns", "error", "extra", "flow", "method",
    "msg", "payload", "reason", "reg", "request", "response", "server", "start_ns",
    "status", "ts_ns",
)  # fmt: skip


class Outcome:
    """One event the tracker decided (fields: module docstring)."""

    def __init__(
        self,
        action: str,
        ts_ns: int,
        msg: SipMessage | None = None,
        request: SipMessage | None = None,
        response: SipMessage | None = None,
        call_id: str | None = None,
        method: str | None = None,
        status: int | None = None,
        reason: str | None = None,
        client: tuple[str, int] | None = None,
        server: tuple[str, int] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        call: CallMetrics | None = None,
        reg: RegInfo | None = None,
        error: ParseError | None = None,
        payload: Payload | None = None,
        flow: Flow | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        self.action = action
        self.ts_ns = ts_ns
        self.msg = msg
        self.request = request
        self.response = response
        self.call_id = call_id
        self.method = method
        self.status = status
        self.reason = reason
        self.client = client
        self.server = server
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.call = call
        self.reg = reg
        self.error = error
        self.payload = payload  # network context when there is no message (parse errors)
        self.flow = flow
        self.extra: dict[str, object] = {} if extra is None else extra

    def __repr__(self) -> str:
        return _repr(self, _OUTCOME_FIELDS)

    def __eq__(self, other: object) -> bool:
        return _eq(self, other, _OUTCOME_FIELDS)


def _eq(obj: object, other: object, names: tuple[str, ...]) -> bool:
    """Dataclass-style equality: same class, equal fields."""
    if type(other) is not type(obj):
        return NotImplemented
    return all(getattr(obj, n) == getattr(other, n) for n in names)


def _repr(obj: object, names: tuple[str, ...]) -> str:
    """Dataclass-style repr (test failures print these)."""
    args = ", ".join(f"{n}={getattr(obj, n)!r}" for n in names)
    return f"{type(obj).__name__}({args})"
