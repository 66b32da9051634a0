"""Tunnel decapsulation: VXLAN, GTP-U, GRE and IP-in-IP.

Input: the tunnel payload range `data[off:end]` with the outer addresses (and ports for the
UDP tunnels). Output: the inner frame or packet handed back to the decoder's link/ethertype
dispatch. The outermost tunnel is recorded once per frame (`d.enter`). Never raises: short or
unsupported headers are counters. Nesting depth is bounded by the decoder's dispatch.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from sipcm.decode import link
from sipcm.decode.link import ETH_IP4, ETH_IP6, ETH_TEB

if TYPE_CHECKING:
    from sipcm.decode.decoder import Decoder

GTP_U_PORT = 2152
_GTP_TPDU = 0xFF
_GRE_C, _GRE_R, _GRE_K, _GRE_S, _GRE_A = 0x8000, 0x4000, 0x2000, 0x1000, 0x0080
_GRE_PPP = 0x880B  # PPTP enhanced GRE (RFC 2637) carries PPP

_VXLAN = struct.Struct("!B3xI").unpack_from
_GTP = struct.Struct("!BBHI").unpack_from
_HH = struct.Struct("!HH").unpack_from


def vxlan(
    d: Decoder, data: bytes, off: int, end: int, src: bytes, dst: bytes, sport: int, dport: int
) -> None:
    """VXLAN (RFC 7348 section 5): 8-byte header with the I flag, then an Ethernet frame."""
    if end - off < 8:
        d.c["vxlan_truncated"] += 1
        return
    flags, vni = _VXLAN(data, off)
    if not flags & 0x08:
        d.c["vxlan_bad_header"] += 1
        return
    d.c["vxlan_decap"] += 1
    d.enter("vxlan", src, dst, sport, dport, vni >> 8)
    link.ethernet(d, data, off + 8, end)


def gtp_u(
    d: Decoder, data: bytes, off: int, end: int, src: bytes, dst: bytes, sport: int, dport: int
) -> None:
    """GTP-U v1 (3GPP TS 29.281 section 5): T-PDUs only, extension headers skipped."""
    c = d.c
    if end - off < 8:
        c["gtp_truncated"] += 1
        return
    flags, mtype, glen, teid = _GTP(data, off)
    if flags >> 5 != 1 or not flags & 0x10:
        c["gtp_bad_header"] += 1  # not GTPv1, or GTP' (PT=0)
        return
    if mtype != _GTP_TPDU:
        c["gtp_not_tpdu"] += 1  # echo, error indication, end marker: no user payload
        return
    p = off + 8
    if p + glen > end:
        c["gtp_truncated"] += 1
        return
    end = p + glen
    if flags & 0x07:  # E, S or PN: sequence, N-PDU and next-extension-type fields follow
        if end - p < 4:
            c["gtp_truncated"] += 1
            return
        nxt = data[p + 3]
        p += 4
        while nxt:  # each extension: length in 4-byte units, ..., next type in its last byte
            ln = data[p] * 4 if p < end else 0
            if ln == 0 or p + ln > end:
                c["gtp_truncated"] += 1
                return
            nxt = data[p + ln - 1]
            p += ln
    if p >= end:
        c["gtp_truncated"] += 1
        return
    v = data[p] >> 4
    if v != 4 and v != 6:
        c["gtp_not_ip"] += 1
        return
    c["gtp_decap"] += 1
    d.enter("gtp", src, dst, sport, dport, teid)
    d.ethertype(ETH_IP4 if v == 4 else ETH_IP6, data, p, end)


def gre(d: Decoder, data: bytes, off: int, end: int, src: bytes, dst: bytes, ver: int) -> None:
    """GRE (RFC 2784/2890, and RFC 2637 version 1): optional fields by flag, then by type."""
    c = d.c
    if end - off < 4:
        c["gre_truncated"] += 1
        return
    flags, proto = _HH(data, off)
    version = flags & 7
    if flags & _GRE_R or version > 1:
        c["gre_unsupported"] += 1  # source routing (RFC 1701) or unknown version
        return
    hl = 4
    if flags & _GRE_C:
        hl += 4  # checksum + reserved1
    if flags & _GRE_K:
        hl += 4  # key (v1: payload length + call id)
    if flags & _GRE_S:
        hl += 4
    if version == 1 and flags & _GRE_A:
        hl += 4  # acknowledgment number
    if end - off < hl:
        c["gre_truncated"] += 1
        return
    off += hl
    c["gre_decap"] += 1
    d.enter("gre", src, dst)
    if proto == ETH_TEB:
        link.ethernet(d, data, off, end)
    elif proto == _GRE_PPP:
        link.ppp(d, data, off, end)
    else:
        d.ethertype(proto, data, off, end)


def ipip4(d: Decoder, data: bytes, off: int, end: int, src: bytes, dst: bytes, ver: int) -> None:
    """IPv4 inside IPv4 or IPv6 (IP protocol 4, RFC 2003)."""
    d.c["ipip_decap"] += 1
    d.enter("ipip", src, dst)
    d.ethertype(ETH_IP4, data, off, end)


def ipip6(d: Decoder, data: bytes, off: int, end: int, src: bytes, dst: bytes, ver: int) -> None:
    """IPv6 inside IPv4 or IPv6 (IP protocol 41, RFC 4213 / RFC 2473)."""
    d.c["ipip_decap"] += 1
    d.enter("ipip", src, dst)
    d.ethertype(ETH_IP6, data, off, end)
