"""`sipcm doctor` checks on this machine, and the failures a user would meet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sipcm.capture import doctor

pytestmark = pytest.mark.netns
REPO = Path(__file__).resolve().parents[2]


def test_all_checks_pass_here(net):
    checks = doctor.run_checks()
    assert [c.name for c in checks] == [
        "privileges",
        "kernel",
        "bpf syscall",
        "ringbuf",
        "bcc",
        "kernel headers",
        "load + attach",
        "sipp (tests only)",
        "kamailio (tests only)",
    ]
    assert [c.name for c in checks if not c.ok] == []
    assert not any(n.startswith("sipcm-doctor") for n in os.listdir("/run/netns"))


def test_missing_headers_named_with_fix(monkeypatch):
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    real = os.uname()
    fake = os.uname_result((*real[:2], "0.0.0-nowhere", *real[3:]))
    monkeypatch.setattr(doctor.os, "uname", lambda: fake)
    chk = doctor.check_headers()
    assert not chk.ok
    assert chk.detail == "/lib/modules/0.0.0-nowhere/build missing or incomplete"
    assert "linux-headers-amd64" in chk.fix


def test_unprivileged_user_gets_one_line_errors(net):
    code = (
        "from sipcm.capture import doctor\n"
        "from sipcm.capture.program import Program\n"
        "from sipcm.errors import CaptureError\n"
        "print(doctor.check_privileges())\n"
        "try:\n    Program()\nexcept CaptureError as e:\n    print('ERR', e)\n"
    )
    r = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Check(name='privileges', ok=False, detail='uid 65534, missing ")
    assert lines[1] == (
        "ERR live capture needs root or CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON (run with sudo (or "
        "as root), or grant the capabilities (the systemd unit does))"
    )
