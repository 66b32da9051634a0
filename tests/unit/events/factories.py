"""Hand-built SipMessage / Payload / Outcome objects for the event and output tests."""

from __future__ import annotations

from sipcm.decode.packet import Payload, Tunnel
from sipcm.sip.message import Credentials, NameAddr, SipMessage, Uri
from sipcm.track.outcome import CallMetrics, Flow, Outcome, RegInfo

T0 = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z
ALICE = ("192.0.2.10", 5060)
BOB = ("192.0.2.20", 5062)


def payload(src=ALICE, dst=BOB, ts_ns=T0, data=b"x" * 100, **kw) -> Payload:
    return Payload(
        data=data,
        ts_ns=ts_ns,
        src_ip=src[0],
        dst_ip=dst[0],
        src_port=src[1],
        dst_port=dst[1],
        transport=kw.pop("transport", "udp"),
        ip_version=kw.pop("ip_version", 4),
        on_sip_port=True,
        **kw,
    )


def alice() -> NameAddr:
    uri = Uri("sip:alice@atlanta.example.com", "sip", "alice", "atlanta.example.com")
    return NameAddr(uri, display="Alice", tag="1928301774")


def bob(tag: str | None = None) -> NameAddr:
    return NameAddr(Uri("sip:bob@biloxi.example.com", "sip", "bob", "biloxi.example.com"), tag=tag)


def invite(pl: Payload | None = None, **kw) -> SipMessage:
    """Alice's INVITE to Bob (RFC 3261 section 24.2 flavour)."""
    m = SipMessage(
        is_request=True,
        method="INVITE",
        uri=Uri("sip:bob@192.0.2.20:5062", "sip", "bob", "192.0.2.20", 5062),
        status=None,
        reason=None,
        call_id="a84b4c76e66710@pc33.atlanta.example.com",
        from_=alice(),
        to=bob(),
        cseq=314159,
        cseq_method="INVITE",
        contacts=[NameAddr(Uri("sip:alice@192.0.2.10", "sip", "alice", "192.0.2.10"))],
        user_agent="Softphone/1.0",
        payload=pl if pl is not None else payload(),
    )
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def response(req: SipMessage, status: int, reason: str, pl: Payload | None = None, **kw):
    m = SipMessage(
        is_request=False,
        method=None,
        uri=None,
        status=status,
        reason=reason,
        call_id=req.call_id,
        from_=req.from_,
        to=bob("a6c85cf"),
        cseq=req.cseq,
        cseq_method=req.cseq_method,
        server="PBX/2.1",
        payload=pl if pl is not None else payload(BOB, ALICE, ts_ns=T0),
    )
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def register(credentials: Credentials | None = None, expires: str = "3600") -> SipMessage:
    uri = Uri("sip:bob@biloxi.example.com", "sip", "bob", "biloxi.example.com")
    contact = NameAddr(
        Uri("sip:bob@[2001:db8::5]:5070", "sip", "bob", "[2001:db8::5]", 5070),
        params={"expires": expires},
    )
    return SipMessage(
        is_request=True,
        method="REGISTER",
        uri=Uri("sip:registrar.biloxi.example.com", "sip", None, "registrar.biloxi.example.com"),
        status=None,
        reason=None,
        call_id="843817637684230@998sdasdh09",
        from_=NameAddr(uri, tag="456248"),
        to=NameAddr(uri),
        cseq=1826,
        cseq_method="REGISTER",
        contacts=[contact],
        user_agent="Phone/3",
        credentials=credentials,
        payload=payload(("2001:db8::5", 5070), ("2001:db8::1", 5060), ip_version=6),
    )


__all__ = [
    "ALICE",
    "BOB",
    "T0",
    "CallMetrics",
    "Credentials",
    "Flow",
    "Outcome",
    "RegInfo",
    "Tunnel",
    "invite",
    "payload",
    "register",
    "response",
]
