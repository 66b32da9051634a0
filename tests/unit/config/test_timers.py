"""calls_timeouts: the config's timer table and the tracker's defaults are the same timers."""

from __future__ import annotations

from collections import Counter

from sipcm.config import load_config
from sipcm.config.kinds import parse_duration
from sipcm.config.schema import CALL_TIMERS
from sipcm.pipeline import Pipeline
from sipcm.track.tracker import Tracker


def test_config_timers_are_the_tracker_timers_with_its_defaults() -> None:
    tracker = Tracker(Counter())
    assert list(CALL_TIMERS) == list(Tracker.timeout_names)
    assert {n: parse_duration(d) for n, (d, _) in CALL_TIMERS.items()} == tracker.timeouts


def test_pipeline_tracker_runs_on_the_configured_timers() -> None:
    cfg = load_config(None, ["calls_timeouts={inv_1st: 7s, dup_window: 2s}"])
    pipe = Pipeline(cfg, [], hostname="h")
    try:
        assert pipe.tracker.timeouts == {**Tracker(Counter()).timeouts, "inv_1st": 7.0,
                                         "dup_window": 2.0}  # fmt: skip
    finally:
        pipe.close()
