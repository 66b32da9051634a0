"""The real `sipcm attach` inside the namespace of the host it watches, with sipp and Kamailio
generating the traffic; the test reads the NDJSON events on stdout.

Topologies: direct (uac -- srv), registrar (uac -- kamailio), proxy (uac -- kamailio proxy --
uas) with the sensor on both proxy interfaces (ingress + egress of every message twice).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

import tests.netns.conftest as netns_conftest
from tests.netns.conftest import capture, collect, l4, need, stop_proc, wait_listening

pytestmark = [pytest.mark.netns, pytest.mark.usefixtures("workers")]
REPO = Path(__file__).resolve().parents[2]
SCN = Path(__file__).parent / "scenarios"
SIPP = ["-nostdin", "-timeout", "30"]


def start_sensor(net, ns: str, ifaces: list[str], *overrides: str) -> subprocess.Popen:
    """`sipcm attach` in `ns`; returns once it reports being attached."""
    # state_file off: one test's saved calls must not be restored by the next test's sensor
    args = [sys.executable, "-m", "sipcm", "-E", "http_port=0", "-E", "state_file="]
    args += ["-E", f"workers={netns_conftest.WORKERS}"]
    for o in overrides:
        args += ["-E", o]
    proc = net.popen(ns, *args, "attach", *ifaces, stdout=subprocess.PIPE, cwd=REPO)
    deadline, err = time.monotonic() + 20, b""
    while time.monotonic() < deadline and b"attached to" not in err:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            err += chunk
    if b"attached to" not in err:
        proc.kill()
        pytest.fail(f"sensor did not attach: {err.decode()[-1500:]}")
    return proc


def stop_sensor(proc: subprocess.Popen) -> list[dict]:
    time.sleep(0.5)  # a few poll intervals: the last records reach the pipeline
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-1500:]
    assert b"Traceback" not in err
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def actions(events: list[dict]) -> Counter:
    return Counter(e["event"]["action"] for e in events if e["event"]["action"] != "stats")


def call_ids(events: list[dict], action: str) -> list[str]:
    return sorted(e["sip"]["call_id"] for e in events if e["event"]["action"] == action)


@pytest.fixture
def direct(net):
    need("sipp")
    a, b = net.ns("uac"), net.ns("srv")
    net.veth(a, "v0", ("10.95.0.1/24",), b, "v1", ("10.95.0.2/24",))
    return net, a, b


def kamailio(net, ns: str, *defines: str) -> subprocess.Popen:
    need("kamailio")
    args = ["kamailio", "-f", str(SCN / "kamailio.cfg"), "-DD", "-E", "-m", "32", "-M", "8"]
    for d in defines:
        args += ["-A", d]
    os.makedirs(f"/tmp/{ns}", exist_ok=True)
    # Kamailio logs to stderr (-E): a file, not a pipe nobody reads, so it can never block.
    # The child keeps its own descriptor, so the file may close here once it has started.
    with tempfile.TemporaryFile() as log:
        # Its own process group, so that stop_kamailio reaches every process it forked.
        proc = net.popen(ns, *args, "-Y", f"/tmp/{ns}", stderr=log, start_new_session=True)
        try:
            wait_listening(net, ns, 5060)
        except AssertionError:
            log.seek(0)
            raise AssertionError(log.read().decode(errors="replace")[-1500:]) from None
    assert proc.poll() is None
    return proc


def stop_kamailio(proc: subprocess.Popen) -> None:
    """Stop Kamailio and every process it forked: after SIGTERM its main process can exit
    while workers still run (seen once: two of them outlived the namespace)."""
    stop_proc(proc)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def proxy(net):
    need("sipp")
    u, p, s = net.ns("uac"), net.ns("px"), net.ns("uas")
    net.veth(u, "v0", ("10.96.1.1/24",), p, "v1", ("10.96.1.2/24",))
    net.veth(p, "v2", ("10.96.2.1/24",), s, "v3", ("10.96.2.2/24",))
    assert net.run(u, "ip", "route", "add", "default", "via", "10.96.1.2").returncode == 0
    assert net.run(s, "ip", "route", "add", "default", "via", "10.96.2.1").returncode == 0
    kam = kamailio(
        net, p, "LISTEN_ADDR=10.96.1.2", "LISTEN_ADDR2=10.96.2.1", 'UAS_ADDR="10.96.2.2"'
    )
    yield net, u, p, s
    stop_kamailio(kam)


def proxy_calls(net, u, s, n: int) -> None:
    uas = net.popen(s, "sipp", "-sn", "uas", "-i", "10.96.2.2", "-p", "5060", "-m", str(n), *SIPP)
    wait_listening(net, s, 5060)
    uac = net.run(
        u,
        "sipp",
        "-sn",
        "uac",
        "10.96.1.2:5060",
        "-i",
        "10.96.1.1",
        "-p",
        "5062",
        "-m",
        str(n),
        "-r",
        "10",
        *SIPP,
    )
    assert uac.returncode == 0, uac.stderr[-800:]
    assert uas.wait(30) == 0


def test_proxy_capture_sees_each_message_on_both_interfaces(proxy):
    net, u, p, s = proxy
    with capture(p, ["v1", "v2"]) as cap:
        proxy_calls(net, u, s, 3)
        frames = collect(cap, timeout=3, settle=0.5)
        names = cap.ifnames()
        k = cap.kernel_counters()
    assert sorted(names.values()) == ["v1", "v2"]
    starts = Counter()
    for d, f in frames:
        payload = l4(f)[4]
        line = payload.split(b"\r\n", 1)[0]
        if line.startswith((b"INVITE", b"BYE")):
            starts[(line.split(b" ")[0], d)] += 1
    # Each request enters the proxy on v1 (XDP ingress) and leaves on v2 (egress).
    assert starts == {(b"INVITE", 1): 3, (b"INVITE", 2): 3, (b"BYE", 1): 3, (b"BYE", 2): 3}
    assert k["ring_full_lost"] == 0


def test_cli_udp_calls_give_call_start_and_end(direct):
    net, a, b = direct
    sensor = start_sensor(net, b, ["v1"])
    uas = net.popen(b, "sipp", "-sn", "uas", "-i", "10.95.0.2", "-p", "5060", "-m", "5", *SIPP)
    wait_listening(net, b, 5060)
    uac = net.run(
        a,
        "sipp",
        "-sn",
        "uac",
        "10.95.0.2:5060",
        "-i",
        "10.95.0.1",
        "-p",
        "5062",
        "-m",
        "5",
        "-r",
        "10",
        *SIPP,
    )
    assert uac.returncode == 0
    assert uas.wait(30) == 0
    events = stop_sensor(sensor)
    assert actions(events) == {"call-start": 5, "call-end": 5}
    assert call_ids(events, "call-start") == call_ids(events, "call-end")
    assert len(set(call_ids(events, "call-start"))) == 5


def test_cli_tcp_calls(direct):
    net, a, b = direct
    sensor = start_sensor(net, b, ["v1"])
    uas = net.popen(
        b, "sipp", "-sn", "uas", "-t", "t1", "-i", "10.95.0.2", "-p", "5060", "-m", "3", *SIPP
    )
    wait_listening(net, b, 5060, tcp=True)
    uac = net.run(
        a,
        "sipp",
        "-sn",
        "uac",
        "-t",
        "t1",
        "10.95.0.2:5060",
        "-i",
        "10.95.0.1",
        "-p",
        "5062",
        "-m",
        "3",
        "-r",
        "10",
        *SIPP,
    )
    assert uac.returncode == 0
    uas.wait(30)  # exits 1 over TCP when the UAC hangs up the connection (see test_live)
    events = stop_sensor(sensor)
    assert actions(events) == {"call-start": 3, "call-end": 3}


def test_cli_registrations_with_kamailio_registrar(direct):
    net, a, b = direct
    kam = kamailio(net, b, "LISTEN_ADDR=10.95.0.2")
    try:
        sensor = start_sensor(net, b, ["v1"])
        reg = net.run(
            a,
            "sipp",
            "-sf",
            str(SCN / "uac_register.xml"),
            "10.95.0.2:5060",
            "-i",
            "10.95.0.1",
            "-p",
            "5063",
            "-m",
            "4",
            "-r",
            "10",
            *SIPP,
        )
        assert reg.returncode == 0, reg.stderr[-800:]
        events = stop_sensor(sensor)
    finally:
        stop_kamailio(kam)
    assert actions(events) == {"reg-new": 4, "reg-del": 4}


def test_cli_registrations_with_digest_auth(direct):
    """Kamailio challenges every REGISTER: a challenge answered with the right password is
    one registration (reg-new, later reg-del), never an auth failure; a wrong password is
    one auth-failed per refused guess."""
    net, a, b = direct
    kam = kamailio(net, b, "LISTEN_ADDR=10.95.0.2", 'AUTH_PASSWORD="s3cret"')
    try:
        sensor = start_sensor(net, b, ["v1"])
        for scenario, password, port in (
            ("uac_register_auth.xml", "s3cret", "5063"),
            ("uac_register_badpw.xml", "wrong", "5064"),
        ):
            reg = net.run(
                a,
                "sipp",
                "-sf",
                str(SCN / scenario),
                "10.95.0.2:5060",
                "-i",
                "10.95.0.1",
                "-p",
                port,
                "-au",
                "user",
                "-ap",
                password,
                "-m",
                "3",
                "-r",
                "10",
                *SIPP,
            )
            assert reg.returncode == 0, reg.stderr[-800:]
        events = stop_sensor(sensor)
    finally:
        stop_kamailio(kam)
    assert actions(events) == {"reg-new": 3, "reg-del": 3, "auth-failed": 3}
    failed = [e for e in events if e["event"]["action"] == "auth-failed"]
    assert sorted(e["sip"]["to"]["uri"]["username"] for e in failed) == [
        "guess1",
        "guess2",
        "guess3",
    ]
    assert {(e["source"]["ip"], e["user"]["name"], e["sip"]["code"]) for e in failed} == {
        ("10.95.0.1", "user", 401)
    }


def test_cli_proxy_gives_one_start_and_one_end_per_call(proxy):
    net, u, p, s = proxy
    sensor = start_sensor(net, p, ["v1", "v2"])
    proxy_calls(net, u, s, 4)
    events = stop_sensor(sensor)
    assert actions(events) == {"call-start": 4, "call-end": 4}
    assert len(set(call_ids(events, "call-start"))) == 4
    assert call_ids(events, "call-start") == call_ids(events, "call-end")


def test_cli_killed_sensor_leaves_nothing_and_detach_says_so(direct):
    net, _, b = direct
    sensor = start_sensor(net, b, ["v1"])
    os.kill(sensor.pid, signal.SIGKILL)
    sensor.wait(10)
    assert "xdp" not in net.run(b, "ip", "link", "show", "dev", "v1").stdout
    assert net.run(b, "tc", "filter", "show", "dev", "v1", "egress").stdout.strip() == ""
    r = net.run(b, sys.executable, "-m", "sipcm", "detach", "v1")
    assert r.returncode == 0
    assert r.stderr.strip().endswith("v1: nothing attached") or r.stdout.strip().endswith(
        "v1: nothing attached"
    )


def test_cli_bad_interface_is_one_line_and_leaves_nothing(direct):
    net, _, b = direct
    r = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            b,
            sys.executable,
            "-m",
            "sipcm",
            "-E",
            "http_port=0",
            "attach",
            "v1",
            "nope0",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert "nope0" in r.stderr.strip().splitlines()[-1]
    assert "xdp" not in net.run(b, "ip", "link", "show", "dev", "v1").stdout


def test_cli_killed_worker_stops_the_sensor_with_nothing_attached(direct, workers):
    """A worker that dies is reported by name at once; the sensor detaches and exits 3.
    (N workers: N - 1 worker processes, the last shard runs in the sensor's process.)"""
    if workers == 1:
        pytest.skip("one process: no worker to kill")
    net, _, b = direct
    sensor = start_sensor(net, b, ["v1"])
    kids = Path(f"/proc/{sensor.pid}/task/{sensor.pid}/children").read_text().split()
    assert len(kids) == workers - 1
    victim = len(kids) - 1
    os.kill(int(kids[victim]), signal.SIGKILL)
    _, err = sensor.communicate(timeout=30)
    assert sensor.returncode == 3, err.decode()[-800:]
    assert f"worker {victim} (pid {kids[victim]}) was killed by SIGKILL".encode() in err
    assert b"Traceback" not in err
    assert "xdp" not in net.run(b, "ip", "link", "show", "dev", "v1").stdout
    assert net.run(b, "tc", "filter", "show", "dev", "v1", "egress").stdout.strip() == ""
    for other in kids[:victim]:
        assert not Path(f"/proc/{other}").exists() or _reaped(int(other))


def _reaped(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return not Path(f"/proc/{pid}").exists()


_UAS_200 = r"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.95.0.2", 5060))
data, peer = s.recvfrom(65535)
head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
names = (b"via", b"from", b"to", b"call-id", b"cseq")
keep = [h for h in head if h.split(b":", 1)[0].lower() in names]
keep = [h + b";tag=uas1" if h.lower().startswith(b"to:") else h for h in keep]
s.sendto(b"\r\n".join([b"SIP/2.0 200 OK", *keep, b"Content-Length: 0", b"", b""]), peer)
"""

_OPTIONS = (
    "OPTIONS sip:srv@10.95.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.95.0.1:5062;branch=z9hG4bKstop1\r\n"
    "Max-Forwards: 70\r\nFrom: <sip:uac@10.95.0.1>;tag=f1\r\nTo: <sip:srv@10.95.0.2>\r\n"
    "Call-ID: stop-options@10.95.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)
_UAC = (
    "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.bind(('10.95.0.1', 5062))\ns.settimeout(5)\n"
    f"s.sendto({_OPTIONS.encode()!r}, ('10.95.0.2', 5060))\nprint(s.recv(65535)[:12])\n"
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_stop_publishes_an_answered_options_at_once(direct, sig):
    """Issue 9.3: a sensor stopped 1 s after an OPTIONS was answered 200 (its other-ok would
    wait out the 5 s non_inv_fin linger) still publishes that other-ok before it exits."""
    net, a, b = direct
    sensor = start_sensor(net, b, ["v1"], "stats_interval=0")
    uas = net.popen(b, sys.executable, "-c", _UAS_200)
    wait_listening(net, b, 5060)
    uac = net.run(a, sys.executable, "-c", _UAC)
    assert uac.returncode == 0, uac.stderr[-800:]
    assert "SIP/2.0 200" in uac.stdout
    assert uas.wait(10) == 0
    time.sleep(1.0)
    sensor.send_signal(sig)
    out, err = sensor.communicate(timeout=30)
    assert sensor.returncode == 0, err.decode()[-1500:]
    events = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert [(e["event"]["action"], e["sip"]["call_id"], e["sip"]["code"]) for e in events] == [
        ("other-ok", "stop-options@10.95.0.1", 200)
    ]
    assert events[0]["source"] == {"ip": "10.95.0.1", "port": 5062}
    assert events[0]["destination"] == {"ip": "10.95.0.2", "port": 5060}
