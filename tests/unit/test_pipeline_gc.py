"""Pipeline start-up raises the cycle collector's gen0 threshold (never lowers it)."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from sipcm.config import load_config
from sipcm.gcpolicy import _GC_GEN0
from sipcm.pipeline import Pipeline


@pytest.fixture
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_default_gen0_is_raised_keeping_older_generations(thresholds: None) -> None:
    gc.set_threshold(700, 7, 9)
    Pipeline(load_config(None, []), [], hostname="h")
    assert gc.get_threshold() == (_GC_GEN0, 7, 9)


def test_higher_or_disabled_threshold_is_left_alone(thresholds: None) -> None:
    gc.set_threshold(_GC_GEN0 * 2, 10, 10)
    Pipeline(load_config(None, []), [], hostname="h")
    assert gc.get_threshold() == (_GC_GEN0 * 2, 10, 10)
    gc.set_threshold(0, 10, 10)  # 0 disables automatic collection: keep it that way
    Pipeline(load_config(None, []), [], hostname="h")
    assert gc.get_threshold() == (0, 10, 10)


def test_importing_the_cli_raises_gen0() -> None:
    """The `sipcm` command raises the threshold as its module loads (before click and its
    other imports, most of start-up), not only when a pipeline is built."""
    code = (
        "import gc, sys; gc.set_threshold(700, 10, 10); import sipcm.cli; "
        "print(gc.get_threshold(), 'click' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"({_GC_GEN0}, 10, 10) True"
