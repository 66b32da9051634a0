"""The transport between the dispatcher and one worker: shared memory plus a socket.

Each direction has a memfd-backed shared region used as a ring of variable-size blocks; a
batch (a chunk of payloads, or a chunk's event rows) is marshalled once and copied into the
ring, and only a small notice (kind, chunk number, offset, length) goes over the socket. A
block that does not fit (rare: an end-of-input conclusion, a burst larger than the ring)
travels inline on the socket instead, so neither side ever waits for ring space. Blocks are
freed in order: the dispatcher's when the worker answers that chunk, the worker's when the
dispatcher acknowledges the chunks it has read (`ack` in the next notice).
"""

from __future__ import annotations

import marshal
import mmap
import os
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

# Per direction per worker. Pages are touched only as blocks are written.
RING_BYTES = 64 << 20
# A block larger than this share of the ring goes inline.
MAX_BLOCK_SHARE = 4


class Ring:
    """Allocator over one shared region: blocks are taken at the head, freed at the tail."""

    __slots__ = ("_blocks", "_head", "mem", "size")

    def __init__(self, mem: mmap.mmap) -> None:
        self.mem = mem
        self.size = len(mem)
        self._blocks: deque[tuple[int, int, int]] = deque()  # (tag, start, end)
        self._head = 0

    def put(self, tag: int, data: bytes) -> int | None:
        """Copy `data` into a free block tagged `tag`; its offset, or None if no room."""
        n = len(data)
        if n == 0 or n > self.size // MAX_BLOCK_SHARE:
            return None
        start = self._fit(n)
        if start is None:
            return None
        self.mem[start : start + n] = data
        self._blocks.append((tag, start, start + n))
        self._head = start + n
        return start

    def _fit(self, n: int) -> int | None:
        if not self._blocks:
            self._head = 0
            return 0
        tail = self._blocks[0][1]
        head = self._head
        if head >= tail:  # free space: [head, size) then [0, tail)
            if head + n <= self.size:
                return head
            return 0 if n < tail else None
        return head if head + n < tail else None

    def free_through(self, tag: int) -> None:
        """Release every block tagged `tag` or earlier."""
        blocks = self._blocks
        while blocks and blocks[0][0] <= tag:
            blocks.popleft()


def new_region(size: int | None = None) -> tuple[int, mmap.mmap]:
    """An anonymous shared memory file (memfd, `RING_BYTES` by default) and its mapping; the
    fd is inheritable."""
    size = size or RING_BYTES
    fd = os.memfd_create("sipcm-ring", 0)
    os.ftruncate(fd, size)
    return fd, mmap.mmap(fd, size)


def map_region(fd: int) -> mmap.mmap:
    """Map a region created by the other side (its fd passed at start-up)."""
    return mmap.mmap(fd, os.fstat(fd).st_size)


def send(conn: Connection, msg: tuple) -> None:
    """Send one small notice (marshal: tuples of ints, strings, bytes, None)."""
    conn.send_bytes(marshal.dumps(msg))


def recv(conn: Connection) -> Any:
    """Receive one notice."""
    return marshal.loads(conn.recv_bytes())


def put_block(ring: Ring, tag: int, obj: Any) -> tuple[int, int, bytes | None]:
    """Marshal `obj` into `ring`: (offset, length, None), or (-1, length, bytes) inline."""
    data = marshal.dumps(obj)
    off = ring.put(tag, data)
    if off is None:
        return -1, len(data), data
    return off, len(data), None


def get_block(mem: mmap.mmap, off: int, n: int, inline: bytes | None) -> Any:
    """Read back what `put_block` wrote."""
    if inline is not None:
        return marshal.loads(inline)
    with memoryview(mem)[off : off + n] as view:
        return marshal.loads(view)
