"""Builders of SipMessages for tracker tests, without the parser.

Times are given in seconds (float) and stored as capture nanoseconds; addresses as "ip:port".
Every request gets a fresh top Via branch unless one is given; `resp()` copies Via, From, To,
Call-ID and CSeq from its request as a UAS does (RFC 3261 8.2.6.2).
"""

from __future__ import annotations

import dataclasses
import itertools

from sipcm.decode.packet import Payload
from sipcm.sip.message import Credentials, NameAddr, SipMessage, Uri, Via

S = 1_000_000_000
ALICE = "10.0.0.1:5060"
BOB = "10.0.0.2:5060"
PROXY = "10.0.0.9:5060"
_branches = itertools.count(1)


def ns(t: float) -> int:
    """Seconds to nanoseconds (exact for the millisecond values tests use)."""
    return round(t * 1000) * 1_000_000


def uri(text: str) -> Uri:
    """Parse the tiny URI forms used in tests: scheme:[user@]host[:port]."""
    scheme, _, rest = text.partition(":")
    user, _, hostport = rest.rpartition("@")
    host, _, port = hostport.partition(":")
    return Uri(text, scheme, user or None, host, int(port) if port else None)


def na(text: str, tag: str | None = None, **params: str) -> NameAddr:
    return NameAddr(uri(text), None, tag, dict(params))


def payload(ts: float, src: str, dst: str, direction: str | None = None) -> Payload:
    sip, _, spt = src.rpartition(":")
    dip, _, dpt = dst.rpartition(":")
    return Payload(b"", ns(ts), sip, dip, int(spt), int(dpt), "udp", 4, True, direction=direction)


def creds(user: str = "alice", proxy: bool = False) -> Credentials:
    return Credentials("Digest", user, "example.com", proxy)


def request(
    method: str,
    call_id: str,
    from_tag: str | None,
    cseq: int,
    ts: float,
    src: str = ALICE,
    dst: str = BOB,
    *,
    to_tag: str | None = None,
    frm: str = "sip:alice@example.com",
    to: str = "sip:bob@example.com",
    ruri: str | None = None,
    creds: Credentials | None = None,
    contacts: list[NameAddr] | None = None,
    contact_star: bool = False,
    expires: int | None = None,
    branch: str | None = None,
    cseq_method: str | None = None,
) -> SipMessage:
    host = src.rpartition(":")[0]
    via = Via("UDP", host, 5060, branch or f"z9hG4bK{next(_branches)}")
    return SipMessage(
        True,
        method,
        uri(ruri or to),
        None,
        None,
        call_id,
        na(frm, from_tag),
        na(to, to_tag),
        cseq,
        cseq_method or method,
        vias=[via],
        contacts=list(contacts or []),
        contact_star=contact_star,
        expires=expires,
        credentials=creds,
        payload=payload(ts, src, dst),
    )


def invite(
    call_id: str,
    from_tag: str,
    cseq: int,
    ts: float,
    src: str = ALICE,
    dst: str = BOB,
    creds: Credentials | None = None,
    **kw: object,
) -> SipMessage:
    """An INVITE (without To-tag unless `to_tag=` is given)."""
    return request("INVITE", call_id, from_tag, cseq, ts, src, dst, creds=creds, **kw)  # type: ignore[arg-type]


def resp(
    req: SipMessage,
    status: int,
    ts: float,
    to_tag: str | None = None,
    *,
    reason: str | None = None,
    contacts: list[NameAddr] | None = None,
    expires: int | None = None,
) -> SipMessage:
    """A response to `req`, sent back from its destination to its source."""
    p = req.payload
    assert p is not None
    tag = to_tag if to_tag is not None else req.to.tag
    return SipMessage(
        False,
        None,
        None,
        status,
        reason or REASONS.get(status, "Whatever"),
        req.call_id,
        req.from_,
        dataclasses.replace(req.to, tag=tag),
        req.cseq,
        req.cseq_method,
        vias=list(req.vias),
        contacts=list(contacts or []),
        expires=expires,
        payload=payload(ts, f"{p.dst_ip}:{p.dst_port}", f"{p.src_ip}:{p.src_port}"),
    )


def in_dialog(method: str, inv: SipMessage, to_tag: str, cseq: int, ts: float,
              by_callee: bool = False) -> SipMessage:  # fmt: skip
    """A request inside the dialog of `inv` (ACK, BYE, re-INVITE, INFO, ...)."""
    p = inv.payload
    assert p is not None
    a, b = f"{p.src_ip}:{p.src_port}", f"{p.dst_ip}:{p.dst_port}"
    if by_callee:
        return request(method, inv.call_id, to_tag, cseq, ts, b, a, to_tag=inv.from_.tag,
                       frm=inv.to.uri.original, to=inv.from_.uri.original)  # fmt: skip
    return request(method, inv.call_id, inv.from_.tag, cseq, ts, a, b, to_tag=to_tag,
                   frm=inv.from_.uri.original, to=inv.to.uri.original)  # fmt: skip


def cancel(inv: SipMessage, ts: float) -> SipMessage:
    """CANCEL of `inv`: same branch, CSeq number, From, To (RFC 3261 9.1)."""
    m = again(inv, ts)
    return m.replace(method="CANCEL", cseq_method="CANCEL")


def ack(inv: SipMessage, to_tag: str, ts: float) -> SipMessage:
    return in_dialog("ACK", inv, to_tag, inv.cseq, ts)


def again(msg: SipMessage, ts: float) -> SipMessage:
    """A retransmission: the same message later."""
    p = msg.payload
    assert p is not None
    return msg.replace(payload=dataclasses.replace(p, ts_ns=ns(ts)))


def proxied(msg: SipMessage, ts: float, src: str, dst: str) -> SipMessage:
    """The copy a proxy forwards: requests get one more Via (new branch), responses one less."""
    if msg.is_request:
        vias = [Via("UDP", src.rpartition(":")[0], 5060, f"z9hG4bKp{next(_branches)}"), *msg.vias]
    else:
        vias = msg.vias[1:]
    return msg.replace(vias=vias, payload=payload(ts, src, dst))


def via_chain(msg: SipMessage, extra: int) -> SipMessage:
    """`msg` with `extra` Vias below the top one (as received from behind proxies)."""
    more = [Via("UDP", "10.9.9.9", 5060, f"z9hG4bKx{next(_branches)}") for _ in range(extra)]
    return msg.replace(vias=[*msg.vias, *more])


REASONS = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
}


def feed(tracker: object, msgs: list[SipMessage], until: float | None = None) -> list:
    """Process `msgs` in order, then advance the clock to `until` seconds; all outcomes."""
    out: list = []
    for m in msgs:
        out += tracker.process(m)  # type: ignore[attr-defined]
    if until is not None:
        out += tracker.advance(ns(until))  # type: ignore[attr-defined]
    return out


def brief(outcomes: list) -> list[tuple]:
    """(action, call_id, status, reason, ts in seconds) per outcome."""
    return [(o.action, o.call_id, o.status, o.reason, o.ts_ns / S) for o in outcomes]


def kept(m: SipMessage | None) -> tuple | None:
    """What a stored copy of a message keeps of it (for comparisons in tests)."""
    if m is None:
        return None
    return (m.is_request, m.method, m.status, m.call_id, m.cseq, m.from_, m.to, m.uri)
