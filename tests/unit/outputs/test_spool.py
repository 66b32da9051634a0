"""The on-disk spool: FIFO order across segments, prepend, acknowledgement, restart, size bound."""

from __future__ import annotations

import errno
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from sipcm.errors import SipcmError
from sipcm.outputs.spool import Spool


def lines(a: int, b: int) -> list[bytes]:
    """Lines of exactly 9 bytes (10 on disk): {"n":001} ..."""
    return [b'{"n":%03d}' % i for i in range(a, b)]


def drain(sp: Spool, n: int = 1000) -> list[bytes]:
    out: list[bytes] = []
    while (batch := sp.peek(n)) is not None:
        out += batch.lines
        sp.ack(batch)
    return out


def segments(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.suffix == ".ndjson")


def test_append_peek_ack_in_order(tmp_path: Path) -> None:
    c: Counter[str] = Counter()
    sp = Spool(tmp_path, max_bytes=1 << 20, counters=c)
    sp.append(lines(0, 3))
    b1 = sp.peek(2)
    assert b1 is not None
    assert b1.lines == lines(0, 2)
    # Not acked: the same lines come back.
    sp.release(b1)
    b1 = sp.peek(2)
    assert b1 is not None
    assert b1.lines == lines(0, 2)
    sp.ack(b1)
    b2 = sp.peek(2)
    assert b2 is not None
    assert b2.lines == lines(2, 3)
    sp.ack(b2)
    assert sp.peek(2) is None
    assert not sp
    # The open segment stays for the next appends while the sensor runs; close removes it.
    sp.close()
    assert segments(tmp_path) == []
    assert c == Counter(spooled=3, unspooled=3, fsyncs=1)


def test_many_segments_keep_order(tmp_path: Path) -> None:
    c: Counter[str] = Counter()
    sp = Spool(tmp_path, max_bytes=1 << 20, counters=c, segment_bytes=30)
    for i in range(0, 30, 3):
        sp.append(lines(i, i + 3))
    assert len(segments(tmp_path)) == 10  # 30 bytes each: every append seals one
    assert drain(sp, 2) == lines(0, 30)
    assert c == Counter(spooled=30, unspooled=30, fsyncs=10)


def test_append_is_one_write_and_one_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    calls: list[str] = []
    real_write, real_fsync = os.write, os.fsync
    monkeypatch.setattr(os, "write", lambda fd, b: calls.append("write") or real_write(fd, b))
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync") or real_fsync(fd))
    c: Counter[str] = Counter()
    sp = Spool(tmp_path, max_bytes=1 << 20, counters=c)
    calls.clear()
    sp.append(lines(0, 500))
    sp.append(lines(500, 600))
    # The first append also creates the segment (and syncs the directory entry).
    assert calls == ["fsync", "write", "fsync", "write", "fsync"]
    assert c["fsyncs"] == 2
    assert sp.pending == 600


def test_fsync_interval_syncs_from_its_own_thread(tmp_path: Path) -> None:
    c: Counter[str] = Counter()
    sp = Spool(tmp_path, max_bytes=1 << 20, counters=c, fsync_interval_s=0.3)
    sp.append(lines(0, 3))
    sp.append(lines(3, 6))
    assert c["fsyncs"] == 0  # appends do not wait for the disk
    sp.sync_due()  # not due yet
    assert c["fsyncs"] == 0
    deadline = time.monotonic() + 5
    while c["fsyncs"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert c["fsyncs"] == 1  # one fsync covers both appends
    time.sleep(0.7)
    assert c["fsyncs"] == 1  # nothing new written, nothing to sync
    sp.close()
    assert c["fsyncs"] == 1


def test_restart_resends_only_unacked(tmp_path: Path) -> None:
    c: Counter[str] = Counter()
    sp = Spool(tmp_path, max_bytes=1 << 20, counters=c)
    sp.append(lines(0, 5))
    b = sp.peek(2)
    assert b is not None
    sp.ack(b)
    assert (tmp_path / "ack").read_text() == f"1 {b.end}\n"
    sp.close()
    c2: Counter[str] = Counter()
    sp2 = Spool(tmp_path, max_bytes=1 << 20, counters=c2)
    assert sp2.pending == 3
    assert drain(sp2) == lines(2, 5)
    assert c2 == Counter(unspooled=3)
    assert segments(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "ack"]


def test_torn_last_line_is_trimmed(tmp_path: Path) -> None:
    seg = tmp_path / f"seg-{1:020d}.ndjson"
    seg.write_bytes(b'{"n":000}\n{"n":001}\n{"n":0')
    c: Counter[str] = Counter()
    sp = Spool(tmp_path, max_bytes=1 << 20, counters=c)
    assert seg.stat().st_size == 20
    assert drain(sp) == lines(0, 2)
    assert c == Counter(dropped=1, dropped_torn=1, write_errors=1, unspooled=2)


def test_bound_evicts_oldest_segment(tmp_path: Path) -> None:
    c: Counter[str] = Counter()
    sp = Spool(tmp_path, max_bytes=100, counters=c, segment_bytes=30)
    for i in range(0, 12, 3):
        sp.append(lines(i, i + 3))
    # 4 x 30 bytes > 100: the first segment (events 0-2) went to make room.
    assert sp.bytes_on_disk == 90
    assert c["dropped"] == 3
    assert c["dropped_spool_full"] == 3
    assert drain(sp) == lines(3, 12)


def test_bound_spares_the_segment_being_sent(tmp_path: Path) -> None:
    c: Counter[str] = Counter()
    sp = Spool(tmp_path, max_bytes=100, counters=c, segment_bytes=30)
    for i in range(0, 9, 3):
        sp.append(lines(i, i + 3))
    busy = sp.peek(3)
    assert busy is not None
    assert busy.lines == lines(0, 3)
    sp.append(lines(9, 12))  # evicts 3-5, not the batch in flight
    assert c["dropped"] == 3
    sp.ack(busy)
    assert drain(sp) == lines(6, 12)
    assert c["unspooled"] == 9


def test_oversized_append_keeps_the_newest(tmp_path: Path) -> None:
    c: Counter[str] = Counter()
    sp = Spool(tmp_path, max_bytes=50, counters=c)
    sp.append(lines(0, 8))
    assert c == Counter(spooled=5, dropped=3, dropped_spool_full=3, write_errors=3, fsyncs=1)
    assert drain(sp) == lines(3, 8)


def test_second_process_is_refused(tmp_path: Path) -> None:
    sp = Spool(tmp_path, max_bytes=1000, counters=Counter())
    with pytest.raises(SipcmError, match="in use by another sipcm process"):
        Spool(tmp_path, max_bytes=1000, counters=Counter())
    sp.close()
    Spool(tmp_path, max_bytes=1000, counters=Counter()).close()


def test_unusable_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(SipcmError, match="cannot use spool directory"):
        Spool(tmp_path / "file" / "spool", max_bytes=1000, counters=Counter())


def test_disk_error_counts_lost_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c: Counter[str] = Counter()
    sp = Spool(tmp_path, max_bytes=1000, counters=c)
    sp.append(lines(0, 2))
    real_write = os.write
    calls = {"n": 0}

    def full(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 1:  # a partial write, then the disk is full
            return real_write(fd, data[:7])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    assert sp.append(lines(2, 5)) == 0  # counted, not raised: the sender must keep going
    monkeypatch.setattr(os, "write", real_write)
    assert c == Counter(dropped=3, write_errors=3, dropped_spool_error=3, spooled=2, fsyncs=1)
    # The torn bytes were cut off: the queue holds whole lines only and takes more.
    sp.append(lines(5, 6))
    assert drain(sp) == lines(0, 2) + lines(5, 6)


def test_planted_links_are_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    d = tmp_path / "spool"
    c: Counter[str] = Counter()
    sp = Spool(d, max_bytes=10_000, counters=c)
    sp.append(lines(0, 2))
    sp.close()
    (tail,) = segments(d)
    nxt = tail.replace(tail[4:-7], f"{int(tail[4:-7]) + 1:0{len(tail) - 11}d}")
    (d / nxt).symlink_to(victim)  # where the next segment will be written
    (d / "ack.tmp").symlink_to(victim)  # where the next ack will be staged
    c = Counter()
    sp = Spool(d, max_bytes=10_000, counters=c)
    assert sp.append(lines(2, 3)) == 0  # the link is refused and the line counted as lost
    assert c["dropped_spool_error"] == 1
    assert drain(sp) == lines(0, 2)  # acking writes the ack file, never the link's target
    sp.close()
    assert victim.read_bytes() == b"precious\n"
    assert (d / nxt).is_symlink()  # left alone, not trimmed or deleted
