"""The shared-memory ring: blocks in order, wrap-around, and inline fallback when full."""

from __future__ import annotations

import mmap

from sipcm.workers.channel import Ring, get_block, put_block


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
