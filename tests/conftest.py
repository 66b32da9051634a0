"""Shared fixtures: where the shared corpus and ECS definitions live, and skipping without them.

The repository stands alone: a test that reads `../shared` (the capture corpus, the full ECS
field list) declares it with `@pytest.mark.needs_shared("corpus")` (or the `corpus` fixture)
and is skipped, with the missing path as reason, when the directory is not there.
`SIPCM_SHARED=DIR` points elsewhere; `SIPCM_REQUIRE_SHARED=1` (CI) turns those skips into
failures so that a missing corpus cannot pass unnoticed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SIPCM_SHARED") or REPO.parent / "shared")
CORPUS = SHARED / "corpus"
ECS_FLAT = SHARED / "ecs" / "ecs_flat.yml"


def missing_shared(part: str) -> str | None:
    """Why `SHARED / part` cannot be used, or None when it is there."""
    path = SHARED / part
    if path.exists():
        return None
    return f"needs ../shared: {path} not found (set SIPCM_SHARED to its directory)"


def require_shared(part: str) -> Path:
    """`SHARED / part`, or skip the running test (fail under SIPCM_REQUIRE_SHARED) if absent."""
    reason = missing_shared(part)
    if reason is not None:
        if os.environ.get("SIPCM_REQUIRE_SHARED"):
            pytest.fail(reason)
        pytest.skip(reason)
    return SHARED / part


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs_shared(*parts): reads these paths under ../shared; skipped when one is absent",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip marked tests whose shared paths are absent (reported at the test's own line)."""
    if os.environ.get("SIPCM_REQUIRE_SHARED"):
        return  # pytest_runtest_setup fails them instead
    for item in items:
        for mark in item.iter_markers("needs_shared"):
            reasons = [r for r in map(missing_shared, mark.args) if r is not None]
            if reasons:
                item.add_marker(pytest.mark.skip(reason=reasons[0]))


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs_shared"):
        for part in mark.args:
            require_shared(part)


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared capture corpus (read in place, never copied)."""
    return require_shared("corpus")
