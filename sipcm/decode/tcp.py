"""TCP (RFC 9293): header checks, then the segment goes to `d.emit_tcp`.

Input: `data[off:end]` starting at a TCP header, with the raw IP addresses. Output: sequence
number, flags and the segment payload range for the decoder's stream logic. Options are
skipped by the data offset; the checksum is never verified.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sipcm.decode.decoder import Decoder

# ports, sequence number, (skip ack), data offset, flags
_HDR = struct.Struct("!HHI4xBB").unpack_from


def decode(d: Decoder, data: bytes, off: int, end: int, src: bytes, dst: bytes, ver: int) -> None:
    """Decode one TCP segment."""
    if end - off < 20:
        d.c["tcp_truncated"] += 1
        return
    sport, dport, seq, doff, flags = _HDR(data, off)
    hl = (doff >> 4) * 4
    if hl < 20:
        d.c["tcp_bad_header"] += 1
        return
    if off + hl > end:
        d.c["tcp_truncated"] += 1
        return
    d.emit_tcp(data, off + hl, end, src, dst, sport, dport, seq, flags, ver)
