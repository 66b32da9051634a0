"""`sipcm attach eth0` with no options on this machine's own NIC (issue 11): virtio_net, like
many cloud NICs, refuses native XDP, so `auto` must fall back to generic mode, say so, and
detach cleanly. Generates no traffic; bounded in time; root only (run under the netns lock)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sipcm.capture import attach as att

pytestmark = pytest.mark.netns
REPO = Path(__file__).resolve().parents[2]
IFACE = "eth0"


def xdp_state() -> tuple[list, list[int]]:
    """(XDP programs, egress tcx program ids) on the host's eth0."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        idx = att.ifindex_of(ipr, IFACE)
        return att._xdp_progs(ipr, idx), att._tcx_prog_ids(idx)


@pytest.fixture
def eth0() -> str:
    if os.geteuid() != 0:
        pytest.skip("attaching to eth0 needs root")
    if not Path(f"/sys/class/net/{IFACE}").exists():
        pytest.skip(f"no {IFACE} on this machine")
    try:
        import bcc  # noqa: F401
    except ImportError:
        pytest.skip("BCC (python3-bpfcc) not importable")
    if xdp_state() != ([], []):
        pytest.skip(f"{IFACE} already carries an XDP or tcx program")
    return att._driver(IFACE)


def test_attach_eth0_with_no_options_attaches_and_detaches(eth0):
    proc = subprocess.Popen(
        [sys.executable, "-m", "sipcm", "-E", "http_port=0", "attach", IFACE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    err = b""
    try:
        deadline = time.monotonic() + 60
        while b"attached to" not in err and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stderr.fileno(), 4096)
                if not chunk:
                    break
                err += chunk
        assert b"attached to eth0" in err, err.decode(errors="replace")
        progs, tcx = xdp_state()
        assert len(progs) == 1
        assert len(tcx) == 1
        mode = progs[0][0]
        if eth0 == "virtio_net":
            assert mode == "generic"
            assert (
                "eth0: XDP in generic mode via link (native XDP refused by virtio_net ("
                in err.decode()
            )
        else:  # another NIC: whichever mode it took is named, with its reason
            assert f"eth0: XDP in {mode} mode via link (" in err.decode()
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = (err + rest).decode()
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert text.rstrip().endswith("INFO sipcm.run: detached")
    assert xdp_state() == ([], [])
