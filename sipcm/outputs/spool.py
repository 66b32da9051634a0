"""On-disk spool for the Elasticsearch output: a FIFO of NDJSON lines in segment files.

Input: encoded event documents (one JSON object per `bytes` line, no newline) in age order.
Output: the same lines, oldest first, read in batches that are deleted only once acknowledged.
Layout: `seg-<id>.ndjson` files in `directory`, ordered by the numeric id; the newest one is
appended to, and fsync'd (file and directory) when it is sealed. `seg-<id>.ack` holds how many
bytes of that segment were delivered, so a restart resends only the rest. `.lock` (flock) keeps
a second process off the same directory. The whole spool stays under `max_bytes`: the oldest
segments are deleted first and their events counted as `dropped`. It never parses or changes
the lines it stores, and never raises on write once open: a torn last line left by a crash is
trimmed, and lines a full or failing disk cannot take are counted as dropped.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sipcm.errors import SipcmError

log = logging.getLogger(__name__)

_NAME = re.compile(r"seg-(\d{20})\.ndjson")
# First id of an empty spool: far from 0 so batches can be put back *before* the oldest
# segment (prepend) for as long as the process lives.
_BASE_ID = 10**15
_MAX_SEGMENT = 64 << 20


@dataclass(slots=True)
class SpoolBatch:
    """Lines read from one segment: bytes `start` to `end` of segment `seg_id`."""

    seg_id: int
    start: int
    end: int
    lines: list[bytes]


@dataclass(slots=True)
class _Segment:
    path: Path
    size: int  # bytes on disk
    acked: int = 0  # bytes already delivered
    sealed: bool = True


class Spool:
    """A bounded, crash-safe FIFO of lines on disk; one writer side and one reader may share it."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int,
        counters: Counter[str],
        segment_bytes: int | None = None,
    ) -> None:
        if max_bytes <= 0:
            raise SipcmError(f"spool size limit must be positive, got {max_bytes}")
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(1, min(max_bytes // 8, _MAX_SEGMENT))
        self.counters = counters
        self._lock = threading.RLock()
        self._segs: dict[int, _Segment] = {}
        self._tail: tuple[int, BinaryIO] | None = None  # (id, open append file) of the newest
        self._busy: SpoolBatch | None = None  # batch handed out and not yet acked or released
        self._lockf = self._take_lock()
        self._load()

    # -- public ---------------------------------------------------------------------------

    def __bool__(self) -> bool:
        return bool(self._segs)

    @property
    def bytes_on_disk(self) -> int:
        """Total size of the segment files (the quantity bounded by `max_bytes`)."""
        return sum(s.size for s in self._segs.values())

    def append(self, lines: list[bytes]) -> None:
        """Add `lines` (newest data) at the end, evicting the oldest segments if over the bound."""
        if not lines:
            return
        with self._lock:
            lines = self._fit(lines, evict=True)
            if not lines:
                return
            done = 0
            try:
                for line in lines:
                    sid, f = self._open_tail()
                    f.write(line + b"\n")
                    self._segs[sid].size += len(line) + 1
                    done += 1
                    if self._segs[sid].size >= self.segment_bytes:
                        self._seal()
                if self._tail is not None:
                    self._tail[1].flush()
            except OSError as e:
                self._io_error(e, len(lines) - done)
            self.counters["spooled"] += done

    def prepend(self, lines: list[bytes]) -> None:
        """Put `lines` back before everything else (they are older than all spooled data)."""
        if not lines:
            return
        with self._lock:
            lines = self._fit(lines, evict=False)
            if not lines:
                return
            sid = min(self._segs, default=_BASE_ID + 1) - 1
            path = self._path(sid)
            data = b"".join(line + b"\n" for line in lines)
            try:
                with open(path, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                self._fsync_dir()
            except OSError as e:
                path.unlink(missing_ok=True)
                self._io_error(e, len(lines))
                return
            self._segs[sid] = _Segment(path, len(data))
            self.counters["spooled"] += len(lines)

    def peek(self, n: int) -> SpoolBatch | None:
        """Up to `n` of the oldest undelivered lines, or None when empty. Re-peeks repeat."""
        with self._lock:
            if not self._segs:
                return None
            sid = min(self._segs)
            seg = self._segs[sid]
            if not seg.sealed:
                self._seal()
            lines: list[bytes] = []
            with open(seg.path, "rb") as f:
                f.seek(seg.acked)
                pos = seg.acked
                while len(lines) < n:
                    line = f.readline()
                    if not line:
                        break
                    pos += len(line)
                    if line.strip():
                        lines.append(line.rstrip(b"\n"))
            self._busy = SpoolBatch(sid, seg.acked, pos, lines)
            return self._busy

    def ack(self, batch: SpoolBatch) -> None:
        """`batch` was delivered (or finally rejected): forget its lines."""
        with self._lock:
            if self._busy is batch:
                self._busy = None
            seg = self._segs.get(batch.seg_id)
            if seg is None or seg.acked != batch.start:
                return
            seg.acked = batch.end
            self.counters["unspooled"] += len(batch.lines)
            if seg.acked >= seg.size:
                self._delete(batch.seg_id)
            else:
                self._write_ack(seg)

    def release(self, batch: SpoolBatch) -> None:
        """`batch` was not delivered; it stays at the head of the spool."""
        with self._lock:
            if self._busy is batch:
                self._busy = None

    def sync(self) -> None:
        """Seal the segment being appended to (fsync), so what is spooled survives a crash."""
        with self._lock:
            self._seal()

    def close(self) -> None:
        """Seal, fsync and unlock; the spool is resent by the next process that opens it."""
        with self._lock:
            self._seal()
            if self._lockf is not None:
                self._lockf.close()
                self._lockf = None

    # -- internals ------------------------------------------------------------------------

    def _take_lock(self) -> BinaryIO:
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            f = open(self.dir / ".lock", "a+b")  # noqa: SIM115
        except OSError as e:
            raise SipcmError(
                f"cannot use spool directory {self.dir}: {e.strerror}",
                "set outputs.elasticsearch.spool_dir to a writable directory",
            ) from e
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            f.close()
            raise SipcmError(
                f"spool directory {self.dir} is in use by another sipcm process",
                "give each sipcm instance its own spool_dir",
            ) from e
        return f

    def _load(self) -> None:
        for p in self.dir.iterdir():
            m = _NAME.fullmatch(p.name)
            if m is None:
                continue
            sid = int(m.group(1))
            size = self._trim_torn(p)
            if size == 0:
                self._remove(p, sid)
                continue
            seg = _Segment(p, size, acked=self._read_ack(sid, size))
            if seg.acked >= size:
                self._remove(p, sid)
                continue
            self._segs[sid] = seg
        if self._segs:
            log.info("spool %s: %d segment(s) to resend", self.dir, len(self._segs))

    def _trim_torn(self, path: Path) -> int:
        """Cut a partial last line (a crash mid-write) and return the file size."""
        with open(path, "r+b") as f:
            size = f.seek(0, os.SEEK_END)
            end = size
            while end > 0:
                start = max(0, end - 65536)
                f.seek(start)
                nl = f.read(end - start).rfind(b"\n")
                if nl >= 0:
                    end = start + nl + 1
                    break
                end = start
            if end != size:
                f.truncate(end)
                self.counters["dropped"] += 1
                self.counters["write_errors"] += 1
                self.counters["dropped_torn"] += 1
                log.warning("spool %s: trimmed a partial last line (%d bytes)", path, size - end)
            return end

    def _read_ack(self, sid: int, size: int) -> int:
        try:
            acked = int((self.dir / f"seg-{sid:020d}.ack").read_text())
        except (OSError, ValueError):
            return 0
        return acked if 0 <= acked <= size else 0

    def _write_ack(self, seg: _Segment) -> None:
        tmp = seg.path.with_suffix(".ack.tmp")
        try:
            tmp.write_text(str(seg.acked))
            os.replace(tmp, seg.path.with_suffix(".ack"))
        except OSError as e:  # only costs duplicates after a restart
            log.warning("spool %s: cannot record progress: %s", self.dir, e)

    def _fit(self, lines: list[bytes], *, evict: bool) -> list[bytes]:
        """Make room for `lines`: evict the oldest segments (append) or the oldest lines."""
        need = sum(len(line) + 1 for line in lines)
        if evict:
            while self.bytes_on_disk + need > self.max_bytes:
                victim = self._oldest_evictable()
                if victim is None:
                    break
                self._evict(victim)
        room = self.max_bytes - self.bytes_on_disk
        cut = 0
        while need > room and cut < len(lines):
            need -= len(lines[cut]) + 1
            cut += 1
        if cut:
            self._count_dropped(cut)
            log.warning("spool %s full: dropped the %d oldest event(s)", self.dir, cut)
        return lines[cut:]

    def _oldest_evictable(self) -> int | None:
        busy = self._busy.seg_id if self._busy is not None else None
        return next((sid for sid in sorted(self._segs) if sid != busy), None)

    def _evict(self, sid: int) -> None:
        seg = self._segs[sid]
        if not seg.sealed:
            self._seal()
        with open(seg.path, "rb") as f:
            f.seek(seg.acked)
            lost = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        self._delete(sid)
        self._count_dropped(lost)
        log.warning("spool %s full: deleted segment %d (%d events)", self.dir, sid, lost)

    def _io_error(self, e: OSError, lost: int) -> None:
        """Disk trouble (full, read-only): the lines not stored are counted, never raised."""
        self.counters["dropped"] += lost
        self.counters["write_errors"] += lost
        self.counters["dropped_spool_error"] += lost
        log.error("spool %s: %s; %d event(s) lost", self.dir, e, lost)

    def _count_dropped(self, n: int) -> None:
        self.counters["dropped"] += n
        self.counters["write_errors"] += n
        self.counters["dropped_spool_full"] += n

    def _open_tail(self) -> tuple[int, BinaryIO]:
        if self._tail is None:
            sid = max(self._segs, default=_BASE_ID - 1) + 1
            path = self._path(sid)
            self._tail = (sid, open(path, "ab"))  # noqa: SIM115
            self._segs[sid] = _Segment(path, 0, sealed=False)
        return self._tail

    def _seal(self) -> None:
        if self._tail is None:
            return
        sid, f = self._tail
        self._tail = None
        try:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            self._fsync_dir()
        except OSError as e:
            log.error("spool %s: cannot sync segment %d: %s", self.dir, sid, e)
        self._segs[sid].sealed = True

    def _delete(self, sid: int) -> None:
        seg = self._segs.pop(sid)
        if self._tail is not None and self._tail[0] == sid:
            self._tail[1].close()
            self._tail = None
        self._remove(seg.path, sid)

    def _remove(self, path: Path, sid: int) -> None:
        for p in (path, path.with_suffix(".ack")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        self._segs.pop(sid, None)

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _path(self, sid: int) -> Path:
        return self.dir / f"seg-{sid:020d}.ndjson"
