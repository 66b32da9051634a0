"""RingReader over a fake ring (a memfd laid out like the kernel's mapping) and the mirrors of
bpf/sipcm.h in Python (record dtype, counter names)."""

from __future__ import annotations

import mmap
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from sipcm.capture.program import COUNTER_NAMES
from sipcm.capture.records import LINKTYPE_ETHERNET
from sipcm.capture.ring import PAGE_SIZE, RB_BUSY, RB_DISCARD, REC_DTYPE, REC_SIZE, RingReader

HEADER = (Path(__file__).resolve().parents[3] / "bpf" / "sipcm.h").read_text()
SIZE = 4 * PAGE_SIZE


class FakeRing:
    """A memfd shaped like a BPF ringbuf mapping: consumer page, producer page, data twice."""

    def __init__(self) -> None:
        self.fd = os.memfd_create("fake-ring")
        os.ftruncate(self.fd, 2 * PAGE_SIZE + 2 * SIZE)
        self.mm = mmap.mmap(self.fd, 2 * PAGE_SIZE + 2 * SIZE)
        self.prod = 0

    def _put(self, pos: int, data: bytes) -> None:
        for base in (2 * PAGE_SIZE, 2 * PAGE_SIZE + SIZE):  # the double mapping
            for i in range(len(data)):
                self.mm[base + (pos + i) % SIZE] = data[i]

    def add(self, payload: bytes, flags: int = 0, ts: int = 1000, ifindex: int = 3) -> int:
        rec = struct.pack("<QIIIB3x", ts, len(payload) + 10, len(payload), ifindex, 2) + payload
        self._put(self.prod, struct.pack("<II", len(rec) | flags, 0) + rec)
        start = self.prod
        self.prod += (8 + len(rec) + 7) & ~7
        struct.pack_into("<Q", self.mm, PAGE_SIZE, self.prod)
        return start

    def set_flags(self, start: int, flags: int) -> None:
        word = struct.unpack_from("<I", self.mm, 2 * PAGE_SIZE + start % SIZE)[0]
        self._put(start, struct.pack("<I", (word & (RB_DISCARD - 1)) | flags))

    @property
    def cons(self) -> int:
        return struct.unpack_from("<Q", self.mm, 0)[0]

    def set_pos(self, pos: int) -> None:
        self.prod = pos
        struct.pack_into("<Q", self.mm, 0, pos)
        struct.pack_into("<Q", self.mm, PAGE_SIZE, pos)


@pytest.fixture
def ring():
    fake = FakeRing()
    reader = RingReader(fake.fd, SIZE)
    yield fake, reader
    reader.close()
    fake.mm.close()
    os.close(fake.fd)


def frames(batch) -> list[bytes]:
    return [bytes(batch.data[o : o + c]) for o, c in zip(batch.offset, batch.caplen, strict=True)]


def test_empty(ring):
    _, reader = ring
    batch = reader.read()
    assert len(batch) == 0
    assert batch.linktype == LINKTYPE_ETHERNET


def test_records_in_one_batch_with_fields(ring):
    fake, reader = ring
    fake.add(b"A" * 5, ts=10, ifindex=7)
    fake.add(b"B" * 64, ts=20)
    fake.add(b"C", ts=30)
    batch = reader.read(clock_offset_ns=1_000_000)
    assert frames(batch) == [b"A" * 5, b"B" * 64, b"C"]
    assert batch.ts_ns.tolist() == [1_000_010, 1_000_020, 1_000_030]
    assert batch.origlen.tolist() == [15, 74, 11]
    assert batch.ifindex.tolist() == [7, 3, 3]
    assert batch.direction.tolist() == [2, 2, 2]
    assert batch.offset.dtype == np.int64
    assert fake.cons == fake.prod  # consumer advanced once, to the producer
    assert len(reader.read()) == 0


def test_discarded_records_skipped(ring):
    fake, reader = ring
    fake.add(b"keep1")
    fake.add(b"drop", flags=RB_DISCARD)
    fake.add(b"keep2")
    assert frames(reader.read()) == [b"keep1", b"keep2"]
    assert fake.cons == fake.prod


def test_busy_record_stops_the_walk_until_committed(ring):
    fake, reader = ring
    fake.add(b"one")
    busy = fake.add(b"two", flags=RB_BUSY)
    fake.add(b"three")
    assert frames(reader.read()) == [b"one"]
    assert fake.cons == busy
    fake.set_flags(busy, 0)
    assert frames(reader.read()) == [b"two", b"three"]
    assert fake.cons == fake.prod


def test_record_wrapping_the_end_reads_contiguously(ring):
    fake, reader = ring
    fake.set_pos(SIZE - 40)  # positions are free-running; the next record straddles the end
    payload = bytes(range(200))
    fake.add(payload)
    fake.add(b"after")
    assert frames(reader.read()) == [payload, b"after"]
    assert fake.cons == SIZE - 40 + (8 + 24 + 200) + (8 + 24 + 8)  # 5 -> 8: 8-byte rounding


def test_max_bytes_bounds_a_read(ring):
    fake, reader = ring
    for i in range(10):
        fake.add(bytes([i]) * 16)
    first = reader.read(max_bytes=3 * 56)  # 48 bytes per record: starts 0, 48, 96, 144 < 168
    assert frames(first) == [bytes([i]) * 16 for i in range(4)]
    assert frames(reader.read()) == [bytes([i]) * 16 for i in range(4, 10)]


def test_rejects_bad_size():
    with pytest.raises(ValueError, match="power-of-two"):
        RingReader(-1, 3 * PAGE_SIZE)


def test_record_dtype_mirrors_sipcm_h():
    body = re.search(r"struct sipcm_rec \{(.*?)\};", HEADER, re.S).group(1)
    fields = re.findall(r"__u(\d+) (\w+)(?:\[(\d+)\])?;", body)
    assert [f[1] for f in fields] == list(REC_DTYPE.names)
    offset = 0
    for bits, name, count in fields:
        size = int(bits) // 8 * int(count or 1)
        assert REC_DTYPE.fields[name][1] == offset, name
        assert REC_DTYPE.fields[name][0].itemsize == size, name
        offset += size
    assert REC_SIZE == offset == 24


def test_counter_names_mirror_enum():
    body = re.search(r"enum sipcm_counter \{(.*?)\};", HEADER, re.S).group(1)
    names = re.findall(r"^\s*CNT_(\w+)", body, re.M)
    assert names[-1] == "MAX"
    assert tuple(n.lower() for n in names[:-1]) == COUNTER_NAMES
