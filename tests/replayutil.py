"""Replay captures through the real pipeline and collect the ECS documents it publishes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sipcm.config import load_config
from sipcm.counterdefs import undeclared
from sipcm.pipeline import FileTotals, Pipeline
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
    files: Sequence[Path | str], *overrides: str, end: str = "conclude", workers: int = 1
) -> tuple[list[dict], list[FileTotals]]:
    """Replay `files` with config overrides and `workers` correlation processes; return
    (documents, per-file totals)."""
    cfg = load_config(None, ["stats_interval=0", f"workers={workers}", *overrides])
    out = Collect()
    totals = replay(cfg, [str(f) for f in files], lambda _c: [out], end=end, after=declared_only)
    return out.docs, totals


def declared_only(pipe: Pipeline) -> None:
    """Every counter a replay raised is declared in sipcm.counterdefs (checked after each
    replay the tests run, so every scenario and capture exercises the declarations)."""
    assert undeclared(pipe.snapshot()) == [], "declare these in sipcm/counterdefs.py"


def brief(doc: dict) -> tuple:
    """(action, call-id, method, code) of a document: the key of most event assertions."""
    sip = doc.get("sip", {})
    return (doc["event"]["action"], sip.get("call_id"), sip.get("method"), sip.get("code"))


def replay_docs_all_workers(
    files: Sequence[Path | str], *overrides: str, end: str = "conclude"
) -> tuple[list[dict], list[FileTotals]]:
    """`replay_docs` with 1, 2 and 3 workers; asserts the three give the same documents in
    the same order and the same per-file totals, and returns them."""
    docs, totals = replay_docs(files, *overrides, end=end, workers=1)
    for workers in (2, 3):
        docs_w, totals_w = replay_docs(files, *overrides, end=end, workers=workers)
        assert [without_worker_counters(d) for d in docs_w] == docs, (
            f"workers={workers} published other events than workers=1"
        )
        assert totals_w == totals, f"workers={workers}: other per-file totals"
    return docs, totals


def without_worker_counters(doc: dict) -> dict:
    """A stats document without its `workers` counter group (the dispatcher's own figures,
    present only when there are worker processes); any other document unchanged."""
    counters = doc.get("sipcm", {}).get("counters")
    if doc["event"]["action"] != "stats" or not counters or "workers" not in counters:
        return doc
    rest = {g: c for g, c in counters.items() if g != "workers"}
    return {**doc, "sipcm": {**doc["sipcm"], "counters": rest}}
