"""Compile the hot modules (sipcm.accel.COMPILED) with mypyc, in place, and write the manifest.

    python scripts/build_accel.py [--package-root DIR] [--if-stale] [--clean]

DIR is the directory that holds the `sipcm` package (default: this checkout). The extension
modules land beside their sources; `sipcm/_accel.json` records each source's SHA-256 so that a
changed source makes sipcm run pure Python instead of stale compiled code (sipcm/accel.py).
Needs mypy (the `accel` extra) and a C compiler with Python's headers (python3-dev).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# mypy settings for the build: type-check the compiled modules, and take the modules they
# import as they are (those run interpreted).
MYPY_CONFIG = "[mypy]\nfollow_imports = silent\nignore_missing_imports = True\n"


def _accel(root: Path):
    sys.path.insert(0, str(root))
    os.environ["SIPCM_PURE"] = "1"  # importing sipcm.accel must not load what we rebuild
    import sipcm.accel as accel

    return accel


def built_files(pkg: Path) -> list[Path]:
    """Every extension module and the manifest a build leaves in the package."""
    return [*pkg.rglob("*.so"), pkg / "_accel.json"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--package-root", type=Path, default=REPO, help="directory holding sipcm/")
    ap.add_argument("--clean", action="store_true", help="remove a build and exit")
    ap.add_argument(
        "--if-stale", action="store_true", help="do nothing when a current build is present"
    )
    args = ap.parse_args()
    root = args.package_root.resolve()
    accel = _accel(root)
    pkg = root / "sipcm"
    if args.if_stale and not args.clean and accel.check(pkg) is None:
        print("build_accel: the compiled modules are current")
        return 0
    for f in built_files(pkg):
        f.unlink(missing_ok=True)
    if args.clean:
        print("build_accel: removed the compiled modules; sipcm runs pure Python")
        return 0
    with tempfile.TemporaryDirectory(prefix="sipcm-accel-") as tmp:
        # Compiled in a copy: the digests are of what was compiled, and a package root such
        # as site-packages (make install) holds modules that mypy must not mistake for ours.
        src = Path(tmp) / "src"
        # Stamped before the copy: a source edited meanwhile gets a newer stamp, so `check`
        # hashes it and finds it differs from what was compiled.
        stamps = {m: accel.stamp(accel.source_path(m, pkg)) for m in accel.COMPILED}
        shutil.copytree(pkg, src / "sipcm", ignore=shutil.ignore_patterns("__pycache__"))
        sources = [
            str(accel.source_path(m, src / "sipcm").relative_to(src)) for m in accel.COMPILED
        ]
        config = Path(tmp) / "mypy.ini"
        config.write_text(MYPY_CONFIG)
        sources.append(f"--config-file={config}")
        setup = Path(tmp) / "setup_accel.py"
        setup.write_text(
            "from setuptools import setup\n"
            "from mypyc.build import mypycify\n"
            f"setup(name='sipcm-accel', ext_modules=mypycify({sources!r}, "
            f"opt_level='3', group_name={accel.GROUP!r}, "
            f"target_dir={str(Path(tmp) / 'build')!r}))\n"
        )
        cmd = [
            sys.executable, str(setup), "build_ext", "--inplace",
            "--build-temp", str(Path(tmp) / "temp"),
        ]  # fmt: skip
        env = dict(os.environ, MYPY_CACHE_DIR=str(Path(tmp) / "mypy_cache"))
        print(f"build_accel: compiling {len(accel.COMPILED)} modules with mypyc (about a minute)")
        done = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            print("build_accel: mypyc failed; sipcm still runs, in pure Python", file=sys.stderr)
            return 1
        for lib in (src / "sipcm").rglob("*.so"):
            shutil.copy2(lib, pkg / lib.relative_to(src / "sipcm"))
        manifest = {
            "python": sys.implementation.cache_tag,
            "sources": {
                m: accel.digest(accel.source_path(m, src / "sipcm")) for m in accel.COMPILED
            },
            "stamps": stamps,
        }
    (pkg / accel.MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    problem = accel.check(pkg)
    if problem is not None:
        print(f"build_accel: the build does not check out: {problem}", file=sys.stderr)
        return 1
    print(f"build_accel: {len(accel.COMPILED)} modules compiled; manifest {pkg / accel.MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
