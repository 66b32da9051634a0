"""The shared-memory ring: blocks in order, wrap-around, and inline fallback when full; the
worker's socket link framed as the dispatcher's multiprocessing Connection frames it."""

from __future__ import annotations

import mmap
import socket
import struct
import subprocess
import sys
import threading
from multiprocessing.connection import Connection

import pytest

from sipcm.workers.channel import Link, Ring, get_block, put_block, recv, send


def ring(size: int = 1000) -> Ring:
    return Ring(mmap.mmap(-1, size))


def test_blocks_fill_then_wrap_after_the_tail_is_freed() -> None:
    r = ring()
    assert r.put(1, b"a" * 200) == 0
    assert r.put(2, b"b" * 200) == 200
    assert r.put(3, b"c" * 200) == 400
    assert r.put(4, b"d" * 200) == 600
    assert r.put(5, b"e" * 250) is None  # 800 + 250 > 1000 and nothing freed at the start
    r.free_through(2)
    assert r.put(5, b"e" * 250) == 0  # wrapped into the freed start
    # First in, first out: the next block goes after the head, before the tail (400).
    assert r.put(6, b"f" * 100) == 250
    assert r.put(7, b"g" * 100) is None  # 350 + 100 would reach the tail
    r.free_through(4)
    assert r.put(7, b"g" * 100) == 350  # the tail moved on to block 5 at 0... and 6 at 250
    r.free_through(7)
    assert r.put(8, b"h" * 10) == 0  # empty again: starts over


def test_oversized_and_empty_blocks_go_inline() -> None:
    r = ring()
    assert r.put(1, b"x" * 251) is None  # more than a quarter of the ring
    assert r.put(1, b"") is None


def test_put_block_round_trip_in_shm_and_inline() -> None:
    r = ring(1 << 16)
    rows = [(1, 0, b"data", "x", None, True), (2, 1, b"", "y", 5, False)]
    off, n, inline = put_block(r, 1, rows)
    assert inline is None
    assert get_block(r.mem, off, n, None) == rows
    big = [b"z" * 20000]
    off, n, inline = put_block(r, 2, big)
    assert off == -1
    assert inline is not None
    assert get_block(r.mem, off, n, inline) == big


# Frame sizes around the points where either side changes how it writes: empty, one byte,
# the join limit (16384) and past it, and a block of several socket buffers.
SIZES = [0, 1, 16383, 16384, 16385, 5 << 20]


@pytest.mark.parametrize("n", SIZES)
def test_link_and_connection_exchange_frames_both_ways(n: int) -> None:
    a, b = socket.socketpair()
    dispatcher, worker = Connection(a.detach()), Link(b.detach())
    data = bytes(range(256)) * (n // 256) + b"z" * (n % 256)
    got: list[bytes] = []
    # Both directions at once: a frame larger than the socket buffer blocks its writer.
    reader = threading.Thread(target=lambda: got.append(dispatcher.recv_bytes()))
    reader.start()
    worker.send_bytes(data)
    reader.join()
    sender = threading.Thread(target=dispatcher.send_bytes, args=(data,))
    sender.start()
    assert worker.recv_bytes() == data
    sender.join()
    assert got == [data]
    dispatcher.close()


def test_link_reads_the_long_frame_header() -> None:
    # Above 2 GiB Connection sends -1 and an 8-byte length; the same header on a small frame.
    a, b = socket.socketpair()
    a.sendall(struct.pack("!i", -1) + struct.pack("!Q", 5) + b"hello")
    assert Link(b.fileno()).recv_bytes() == b"hello"
    a.close()
    b.close()


def test_link_notices_and_end_of_file() -> None:
    a, b = socket.socketpair()
    dispatcher, worker = Connection(a.detach()), Link(b.fileno())
    send(dispatcher, ("chunk", 1, 2, None, b"x"))
    assert recv(worker) == ("chunk", 1, 2, None, b"x")
    send(worker, ("res", 1, -1, 3, b"abc"))
    assert recv(dispatcher) == ("res", 1, -1, 3, b"abc")
    dispatcher.close()
    with pytest.raises(EOFError):
        recv(worker)
    b.close()


def test_worker_start_does_not_import_multiprocessing() -> None:
    code = "import sys, sipcm.workers.worker; print('multiprocessing' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "False\n"
