"""IPv4 (RFC 791): header checks, padding trim, fragments to the reassembler.

Input: `data[off:end]` starting at an IPv4 header. Output: the transport payload range (or
the reassembled datagram) handed to `d.ip_proto`. It never verifies the header checksum:
captures taken on the sending host carry offloaded, not yet computed, checksums.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sipcm.decode.decoder import Decoder

# version/IHL, total length, id, flags/fragment offset, protocol, source, destination
_HDR = struct.Struct("!BxHHHxB2x4s4s").unpack_from
MF = 0x2000
FRAG_MASK = 0x3FFF  # MF flag and fragment offset: non-zero means a fragment


def decode(d: Decoder, data: bytes, off: int, end: int) -> None:
    """Decode one IPv4 packet."""
    if end - off < 20:
        d.c["ip4_truncated"] += 1
        return
    vihl, tot, ident, frag, proto, src, dst = _HDR(data, off)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < 20:
        d.c["ip4_bad_header"] += 1
        return
    if tot == 0:  # segmentation offload on the capturing host leaves it zero
        tot = end - off
    if tot < ihl:
        d.c["ip4_bad_header"] += 1
        return
    if off + tot > end:
        d.c["ip4_truncated"] += 1
        return
    end = off + tot  # drop link-layer padding
    if frag & FRAG_MASK:
        key = (4, src, dst, proto, ident)
        got = d.frag.add(key, (frag & 0x1FFF) * 8, bool(frag & MF), data[off + ihl : end], d.ts)
        if got is None:
            return
        data = got
        d.reasm = True
        d.ip_proto(proto, data, 0, len(data), src, dst, 4)
        return
    d.ip_proto(proto, data, off + ihl, end, src, dst, 4)
