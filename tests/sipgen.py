"""Builders of SIP message text and scenario captures for tests and benchmarks.

A `Leg` is one caller/callee pair; `req()` and `resp()` return wire bytes whose headers copy
each other as RFC 3261 requires (Via, From, To, Call-ID, CSeq). `Capture` collects timed
packets and writes a pcap with sipcm.capture.pcapwriter.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from sipcm.capture.pcapwriter import PcapWriter, tcp_frame, udp_frame

T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z, ns
MS = 1_000_000
S = 1_000_000_000

_branches = itertools.count(1)


@dataclass
class Req:
    """A request as sent: its text and the header values a response copies."""

    method: str
    ruri: str
    via: str
    from_hdr: str
    to_hdr: str
    call_id: str
    cseq: int
    raw: bytes


@dataclass
class Leg:
    """Caller `a` at (a_ip, a_port) talking to callee `b` at (b_ip, b_port)."""

    call_id: str
    a_user: str = "alice"
    b_user: str = "bob"
    domain: str = "example.com"
    a_ip: str = "192.0.2.10"
    a_port: int = 5060
    b_ip: str = "192.0.2.20"
    b_port: int = 5060
    from_tag: str = "ftag1"
    transport: str = "UDP"
    user_agent: str = "TestPhone/1.0"
    server: str = "TestServer/2.0"
    cseq: int = 0
    to_tag: str | None = None

    def req(
        self,
        method: str,
        *,
        cseq: int | None = None,
        branch: str | None = None,
        to_tag: str | None = None,
        headers: tuple[str, ...] = (),
        body: str = "",
        ruri: str | None = None,
        from_callee: bool = False,
        contact: str | None = None,
    ) -> Req:
        """Build a request; CSeq increments unless given (ACK/CANCEL reuse the INVITE's)."""
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        branch = branch or f"z9hG4bK{next(_branches)}"
        a_uri = f"sip:{self.a_user}@{self.domain}"
        b_uri = f"sip:{self.b_user}@{self.domain}"
        tt = to_tag if to_tag is not None else self.to_tag
        if from_callee:
            src_ip, src_port = self.b_ip, self.b_port
            from_hdr = f"<{b_uri}>;tag={tt}"
            to_hdr = f"<{a_uri}>;tag={self.from_tag}"
            ruri = ruri or f"sip:{self.a_user}@{self.a_ip}:{self.a_port}"
        else:
            src_ip, src_port = self.a_ip, self.a_port
            from_hdr = f'"{self.a_user.title()}" <{a_uri}>;tag={self.from_tag}'
            to_hdr = f"<{b_uri}>" + (f";tag={tt}" if tt else "")
            ruri = ruri or b_uri
        via = f"SIP/2.0/{self.transport} {src_ip}:{src_port};branch={branch};rport"
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: {via}",
            "Max-Forwards: 70",
            f"From: {from_hdr}",
            f"To: {to_hdr}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
        ]
        if contact is not None:
            lines.append(f"Contact: {contact}")
        elif method in ("INVITE", "REGISTER", "SUBSCRIBE"):
            lines.append(f"Contact: <sip:{self.a_user}@{src_ip}:{src_port}>")
        lines.append(f"User-Agent: {self.user_agent}")
        lines.extend(headers)
        raw = _finish(lines, body)
        return Req(method, ruri, via, from_hdr, to_hdr, self.call_id, cseq, raw)

    def resp(
        self,
        req: Req,
        status: int,
        reason: str,
        *,
        to_tag: str | None = None,
        headers: tuple[str, ...] = (),
        body: str = "",
    ) -> bytes:
        """Build the response to `req`; the To-tag is added for anything but 100."""
        to_hdr = req.to_hdr
        tag = to_tag or self.to_tag
        if status != 100 and ";tag=" not in to_hdr and tag:
            to_hdr += f";tag={tag}"
        lines = [
            f"SIP/2.0 {status} {reason}",
            f"Via: {req.via}",
            f"From: {req.from_hdr}",
            f"To: {to_hdr}",
            f"Call-ID: {req.call_id}",
            f"CSeq: {req.cseq} {req.method}",
            f"Server: {self.server}",
        ]
        lines.extend(headers)
        return _finish(lines, body)


def _finish(lines: list[str], body: str) -> bytes:
    b = body.encode()
    lines.append(f"Content-Length: {len(b)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + b


SDP = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


@dataclass
class Capture:
    """Timed packets, written as a pcap of Ethernet frames."""

    packets: list[tuple[int, bytes]] = field(default_factory=list)
    tcp_seq: dict[tuple[str, int, str, int], int] = field(default_factory=dict)

    def udp(self, ts: int, src: tuple[str, int], dst: tuple[str, int], data: bytes) -> None:
        self.packets.append((ts, udp_frame(src[0], src[1], dst[0], dst[1], data)))

    def tcp(self, ts: int, src: tuple[str, int], dst: tuple[str, int], data: bytes) -> None:
        key = (src[0], src[1], dst[0], dst[1])
        seq = self.tcp_seq.get(key, 1000)
        self.packets.append((ts, tcp_frame(src[0], src[1], dst[0], dst[1], seq, data)))
        self.tcp_seq[key] = seq + len(data)

    def a2b(self, leg: Leg, ts: int, data: bytes) -> None:
        """Caller to callee over the leg's transport."""
        send = self.tcp if leg.transport == "TCP" else self.udp
        send(ts, (leg.a_ip, leg.a_port), (leg.b_ip, leg.b_port), data)

    def b2a(self, leg: Leg, ts: int, data: bytes) -> None:
        """Callee to caller over the leg's transport."""
        send = self.tcp if leg.transport == "TCP" else self.udp
        send(ts, (leg.b_ip, leg.b_port), (leg.a_ip, leg.a_port), data)

    def write(self, path: Path) -> Path:
        with open(path, "wb") as fh:
            w = PcapWriter(fh)
            for ts, frame in sorted(self.packets, key=lambda p: p[0]):
                w.write(ts, frame)
        return path


def basic_call(
    cap: Capture, leg: Leg, t: int, *, talk_s: int = 10, bye_from_callee: bool = False
) -> int:
    """INVITE, 100, 180, 200, ACK, talk, BYE, 200. Returns the time of the last packet."""
    leg.to_tag = None
    inv = leg.req("INVITE", body=SDP, headers=("Content-Type: application/sdp",))
    cap.a2b(leg, t, inv.raw)
    cap.b2a(leg, t + 10 * MS, leg.resp(inv, 100, "Trying"))
    leg.to_tag = f"tt-{leg.call_id}"
    cap.b2a(leg, t + 200 * MS, leg.resp(inv, 180, "Ringing"))
    cap.b2a(leg, t + 2 * S, leg.resp(inv, 200, "OK", body=SDP))
    ack = leg.req("ACK", cseq=inv.cseq, ruri=f"sip:{leg.b_user}@{leg.b_ip}:{leg.b_port}")
    cap.a2b(leg, t + 2 * S + 20 * MS, ack.raw)
    end = t + (2 + talk_s) * S
    if bye_from_callee:
        bye = leg.req("BYE", from_callee=True, cseq=1)
        cap.b2a(leg, end, bye.raw)
        cap.a2b(leg, end + 30 * MS, leg.resp(bye, 200, "OK"))
    else:
        bye = leg.req("BYE", ruri=f"sip:{leg.b_user}@{leg.b_ip}:{leg.b_port}")
        cap.a2b(leg, end, bye.raw)
        cap.b2a(leg, end + 30 * MS, leg.resp(bye, 200, "OK"))
    return end + 30 * MS
