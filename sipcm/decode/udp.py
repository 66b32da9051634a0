"""UDP (RFC 768): header and length checks, then tunnel decapsulation or a SIP candidate.

Input: `data[off:end]` starting at a UDP header, with the raw IP addresses. Output: a VXLAN or
GTP-U payload handed to its tunnel decoder (by the port tables in `decoder.py`), or a Payload
via `d.emit_udp`. The checksum is never verified (offloaded on the capturing host).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sipcm.decode.decoder import Decoder

_HDR = struct.Struct("!HHH").unpack_from


def decode(d: Decoder, data: bytes, off: int, end: int, src: bytes, dst: bytes, ver: int) -> None:
    """Decode one UDP datagram."""
    if end - off < 8:
        d.c["udp_truncated"] += 1
        return
    sport, dport, ulen = _HDR(data, off)
    if ulen < 8:
        d.c["udp_bad_length"] += 1
        return
    if off + ulen > end:
        d.c["udp_truncated"] += 1
        return
    end = off + ulen  # ignore bytes past the UDP length (padding)
    tunnel = d.udp_dport_tunnels.get(dport)
    if tunnel is None and sport not in d.sip_ports and dport not in d.sip_ports:
        tunnel = d.udp_port_tunnels.get(dport) or d.udp_port_tunnels.get(sport)
    if tunnel is not None:
        tunnel(d, data, off + 8, end, src, dst, sport, dport)
        return
    d.emit_udp(data, off + 8, end, src, dst, sport, dport, ver)
