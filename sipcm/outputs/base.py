"""The Output protocol every sink implements, and the NDJSON encoding they share.

Input: lists of event documents (nested dicts from `sipcm.events.build`), or, for outputs
that define `write_lines`, the same documents already encoded as NDJSON lines (how the
collector hands them over: documents are encoded once, where they are built). Outputs never
change the documents they are given and never build or filter events.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Protocol, runtime_checkable

import orjson

# orjson's option for NDJSON: compact, newline appended (for callers that call orjson.dumps
# directly on a hot path, where a Python-level wrapper costs more than the encoding saves).
NDJSON_OPTION = orjson.OPT_APPEND_NEWLINE


def ndjson_line(doc: dict[str, Any]) -> str:
    """One compact JSON line (with its newline); key order is the document's, which the event
    builder fixes, so the same events always give the same bytes."""
    return orjson.dumps(doc, option=NDJSON_OPTION).decode()


# Characters a terminal acts on rather than shows: C0 and C1 controls (ESC starts the escape
# sequences that move the cursor, retitle the window or write to the clipboard; some terminals
# take U+009B as one), DEL, and the bidirectional marks and overrides that reorder what is
# shown. JSON escapes C0 (and orjson does) but allows the rest raw inside a string.
CONTROLS = [*range(0x20), *range(0x7F, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F),
            *range(0x2066, 0x206A)]  # fmt: skip
_RAW = [c for c in CONTROLS if c >= 0x7F]  # the ones an encoded line can hold raw
# Their UTF-8 lead bytes: a line without any of these holds none of them (checked first, with
# `in`, which is a memchr, so an ASCII batch costs a scan and no regex).
_LEADS = sorted({chr(c).encode()[:1] for c in _RAW})
_UNSAFE = re.compile(b"|".join(re.escape(chr(c).encode()) for c in _RAW))


def _escaped(m: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % ord(m.group().decode())


def terminal_safe(data: bytes) -> bytes:
    """Encoded NDJSON with every raw C1 control and bidirectional mark or override written as
    a JSON escape (\\u009b, \\u202e): the same documents, but `tail -f` or `less` of the
    output cannot be made to run terminal sequences or to show text reordered by what a SIP
    message carried. Every such character is inside a JSON string (an encoded document is
    ASCII outside its strings), where the escape means the same character."""
    if not _maybe_unsafe(data):
        return data
    return _UNSAFE.sub(_escaped, data)


def _maybe_unsafe(data: bytes) -> bool:
    if data.isascii():  # the usual batch: one fast pass, then DEL
        return b"\x7f" in data
    return any(lead in data for lead in _LEADS)


def terminal_safe_lines(lines: list[bytes]) -> list[bytes]:
    """`terminal_safe` for each line, the batch checked at once (the usual batch has none)."""
    if not _maybe_unsafe(b"".join(lines)):
        return lines
    return [terminal_safe(line) for line in lines]


def ndjson_bytes(doc: dict[str, Any]) -> bytes:
    """`ndjson_line` as UTF-8 bytes, without the round trip through str (orjson: ~1 us a
    document against ~12 us for the standard library's encoder)."""
    return orjson.dumps(doc, option=NDJSON_OPTION)


@runtime_checkable
class Output(Protocol):
    """An event sink. `counters` holds at least `published` (events written) and `write_errors`,
    and `dropped` for events lost. Optional: `name` (for summaries) and `pending` (accepted
    events not delivered yet, e.g. on the Elasticsearch output's disk queue)."""

    counters: Counter[str]

    def write(self, events: list[dict[str, Any]]) -> None:
        """Accept a batch of events (may buffer)."""

    def flush(self) -> None:
        """Push buffered events to their destination."""

    def close(self) -> None:
        """Flush and release resources; the output is unusable afterwards."""
