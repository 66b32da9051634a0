"""Link layers: Ethernet, 802.1Q/802.1ad tags, PPPoE sessions, Linux cooked (SLL, SLL2),
BSD null/loop and raw IP link types.

Input: frame bytes `data[off:end]` and the decoder `d`. Output: none directly; each function
finds the network-layer ethertype and offset and hands them to `d.ethertype`. Never raises on
short or odd frames: each rejection is a counter in `d.c`.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sipcm.decode.decoder import Decoder

ETH_IP4 = 0x0800
ETH_IP6 = 0x86DD
ETH_VLAN = (0x8100, 0x88A8, 0x9100)  # 802.1Q, 802.1ad, pre-standard QinQ
ETH_PPPOE_SESSION = 0x8864
ETH_TEB = 0x6558  # transparent Ethernet bridging (GRE)

# PPP protocol numbers carrying IP (RFC 1332, RFC 5072), as the ethertype they mean.
PPP_PROTOS = {0x0021: ETH_IP4, 0x0057: ETH_IP6}

# Address families of the null/loop link types: Linux 10, BSDs 24/28/30 are all AF_INET6.
_AF = {2: ETH_IP4, 10: ETH_IP6, 24: ETH_IP6, 28: ETH_IP6, 30: ETH_IP6}

_H = struct.Struct("!H").unpack_from
_HH = struct.Struct("!HH").unpack_from


def ethernet(d: Decoder, data: bytes, off: int, end: int) -> None:
    """Ethernet II; frames with an 802.3 length instead of a type count as `ethertype_other`."""
    if end - off < 14:
        d.c["eth_truncated"] += 1
        return
    d.ethertype(_H(data, off + 12)[0], data, off + 14, end)


def vlan(d: Decoder, data: bytes, off: int, end: int) -> None:
    """One 802.1Q/802.1ad tag (TCI, inner type); nested tags come back here via dispatch."""
    if end - off < 4:
        d.c["vlan_truncated"] += 1
        return
    tci, etype = _HH(data, off)
    if d.vlan is None:
        d.vlan = tci & 0x0FFF
    d.ethertype(etype, data, off + 4, end)


def pppoe(d: Decoder, data: bytes, off: int, end: int) -> None:
    """PPPoE session stage (RFC 2516 section 4): 6-byte header, then one PPP frame."""
    if end - off < 8:
        d.c["pppoe_truncated"] += 1
        return
    vt, code, _sid, plen = struct.unpack_from("!BBHH", data, off)
    if vt != 0x11 or code != 0:
        d.c["pppoe_bad_header"] += 1
        return
    if off + 6 + plen > end:
        d.c["pppoe_truncated"] += 1
        return
    ppp(d, data, off + 6, off + 6 + plen)


def ppp(d: Decoder, data: bytes, off: int, end: int) -> None:
    """A PPP frame: optional FF 03 address/control, then a 1- or 2-byte protocol (RFC 1661)."""
    if end - off >= 2 and data[off] == 0xFF and data[off + 1] == 0x03:
        off += 2
    if end - off < 1:
        d.c["ppp_truncated"] += 1
        return
    if data[off] & 1:  # protocol field compressed to one byte (RFC 1661 section 6.5)
        proto, off = data[off], off + 1
    elif end - off < 2:
        d.c["ppp_truncated"] += 1
        return
    else:
        proto, off = _H(data, off)[0], off + 2
    etype = PPP_PROTOS.get(proto)
    if etype is None:
        d.c["ppp_other"] += 1
        return
    d.ethertype(etype, data, off, end)


def linux_sll(d: Decoder, data: bytes, off: int, end: int) -> None:
    """Linux cooked v1: 16-byte header, protocol (ethertype) in the last two bytes."""
    if end - off < 16:
        d.c["link_truncated"] += 1
        return
    d.ethertype(_H(data, off + 14)[0], data, off + 16, end)


def linux_sll2(d: Decoder, data: bytes, off: int, end: int) -> None:
    """Linux cooked v2: 20-byte header, protocol (ethertype) in the first two bytes."""
    if end - off < 20:
        d.c["link_truncated"] += 1
        return
    d.ethertype(_H(data, off)[0], data, off + 20, end)


def _family(d: Decoder, af: int, data: bytes, off: int, end: int) -> None:
    etype = _AF.get(af)
    if etype is None:
        d.c["link_other_family"] += 1
        return
    d.ethertype(etype, data, off, end)


def null(d: Decoder, data: bytes, off: int, end: int) -> None:
    """BSD loopback: 4-byte address family in the byte order of the capturing host."""
    if end - off < 4:
        d.c["link_truncated"] += 1
        return
    (af,) = struct.unpack_from("<I", data, off)
    if af > 0xFFFF:
        (af,) = struct.unpack_from(">I", data, off)
    _family(d, af, data, off + 4, end)


def loop(d: Decoder, data: bytes, off: int, end: int) -> None:
    """OpenBSD loopback: 4-byte address family in network byte order."""
    if end - off < 4:
        d.c["link_truncated"] += 1
        return
    _family(d, struct.unpack_from(">I", data, off)[0], data, off + 4, end)


def raw(d: Decoder, data: bytes, off: int, end: int) -> None:
    """Raw IP: the version nibble says IPv4 or IPv6."""
    if end <= off:
        d.c["link_truncated"] += 1
        return
    v = data[off] >> 4
    if v == 4:
        d.ethertype(ETH_IP4, data, off, end)
    elif v == 6:
        d.ethertype(ETH_IP6, data, off, end)
    else:
        d.c["ip_bad_version"] += 1


def ipv4(d: Decoder, data: bytes, off: int, end: int) -> None:
    """LINKTYPE_IPV4: the frame is an IPv4 packet."""
    d.ethertype(ETH_IP4, data, off, end)


def ipv6(d: Decoder, data: bytes, off: int, end: int) -> None:
    """LINKTYPE_IPV6: the frame is an IPv6 packet."""
    d.ethertype(ETH_IP6, data, off, end)
