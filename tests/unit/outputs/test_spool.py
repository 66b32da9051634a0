"""The on-disk spool: FIFO order across segments, prepend, acknowledgement, restart, size bound."""

from __future__ import annotations

import errno
import io
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
    assert segments(tmp_path) == []
    assert c == Counter(spooled=3, unspooled=3)


def test_many_segments_keep_order(tmp_path: Path) -> None:
    c: Counter[str] = Counter()
    sp = Spool(tmp_path, max_bytes=1 << 20, counters=c, segment_bytes=30)
    for i in range(0, 30, 3):
        sp.append(lines(i, i + 3))
    assert len(segments(tmp_path)) == 10  # 30 bytes each: every append seals one
    assert drain(sp, 2) == lines(0, 30)
    assert c == Counter(spooled=30, unspooled=30)


def test_prepend_goes_first(tmp_path: Path) -> None:
    sp = Spool(tmp_path, max_bytes=1 << 20, counters=Counter())
    sp.append(lines(2, 4))
    sp.prepend(lines(0, 2))
    sp.append(lines(4, 5))
    assert drain(sp) == lines(0, 5)


def test_restart_resends_only_unacked(tmp_path: Path) -> None:
    c: Counter[str] = Counter()
    sp = Spool(tmp_path, max_bytes=1 << 20, counters=c)
    sp.append(lines(0, 5))
    b = sp.peek(2)
    assert b is not None
    sp.ack(b)
    sp.close()
    c2: Counter[str] = Counter()
    sp2 = Spool(tmp_path, max_bytes=1 << 20, counters=c2)
    assert sp2
    assert drain(sp2) == lines(2, 5)
    assert c2 == Counter(unspooled=3)
    sp2.close()
    assert segments(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]


def test_torn_last_line_is_trimmed(tmp_path: Path) -> None:
    seg = tmp_path / f"seg-{10**15:020d}.ndjson"
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
    assert c == Counter(spooled=5, dropped=3, dropped_spool_full=3, write_errors=3)
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
    class Full(io.BytesIO):
        def write(self, b: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    c: Counter[str] = Counter()
    sp = Spool(tmp_path, max_bytes=1000, counters=c)
    monkeypatch.setattr(sp, "_open_tail", lambda: (1, Full()))
    sp.append(lines(0, 3))  # counted, not raised: the output's sender must keep going
    assert c == Counter(dropped=3, write_errors=3, dropped_spool_error=3)
