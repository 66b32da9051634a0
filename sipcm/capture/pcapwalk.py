"""The classic pcap record walk: where the records of a batch start, and their header fields.

Compiled (sipcm.accel): interpreted, finding a record and reading its 16-byte header back
into array columns cost about 8,000 instructions a record, as much as decoding its frame.
Input: the capture (a file mapping, or the bytes of a stream's window) for the walk, and the
batch's bytes (a copy of its span) for the header fields; output: plain lists, which the
`RecordBatch` columns may be (records.py).

Record header (pcap file format): ts_sec, ts_usec (or ts_nsec), incl_len, orig_len, each a
32-bit integer in the file's byte order.
"""

from __future__ import annotations

from typing import Final

HEADER: Final = 16  # bytes of a record header
_INCL_AT: Final = 8  # incl_len's offset in it


def record_starts(
    buf: object, pos: int, size: int, limit: int, big: bool, max_record: int
) -> tuple[list[int], int, int, int]:
    """Walk up to `limit` whole records of `buf[:size]` (bytes or a file mapping) from `pos`.
    Returns (the positions of their headers, the position after the last one, the bytes the
    next record needs beyond that position when the data ends inside it (0 when none is cut),
    a record length over `max_record` that stopped the walk (-1 when none did))."""
    starts: list[int] = []
    need = 0
    corrupt = -1
    n = 0
    while n < limit and pos < size:
        if pos + HEADER > size:
            need = HEADER
            break
        at = pos + _INCL_AT
        raw: bytes = buf[at : at + 4]  # type: ignore[index]  # one generic slice of a mapping
        incl = _u32(raw, 0, big)
        end = pos + HEADER + incl
        if incl > max_record:
            corrupt = incl
            break
        if end > size:
            need = HEADER + incl
            break
        starts.append(pos)
        pos = end
        n += 1
    return starts, pos, need, corrupt


def _u32(data: bytes, at: int, big: bool) -> int:
    """The 32-bit unsigned integer at `data[at:at + 4]` in the given byte order."""
    if big:
        return data[at] << 24 | data[at + 1] << 16 | data[at + 2] << 8 | data[at + 3]
    return data[at + 3] << 24 | data[at + 2] << 16 | data[at + 1] << 8 | data[at]


def columns(
    data: bytes, starts: list[int], start: int, big: bool, mul: int
) -> tuple[list[int], list[int], list[int], list[int], int]:
    """For the records whose headers are at `starts` (positions in the file, `start` being
    where `data` begins): each frame's offset in `data`, captured and original lengths,
    timestamp in ns (`mul` ns per fraction unit), and the captured bytes in all."""
    offs: list[int] = []
    caps: list[int] = []
    origs: list[int] = []
    tss: list[int] = []
    total = 0
    for pos in starts:
        h = pos - start
        incl = _u32(data, h + _INCL_AT, big)
        offs.append(h + HEADER)
        caps.append(incl)
        origs.append(_u32(data, h + 12, big))
        tss.append(_u32(data, h, big) * 1_000_000_000 + _u32(data, h + 4, big) * mul)
        total += incl
    return offs, caps, origs, tss, total
