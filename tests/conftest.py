"""Shared fixtures: where the shared corpus and ECS definitions live."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
ECS_FLAT = SHARED / "ecs" / "ecs_flat.yml"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared capture corpus (read in place, never copied)."""
    if not CORPUS.is_dir():
        pytest.fail(f"shared corpus not found at {CORPUS}")
    return CORPUS
