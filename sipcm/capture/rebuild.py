"""Frames rebuilt from stored messages: the per-call pcap of `GET /api/calls/{id}/pcap`.

Input: sipcm.flows records (addresses, ports, transport, VLAN, tunnel, whether the payload
was reassembled, raw text) in capture order. Output: a pcap that the decoder turns back into
the same payloads: per message an Ethernet frame (802.1Q when it had a VLAN) with IPv4/IPv6
and UDP or TCP (segments numbered on per direction of each connection), inside the tunnel
it came through (VXLAN, GTP-U, GRE or IP-in-IP, outer addresses and VNI/TEID as recorded).
A message that was reassembled is written in two pieces (two TCP segments, or two IP
fragments of the datagram), so its events say `sipcm.reassembled` again; the frame count
differs from the original capture, and so do `sipcm.frame` numbers.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO

from sipcm.capture.pcapwriter import PcapWriter, eth_header, ip_packet

MAX_SEGMENT = 60000  # TCP payload bytes per written segment (an IP packet holds < 64 KiB)
_IPPROTO_UDP, _IPPROTO_TCP, _IPPROTO_GRE, _IPPROTO_IPIP, _IPPROTO_IPV6 = 17, 6, 47, 4, 41
_IPPROTO_FRAG = 44  # IPv6 fragment extension header
_IP4_MF = 0x2000  # more fragments
_ETH_IP4 = 0x0800
_VXLAN_I = 0x08
_GTP_V1_PT, _GTP_TPDU = 0x30, 0xFF


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _tcp(sport: int, dport: int, seq: int, payload: bytes) -> bytes:
    flags = 0x18  # PSH|ACK
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, 0, 5 << 4, flags, 65535, 0, 0)
    return hdr + payload


def _fragments(src: str, dst: str, proto: int, l4: bytes, ident: int) -> list[tuple[int, bytes]]:
    """`l4` as two IP fragments (the first 8-byte aligned)."""
    cut = max(8, (len(l4) // 2) & ~7)
    parts = ((0, l4[:cut], 1), (cut, l4[cut:], 0))
    if ipaddress.ip_address(src).version == 4:
        return [
            ip_packet(src, dst, proto, part, ident, frag=(_IP4_MF if more else 0) | off // 8)
            for off, part, more in parts
        ]
    return [
        ip_packet(src, dst, _IPPROTO_FRAG, struct.pack("!BBHI", proto, 0, off | more, ident) + part)
        for off, part, more in parts
    ]


def _tunnel(etype: int, pkt: bytes, tunnel: tuple | None, vlan: int | None) -> bytes:
    """The inner IP packet `pkt` as a frame, through `tunnel` when it came through one."""
    if tunnel is None:
        return eth_header(etype, vlan) + pkt
    kind, tsrc, tdst, tsport, tdport, vni = tunnel
    if kind == "vxlan":
        inner = struct.pack("!B3xI", _VXLAN_I, (vni or 0) << 8) + eth_header(etype) + pkt
        oe, outer = ip_packet(tsrc, tdst, _IPPROTO_UDP, _udp(tsport, tdport, inner))
    elif kind == "gtp":
        inner = struct.pack("!BBHI", _GTP_V1_PT, _GTP_TPDU, len(pkt), vni or 0) + pkt
        oe, outer = ip_packet(tsrc, tdst, _IPPROTO_UDP, _udp(tsport, tdport, inner))
    elif kind == "gre":
        oe, outer = ip_packet(tsrc, tdst, _IPPROTO_GRE, struct.pack("!HH", 0, etype) + pkt)
    else:  # ipip
        proto = _IPPROTO_IPIP if etype == _ETH_IP4 else _IPPROTO_IPV6
        oe, outer = ip_packet(tsrc, tdst, proto, pkt)
    return eth_header(oe, vlan) + outer


def write_messages(fh: BinaryIO, messages: Iterable[Mapping[str, Any]]) -> int:
    """Write the pcap of `messages` (records with their raw text); returns the frame count."""
    w = PcapWriter(fh)
    seqs: dict[tuple, int] = {}
    n = 0
    for i, m in enumerate(messages):
        raw, ts = m["raw"], m["ts_ns"]
        src, sport, dst, dport = m["src_ip"], m["src_port"], m["dst_ip"], m["dst_port"]
        packets: list[tuple[int, bytes]] = []
        if m["transport"] == "tcp":
            key = (src, sport, dst, dport)
            seq = seqs.get(key, 1)
            step = MAX_SEGMENT
            if m["reassembled"] and len(raw) > 1:
                step = min(step, len(raw) // 2 + 1)
            for off in range(0, len(raw), step):
                part = raw[off : off + step]
                packets.append(ip_packet(src, dst, _IPPROTO_TCP, _tcp(sport, dport, seq, part)))
                seq += len(part)
            seqs[key] = seq
        elif m["reassembled"] and len(raw) > 16:
            packets = _fragments(src, dst, _IPPROTO_UDP, _udp(sport, dport, raw), i + 1)
        else:
            packets.append(ip_packet(src, dst, _IPPROTO_UDP, _udp(sport, dport, raw)))
        for etype, pkt in packets:
            w.write(ts, _tunnel(etype, pkt, m["tunnel"], m["vlan"]))
            n += 1
    return n
