"""The state file: tracker records (`persist.py`) saved on stop and read on the next start.

Format, version 1: UTF-8 JSON Lines. The first line is a header
`{"format": "sipcm-state", "version": 1, "saved_ns": <Unix time ns>, "records": <count>}`, then
one record per line. Records are whatever `Tracker.export_state` gave (each with `kind` and
`shard_key`), so the records of several trackers can be written as one list and split again by
shard key when read. `save` writes a temporary file beside the target, fsyncs it, renames it
over the target and fsyncs the directory: a reader sees the previous file or the new one, never
a part of one. `load` reads a file once (it is removed when read, so a crash after a restore
cannot restore the same state twice) and never raises for its content: a file that is not
valid, of another version, truncated or older than the maximum age gives no records and says
why.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = "sipcm-state"
VERSION = 1
NS = 1_000_000_000


@dataclass
class Loaded:
    """What `load` found: the records to restore, and why none when there are none."""

    records: list[dict] = field(default_factory=list)
    saved_ns: int | None = None  # when the file was written (Unix time ns)
    discarded: int = 0  # records in the file that are not returned
    problem: str | None = None  # why the file was not usable (None: usable or absent)
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


def load(path: str | Path, *, max_age_ns: int, now_ns: int) -> Loaded:
    """Read and remove the state file at `path`; no file is an empty result without a problem."""
    target = Path(path)
    try:
        fh = open(target, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return Loaded()
    except OSError as e:
        return Loaded(problem=f"cannot read it: {e.strerror}")
    with fh:
        try:
            result = _parse(fh, max_age_ns, now_ns)
        except OSError as e:
            return Loaded(problem=f"cannot read it: {e.strerror}")
    try:
        target.unlink()
    except OSError as e:
        result.records = []
        result.problem = f"cannot remove it after reading ({e.strerror}), so it is not used"
    return result


def _parse(fh, max_age_ns: int, now_ns: int) -> Loaded:
    first = fh.readline()
    try:
        header = json.loads(first)
    except ValueError:
        return Loaded(problem="not a sipcm state file (no valid header line)")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        return Loaded(problem="not a sipcm state file (no valid header line)")
    count, saved = header.get("records"), header.get("saved_ns")
    if header.get("version") != VERSION:
        return Loaded(
            discarded=count if type(count) is int else 0,
            problem=f"format version {header.get('version')!r}, this sipcm reads version {VERSION}",
        )
    if type(count) is not int or count < 0 or type(saved) is not int:
        return Loaded(problem="not a sipcm state file (no valid header line)")
    if abs(now_ns - saved) > max_age_ns:
        return Loaded(saved_ns=saved, discarded=count, too_old=True)
    records: list[dict] = []
    for n, line in enumerate(fh, start=2):
        try:
            rec = json.loads(line)
        except ValueError:
            return Loaded(saved_ns=saved, discarded=count, problem=f"line {n} is not valid JSON")
        if not isinstance(rec, dict):
            return Loaded(saved_ns=saved, discarded=count, problem=f"line {n} is not a record")
        records.append(rec)
    if len(records) != count:
        return Loaded(
            saved_ns=saved,
            discarded=max(count, len(records)),
            problem=f"{len(records)} records where the header says {count} (truncated?)",
        )
    return Loaded(records=records, saved_ns=saved)
