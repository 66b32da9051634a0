"""Write-ahead disk queue for the Elasticsearch output (libbeat's disk queue, for NDJSON lines).

Input: encoded event documents (one JSON object per `bytes` line, no newline) in age order.
Output: the same lines, oldest first, read in batches that leave the disk only when
acknowledged. Every accepted line is on disk before `append()` returns; the sender reads from
disk, so an outage, a kill -9 or a restart loses nothing that was accepted.

Layout of `directory`:
- `seg-<id>.ndjson` segment files, ordered by the numeric id. The newest is appended to with one
  `write(2)` per `append()` call (a whole batch), and a new one is started once it exceeds
  `segment_bytes`. Segments before the ack pointer are deleted.
- `ack`: the ack pointer, `<segment id> <byte offset>` of the first line not yet acknowledged,
  replaced atomically (rename) after every acknowledged batch. It is not fsync'd: after a
  power failure it may point back a little, which resends documents Elasticsearch answers with
  409 (they carry deterministic ids), never loses one.
- `.lock` (flock) keeps a second process off the same directory.

No file of the queue is opened through a symbolic link (O_NOFOLLOW), and a segment name that is
not a regular file is left alone on load, so a link planted in the directory cannot make the
sensor write, trim or delete elsewhere.

Durability (fsync policy): `fsync_interval_s == 0` fsyncs the segment after every `append()`
before returning; `> 0` leaves the fsync to a small thread of the queue that runs `sync_due()`
every interval (on a duplicate descriptor, so appends never wait for the disk): a power failure
loses at most the last interval of accepted data. A process crash (kill -9) loses
nothing in either mode: the data left the process with the `write(2)`.

Bound: the segment files stay under `max_bytes`. When an append does not fit, the oldest
segments (except the one being sent) are deleted and their events counted as
`dropped_spool_full`; if that is not enough, the oldest lines of the new batch are refused and
counted the same way. Lines a full or failing disk cannot take are counted under
`dropped_spool_error`; `append()` never raises once the queue is open. A torn last line left by
a power failure is trimmed on load and counted under `dropped_torn`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import stat
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sipcm.errors import SipcmError

log = logging.getLogger(__name__)

_NAME = re.compile(r"seg-(\d{20})\.ndjson")
_FIRST_ID = 1
_MAX_SEGMENT = 64 << 20
_READ_CHUNK = 1 << 20


@dataclass(slots=True)
class SpoolBatch:
    """Lines read from the head of the queue: bytes `start` to `end` of segment `seg_id`."""

    seg_id: int
    start: int
    end: int
    lines: list[bytes]


@dataclass(slots=True)
class _Segment:
    path: Path
    size: int  # bytes on disk
    lines: int  # complete lines past `acked`
    acked: int = 0  # bytes already delivered (only the head segment has any)


class Spool:
    """A bounded, crash-safe FIFO of lines on disk; one writer side and one reader may share it."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int,
        counters: Counter[str],
        segment_bytes: int | None = None,
        fsync_interval_s: float = 0.0,
    ) -> None:
        if max_bytes <= 0:
            raise SipcmError(f"spool size limit must be positive, got {max_bytes}")
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(1, min(max_bytes // 8, _MAX_SEGMENT))
        self.fsync_interval_s = fsync_interval_s
        self.counters = counters
        self._lock = threading.RLock()
        self._segs: dict[int, _Segment] = {}
        self._tail_fd: int | None = None  # open O_APPEND descriptor of the newest segment
        self._tail_id = 0
        self._dirty = False  # written since the last fsync
        self._last_sync = time.monotonic()
        self._busy: SpoolBatch | None = None  # batch handed out and not yet acked or released
        self._pending = 0
        self._lockf = self._take_lock()
        self._load()
        self._closed = threading.Event()
        if fsync_interval_s > 0:
            threading.Thread(target=self._syncer, name="sipcm-spool-sync", daemon=True).start()

    # -- public ---------------------------------------------------------------------------

    def __bool__(self) -> bool:
        return self._pending > 0

    @property
    def pending(self) -> int:
        """Events on disk not yet acknowledged."""
        return self._pending

    @property
    def bytes_on_disk(self) -> int:
        """Total size of the segment files (the quantity bounded by `max_bytes`)."""
        return sum(s.size for s in self._segs.values())

    def append(self, lines: list[bytes]) -> int:
        """Write `lines` (newest data) with one write and the fsync policy; return how many are
        on disk (the rest were refused and counted)."""
        if not lines:
            return 0
        with self._lock:
            lines = self._fit(lines)
            if not lines:
                return 0
            data = b"\n".join(lines) + b"\n"
            try:
                fd = self._open_tail()
                written = 0
                while written < len(data):  # a regular file takes it all unless the disk is full
                    written += os.write(fd, data[written:] if written else data)
            except OSError as e:
                self._io_error(e, len(lines))
                return 0
            seg = self._segs[self._tail_id]
            seg.size += len(data)
            seg.lines += len(lines)
            self._pending += len(lines)
            self.counters["spooled"] += len(lines)
            self._dirty = True
            if self.fsync_interval_s <= 0:
                self._sync()
            if seg.size >= self.segment_bytes:
                self._close_tail()
            return len(lines)

    def peek(self, n: int) -> SpoolBatch | None:
        """Up to `n` of the oldest unacknowledged lines, or None when empty. Re-peeks repeat
        (and may return more lines when the head segment has grown)."""
        with self._lock:
            while self._segs:
                sid = min(self._segs)
                seg = self._segs[sid]
                if seg.acked >= seg.size:
                    if self._is_open_tail(sid):
                        return None
                    self._delete(sid)
                    continue
                lines, end = self._read(seg, n)
                self._busy = SpoolBatch(sid, seg.acked, end, lines)
                return self._busy
            return None

    def ack(self, batch: SpoolBatch) -> None:
        """`batch` was settled (delivered, already present, or dead-lettered): forget it."""
        with self._lock:
            if self._busy is batch:
                self._busy = None
            seg = self._segs.get(batch.seg_id)
            if seg is None or seg.acked != batch.start:
                return
            seg.acked = batch.end
            seg.lines -= len(batch.lines)
            self._pending -= len(batch.lines)
            self.counters["unspooled"] += len(batch.lines)
            if seg.acked >= seg.size and not self._is_open_tail(batch.seg_id):
                self._delete(batch.seg_id)  # the open tail stays until full: no file churn
            self._write_ack()

    def release(self, batch: SpoolBatch) -> None:
        """`batch` was not delivered; it stays at the head of the queue."""
        with self._lock:
            if self._busy is batch:
                self._busy = None

    def sync_due(self) -> None:
        """Fsync if data is waiting and the fsync interval has passed (interval policy). The
        fsync runs outside the lock, on a duplicate of the segment's descriptor."""
        with self._lock:
            now = time.monotonic()
            if not self._dirty or now - self._last_sync < self.fsync_interval_s:
                return
            if self._tail_fd is None:  # closing the segment synced it
                self._dirty = False
                return
            fd = os.dup(self._tail_fd)
            self._dirty = False
            self._last_sync = now
        try:
            os.fsync(fd)
            self.counters["fsyncs"] += 1
        except OSError as e:
            log.error("spool %s: cannot sync: %s", self.dir, e)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Fsync, close and unlock; what is left is resent by the next process that opens it."""
        self._closed.set()
        with self._lock:
            self._sync()
            self._close_tail()
            for sid in [sid for sid, seg in self._segs.items() if seg.acked >= seg.size]:
                self._delete(sid)
            if self._lockf is not None:
                os.close(self._lockf)
                self._lockf = None

    # -- internals ------------------------------------------------------------------------

    def _syncer(self) -> None:
        while not self._closed.wait(self.fsync_interval_s):
            self.sync_due()

    def _take_lock(self) -> int:
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
            fd = os.open(self.dir / ".lock", flags, 0o600)
        except OSError as e:
            raise SipcmError(
                f"cannot use spool directory {self.dir}: {e.strerror}",
                "set outputs.elasticsearch.spool_dir to a writable directory",
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            raise SipcmError(
                f"spool directory {self.dir} is in use by another sipcm process",
                "give each sipcm instance its own spool_dir",
            ) from e
        return fd

    def _load(self) -> None:
        ack_id, ack_off = self._read_ack()
        for p in sorted(self.dir.iterdir()):
            m = _NAME.fullmatch(p.name)
            if m is None:
                continue
            if not stat.S_ISREG(p.lstat().st_mode):
                log.warning("spool %s: %s is not a regular file; left alone", self.dir, p.name)
                continue
            sid = int(m.group(1))
            size = self._trim_torn(p)
            acked = 0 if sid != ack_id else min(ack_off, size)
            if size == 0 or sid < ack_id or acked >= size:
                p.unlink(missing_ok=True)
                continue
            with open(p, "rb") as f:
                f.seek(acked)
                count = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
            self._segs[sid] = _Segment(p, size, count, acked)
            self._pending += count
        self._tail_id = max(self._segs, default=max(ack_id, _FIRST_ID - 1))
        if self._pending:
            log.info(
                "spool %s: %d event(s) in %d segment(s) to resend",
                self.dir, self._pending, len(self._segs),
            )  # fmt: skip

    def _trim_torn(self, path: Path) -> int:
        """Cut a partial last line (a power failure mid-write) and return the file size."""
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
                self._count("torn", 1)
                log.warning("spool %s: trimmed a partial last line (%d bytes)", path, size - end)
            return end

    def _read_ack(self) -> tuple[int, int]:
        try:
            sid, off = (self.dir / "ack").read_text().split()
            return int(sid), int(off)
        except (OSError, ValueError):
            return 0, 0

    def _write_ack(self) -> None:
        head = min(self._segs, default=None)
        sid, off = (head, self._segs[head].acked) if head is not None else (self._tail_id + 1, 0)
        tmp = self.dir / "ack.tmp"
        try:
            tmp.unlink(missing_ok=True)  # O_EXCL below: never written through a planted link
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, f"{sid} {off}\n".encode())
            finally:
                os.close(fd)
            os.replace(tmp, self.dir / "ack")
        except OSError as e:  # only costs resends (409s) after a restart
            log.warning("spool %s: cannot record progress: %s", self.dir, e)

    def _read(self, seg: _Segment, n: int) -> tuple[list[bytes], int]:
        """Up to `n` lines of `seg` from its ack offset, and the offset after them. `seg.size`
        only ever covers whole lines, so reading up to it never splits one."""
        lines: list[bytes] = []
        pos = fpos = seg.acked
        with open(seg.path, "rb") as f:
            f.seek(pos)
            rest = b""
            while len(lines) < n and fpos < seg.size:
                chunk = f.read(min(_READ_CHUNK, seg.size - fpos))
                if not chunk:
                    break
                fpos += len(chunk)
                parts = (rest + chunk).split(b"\n")
                rest = parts.pop()
                for line in parts:
                    pos += len(line) + 1
                    if line:
                        lines.append(line)
                    if len(lines) == n:
                        break
        return lines, pos

    def _fit(self, lines: list[bytes]) -> list[bytes]:
        """Make room for `lines`: evict the oldest segments, then refuse the oldest lines."""
        need = sum(len(line) + 1 for line in lines)
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
            self._count("spool_full", cut)
            log.warning("spool %s full: refused the %d oldest event(s) of a batch", self.dir, cut)
        return lines[cut:]

    def _oldest_evictable(self) -> int | None:
        busy = self._busy.seg_id if self._busy is not None else None
        return next((sid for sid in sorted(self._segs) if sid != busy), None)

    def _evict(self, sid: int) -> None:
        lost = self._segs[sid].lines
        self._pending -= lost
        self._delete(sid)
        self._write_ack()
        self._count("spool_full", lost)
        log.warning("spool %s full: deleted segment %d (%d events)", self.dir, sid, lost)

    def _io_error(self, e: OSError, lost: int) -> None:
        """Disk trouble (full, read-only): the lines not stored are counted, never raised.
        A partial write is cut back so the segment holds only whole lines."""
        self._close_tail()
        seg = self._segs.get(self._tail_id)
        if seg is not None:
            try:
                os.truncate(seg.path, seg.size)
            except OSError:
                pass
            if seg.size == 0:
                self._delete(self._tail_id)
        self._count("spool_error", lost)
        log.error("spool %s: %s; %d event(s) lost", self.dir, e.strerror or e, lost)

    def _count(self, kind: str, n: int) -> None:
        self.counters["dropped"] += n
        self.counters["write_errors"] += n
        self.counters[f"dropped_{kind}"] += n

    def _is_open_tail(self, sid: int) -> bool:
        return sid == self._tail_id and self._tail_fd is not None

    def _open_tail(self) -> int:
        if self._tail_fd is None:
            self._tail_id += 1
            path = self._path(self._tail_id)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
            self._tail_fd = os.open(path, flags, 0o600)
            self._segs[self._tail_id] = _Segment(path, 0, 0)
            self._fsync_dir()
        return self._tail_fd

    def _close_tail(self) -> None:
        if self._tail_fd is None:
            return
        fd, self._tail_fd = self._tail_fd, None
        try:
            if self._dirty:
                os.fsync(fd)
                self._dirty = False
                self.counters["fsyncs"] += 1
        except OSError as e:
            log.error("spool %s: cannot sync segment %d: %s", self.dir, self._tail_id, e)
        finally:
            os.close(fd)

    def _sync(self) -> None:
        if self._tail_fd is not None and self._dirty:
            try:
                os.fsync(self._tail_fd)
            except OSError as e:
                log.error("spool %s: cannot sync segment %d: %s", self.dir, self._tail_id, e)
            self.counters["fsyncs"] += 1
        self._dirty = False
        self._last_sync = time.monotonic()

    def _delete(self, sid: int) -> None:
        seg = self._segs.pop(sid)
        if sid == self._tail_id:
            self._close_tail()
        seg.path.unlink(missing_ok=True)

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _path(self, sid: int) -> Path:
        return self.dir / f"seg-{sid:020d}.ndjson"
