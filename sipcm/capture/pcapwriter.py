"""A small pcap writer: SIP payloads wrapped in Ethernet[/802.1Q]/IPv4|IPv6/UDP|TCP frames.

Used to generate scenario captures (tests), traffic (benchmarks) and the per-call pcaps the
web API serves (`rebuild.py`). Frames are well formed
(IPv4 header checksum set; UDP/TCP checksums zero, which receivers of a capture ignore).
"""

from __future__ import annotations

import ipaddress
import struct
from typing import BinaryIO

_ETH_SRC = b"\x02\x00\x00\x00\x00\x01"
_ETH_DST = b"\x02\x00\x00\x00\x00\x02"


def _ip4_checksum(hdr: bytes) -> int:
    s = sum(struct.unpack("!10H", hdr))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ip_packet(
    src: str, dst: str, proto: int, l4: bytes, ident: int = 0, frag: int = 0
) -> tuple[int, bytes]:
    """An IPv4 or IPv6 packet (by address family) carrying `l4`; returns (ethertype, bytes).
    `frag` is the IPv4 flags and fragment offset field (IPv6 fragments carry their own
    extension header in `l4`)."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        hdr = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(l4),
            ident & 0xFFFF,
            frag,
            64,
            proto,
            0,
            s.packed,
            d.packed,
        )
        hdr = hdr[:10] + struct.pack("!H", _ip4_checksum(hdr)) + hdr[12:]
        return 0x0800, hdr + l4
    hdr = struct.pack("!IHBB16s16s", 6 << 28, len(l4), proto, 64, s.packed, d.packed)
    return 0x86DD, hdr + l4


def eth_header(etype: int, vlan: int | None = None) -> bytes:
    """An Ethernet header (802.1Q-tagged when `vlan` is set) for a payload of `etype`."""
    tag = b"" if vlan is None else struct.pack("!HH", 0x8100, vlan & 0x0FFF)
    return _ETH_DST + _ETH_SRC + tag + struct.pack("!H", etype)


def udp_frame(
    src: str, sport: int, dst: str, dport: int, payload: bytes, vlan: int | None = None
) -> bytes:
    """An Ethernet frame (802.1Q-tagged when `vlan` is set) with one UDP datagram."""
    udp = struct.pack("!HHHH", sport, dport, (8 + len(payload)) & 0xFFFF, 0) + payload
    etype, ip = ip_packet(src, dst, 17, udp)
    return eth_header(etype, vlan) + ip


def tcp_frame(
    src: str,
    sport: int,
    dst: str,
    dport: int,
    seq: int,
    payload: bytes,
    flags: int = 0x18,
    vlan: int | None = None,
) -> bytes:
    """An Ethernet frame (802.1Q-tagged when `vlan` is set) with one TCP segment (default
    flags PSH|ACK)."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, 0, 5 << 4, flags, 65535, 0, 0)
    etype, ip = ip_packet(src, dst, 6, tcp + payload)
    return eth_header(etype, vlan) + ip


class PcapWriter:
    """Writes a classic little-endian pcap (nanosecond timestamps) with Ethernet frames."""

    MAGIC_NS = 0xA1B23C4D

    def __init__(self, fh: BinaryIO, linktype: int = 1, snaplen: int = 262144) -> None:
        self.fh = fh
        fh.write(struct.pack("<IHHiIII", self.MAGIC_NS, 2, 4, 0, 0, snaplen, linktype))

    def write(self, ts_ns: int, frame: bytes) -> None:
        """Append one frame captured at `ts_ns` (ns since the epoch)."""
        sec, nsec = divmod(ts_ns, 1_000_000_000)
        self.fh.write(struct.pack("<IIII", sec, nsec, len(frame), len(frame)))
        self.fh.write(frame)
