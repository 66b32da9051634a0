"""Payload: one SIP candidate (UDP datagram or framed TCP message) with its network context.

This is the hand-off from `decode/` to `sip/`. Addresses are text (socket.inet_ntop) because
every later stage wants text; they are computed once per payload.
"""

from __future__ import annotations

from dataclasses import dataclass

# Dataclasses with their constructor written out: a compiled dataclass keeps the interpreted
# `__init__` that `dataclasses` generates (see sip/message.py).


@dataclass(slots=True, init=False)
class Tunnel:
    """Outer view of an encapsulated payload (VXLAN, IP-in-IP, GRE, GTP-U)."""

    kind: str  # "vxlan", "ipip", "gre", "gtp"
    src_ip: str
    dst_ip: str
    src_port: int | None = None
    dst_port: int | None = None
    vni: int | None = None  # VXLAN network identifier, GTP TEID for "gtp"

    def __init__(
        self,
        kind: str,
        src_ip: str,
        dst_ip: str,
        src_port: int | None = None,
        dst_port: int | None = None,
        vni: int | None = None,
    ) -> None:
        self.kind = kind
        self.src_ip = src_ip
        self.dst_ip = dst_ip
        self.src_port = src_port
        self.dst_port = dst_port
        self.vni = vni


@dataclass(slots=True, init=False)
class Payload:
    """Application bytes of one UDP datagram or one framed TCP message, plus where it came from."""

    data: bytes
    ts_ns: int  # capture time of the (last) packet that completed it
    src_ip: str
    dst_ip: str
    src_port: int
    dst_port: int
    transport: str  # "udp" or "tcp"
    ip_version: int  # 4 or 6
    on_sip_port: bool  # source or destination port is a configured SIP port
    ifindex: int = 0
    direction: str | None = None  # "ingress", "egress" or None (replay)
    vlan: int | None = None  # outermost VLAN id
    tunnel: Tunnel | None = None
    reassembled: bool = False  # built from several IP fragments or TCP segments
    frame_no: int = 0  # 1-based frame number in a replayed file of the first packet, 0 live

    def __init__(
        self,
        data: bytes,
        ts_ns: int,
        src_ip: str,
        dst_ip: str,
        src_port: int,
        dst_port: int,
        transport: str,
        ip_version: int,
        on_sip_port: bool,
        ifindex: int = 0,
        direction: str | None = None,
        vlan: int | None = None,
        tunnel: Tunnel | None = None,
        reassembled: bool = False,
        frame_no: int = 0,
    ) -> None:
        self.data = data
        self.ts_ns = ts_ns
        self.src_ip = src_ip
        self.dst_ip = dst_ip
        self.src_port = src_port
        self.dst_port = dst_port
        self.transport = transport
        self.ip_version = ip_version
        self.on_sip_port = on_sip_port
        self.ifindex = ifindex
        self.direction = direction
        self.vlan = vlan
        self.tunnel = tunnel
        self.reassembled = reassembled
        self.frame_no = frame_no
