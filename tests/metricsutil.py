"""Read `/metrics` text back: families (prometheus_client's parser) and samples by labels."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from sipcm.compose import web_state
from sipcm.config import load_config
from sipcm.run import replay
from sipcm.web import metrics
from tests.replayutil import Collect


def families(text: str) -> dict[str, Metric]:
    """Families by name; fails on a family declared twice or a sample outside its family."""
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert [n for n, k in Counter(types).items() if k > 1] == [], "duplicate families"
    fams = list(text_string_to_metric_families(text))
    assert len(fams) == len(types)
    return {f.name: f for f in fams}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of every sample."""
    out = {}
    for fam in families(text).values():
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def scrape_replay(files: Sequence[Path | str], *overrides: str, workers: int = 1) -> str:
    """Replay `files` through the real pipeline and render `/metrics` once it is concluded,
    as `sipcm replay --serve` serves it."""
    cfg = load_config(None, ["stats_interval=0", f"workers={workers}", *overrides])
    got: list[str] = []

    def scrape(pipe) -> None:
        got.append(metrics.render(web_state(cfg, pipe).metrics()))

    replay(cfg, [str(f) for f in files], lambda _c: [Collect()], end="conclude", after=scrape)
    return got[0]
