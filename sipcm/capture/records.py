"""RecordBatch: the one shape in which frames leave every capture source.

A batch holds many frames of one link type back to back in `data`; per-frame values live in
parallel columns: numpy arrays from the live ring reader, lists from the pcap reader (numpy
arrays once a long capture makes loading numpy worth it: its import is much of a short
replay's start-up; `array.array`s from pcapng). Consumers use indexing and `len()`, which all
have, and a list of the values (`tolist()` unless it is one). Nothing here allocates per
frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from array import array

    import numpy as np

# Direction codes carried in `RecordBatch.direction` (mirrors bpf/sipcm.h).
DIR_UNKNOWN = 0
DIR_INGRESS = 1
DIR_EGRESS = 2
DIRECTION_NAMES = {DIR_UNKNOWN: None, DIR_INGRESS: "ingress", DIR_EGRESS: "egress"}

# Link types (pcap LINKTYPE_* values) the decoder understands.
LINKTYPE_NULL = 0  # BSD loopback: 4-byte host-order address family
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4 or IPv6, version from the first nibble
LINKTYPE_LOOP = 108  # OpenBSD loopback: 4-byte network-order address family
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276


@dataclass(slots=True)
class RecordBatch:
    """Frames of one link type: frame i is `data[offset[i]:offset[i] + caplen[i]]`."""

    data: bytes | memoryview
    offset: np.ndarray | array[int] | list[int]  # int64, start of each frame in `data`
    caplen: np.ndarray | array[int] | list[int]  # uint32, bytes captured
    origlen: np.ndarray | array[int] | list[int]  # uint32, length on the wire
    ts_ns: np.ndarray | array[int] | list[int]  # int64, capture time, ns since the Unix epoch
    ifindex: np.ndarray | array[int] | list[int]  # uint32, 0 when unknown (replay)
    direction: np.ndarray | array[int] | list[int]  # uint8, DIR_* codes
    linktype: int = LINKTYPE_ETHERNET
    first_frame: int = 0  # 1-based number of frame 0 in its capture file; 0 when live

    def __len__(self) -> int:
        return len(self.offset)
