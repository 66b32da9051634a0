"""Data flows one way: a stage imports only stages to its left and the shared modules.

capture -> decode -> sip -> track -> events -> outputs; `config` and `web` stand beside the
pipeline and know none of its stages; only pipeline/run/cli wire everything together.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from tests.conftest import REPO

SHARED = {"errors", "counters", "counterdefs", "__init__"}
ORDER = ["capture", "decode", "sip", "track", "events", "outputs"]
ALLOWED = {
    **{stage: set(ORDER[:i]) | SHARED for i, stage in enumerate(ORDER)},
    "config": SHARED,
    "web": SHARED,
}


def imports_by_package() -> dict[str, set[str]]:
    deps: dict[str, set[str]] = defaultdict(set)
    for path in (REPO / "sipcm").rglob("*.py"):
        rel = path.relative_to(REPO / "sipcm").parts
        pkg = rel[0] if len(rel) > 1 else Path(rel[0]).stem
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "sipcm":
                    deps[pkg].add(parts[1] if len(parts) > 1 else "__init__")
    return deps


def test_stages_import_only_to_their_left() -> None:
    deps = imports_by_package()
    wrong = {
        pkg: sorted(used - ALLOWED[pkg] - {pkg})
        for pkg, used in deps.items()
        if pkg in ALLOWED and used - ALLOWED[pkg] - {pkg}
    }
    assert wrong == {}


def test_only_the_loader_and_doctor_import_bcc() -> None:
    """Replay and the tests never need BCC: only the program loader (and doctor, which
    checks that it imports) touch it, lazily."""
    users = sorted(
        str(p.relative_to(REPO))
        for p in (REPO / "sipcm").rglob("*.py")
        if any(
            isinstance(n, (ast.Import, ast.ImportFrom))
            and any(
                (getattr(n, "module", None) or "").split(".")[0] == "bcc"
                or a.name.split(".")[0] == "bcc"
                for a in n.names
            )
            for n in ast.walk(ast.parse(p.read_text()))
        )
    )
    assert users == ["sipcm/capture/doctor.py", "sipcm/capture/program.py"]
