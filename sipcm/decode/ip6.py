"""IPv6 (RFC 8200): fixed header, extension header walk, fragments to the reassembler.

Input: `data[off:end]` starting at an IPv6 header. Output: the upper-layer protocol and its
range (or the reassembled fragmentable part) handed to `d.ip_proto`. The walk skips hop-by-hop,
routing, destination options, AH and the other RFC 7045 extension headers, and stops at ESP
(encrypted) and No Next Header. It is a loop, not recursion, so header chains cost no stack.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sipcm.decode.decoder import Decoder

_HDR = struct.Struct("!IHB x16s16s").unpack_from
_FRAG = struct.Struct("!BxHI").unpack_from

# Extension headers with the (length + 1) * 8 layout: hop-by-hop, routing, destination
# options, mobility, HIP, shim6, experimental (RFC 8200 section 4, RFC 7045).
_EXT8 = frozenset((0, 43, 60, 135, 139, 140, 253, 254))
FRAGMENT, AH, ESP, NO_NEXT = 44, 51, 50, 59


def decode(d: Decoder, data: bytes, off: int, end: int) -> None:
    """Decode one IPv6 packet."""
    if end - off < 40:
        d.c["ip6_truncated"] += 1
        return
    vtf, plen, nh, src, dst = _HDR(data, off)
    if vtf >> 28 != 6:
        d.c["ip6_bad_header"] += 1
        return
    if plen == 0:  # jumbogram or segmentation offload on the capturing host
        plen = end - off - 40
    if off + 40 + plen > end:
        d.c["ip6_truncated"] += 1
        return
    walk(d, nh, data, off + 40, off + 40 + plen, src, dst)


def walk(d: Decoder, nh: int, data: bytes, off: int, end: int, src: bytes, dst: bytes) -> None:
    """Follow the next-header chain from `nh` at `off` to the upper-layer protocol."""
    c = d.c
    while True:
        if nh in _EXT8 or nh == AH:
            if end - off < 8:
                c["ip6_ext_truncated"] += 1
                return
            nxt = data[off]
            hl = (data[off + 1] + 2) * 4 if nh == AH else (data[off + 1] + 1) * 8
        elif nh == FRAGMENT:
            if end - off < 8:
                c["ip6_ext_truncated"] += 1
                return
            nxt, fo, ident = _FRAG(data, off)
            if fo & 0xFFF9 == 0:  # atomic fragment: offset 0, M clear (RFC 6946)
                off += 8
                nh = nxt
                continue
            key = (6, src, dst, nxt, ident)
            got = d.frag.add(key, fo & 0xFFF8, bool(fo & 1), data[off + 8 : end], d.ts)
            if got is None:
                return
            data = got
            d.reasm = True
            off, end, nh = 0, len(data), nxt
            continue
        elif nh == ESP:
            c["ip6_esp"] += 1
            return
        elif nh == NO_NEXT:
            c["ip6_no_next"] += 1
            return
        else:
            d.ip_proto(nh, data, off, end, src, dst, 6)
            return
        if off + hl > end:
            c["ip6_ext_truncated"] += 1
            return
        off += hl
        nh = nxt
