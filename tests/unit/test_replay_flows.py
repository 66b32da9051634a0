"""A replay keeps calls' messages (the flow store) only when something can read them after it:
`--serve` (call pages, per-call pcaps) or `sipcm ladder`; the events are the same either way."""

from __future__ import annotations

import io
from pathlib import Path

from sipcm import run
from sipcm.config import load_config
from sipcm.outputs.console import ConsoleOutput
from sipcm.pipeline import Pipeline
from tests.sipgen import MS, T0, Capture, Leg, basic_call


def replay(path: Path, after: bool, *overrides: str) -> tuple[Pipeline, str]:
    cfg = load_config(None, ["stats_interval=0", *overrides])
    out = io.StringIO()
    kept: list[object] = []
    seen: list[Pipeline] = []
    run.replay(
        cfg, [str(path)], lambda c: [ConsoleOutput(out, counters=c.group("o"))], end="conclude",
        after=seen.append if after else None, keep=kept,
    )  # fmt: skip
    (pipe,) = kept
    assert isinstance(pipe, Pipeline)
    assert seen == ([pipe] if after else [])
    return pipe, out.getvalue()


def test_flows_are_kept_only_when_read_after_the_replay(tmp_path: Path) -> None:
    cap = Capture()
    for i in range(3):
        basic_call(cap, Leg(f"f{i}@example.com", from_tag=f"t{i}"), T0 + i * 10 * MS)
    path = cap.write(tmp_path / "calls.pcap")
    served, served_out = replay(path, True, "workers=1")
    plain, plain_out = replay(path, False, "workers=1")
    assert served.backend.shard.flows.enabled
    flow = served.flow("f1@example.com")
    assert flow is not None
    assert len(flow["messages"]) == 7
    assert not plain.backend.shard.flows.enabled
    assert plain.flow("f1@example.com") is None
    assert plain_out == served_out
    assert plain_out.count("\n") == 6
    # An explicit flow_max_calls: 0 stays off when served.
    off, _ = replay(path, True, "workers=1", "flow_max_calls=0")
    assert not off.backend.shard.flows.enabled
