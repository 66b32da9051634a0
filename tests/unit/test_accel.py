"""The compiled build (sipcm/accel.py): it is what runs when built and current, the pure Python
sources run otherwise, and both publish the same bytes for the same captures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sipcm import accel
from tests.conftest import CORPUS
from tests.events.scen import auth_hdr
from tests.sipgen import MS, SDP, T0, Capture, Leg, S, basic_call

REPO = Path(__file__).resolve().parents[2]
PURE = bool(os.environ.get(accel.PURE_ENV))
BUILT = accel.check() is None


def _python(code: str, **env: str) -> str:
    run_env = {k: v for k, v in os.environ.items() if k != accel.PURE_ENV} | env
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=run_env, cwd=REPO
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


LOADED = (
    "import json, importlib, sipcm.accel as a\n"
    "print(json.dumps({m: importlib.import_module(m).__file__ for m in a.COMPILED}))"
)


def test_the_compiled_build_runs_when_required() -> None:
    """CI (`make test`) sets SIPCM_REQUIRE_ACCEL: there the suite must run compiled code."""
    if not os.environ.get("SIPCM_REQUIRE_ACCEL") or PURE:
        pytest.skip("SIPCM_REQUIRE_ACCEL is not set (or SIPCM_PURE is)")
    assert accel.status().startswith("compiled"), accel.status()
    files = json.loads(_python(LOADED))
    assert all(not f.endswith(".py") for f in files.values()), files


def test_sipcm_pure_loads_every_source() -> None:
    files = json.loads(_python(LOADED, SIPCM_PURE="1"))
    assert sorted(files) == sorted(accel.COMPILED)
    assert all(f.endswith(".py") for f in files.values()), files
    out = _python("import sipcm.accel as a; print(a.status())", SIPCM_PURE="1")
    assert out.strip() == "pure Python: SIPCM_PURE is set"


def _fake_package(tmp_path: Path) -> Path:
    pkg = tmp_path / "sipcm"
    for module in accel.COMPILED:
        src = accel.source_path(module, pkg)
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(f"# {module}\n")
    sources = {m: accel.digest(accel.source_path(m, pkg)) for m in accel.COMPILED}
    manifest = {"python": sys.implementation.cache_tag, "sources": sources}
    (pkg / accel.MANIFEST).write_text(json.dumps(manifest))
    return pkg


def test_a_changed_source_makes_the_build_stale(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path)
    assert accel.check(pkg) is None
    accel.source_path("sipcm.sip.parser", pkg).write_text("# edited\n")
    assert accel.check(pkg) == (
        "stale: sipcm.sip.parser changed since the build; rebuild with make setup"
    )


def test_a_source_with_its_build_stamp_is_not_hashed_again(tmp_path: Path) -> None:
    """The manifest's stamps (size, mtime) spare the hashing of unchanged sources at start-up;
    a source whose stamp moved is hashed, however small the edit."""
    pkg = _fake_package(tmp_path)
    manifest = json.loads((pkg / accel.MANIFEST).read_text())
    parser = accel.source_path("sipcm.sip.parser", pkg)
    stamps = {m: accel.stamp(accel.source_path(m, pkg)) for m in accel.COMPILED}
    manifest["sources"]["sipcm.sip.parser"] = "0" * 64  # a digest only hashing would refute
    (pkg / accel.MANIFEST).write_text(json.dumps(manifest | {"stamps": stamps}))
    assert accel.check(pkg) is None
    size, mtime_ns = stamps["sipcm.sip.parser"]
    os.utime(parser, ns=(mtime_ns + 1_000_000, mtime_ns + 1_000_000))  # same size and text
    assert accel.stamp(parser) == [size, mtime_ns + 1_000_000]
    assert accel.check(pkg) == (
        "stale: sipcm.sip.parser changed since the build; rebuild with make setup"
    )


def test_no_manifest_or_another_python_is_not_used(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path)
    manifest = json.loads((pkg / accel.MANIFEST).read_text())
    (pkg / accel.MANIFEST).write_text(json.dumps(manifest | {"python": "cpython-27"}))
    assert accel.check(pkg) == "built for another Python or module list; rebuild with make setup"
    (pkg / accel.MANIFEST).unlink()
    assert accel.check(pkg) == "not built (make setup builds it)"


def test_a_stale_build_runs_pure_python(tmp_path: Path) -> None:
    """A copy of the package with one compiled source edited loads every module from source."""
    if not BUILT:
        pytest.skip(f"the compiled build is absent: {accel.check()}")
    copy = tmp_path / "sipcm"
    shutil.copytree(REPO / "sipcm", copy)
    src = accel.source_path("sipcm.track.timers", copy)
    src.write_text(src.read_text() + "\n# edited after the build\n")
    res = subprocess.run(
        [sys.executable, "-c", LOADED.replace("print(", "print(a.status());print(", 1)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != accel.PURE_ENV},
    )
    assert res.returncode == 0, res.stderr
    status, files = res.stdout.splitlines()
    assert status == (
        "pure Python: stale: sipcm.track.timers changed since the build; rebuild with make setup"
    )
    assert all(f.startswith(str(copy)) and f.endswith(".py") for f in json.loads(files).values())


def _mixed_capture(path: Path) -> None:
    """Calls (ended by either side, rejected, unanswered), registrations with a challenge and
    a de-registration, and OPTIONS."""
    cap = Capture()
    for i in range(20):
        leg = Leg(call_id=f"mix-{i}@test", from_tag=f"f{i}", a_port=5000 + i)
        t = T0 + i * 300 * MS
        if i % 4 == 3:  # rejected
            inv = leg.req("INVITE", body=SDP, headers=("Content-Type: application/sdp",))
            cap.a2b(leg, t, inv.raw)
            leg.to_tag = f"rej-{i}"
            cap.b2a(leg, t + 30 * MS, leg.resp(inv, 486, "Busy Here"))
            cap.a2b(leg, t + 40 * MS, leg.req("ACK", cseq=inv.cseq).raw)
        else:
            basic_call(cap, leg, t, talk_s=1 + i % 3, bye_from_callee=i % 2 == 1)
    for i in range(5):
        reg = Leg(call_id=f"reg-{i}@test", a_user=f"u{i}", b_user=f"u{i}", from_tag=f"r{i}")
        t = T0 + 9 * S + i * 100 * MS
        first = reg.req("REGISTER", headers=("Expires: 60",))
        cap.a2b(reg, t, first.raw)
        chall = 'WWW-Authenticate: Digest realm="example.com", nonce="n1"'
        cap.b2a(reg, t + MS, reg.resp(first, 401, "Unauthorized", to_tag="x", headers=(chall,)))
        again = reg.req("REGISTER", headers=("Expires: 60", auth_hdr(f"u{i}")))
        cap.a2b(reg, t + 2 * MS, again.raw)
        cap.b2a(reg, t + 3 * MS, reg.resp(again, 200, "OK", to_tag="y", headers=("Expires: 60",)))
        if i % 2:
            bye = reg.req("REGISTER", headers=("Expires: 0", auth_hdr(f"u{i}", n=2)))
            cap.a2b(reg, t + 5 * S, bye.raw)
            cap.b2a(reg, t + 5 * S + MS, reg.resp(bye, 200, "OK", to_tag="z"))
    opt = Leg(call_id="opt-1@test")
    ping = opt.req("OPTIONS")
    cap.a2b(opt, T0 + 20 * S, ping.raw)
    cap.b2a(opt, T0 + 20 * S + MS, opt.resp(ping, 200, "OK", to_tag="o"))
    cap.write(path)


def _replay(files: list[Path], pure: bool) -> bytes:
    env = {k: v for k, v in os.environ.items() if k != accel.PURE_ENV}
    if pure:
        env[accel.PURE_ENV] = "1"
    cmd = [
        sys.executable, "-m", "sipcm", "-E", "stats_interval=0", "-E", "event_types_blst=[]",
        "-E", "evr_limits=[0,0,0]", "replay", "--end", "expire-all", "--summary", "none",
        *map(str, files),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, env=env, cwd=REPO)
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout


def test_compiled_and_pure_publish_the_same_bytes_generated(tmp_path: Path) -> None:
    if not BUILT:
        pytest.skip(f"the compiled build is absent: {accel.check()}")
    pcap = tmp_path / "mixed.pcap"
    _mixed_capture(pcap)
    compiled = _replay([pcap], pure=False)
    actions = Counter(json.loads(line)["event"]["action"] for line in compiled.splitlines())
    assert actions == {
        "call-start": 15, "call-end": 15, "call-attempt": 5, "reg-new": 5, "reg-del": 2,
        "reg-expired": 3, "other-ok": 1,
    }  # fmt: skip
    assert _replay([pcap], pure=True) == compiled


@pytest.mark.needs_shared("corpus")
def test_compiled_and_pure_publish_the_same_bytes_corpus() -> None:
    if not BUILT:
        pytest.skip(f"the compiled build is absent: {accel.check()}")
    files = sorted(CORPUS.rglob("*.pcap*"))
    compiled = _replay(files, pure=False)
    assert compiled.count(b"\n") > 40
    assert _replay(files, pure=True) == compiled
