"""File output: NDJSON appended to a path, rotated by size.

When writing the next line would take the file past `rotate_bytes`, `path` is renamed to
`path.1` (older ones shift to `path.2` ... `path.<keep>`; the oldest is deleted) and a new
`path` is started, so a file never exceeds `rotate_bytes` unless a single line does. Files are
created mode 0640 (events carry phone numbers and addresses). A symbolic link or anything but a
regular file at `path` is refused (O_NOFOLLOW), so a link planted there cannot redirect the
events (or a root sensor's writes) elsewhere. It never modifies events.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from pathlib import Path
from typing import Any

from sipcm.errors import SipcmError
from sipcm.outputs.base import ndjson_bytes, terminal_safe_lines


class FileOutput:
    """NDJSON file with size-based rotation; counters `published`, `rotations`, `write_errors`,
    `dropped` (events lost to a write error)."""

    name = "file"

    def __init__(
        self,
        path: str | os.PathLike[str],
        rotate_bytes: int = 100 * 1024 * 1024,
        keep: int = 5,
        counters: Counter[str] | None = None,
    ) -> None:
        if rotate_bytes <= 0:
            raise SipcmError(f"file output: rotate_bytes must be positive, got {rotate_bytes}")
        if keep < 0:
            raise SipcmError(f"file output: keep must be 0 or more, got {keep}")
        self.path = Path(path)
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self._fd: int | None = None
        self._size = 0
        try:
            self._open()
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise SipcmError(
                    f"file output: {self.path} is a symbolic link; refusing to follow it",
                    "set the file output path to the real file, or remove the link",
                ) from None
            if e.errno == errno.EISDIR or e.errno == errno.ENXIO:
                e.strerror = "not a regular file"
            raise SipcmError(
                f"file output: cannot open {self.path}: {e.strerror}",
                "check that the directory exists and is writable",
            ) from e

    def _open(self) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(self.path, flags | os.O_NONBLOCK | os.O_NOCTTY, 0o640)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise OSError(errno.EISDIR, "not a regular file", str(self.path))
        self._fd = fd
        self._size = st.st_size

    def _close_fd(self, sync: bool) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)

    def _rotate(self) -> None:
        """Shift path.N-1 -> path.N ... path -> path.1 and reopen an empty path."""
        self._close_fd(sync=True)
        base = str(self.path)
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
        else:
            Path(f"{base}.{self.keep}").unlink(missing_ok=True)
            for i in range(self.keep - 1, 0, -1):
                older = Path(f"{base}.{i}")
                if older.exists():
                    older.rename(f"{base}.{i + 1}")
            self.path.rename(f"{base}.1")
        self.counters["rotations"] += 1
        self._open()

    def _write_all(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(data)

    def write(self, events: list[dict[str, Any]]) -> None:
        """Append a batch of documents (see `write_lines`)."""
        self.write_lines([ndjson_bytes(doc) for doc in events])

    def write_lines(self, lines: list[bytes]) -> None:
        """Append a batch of encoded documents (one NDJSON line each); lines are grouped into
        one write per file chunk between rotations.

        A write error is counted (the batch's unwritten events as `dropped`) and the file is
        reopened on the next batch; it never raises, so a full disk does not stop capture.
        """
        done = 0
        lines = terminal_safe_lines(lines)
        try:
            if self._fd is None:
                self._open()
            chunk: list[bytes] = []
            chunk_size = 0
            for line in lines:
                if self._size + chunk_size + len(line) > self.rotate_bytes and (
                    self._size + chunk_size
                ):
                    if chunk:
                        self._write_all(b"".join(chunk))
                        done += len(chunk)
                        chunk, chunk_size = [], 0
                    self._rotate()
                chunk.append(line)
                chunk_size += len(line)
            if chunk:
                self._write_all(b"".join(chunk))
                done += len(chunk)
        except OSError:
            self.counters["write_errors"] += 1
            self.counters["dropped"] += len(lines) - done
            try:
                self._close_fd(sync=False)
            except OSError:
                pass  # already counted; the descriptor is gone either way
        finally:
            self.counters["published"] += done

    def flush(self) -> None:
        """Nothing is buffered in user space (each batch goes straight to the kernel)."""

    def close(self) -> None:
        """fsync and close the current file."""
        try:
            self._close_fd(sync=True)
        except OSError:
            self.counters["write_errors"] += 1
