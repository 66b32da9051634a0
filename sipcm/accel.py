"""The optional compiled build of the hot modules, and the guard that keeps it honest.

`make setup` compiles the modules in `COMPILED` with mypyc (`scripts/build_accel.py`) into
extension modules beside their sources, plus `MANIFEST` with each source's SHA-256. The pure
Python sources stay the reference: they are what runs when

- `SIPCM_PURE=1` is set (CI runs the suite both ways),
- the build is absent (a clone without `make setup`, a machine without a C compiler),
- any compiled source changed since the build (a stale extension would silently run old code).

In those cases `guard()` puts a finder in front of the import system that loads every module in
`COMPILED` from its `.py` file. It is all or nothing because compiled modules call each other
directly, not through `sys.modules`. `guard()` runs from `sipcm/__init__.py`, before any of them
is imported.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.util
import json
import os
import sys
from importlib.machinery import ModuleSpec, SourceFileLoader
from pathlib import Path

# The per-message path (capture clock to encoded row) and what it calls. One mypyc group:
# `scripts/build_accel.py` compiles exactly these.
COMPILED: tuple[str, ...] = (
    "sipcm.callstats",
    "sipcm.capture.pcapwalk",
    "sipcm.collector",
    "sipcm.decode.decoder",
    "sipcm.decode.packet",
    "sipcm.events.build",
    "sipcm.events.community_id",
    "sipcm.events.filters",
    "sipcm.events.rates",
    "sipcm.flows",
    "sipcm.shard",
    "sipcm.sip.auth",
    "sipcm.sip.headers",
    "sipcm.sip.message",
    "sipcm.sip.nameaddr",
    "sipcm.sip.parser",
    "sipcm.sip.probe",
    "sipcm.sip.shardkey",
    "sipcm.sip.textcache",
    "sipcm.sip.values",
    "sipcm.sip.via",
    "sipcm.track.calls",
    "sipcm.track.core",
    "sipcm.track.dedup",
    "sipcm.track.outcome",
    "sipcm.track.regs",
    "sipcm.track.states",
    "sipcm.track.timers",
    "sipcm.track.tracker",
    "sipcm.track.trans",
    "sipcm.workers.wire",
)
GROUP = "sipcm._accel"  # mypyc's shared library: sipcm/_accel__mypyc.*.so
MANIFEST = "_accel.json"  # in the package directory, written by the build
PURE_ENV = "SIPCM_PURE"
PACKAGE_DIR = Path(__file__).resolve().parent

_state: str = "not checked"


def source_path(module: str, package_dir: Path = PACKAGE_DIR) -> Path:
    """The `.py` file of a module in `COMPILED`."""
    return package_dir.joinpath(*module.split(".")[1:]).with_suffix(".py")


def digest(path: Path) -> str:
    """SHA-256 of a file, hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stamp(path: Path) -> list[int]:
    """A file's size and modification time (ns). A source whose stamp is the one recorded at
    the build is taken as unchanged (the test Python's bytecode cache makes too), so `check`
    hashes only the sources whose stamp moved (an edit, a checkout), not all at start-up."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def check(package_dir: Path = PACKAGE_DIR) -> str | None:
    """None when the compiled build is present and matches every source; else why not."""
    try:
        manifest = json.loads((package_dir / MANIFEST).read_text())
    except FileNotFoundError:
        return "not built (make setup builds it)"
    except (OSError, ValueError) as exc:
        return f"unreadable {MANIFEST}: {exc}"
    sources = manifest.get("sources", {})
    stamps = manifest.get("stamps", {})
    if manifest.get("python") != sys.implementation.cache_tag or set(sources) != set(COMPILED):
        return "built for another Python or module list; rebuild with make setup"
    for module in COMPILED:
        try:
            path = source_path(module, package_dir)
            if stamps.get(module) == stamp(path):
                continue
            if digest(path) != sources[module]:
                return f"stale: {module} changed since the build; rebuild with make setup"
        except OSError as exc:
            return f"cannot read {module}: {exc}"
    return None


class _SourceOnly(importlib.abc.MetaPathFinder):
    """Loads the modules in COMPILED from their sources, ignoring built extensions."""

    def __init__(self, package_dir: Path) -> None:
        self._dir = package_dir
        self._names = frozenset(COMPILED)

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> ModuleSpec | None:
        if fullname not in self._names:
            return None
        src = source_path(fullname, self._dir)
        return importlib.util.spec_from_file_location(
            fullname, src, loader=SourceFileLoader(fullname, str(src))
        )


def guard() -> None:
    """Choose compiled or pure for this process (see the module docstring); run once."""
    global _state
    if _state != "not checked":
        return
    why = "pure Python: SIPCM_PURE is set" if os.environ.get(PURE_ENV) else None
    if why is None:
        problem = check()
        why = None if problem is None else f"pure Python: {problem}"
    if why is None:
        _state = f"compiled (mypyc, {len(COMPILED)} modules)"
        return
    _state = why
    sys.meta_path.insert(0, _SourceOnly(PACKAGE_DIR))


def status() -> str:
    """How the hot modules run in this process (shown by `sipcm --version`)."""
    return _state
