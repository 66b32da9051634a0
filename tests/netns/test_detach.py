"""Clean detach: a sensor stopped by SIGTERM/SIGINT, or killed with SIGKILL, leaves no program
on the interface; `detach()` (`sipcm detach IFACE`) removes what a netlink-attached sensor left
behind and leaves other tools' programs alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.netns.conftest import in_ns

pytestmark = pytest.mark.netns
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def host(net):
    a, b = net.ns("peer"), net.ns("host")
    net.veth(a, "v0", ("10.98.0.1/24",), b, "v1", ("10.98.0.2/24",))
    return net, b


def state(net, ns: str, ifname: str) -> tuple[bool, str]:
    """(XDP program present, egress filters/tcx shown by tc)."""
    link = net.run(ns, "ip", "link", "show", "dev", ifname).stdout
    flt = net.run(ns, "tc", "filter", "show", "dev", ifname, "egress").stdout.strip()
    return " xdp" in link or "prog/xdp" in link, flt


def start_child(net, ns: str, *args: str) -> subprocess.Popen:
    proc = net.popen(
        ns,
        sys.executable,
        "-m",
        "tests.netns.capture_child",
        "v1",
        *args,
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    line = proc.stdout.readline()
    if line.strip() != b"ready":
        proc.kill()
        pytest.fail(f"child did not start: {proc.stderr.read().decode()[-800:]}")
    return proc


def tcx_count(ns: str, ifname: str) -> int:
    from pyroute2 import IPRoute

    from sipcm.capture import attach as att

    with in_ns(ns), IPRoute() as ipr:  # BPF_PROG_QUERY resolves the ifindex in this netns
        return len(att._tcx_prog_ids(att.ifindex_of(ipr, ifname)))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_stopped_or_killed_sensor_leaves_nothing(host, sig):
    net, ns = host
    proc = start_child(net, ns)
    assert state(net, ns, "v1")[0]
    assert tcx_count(ns, "v1") == 1
    proc.send_signal(sig)
    rc = proc.wait(20)
    assert rc == (-signal.SIGKILL if sig == signal.SIGKILL else 0)
    assert state(net, ns, "v1") == (False, "")
    assert tcx_count(ns, "v1") == 0
    from sipcm.capture.attach import detach

    with in_ns(ns):
        assert detach("v1") == "v1: nothing attached"


def test_detach_removes_netlink_leftovers_after_kill_9(host):
    net, ns = host
    proc = start_child(net, ns, "--netlink")
    present, flt = state(net, ns, "v1")
    assert present
    assert "sipcm" in flt
    os.kill(proc.pid, signal.SIGKILL)  # `ip netns exec` execs the child: same pid
    proc.wait(20)
    assert state(net, ns, "v1")[0]  # netlink attachments outlive the process
    from sipcm.capture.attach import detach

    with in_ns(ns):
        assert detach("v1") == "v1: removed XDP program, 1 egress tc filter"
        assert detach("v1") == "v1: nothing attached"
    assert state(net, ns, "v1") == (False, "")


def test_detach_stops_a_running_link_sensor(host):
    net, ns = host
    from sipcm.capture.attach import detach
    from sipcm.capture.live import LiveCapture

    cap = LiveCapture(["v1"], counters=Counter())
    with in_ns(ns):
        cap.__enter__()
        try:
            assert detach("v1") == "v1: removed XDP link, egress tcx link"
            assert state(net, ns, "v1") == (False, "")
            assert tcx_count(ns, "v1") == 0
        finally:
            cap.close()  # closing detached links is harmless
    assert state(net, ns, "v1") == (False, "")


def test_detach_leaves_foreign_programs_and_reports_missing_interface(host, tmp_path):
    net, ns = host
    from sipcm.capture.attach import detach
    from sipcm.errors import CaptureError

    src = REPO / "tests" / "netns" / "scenarios" / "foreign_xdp.c"
    obj = tmp_path / "foreign_xdp.o"
    subprocess.run(["clang", "-O2", "-target", "bpf", "-c", str(src), "-o", str(obj)], check=True)
    try:
        r = net.run(ns, "ip", "link", "set", "dev", "v1", "xdp", "obj", str(obj), "sec", "xdp")
        assert r.returncode == 0, r.stderr
        with in_ns(ns):
            assert (
                detach("v1") == "v1: nothing attached (left XDP program other_xdp alone: not sipcm)"
            )
            with pytest.raises(CaptureError, match="interface nope0 not found"):
                detach("nope0")
        assert state(net, ns, "v1")[0]
    finally:
        obj.unlink(missing_ok=True)


def test_failed_multi_interface_attach_leaves_nothing(host):
    net, ns = host
    from sipcm.capture.live import LiveCapture
    from sipcm.errors import CaptureError

    cap = LiveCapture(["v1", "nope0"], counters=Counter())
    with in_ns(ns), pytest.raises(CaptureError, match="interface nope0 not found"):
        cap.__enter__()
    assert state(net, ns, "v1") == (False, "")
    assert tcx_count(ns, "v1") == 0
