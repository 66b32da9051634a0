"""The collector's policy in a `sipcm` process: what survives a collection is frozen, which
relies on the pipeline making no reference cycles. Each check runs in its own interpreter:
freezing, like disabling the collector, is process-wide."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def test_the_survivors_of_a_collection_are_frozen_once_enabled() -> None:
    code = """
import gc
from sipcm import gcpolicy
f = gcpolicy.SurvivorFreezer()
kept = [[i] for i in range(1000)]
gc.collect(0)
print(f.after_batch(), gc.get_freeze_count())  # not enabled: nothing frozen
gcpolicy.freeze_survivors()
gc.collect(0)
print(f.after_batch(), gc.get_freeze_count() >= 1000)  # enabled: what is alive is frozen
print(f.after_batch())  # no collection since: nothing to do
frozen = gc.get_freeze_count()
del kept[:]
print(frozen - gc.get_freeze_count() >= 1000)  # frozen objects still die by reference counting
"""
    assert _run(code) == ["False", "0", "True", "True", "False", "True"]


def test_the_sipcm_command_enables_it() -> None:
    code = """
import atexit, sys
from sipcm import cli, gcpolicy
atexit.register(lambda: print('freezing', gcpolicy.freezing()))
print('before', gcpolicy.freezing())
sys.argv = ['sipcm', '--version']
cli.console()
"""
    out = _run(code)
    assert out[:2] == ["before", "False"]
    assert out[-2:] == ["freezing", "True"]


def test_a_replay_leaves_no_cyclic_garbage() -> None:
    """Calls (answered, refused, cancelled, unanswered, open), registrations and auth
    failures, with the flow store and history on as in live capture: with the collector off,
    a collection afterwards finds nothing unreachable, so freezing loses nothing."""
    code = """
import gc, os, tempfile
from pathlib import Path
from bench.run import gen_calls
from sipcm.config import load_config
from sipcm.outputs.console import ConsoleOutput
from sipcm.run import replay
from tests.events.test_dashboard_data import scenario

tmp = Path(tempfile.mkdtemp())
gen_calls(tmp / "calls.pcap", 300)
scenario().write(tmp / "scenario.pcap")
files = [str(tmp / "calls.pcap"), str(tmp / "scenario.pcap")]

def once():
    cfg = load_config(None, ["stats_interval=0", "evr_limits=[0,0,0]", "http_port=0"])
    with open(os.devnull, "w") as sink:
        out = ConsoleOutput(sink)
        replay(cfg, files, lambda _c: [out], end="expire-all", after=lambda p: None)
    return out.counters["published"]

once()  # imports and one-time caches first
gc.collect()
gc.disable()
print(once(), gc.collect())
"""
    published, unreachable = _run(code)
    assert int(published) > 600
    assert unreachable == "0"
