"""Replay captures through the real pipeline and collect the ECS documents it publishes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sipcm.config import load_config
from sipcm.pipeline import FileTotals
from sipcm.run import replay


class Collect:
    """An output that keeps every document it is given."""

    def __init__(self) -> None:
        self.docs: list[dict] = []

    def write(self, events: list[dict]) -> None:
        self.docs.extend(events)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def replay_docs(
    files: Sequence[Path | str], *overrides: str, end: str = "conclude"
) -> tuple[list[dict], list[FileTotals]]:
    """Replay `files` with config overrides; return (documents, per-file totals)."""
    cfg = load_config(None, ["stats_interval=0", *overrides])
    out = Collect()
    totals = replay(cfg, [str(f) for f in files], lambda _c: [out], end=end)
    return out.docs, totals


def brief(doc: dict) -> tuple:
    """(action, call-id, method, code) of a document: the key of most event assertions."""
    sip = doc.get("sip", {})
    return (doc["event"]["action"], sip.get("call_id"), sip.get("method"), sip.get("code"))
