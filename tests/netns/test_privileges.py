"""Least privilege (issue 10): once attached, the real `sipcm attach` runs as its run_as user
with no capabilities and no_new_privs, and still captures sipp calls, serves its web port,
reloads on SIGHUP and detaches cleanly on SIGTERM. Netlink attachments (kernels without BPF
links) are removed by the CAP_NET_ADMIN-only detach helper, on SIGTERM and on kill -9."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sipcm.capture import privileges
from tests.netns import test_cli_scenarios as scenarios
from tests.netns.conftest import http_json, in_ns, sipcm_cmd
from tests.netns.test_cli_scenarios import actions, attach, calls, hup, ids, pair, write_cfg
from tests.netns.test_detach import state, tcx_count

pytestmark = pytest.mark.netns
REPO = Path(__file__).resolve().parents[2]
NET_ADMIN = 1 << privileges.CAP_NET_ADMIN
procs = scenarios.procs  # the fixture that kills what a test left running


def caps(pid: int) -> dict[str, str]:
    return privileges.status(pid)


def assert_unprivileged(st: dict[str, str], keep: int = 0) -> None:
    target = privileges.resolve("auto")
    assert st["Uid"].split() == [str(target.uid)] * 4
    assert st["Gid"].split() == [str(target.gid)] * 4
    for name in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert int(st[name], 16) == (keep if name in ("CapEff", "CapPrm") else 0), name
    assert int(st["CapBnd"], 16) == keep
    assert st["NoNewPrivs"] == "1"


def children(pid: int) -> list[int]:
    return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.parametrize("workers", [1, 2])
def test_attached_sensor_has_no_capabilities_and_keeps_working(net, procs, cfg_dir, workers):
    a, b = pair(net, "10.94.8", "fd94:8")
    cfg = cfg_dir / "cfg.yml"
    write_cfg(cfg, sip_ports=[5060])
    # A fresh namespace: port 8080 is free there. These -E come after the harness's own.
    sensor = attach(
        net, procs, b, "v1", "-c", str(cfg), "-E", "http_port=8080", "-E", f"workers={workers}"
    )
    # `ip netns exec` execs the sensor in place: the Popen pid is sipcm's own.
    assert_unprivileged(caps(sensor.proc.pid))
    # worker processes start after the drop: they parse packets with nothing either
    kids = children(sensor.proc.pid)
    assert len(kids) == workers - 1  # the last shard runs in the sensor's own process
    for kid in kids:
        assert_unprivileged(caps(kid))
    target = privileges.resolve("auto")
    assert (
        f"running as {target.name} (uid {target.uid}) with no capabilities, no_new_privs"
        in sensor.stderr()
    )
    first = calls(net, procs, a, b, "10.94.8.1", "10.94.8.2", 2)
    assert actions(sensor.wait_events(4)) == {"call-start": 2, "call-end": 2}
    served = http_json(b, "http://127.0.0.1:8080/api/events")  # bound before the drop
    assert served["published"] == 4
    assert actions(served["events"]) == {"call-start": 2, "call-end": 2}
    write_cfg(cfg, sip_ports=[5060, 5080])
    hup(sensor, "reloaded: sip_ports=[5060, 5080]")  # kernel map updated without capabilities
    second = calls(net, procs, a, b, "10.94.8.1", "10.94.8.2", 2, port=5080)
    events = sensor.stop(8)  # asserts exit 0, no traceback, "detached" last
    assert actions(events) == {"call-start": 4, "call-end": 4}
    assert ids(events, "call-start") == ids(events, "call-end") == sorted(first + second)
    assert state(net, b, "v1") == (False, "")
    assert tcx_count(b, "v1") == 0


def start_child(net, ns: str) -> tuple[subprocess.Popen, int]:
    proc = net.popen(
        ns,
        sys.executable,
        "-m",
        "tests.netns.capture_child",
        "v1",
        "--netlink",
        "--drop",
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    word, _, pid = proc.stdout.readline().decode().partition(" ")
    if word != "ready":
        proc.kill()
        pytest.fail(f"child did not start: {proc.stderr.read().decode()[-800:]}")
    return proc, int(pid)


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_netlink_attachments_are_removed_by_the_detach_helper(net, sig):
    a, b = net.ns("peer"), net.ns("host")
    net.veth(a, "v0", ("10.98.1.1/24",), b, "v1", ("10.98.1.2/24",))
    proc, helper = start_child(net, b)
    try:
        present, flt = state(net, b, "v1")
        assert present
        assert "sipcm" in flt
        assert helper > 0
        assert_unprivileged(caps(proc.pid))
        assert_unprivileged(caps(helper), keep=NET_ADMIN)  # the helper keeps only that one
        proc.send_signal(sig)
        assert proc.wait(20) == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not _gone(helper) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(helper)
        assert state(net, b, "v1") == (False, "")
        from sipcm.capture.attach import detach

        with in_ns(b):
            assert detach("v1") == "v1: nothing attached"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_an_output_the_run_as_user_cannot_open_is_one_line_naming_it(net):
    a, b = net.ns("peer"), net.ns("host")
    net.veth(a, "v0", ("10.98.2.1/24",), b, "v1", ("10.98.2.2/24",))
    with tempfile.TemporaryDirectory(prefix="sipcm-private-") as d:  # mode 0700, root's
        r = net.run(
            b,
            *sipcm_cmd(
                ["v1"], "http_port=0", "outputs.file.enabled=true", f"outputs.file.path={d}/x"
            ),
        )
    target = privileges.resolve("auto")
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert last.startswith("sipcm: error: ")
    assert last.endswith(f"outputs run as {target.name} (run_as) once attached)")
    assert state(net, b, "v1") == (False, "")  # detached on the way out
