"""Decoder: RecordBatch -> list[Payload], through link, IP, transport and tunnel layers.

Input: batches from `capture/` (pcap replay or the live ring). Output: one `Payload` per UDP
datagram, or per SIP message framed by the TCP reassembler, that is a SIP candidate (on a SIP
port, or starting with a SIP start line when `heuristic`). IP fragments are reassembled
(`frag.py`); TCP segments go to `stream.TcpReassembler`.

The dispatch tables below are the only place that says which layer follows which. Layers are
plain functions over `(data, offset, end)` using struct.unpack_from; no per-layer objects.
Ethernet/IPv4/UDP frames without fragments or tunnels take an inline fast path. Never raises
on any frame: every rejected frame increments one named counter of the `decode` group.
"""

from __future__ import annotations

import socket
import struct
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final

from sipcm.capture import records as rec
from sipcm.decode import ip4, ip6, link, tcp, tunnels, udp
from sipcm.decode.detect import looks_sip
from sipcm.decode.frag import FragmentReassembler
from sipcm.decode.packet import Payload, Tunnel

if TYPE_CHECKING:
    from sipcm.decode.stream import TcpReassembler

# -- dispatch tables -----------------------------------------------------------------------------

LINK_TYPES: dict[int, Callable] = {
    rec.LINKTYPE_ETHERNET: link.ethernet,
    rec.LINKTYPE_LINUX_SLL: link.linux_sll,
    rec.LINKTYPE_LINUX_SLL2: link.linux_sll2,
    rec.LINKTYPE_NULL: link.null,
    rec.LINKTYPE_LOOP: link.loop,
    rec.LINKTYPE_RAW: link.raw,
    rec.LINKTYPE_IPV4: link.ipv4,
    rec.LINKTYPE_IPV6: link.ipv6,
}
ETHER_TYPES: dict[int, Callable] = {
    link.ETH_IP4: ip4.decode,
    link.ETH_IP6: ip6.decode,
    **dict.fromkeys(link.ETH_VLAN, link.vlan),
    link.ETH_PPPOE_SESSION: link.pppoe,
}
IP_PROTOS: dict[int, Callable] = {
    17: udp.decode,
    6: tcp.decode,
    4: tunnels.ipip4,
    41: tunnels.ipip6,
    47: tunnels.gre,
}
# UDP tunnels: VXLAN by destination port (configurable, wins over SIP ports); GTP-U on either
# port unless the datagram is on a SIP port.
UDP_PORT_TUNNELS: dict[int, Callable] = {tunnels.GTP_U_PORT: tunnels.gtp_u}

MAX_DEPTH = 24  # nested headers (tags, tunnels) per frame: bounds crafted recursion
# Addresses whose text form is cached (each cache is emptied when it has more). Small enough to
# stay in the CPU caches whatever the number of hosts a long capture shows (a miss costs
# about as much as a hit: formatting 4 bytes), big enough for the hosts of the calls in progress.
ADDR_CACHE: Final = 4096
_TCP_CONTROL = 0x07  # FIN, SYN, RST
# The inline path reads Ethernet (14 bytes) + IPv4 without options (20) + UDP (8) byte by byte:
# compiled, indexing bytes is a native read, where struct.unpack_from was a generic call
# returning ten boxed integers. Final: compiled, a constant, not a module dict lookup.
_ETH_IP4_UDP_MIN: Final = 42
_UDP_AT: Final = 34  # UDP header offset in such a frame
# Port classes (`Decoder._port_class`, one byte per port number): a configured SIP port, a
# UDP tunnel port (VXLAN destination or GTP-U).
_SIP_PORT: Final = 1
_TUNNEL_PORT: Final = 2
# NAT keep-alives: CRLF (RFC 5626 section 3.5.1), spaces or NULs, never a SIP message.
_KEEPALIVE = frozenset(b"\r\n \t\x00")
# The same as a table indexed by byte value (the inline path's check of a payload's first byte).
_FILLER: Final = bytes(1 if b in _KEEPALIVE else 0 for b in range(256))


def _as_list(column: object) -> list[int]:
    """A batch column as a list (the pcap reader's are lists already; arrays convert)."""
    if isinstance(column, list):
        return column
    return column.tolist()  # type: ignore[attr-defined]


def is_keepalive(data: bytes, off: int, end: int) -> bool:
    """True when `data[off:end]` holds only keep-alive filler bytes."""
    return not data[off:end].strip(b"\r\n \t\x00")


class Decoder:
    """Turns batches of frames into SIP candidate payloads; keeps fragment and TCP state."""

    def __init__(
        self,
        counters: Counter[str],
        *,
        sip_ports: Iterable[int] = (5060,),
        vxlan_ports: Iterable[int] = (4789,),
        heuristic: bool = True,
        frag_max_datagrams: int = 1024,
        frag_timeout_s: float = 30.0,
        frag_max_bytes: int = 65535,
        tcp: TcpReassembler | None = None,
        fast_path: bool = True,
    ) -> None:
        """`fast_path=False` sends every frame through the layer functions (tests compare)."""
        self.c = counters
        self.heuristic = heuristic
        self.frag = FragmentReassembler(
            counters,
            max_datagrams=frag_max_datagrams,
            timeout_s=frag_timeout_s,
            max_bytes=frag_max_bytes,
        )
        self.tcp = tcp
        self._addr: dict[bytes, str] = {}
        self._addr4: dict[int, str] = {}  # the fast path's cache, keyed by the address as int
        self.fast_path = fast_path
        self.set_ports(sip_ports, vxlan_ports)
        # Context of the frame being decoded (read by the layer functions).
        self.ts = 0
        self.fno = 0
        self.ifx = 0
        self.dirname: str | None = None
        self.vlan: int | None = None
        self.tunnel: Tunnel | None = None
        self.reasm = False
        self.depth = 0
        self.out: list[Payload] = []

    def set_ports(self, sip_ports: Iterable[int], vxlan_ports: Iterable[int]) -> None:
        """Replace the SIP and VXLAN port sets."""
        self.sip_ports = frozenset(sip_ports)
        self.udp_dport_tunnels = dict.fromkeys(vxlan_ports, tunnels.vxlan)
        self.udp_port_tunnels = dict(UDP_PORT_TUNNELS)
        classes = bytearray(65536)
        for port in self.sip_ports:
            classes[port] = _SIP_PORT
        for port in (*self.udp_dport_tunnels, *UDP_PORT_TUNNELS):
            classes[port] = classes[port] | _TUNNEL_PORT
        self._port_class = bytes(classes)

    def expire(self, now_ns: int) -> None:
        """Drop fragment sets and TCP streams that timed out by capture time `now_ns`."""
        self.frag.expire(now_ns)
        if self.tcp is not None:
            self.tcp.expire(now_ns)

    # -- per batch ---------------------------------------------------------------------------

    def decode(self, batch: rec.RecordBatch) -> list[Payload]:
        """Decode every frame of `batch`; return its SIP candidate payloads in frame order."""
        n = len(batch)
        if not n:
            return []
        c = self.c
        c["frames"] += n
        handler = LINK_TYPES.get(batch.linktype)
        if handler is None:
            c["link_unsupported"] += n
            return []
        data = batch.data if isinstance(batch.data, bytes) else bytes(batch.data)
        offs = _as_list(batch.offset)
        caps = _as_list(batch.caplen)
        tss = _as_list(batch.ts_ns)
        ifxs = _as_list(batch.ifindex)
        dirs = _as_list(batch.direction)
        first = batch.first_frame
        out: list[Payload] = []
        self.out = out
        fast = self.fast_path and batch.linktype == rec.LINKTYPE_ETHERNET
        port_class = self._port_class
        heuristic = self.heuristic
        addr = self._addr4
        names = rec.DIRECTION_NAMES
        not_sip = 0
        # Typed, so the compiled build computes with machine integers.
        s: int
        e: int
        u: int
        tot: int
        ulen: int
        sport: int
        dport: int
        cls: int
        src: int
        dst: int
        for i in range(n):
            s = offs[i]
            e = s + caps[i]
            if (
                fast
                and e - s >= _ETH_IP4_UDP_MIN
                and data[s + 12] == 0x08  # ethertype IPv4
                and data[s + 13] == 0x00
                and data[s + 14] == 0x45  # version 4, no options
                and data[s + 23] == 17  # UDP
                and not (data[s + 20] & 0x3F or data[s + 21])  # no fragment offset, no MF
            ):
                u = s + _UDP_AT
                tot = data[s + 16] << 8 | data[s + 17]
                ulen = data[u + 4] << 8 | data[u + 5]
                sport = data[u] << 8 | data[u + 1]
                dport = data[u + 2] << 8 | data[u + 3]
                cls = port_class[sport] | port_class[dport]
                if 28 <= tot <= e - s - 14 and 8 < ulen <= tot - 20 and not cls & _TUNNEL_PORT:
                    on = cls & _SIP_PORT != 0
                    if not on and not (heuristic and looks_sip(data, u + 8)):
                        not_sip += 1
                        continue
                    if _FILLER[data[u + 8]] and is_keepalive(data, u + 8, u + ulen):
                        c["udp_keepalive"] += 1
                        continue
                    src = data[s + 26] << 24 | data[s + 27] << 16 | data[s + 28] << 8 | data[s + 29]
                    dst = data[s + 30] << 24 | data[s + 31] << 16 | data[s + 32] << 8 | data[s + 33]
                    d = dirs[i]
                    out.append(
                        Payload(
                            data[u + 8 : u + ulen],
                            tss[i],
                            addr.get(src) or self._ntop4(src),
                            addr.get(dst) or self._ntop4(dst),
                            sport,
                            dport,
                            "udp",
                            4,
                            on,
                            ifxs[i],
                            names.get(d) if d else None,
                            None,
                            None,
                            False,
                            first + i if first else 0,
                        )
                    )
                    continue
            self.ts = tss[i]
            self.fno = first + i if first else 0
            self.ifx = ifxs[i]
            self.dirname = names.get(dirs[i])
            self.vlan = None
            self.tunnel = None
            self.reasm = False
            self.depth = 0
            try:
                handler(self, data, s, e)
            except (struct.error, IndexError, ValueError):
                c["decode_error"] += 1  # a layer bug, never a crash of the sensor
        if not_sip:
            c["not_sip_candidate"] += not_sip
        if out:
            c["payloads"] += len(out)
        self.expire(tss[-1])
        return out

    # -- called by the layer modules ---------------------------------------------------------

    def ethertype(self, etype: int, data: bytes, off: int, end: int) -> None:
        """Decode `data[off:end]` as the protocol named by an ethertype."""
        handler = ETHER_TYPES.get(etype)
        if handler is None:
            self.c["ethertype_other"] += 1
            return
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.c["too_deep"] += 1
            return
        handler(self, data, off, end)

    def ip_proto(
        self, proto: int, data: bytes, off: int, end: int, src: bytes, dst: bytes, ver: int
    ) -> None:
        """Decode an IP payload by its protocol number."""
        handler = IP_PROTOS.get(proto)
        if handler is None:
            self.c["ip_proto_other"] += 1
            return
        handler(self, data, off, end, src, dst, ver)

    def enter(
        self,
        kind: str,
        src: bytes,
        dst: bytes,
        sport: int | None = None,
        dport: int | None = None,
        vni: int | None = None,
    ) -> None:
        """Record a decapsulated tunnel; only the outermost one per frame is kept."""
        if self.tunnel is None:
            self.tunnel = Tunnel(kind, self.ntop(src), self.ntop(dst), sport, dport, vni)

    def ntop(self, raw: bytes) -> str:
        """Text form of a 4- or 16-byte address (cached: captures repeat few addresses)."""
        txt = self._addr.get(raw)
        if txt is None:
            if len(self._addr) > ADDR_CACHE:
                self._addr.clear()
            fam = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
            txt = self._addr[raw] = socket.inet_ntop(fam, raw)
        return txt

    def _ntop4(self, raw: int) -> str:
        """`ntop` of an IPv4 address given as an integer (the fast path's cache). Dotted
        decimal as inet_ntop writes it, formatted here: compiled, native integer formatting,
        where inet_ntop was two generic calls."""
        if len(self._addr4) > ADDR_CACHE:
            self._addr4.clear()
        txt = self._addr4[raw] = f"{raw >> 24}.{raw >> 16 & 255}.{raw >> 8 & 255}.{raw & 255}"
        return txt

    def _payload(
        self,
        data: bytes,
        src: bytes,
        dst: bytes,
        sport: int,
        dport: int,
        transport: str,
        ver: int,
        on: bool,
        reasm: bool,
    ) -> Payload:
        return Payload(
            data, self.ts, self.ntop(src), self.ntop(dst), sport, dport, transport, ver, on,
            self.ifx, self.dirname, self.vlan, self.tunnel, reasm, self.fno,
        )  # fmt: skip

    def emit_udp(
        self, data: bytes, off: int, end: int, src: bytes, dst: bytes, sport: int, dport: int,
        ver: int,
    ) -> None:  # fmt: skip
        """A UDP payload: keep it when it is a SIP candidate."""
        if off >= end:
            self.c["udp_empty"] += 1
            return
        on = sport in self.sip_ports or dport in self.sip_ports
        if not on and not (self.heuristic and looks_sip(data, off)):
            self.c["not_sip_candidate"] += 1
            return
        if data[off] in _KEEPALIVE and is_keepalive(data, off, end):
            self.c["udp_keepalive"] += 1
            return
        self.out.append(
            self._payload(data[off:end], src, dst, sport, dport, "udp", ver, on, self.reasm)
        )

    def emit_tcp(
        self, data: bytes, off: int, end: int, src: bytes, dst: bytes, sport: int, dport: int,
        seq: int, flags: int, ver: int,
    ) -> None:  # fmt: skip
        """A TCP segment: feed candidate streams to the reassembler, keep the messages."""
        on = sport in self.sip_ports or dport in self.sip_ports
        has_data = off < end
        tcp = self.tcp
        key = (self.ntop(src), sport, self.ntop(dst), dport)
        if not (
            on
            or (tcp is not None and tcp.has(key))
            or (self.heuristic and has_data and looks_sip(data, off))
        ):
            if has_data:
                self.c["not_sip_candidate"] += 1
            return
        if tcp is None:  # no reassembler: each segment's data is a payload as it stands
            if has_data:
                self.out.append(
                    self._payload(data[off:end], src, dst, sport, dport, "tcp", ver, on, self.reasm)
                )
            return
        if not has_data and not flags & _TCP_CONTROL:
            return  # a bare ACK carries nothing for the stream
        for msg, spans in tcp.segment(key, seq, flags, data[off:end], self.ts):
            self.out.append(
                self._payload(msg, src, dst, sport, dport, "tcp", ver, on, spans or self.reasm)
            )
