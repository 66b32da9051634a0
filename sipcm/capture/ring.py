"""Batch reader of the BPF ring buffer written by bpf/sipcm.bpf.c.

Input: the ringbuf map fd and its size. Output: one `RecordBatch` (LINKTYPE_ETHERNET) per
`read()` holding every record committed since the last read. The ring is mmap'd as the kernel
lays it out (Documentation/bpf/ringbuf.rst): a read-write consumer page, then a read-only
producer page followed by the data area mapped twice, so a record that wraps is contiguous.
A read walks the 8-byte record headers (BUSY bit: stop, DISCARD bit: skip), copies the whole
span once, advances the consumer position once, and extracts per-record fields with numpy.
No callback and no Python object per record; the only per-record Python work is reading one
header word to find the next record. It never blocks: callers poll on a timer.

Memory ordering: Python performs plain loads/stores; x86's ordering makes that safe (the
kernel publishes a record by clearing BUSY after writing it). Other architectures would need
the acquire/release barriers libbpf uses.
"""

from __future__ import annotations

import mmap
import os

import numpy as np

from sipcm.capture.records import LINKTYPE_ETHERNET, RecordBatch

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
RB_HDR = 8  # struct bpf_ringbuf_hdr: u32 len (+ BUSY/DISCARD bits), u32 pg_off
RB_BUSY = 1 << 31
RB_DISCARD = 1 << 30
RB_LEN_MASK = RB_DISCARD - 1

# Mirrors struct sipcm_rec in bpf/sipcm.h.
REC_DTYPE = np.dtype(
    [
        ("ts_ns", "<u8"),
        ("origlen", "<u4"),
        ("caplen", "<u4"),
        ("ifindex", "<u4"),
        ("direction", "u1"),
        ("pad", "u1", (3,)),
    ]
)
REC_SIZE = REC_DTYPE.itemsize
# Field offsets in 4-byte words (the ring keeps records 8-byte aligned, so whole-word gathers
# from a uint32/uint64 view of the copied span replace a per-byte gather).
_W_ORIGLEN = REC_DTYPE.fields["origlen"][1] // 4
_W_CAPLEN = REC_DTYPE.fields["caplen"][1] // 4
_W_IFINDEX = REC_DTYPE.fields["ifindex"][1] // 4
_B_DIRECTION = REC_DTYPE.fields["direction"][1]


def empty_batch() -> RecordBatch:
    """A batch with no frames."""
    return RecordBatch(
        data=b"",
        offset=np.empty(0, np.int64),
        caplen=np.empty(0, np.uint32),
        origlen=np.empty(0, np.uint32),
        ts_ns=np.empty(0, np.int64),
        ifindex=np.empty(0, np.uint32),
        direction=np.empty(0, np.uint8),
        linktype=LINKTYPE_ETHERNET,
    )


class RingReader:
    """Drains a BPF ringbuf map in batches."""

    def __init__(self, map_fd: int, size: int) -> None:
        if size <= 0 or size % PAGE_SIZE or size & (size - 1):
            raise ValueError(f"ring size {size} is not a power-of-two multiple of the page size")
        self.size = size
        self._mask = size - 1
        self._cons_map = mmap.mmap(
            map_fd, PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0
        )
        self._data_map = mmap.mmap(
            map_fd, PAGE_SIZE + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE_SIZE
        )
        self._cons = np.frombuffer(self._cons_map, np.uint64, count=1)
        self._prod = np.frombuffer(self._data_map, np.uint64, count=1)
        self._data = np.frombuffer(self._data_map, np.uint8, offset=PAGE_SIZE)
        self._words = memoryview(self._data_map)[PAGE_SIZE:].cast("I")

    def pending(self) -> int:
        """Bytes between the consumer and producer positions."""
        return int(self._prod[0]) - int(self._cons[0])

    def read(self, clock_offset_ns: int = 0, max_bytes: int | None = None) -> RecordBatch:
        """All committed records as one batch; `ts_ns` += `clock_offset_ns` (mono -> wall)."""
        cons = int(self._cons[0])
        prod = int(self._prod[0])
        if prod == cons:
            return empty_batch()
        limit = prod if max_bytes is None else min(prod, cons + max_bytes)
        mask, words = self._mask, self._words
        starts: list[int] = []
        pos = cons
        while pos < limit:
            hdr = words[(pos & mask) >> 2]
            if hdr & RB_BUSY:
                break
            if not hdr & RB_DISCARD:
                starts.append(pos - cons)
            pos += ((hdr & RB_LEN_MASK) + RB_HDR + 7) & ~7
        span = pos - cons
        if span == 0:
            return empty_batch()
        first = cons & mask
        buf = self._data[first : first + span].copy()
        self._cons[0] = pos  # records are copied: hand the space back to the kernel
        if not starts:
            return empty_batch()
        rec_at = np.asarray(starts, dtype=np.int64) + RB_HDR
        w32 = rec_at >> 2
        u32 = buf.view(np.uint32)  # span is a multiple of 8 bytes
        return RecordBatch(
            data=memoryview(buf),
            offset=rec_at + REC_SIZE,
            caplen=u32[w32 + _W_CAPLEN],
            origlen=u32[w32 + _W_ORIGLEN],
            ts_ns=buf.view(np.int64)[rec_at >> 3] + clock_offset_ns,
            ifindex=u32[w32 + _W_IFINDEX],
            direction=buf[rec_at + _B_DIRECTION],
            linktype=LINKTYPE_ETHERNET,
        )

    def close(self) -> None:
        """Unmap the ring (numpy views must be dropped first)."""
        del self._cons, self._prod, self._data
        self._words.release()
        self._cons_map.close()
        self._data_map.close()
