"""Pipeline start-up raises the cycle collector's gen0 threshold (never lowers it)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from sipcm.config import load_config
from sipcm.pipeline import _GC_GEN0, Pipeline


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
