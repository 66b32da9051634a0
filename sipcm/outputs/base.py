"""The Output protocol every sink implements, and the NDJSON encoding they share.

Input: lists of event documents (nested dicts from `sipcm.events.build`), or, for outputs
that define `write_lines`, the same documents already encoded as NDJSON lines (how the
collector hands them over: documents are encoded once, where they are built). Outputs never
change the documents they are given and never build or filter events.
"""

from __future__ import annotations

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
