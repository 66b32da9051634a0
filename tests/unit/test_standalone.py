"""The repository stands alone: tests that need ../shared skip, naming what is missing."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import REPO

# One test that gets the corpus through the fixture, one marked needs_shared, one without.
TESTS = [
    "tests/unit/sip/test_corpus_messages.py::test_compact_form_invite",
    "tests/unit/test_cli.py::test_replay_prints_ndjson_events_on_stdout",
    "tests/unit/test_cli.py::test_bad_flag_is_a_usage_error",
]


def pytest_run(shared: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SIPCM_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *TESTS],
        env={**environ, "SIPCM_SHARED": shared, **env},
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
    )  # fmt: skip


def test_without_shared_the_tests_that_need_it_skip(tmp_path) -> None:
    res = pytest_run(str(tmp_path))
    assert res.returncode == 0, res.stdout
    assert "1 passed, 2 skipped" in res.stdout
    reason = f"needs ../shared: {tmp_path}/corpus not found (set SIPCM_SHARED to its directory)"
    for path in ("tests/unit/sip/test_corpus_messages.py", "tests/unit/test_cli.py"):
        assert re.search(rf"SKIPPED \[1\] {path}:\d+: {re.escape(reason)}", res.stdout)


def test_require_shared_turns_the_skips_into_failures(tmp_path) -> None:
    res = pytest_run(str(tmp_path), SIPCM_REQUIRE_SHARED="1")
    assert res.returncode == 1
    assert "1 passed, 2 errors" in res.stdout
    assert f"{tmp_path}/corpus not found" in res.stdout
