"""Dropping privileges after attach: which user `run_as` names, what `drop()` leaves (checked in
/proc/PID/status of a child process, since a drop cannot be undone), the one-thread rule, and
the detach helper that outlives the sensor. The running sensor is checked in
tests/netns/test_privileges.py."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipcm.capture import privileges as P
from sipcm.errors import CaptureError
from tests.conftest import REPO

NOBODY = pwd.getpwnam("nobody")
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")


def _pw(name: str, uid: int) -> pwd.struct_passwd:
    return pwd.struct_passwd((name, "x", uid, uid, "", "/", "/bin/false"))


def test_empty_run_as_keeps_root():
    assert P.resolve("") is None
    assert P.drop(None) == "run_as is '': still root with every capability"


@root_only
def test_auto_prefers_the_dedicated_user(monkeypatch):
    users = {"sipcm": _pw("sipcm", 990), "nobody": NOBODY}
    monkeypatch.setattr(P.pwd, "getpwnam", lambda n: users[n])
    monkeypatch.setattr(P.os, "getgrouplist", lambda name, gid: [gid])
    assert P.resolve("auto") == P.RunAs("sipcm", 990, 990, (990,))
    del users["sipcm"]
    assert P.resolve("auto") == P.RunAs("nobody", NOBODY.pw_uid, NOBODY.pw_gid, (NOBODY.pw_gid,))


@root_only
def test_numeric_uid():
    assert P.resolve(str(NOBODY.pw_uid)).name == "nobody"


def test_unknown_user_is_a_one_line_error():
    with pytest.raises(CaptureError) as exc:
        P.resolve("no-such-user-x")
    assert exc.value.message == "run_as: no user 'no-such-user-x' on this host"
    assert exc.value.hint == "create it (useradd --system --no-create-home sipcm) or set run_as"


def test_switching_user_without_cap_setuid_is_refused(monkeypatch):
    monkeypatch.setattr(P, "_has_cap", lambda cap: False)
    monkeypatch.setattr(P.os, "getuid", lambda: 1234)
    with pytest.raises(CaptureError) as exc:
        P.resolve("nobody")
    assert exc.value.message == "run_as: cannot switch from uid 1234 to nobody (no CAP_SETUID)"


CHILD = """
import json, sys, threading
from sipcm.capture import privileges as P
keep = tuple(int(c) for c in sys.argv[2:])
if sys.argv[1] == "thread":
    threading.Thread(target=threading.Event().wait, args=(5,), daemon=True).start()
try:
    said = P.drop(P.resolve("nobody"), keep)
except RuntimeError as exc:
    said = str(exc)
print(json.dumps({"said": said, "status": P.status()}))
"""


def _child(*args: str) -> dict:
    import json

    res = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    return json.loads(res.stdout)


@root_only
def test_drop_leaves_no_capability_and_sets_no_new_privs():
    out = _child("main")
    st = out["status"]
    assert out["said"] == (
        f"running as nobody (uid {NOBODY.pw_uid}) with no capabilities, no_new_privs"
    )
    assert st["Uid"].split() == [str(NOBODY.pw_uid)] * 4
    assert st["Gid"].split() == [str(NOBODY.pw_gid)] * 4
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[cap], 16) == 0, cap
    assert st["NoNewPrivs"] == "1"


@root_only
def test_drop_can_keep_one_capability():
    out = _child("main", str(P.CAP_NET_ADMIN))
    st = out["status"]
    assert st["Uid"].split()[0] == str(NOBODY.pw_uid)
    assert int(st["CapEff"], 16) == int(st["CapPrm"], 16) == 1 << P.CAP_NET_ADMIN
    assert int(st["CapBnd"], 16) == 1 << P.CAP_NET_ADMIN
    assert out["said"].endswith(f"with capabilities {1 << P.CAP_NET_ADMIN:#x}, no_new_privs")


@root_only
def test_drop_refuses_while_other_threads_run():
    out = _child("thread")
    assert out["said"].startswith("privileges.drop() must run before other threads start")
    assert out["status"]["Uid"].split()[0] == "0"  # nothing changed


@root_only
def test_probe_runs_in_a_thread_without_touching_the_caller():
    seen = []
    assert P.probe_unprivileged(lambda: seen.append(P.status()["CapEff"])) is True
    assert P.probe_unprivileged(lambda: (_ for _ in ()).throw(PermissionError(1, "no"))) is False
    assert int(seen[0], 16) == 0  # the probe thread had no capability
    assert int(P.status()["CapEff"], 16) != 0  # this thread kept its own


HELPER_CHILD = """
import sys, time
from pathlib import Path
from sipcm.capture import privileges as P
marker = Path(sys.argv[1])
part = marker.with_suffix(".part")  # written, then renamed: the test never reads it half done
helper = P.DetachHelper(
    lambda: (part.write_text(P.status()["CapEff"]), part.rename(marker)), P.resolve("nobody")
)
print(helper.pid, flush=True)
if sys.argv[2] == "finish":
    print(helper.finish(), flush=True)
else:
    time.sleep(60)  # killed by the test
"""


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory nobody can write (pytest's tmp_path is private to root)."""
    with tempfile.TemporaryDirectory(prefix="sipcm-priv-") as d:
        os.chmod(d, 0o777)
        yield Path(d)


@root_only
def test_detach_helper_runs_when_the_sensor_finishes(open_dir: Path):
    marker = open_dir / "detached"
    res = subprocess.run(
        [sys.executable, "-c", HELPER_CHILD, str(marker), "finish"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    assert res.stdout.split()[1] == "True", res.stderr
    assert int(marker.read_text(), 16) == 1 << P.CAP_NET_ADMIN


def _exited(pid: int) -> bool:
    """Gone, or a zombie waiting for whoever adopted it (init reaps on its own schedule)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@root_only
def test_detach_helper_runs_when_the_sensor_is_killed(open_dir: Path):
    marker = open_dir / "detached"
    proc = subprocess.Popen(
        [sys.executable, "-c", HELPER_CHILD, str(marker), "kill"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        helper_pid = int(proc.stdout.readline())
        assert not marker.exists()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert int(marker.read_text(), 16) == 1 << P.CAP_NET_ADMIN
        deadline = time.monotonic() + 10
        while not _exited(helper_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _exited(helper_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
