"""The state file: tracker records (`persist.py`) saved on stop and read on the next start.

Format, version 1: UTF-8 JSON Lines. The first line is a header
`{"format": "sipcm-state", "version": 1, "saved_ns": <Unix time ns>, "records": <count>}`, then
one record per line. Records are whatever `Tracker.export_state` gave (each with `kind` and
`shard_key`), so the records of several trackers can be written as one list and split again by
shard key when read. `save` writes a temporary file beside the target, fsyncs it, renames it
over the target and fsyncs the directory: a reader sees the previous file or the new one, never
a part of one. `load` reads a file once (it is removed when opened, so a crash after a
restore cannot restore the same state twice); a header that is not valid, of another version or
older than the maximum age gives no records and says why, and a bad record or a truncated file
raises CorruptFile while the records are read (before a tracker changes: `import_state`
decodes them all first).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

FORMAT = "sipcm-state"
VERSION = 1
NS = 1_000_000_000


class CorruptFile(ValueError):
    """A state file whose records cannot all be read (raised while iterating them)."""


@dataclass
class Loaded:
    """What `load` found: the records to restore, read lazily, and why none when none."""

    records: Iterator[dict] = field(default_factory=lambda: iter(()))
    saved_ns: int | None = None  # when the file was written (Unix time ns)
    count: int = 0  # records the header announces
    problem: str | None = None  # why the file is not usable (None: usable or absent)
    too_old: bool = False  # the file was valid but older than the maximum age


def save(path: str | Path, records: Sequence[dict], saved_ns: int) -> None:
    """Replace `path` atomically with a state file holding `records` (OSError on failure)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "version": VERSION, "saved_ns": saved_ns, "records": len(records)}
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(header) + "\n")
            for rec in records:
                fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def unwritable(path: str | Path) -> str | None:
    """Why this process could not `save` to `path` (None: it can): the directory, or the
    nearest ancestor `save` would create it in, must be a directory it may write to."""
    parent = Path(path).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"no permission to write in {parent}"
    return None


def load(path: str | Path, *, max_age_ns: int, now_ns: int) -> Loaded:
    """Open the state file at `path` and remove it (it is read once); no file is an empty
    result without a problem. The header is checked here; `records` yields the records one at
    a time (a full table would take gigabytes as one list of dicts) and raises CorruptFile at a
    line that is not a record or when the file ends short of the header's count."""
    target = Path(path)
    try:
        fh = open(target, "rb")  # noqa: SIM115 - closed by the records iterator
    except FileNotFoundError:
        return Loaded()
    except OSError as e:
        return Loaded(problem=f"cannot read it: {e.strerror}")
    try:
        got = _header(fh, max_age_ns, now_ns)
        target.unlink()  # the open file stays readable
    except OSError as e:
        fh.close()
        return Loaded(problem=f"cannot read and remove it: {e.strerror}")
    if got.problem is not None or got.too_old:
        fh.close()
        return got
    got.records = _records(fh, got.count)
    return got


def _header(fh: BinaryIO, max_age_ns: int, now_ns: int) -> Loaded:
    bad = Loaded(problem="not a sipcm state file (no valid header line)")
    try:
        header = json.loads(fh.readline())
    except ValueError:
        return bad
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        return bad
    count, saved = header.get("records"), header.get("saved_ns")
    if header.get("version") != VERSION:
        return Loaded(
            count=count if type(count) is int else 0,
            problem=f"format version {header.get('version')!r}, this sipcm reads version {VERSION}",
        )
    if type(count) is not int or count < 0 or type(saved) is not int:
        return bad
    return Loaded(saved_ns=saved, count=count, too_old=abs(now_ns - saved) > max_age_ns)


def _records(fh: BinaryIO, count: int) -> Iterator[dict]:
    with fh:
        n = 0
        for n, line in enumerate(fh, start=1):
            try:
                rec = json.loads(line)
            except ValueError:
                raise CorruptFile(f"line {n + 1} is not valid JSON") from None
            if not isinstance(rec, dict):
                raise CorruptFile(f"line {n + 1} is not a record")
            yield rec
        if n != count:
            raise CorruptFile(f"{n} records where the header says {count} (truncated?)")
