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

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

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


@dataclass(slots=True)
class CallMetrics:
    pdd_ms: float | None = None  # INVITE to first 18x or final reply
    ring_time_ms: float | None = None  # first 18x to answer
    setup_time_ms: float | None = None  # INVITE to 2xx
    originator: str | None = None  # call-end: "caller", "callee" or "timeout"
    reconstructed: bool = False  # dialog seen without its INVITE or without its 2xx
    reconstructed_from: str | None = None  # what it was rebuilt from, e.g. "bye", "2xx", "ack"
    retransmissions: int = 0
    duration_ns: int | None = None  # call-end: answer (or first sighting) to end


@dataclass(slots=True)
class RegInfo:
    aor: str  # address-of-record (To URI without parameters)
    contact: NameAddr | None
    expires: int | None  # seconds granted (from the 2xx when present)
    lifetime_ns: int | None = None  # reg-del / reg-expired: time the binding existed


@dataclass(slots=True)
class Outcome:
    action: str
    ts_ns: int
    msg: SipMessage | None = None
    request: SipMessage | None = None
    response: SipMessage | None = None
    call_id: str | None = None
    method: str | None = None
    status: int | None = None
    reason: str | None = None
    client: tuple[str, int] | None = None
    server: tuple[str, int] | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    call: CallMetrics | None = None
    reg: RegInfo | None = None
    error: ParseError | None = None
    payload: Payload | None = None  # network context when there is no message (parse errors)
    flow: Flow | None = None
    extra: dict[str, object] = field(default_factory=dict)
