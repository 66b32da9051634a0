"""Dead-letter file: documents Elasticsearch rejected for good (mapping errors, other 4xx).

Input: the encoded document, its `_id`, the target index, the HTTP status and the error object
from the bulk answer. Output: one NDJSON line per document,
`{"@timestamp", "status", "error", "index", "_id", "document"}`, appended to `path` (created
0600, never through a symlink). The file stops growing at `max_bytes`: beyond it, and when the
disk refuses the write, the document is counted under `dropped_rejected` and logged instead.
Counters: `dead_lettered` (written), `dropped_rejected`.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)


class DeadLetter:
    """Appends rejected documents with their error; opened on the first rejection."""

    def __init__(self, path: str, *, max_bytes: int, counters: Counter[str]) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.counters = counters
        self._fd: int | None = None
        self._size = 0
        self._warned = False

    def write(
        self, line: bytes, doc_id: str, index: str, status: int, error: dict[str, Any]
    ) -> None:
        """Record one rejected document (`line` is its encoded JSON)."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        head = json.dumps(
            {"@timestamp": now, "status": status, "error": error, "index": index, "_id": doc_id},
            separators=(",", ":"),
        )
        record = head[:-1].encode() + b',"document":' + line + b"}\n"
        try:
            fd = self._open()
            if self._size + len(record) > self.max_bytes:
                self._lose(f"dead-letter file {self.path} reached its size limit")
                return
            os.write(fd, record)
        except OSError as e:
            self._lose(f"cannot write dead-letter file {self.path}: {e.strerror or e}")
            return
        self._size += len(record)
        self.counters["dead_lettered"] += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
            self._fd = os.open(self.path, flags, 0o600)
            self._size = os.fstat(self._fd).st_size
        return self._fd

    def _lose(self, why: str) -> None:
        self.counters["dropped"] += 1
        self.counters["write_errors"] += 1
        self.counters["dropped_rejected"] += 1
        if not self._warned:
            self._warned = True
            log.error("%s; rejected documents are now only counted (dropped_rejected)", why)
