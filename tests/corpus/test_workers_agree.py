"""Every worker count publishes the same bytes for every corpus capture (SPEC 13)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sipcm.config import load_config
from sipcm.outputs.console import ConsoleOutput
from sipcm.run import replay
from tests.conftest import CORPUS
from tests.ecs import assert_valid

FILES = sorted(CORPUS.rglob("*.pcap*")) if CORPUS.is_dir() else []
pytestmark = pytest.mark.needs_shared("corpus")


def ndjson(files: list[Path], workers: int, *overrides: str, end: str = "conclude") -> str:
    cfg = load_config(None, ["stats_interval=0", f"workers={workers}", *overrides])
    buf = io.StringIO()
    replay(
        cfg, [str(f) for f in files], lambda c: [ConsoleOutput(buf, counters=c.group("o"))], end=end
    )
    return buf.getvalue()


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_each_file_same_bytes_for_1_2_3_workers(path: Path) -> None:
    one = ndjson([path], 1, "event_types_blst=[]", end="expire-all")
    assert ndjson([path], 2, "event_types_blst=[]", end="expire-all") == one
    assert ndjson([path], 3, "event_types_blst=[]", end="expire-all") == one


def test_whole_corpus_as_one_capture_with_default_limits(corpus: Path) -> None:
    """All files as one continuous capture, default rate limits and blacklist: the merge
    order is what the limiter sees, so its verdicts agree too."""
    one = ndjson(FILES, 1)
    assert one.count("\n") > 40
    for line in one.splitlines():
        assert_valid(json.loads(line))
    assert ndjson(FILES, 2) == one
    assert ndjson(FILES, 3) == one


def test_same_worker_count_same_bytes(corpus: Path) -> None:
    assert ndjson(FILES, 2, end="expire-all") == ndjson(FILES, 2, end="expire-all")
