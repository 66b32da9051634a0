"""The transport between the dispatcher and one worker: shared memory plus a socket.

Each direction has a shared memory region used as a ring of variable-size blocks; a
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
import struct
from collections import deque
from typing import Any, Protocol

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


def new_region(size: int | None = None) -> mmap.mmap:
    """An anonymous shared mapping (`RING_BYTES` by default): a worker forked after it is
    created shares it."""
    return mmap.mmap(-1, size or RING_BYTES)


class Conn(Protocol):
    """A framed byte stream: a `Link`, or a `multiprocessing.connection.Connection`, which
    frames the same way."""

    def send_bytes(self, buf: bytes) -> None: ...

    def recv_bytes(self) -> bytes: ...


_LEN = struct.Struct("!i")  # multiprocessing.connection's frame: 4-byte signed length,
_LONG_LEN = struct.Struct("!Q")  # or -1 and an 8-byte length above 2 GiB
_JOIN_MAX = 16384  # frames up to this size are written with their length in one piece


class Link:
    """One end of the socket between the dispatcher and a worker, framed exactly as
    `multiprocessing.connection.Connection` frames it. Not that class: its every poll builds
    a selector (tens of thousands of instructions), paid per chunk by the dispatcher (which
    polls its set of workers with one `select.poll` built once)."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send_bytes(self, buf: bytes) -> None:
        n = len(buf)
        head = _LEN.pack(n) if n <= 0x7FFFFFFF else _LEN.pack(-1) + _LONG_LEN.pack(n)
        if n <= _JOIN_MAX:  # one write for a notice; no copy of a large block
            self._write(head + buf)
        else:
            self._write(head)
            self._write(buf)

    def _write(self, buf: bytes) -> None:
        view = memoryview(buf)
        while view:
            view = view[os.write(self.fd, view) :]

    def recv_bytes(self) -> bytes:
        (n,) = _LEN.unpack(self._read(4))
        if n == -1:
            (n,) = _LONG_LEN.unpack(self._read(8))
        return self._read(n)

    def _read(self, n: int) -> bytes:
        """Exactly n bytes; EOFError when the dispatcher closed its end first."""
        parts = []
        while n:
            chunk = os.read(self.fd, n)
            if not chunk:
                raise EOFError
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)


def send(conn: Conn, msg: tuple) -> None:
    """Send one small notice (marshal: tuples of ints, strings, bytes, None)."""
    conn.send_bytes(marshal.dumps(msg))


def recv(conn: Conn) -> Any:
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
