"""The real `sipcm attach` CLI on live-capture cases so far tested only below it: SIP inside
VXLAN seen on the underlay, a fragmented INVITE, IPv6, SIP ports changed by SIGHUP, and
ingress + egress on the watched UAS. sipp generates the calls; the tests read the NDJSON
events the sensor prints on stdout and its progress lines on stderr.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.netns.conftest as netns_conftest
from sipcm.events.community_id import community_id
from tests.netns.conftest import need, wait_listening

pytestmark = [pytest.mark.netns, pytest.mark.usefixtures("workers")]
REPO = Path(__file__).resolve().parents[2]
SCN = Path(__file__).parent / "scenarios"
SIPP = ("-nostdin", "-timeout", "30")


class Sensor:
    """`sipcm attach` in a namespace; threads drain stdout (events) and stderr (progress)."""

    def __init__(self, net, ns: str, args: list[str]) -> None:
        # state_file off unless the test sets one: one test's saved calls must not be
        # restored by the next test's sensor
        cmd = [sys.executable, "-m", "sipcm", "-E", "http_port=0", "-E", "state_file="]
        cmd += ["-E", f"workers={netns_conftest.WORKERS}", *args]
        self.proc = net.popen(ns, *cmd, stdout=subprocess.PIPE, cwd=REPO)
        self.events: list[dict] = []  # every document printed but stats
        self.err: list[str] = []
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._drain_out, daemon=True),
            threading.Thread(target=self._drain_err, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _drain_out(self) -> None:
        for line in self.proc.stdout:
            doc = json.loads(line) if line.strip() else None
            with self._cond:
                if doc is not None and doc["event"]["action"] != "stats":
                    self.events.append(doc)
                self._cond.notify_all()

    def _drain_err(self) -> None:
        for line in self.proc.stderr:
            with self._cond:
                self.err.append(line.decode(errors="replace"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def stderr(self) -> str:
        with self._cond:
            return "".join(self.err)

    def wait_for(self, text: str, count: int = 1, timeout: float = 20) -> None:
        """Until `text` has appeared on `count` stderr lines (fails on timeout or exit)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(text in line for line in self.err) < count:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._threads[1].is_alive()):
                    pytest.fail(f"sensor never said {text!r}: {''.join(self.err)[-1500:]}")
                self._cond.wait(min(left, 0.5))

    def stop(self, expect: int, timeout: float = 10, settle: float = 0.5) -> list[dict]:
        """SIGTERM once `expect` events were printed (or `timeout`), `settle` seconds later so
        that any extra event shows up too; returns the events printed (stats left out).
        Waiting on the output, not a fixed delay, keeps a loaded machine from cutting the
        capture before the last records reach the pipeline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.events) < expect and time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                self._cond.wait(0.2)
        time.sleep(settle)
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        for t in self._threads:
            t.join(10)
        err = self.stderr()
        assert rc == 0, err[-1500:]
        assert "Traceback" not in err
        assert err.rstrip().endswith("detached")
        return list(self.events)

    def wait_events(self, n: int, timeout: float = 10) -> list[dict]:
        """The events printed once there are `n` (fails on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.events) < n:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    pytest.fail(f"{len(self.events)} events, expected {n}")
                self._cond.wait(0.2)
            return list(self.events)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def procs() -> Iterator[list]:
    """Sensors and sipp processes started by a test; whatever is left running is killed."""
    started: list = []
    yield started
    for p in reversed(started):
        if isinstance(p, Sensor):
            p.kill()
        elif p.poll() is None:
            p.kill()
            p.wait(10)


def attach(net, procs, ns: str, *args: str) -> Sensor:
    s = Sensor(net, ns, ["attach", *args])
    procs.append(s)
    s.wait_for("attached to")
    return s


def calls(
    net,
    procs,
    uac_ns: str,
    uas_ns: str,
    uac_ip: str,
    uas_ip: str,
    n: int,
    *,
    port: int = 5060,
    scenario: Path | None = None,
    transport: str = "u1",
) -> list[str]:
    """n sipp calls (UAC port 5062 -> UAS `port`); returns the Call-IDs the UAC used (sipp's
    default `[call_number]-[pid]@[local_ip]`)."""
    need("sipp")
    remote = f"[{uas_ip}]:{port}" if ":" in uas_ip else f"{uas_ip}:{port}"
    common = ("-t", transport, "-m", str(n), *SIPP)
    uas = net.popen(uas_ns, "sipp", "-sn", "uas", "-i", uas_ip, "-p", str(port), *common)
    procs.append(uas)
    wait_listening(net, uas_ns, port, tcp=transport.startswith("t"))
    scn = ["-sf", str(scenario)] if scenario else ["-sn", "uac"]
    uac = net.popen(
        uac_ns,
        "sipp",
        *scn,
        remote,
        "-i",
        uac_ip,
        "-p",
        "5062",
        "-r",
        "10",
        *common,
    )
    procs.append(uac)
    # `ip netns exec` execs sipp in place: the Popen pid is sipp's own.
    assert uac.wait(30) == 0, uac.stderr.read().decode()[-800:]
    # Over TCP the UAS counts its last call failed when the UAC closes the connection while
    # the UAS scenario still pauses; the calls themselves completed.
    assert uas.wait(30) in ((0, 1) if transport.startswith("t") else (0,))
    return sorted(f"{i}-{uac.pid}@{uac_ip}" for i in range(1, n + 1))


def actions(events: list[dict]) -> Counter:
    return Counter(e["event"]["action"] for e in events)


def ids(events: list[dict], action: str) -> list[str]:
    return sorted(e["sip"]["call_id"] for e in events if e["event"]["action"] == action)


def endpoints(e: dict) -> tuple:
    return (
        e["source"]["ip"],
        e["source"]["port"],
        e["destination"]["ip"],
        e["destination"]["port"],
        e["network"]["type"],
        e["network"]["transport"],
        e["network"].get("direction"),
    )


def pair(net, v4: str, v6: str) -> tuple[str, str]:
    """uac -- veth v0/v1 -- uas, addresses `<v4>.1/.2` and `<v6>::1/::2`."""
    a, b = net.ns("uac"), net.ns("uas")
    net.veth(a, "v0", (f"{v4}.1/24", f"{v6}::1/64"), b, "v1", (f"{v4}.2/24", f"{v6}::2/64"))
    return a, b


def vxlan(
    net, ns: str, underlay: str, local: str, remote: str, addr: str, *, port: int, sport: int
):
    """VXLAN vx0 (VNI 42, destination port `port`) over `underlay`; a source-port range of
    [sport, sport + 1) makes the kernel use exactly `sport` as the outer source port."""
    cmd = ["ip", "-n", ns, "link", "add", "vx0", "type", "vxlan", "id", "42", "dev", underlay]
    cmd += ["local", local, "remote", remote, "dstport", str(port)]
    cmd += ["srcport", str(sport), str(sport + 1), "nolearning"]
    for c in (
        cmd,
        ["ip", "-n", ns, "addr", "add", addr, "dev", "vx0"],
        ["ip", "-n", ns, "link", "set", "vx0", "up"],
    ):
        r = subprocess.run(c, capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr


@pytest.fixture
def overlay(net):
    """h1 (u0 172.31.94.1, vx0 192.168.94.1) == underlay == h2 (u1 172.31.94.2, vx0
    192.168.94.2), VXLAN on UDP 4789; outer source ports 41000 from h1, 42000 from h2."""
    h1, h2 = net.ns("h1"), net.ns("h2")
    net.veth(h1, "u0", ("172.31.94.1/24",), h2, "u1", ("172.31.94.2/24",))
    return h1, h2


def make_overlay(net, h1: str, h2: str, port: int) -> None:
    vxlan(net, h1, "u0", "172.31.94.1", "172.31.94.2", "192.168.94.1/24", port=port, sport=41000)
    vxlan(net, h2, "u1", "172.31.94.2", "172.31.94.1", "192.168.94.2/24", port=port, sport=42000)


def assert_overlay_calls(events: list[dict], cids: list[str], port: int) -> None:
    """Events of calls from 192.168.94.1:5062 (h1) to the UAS 192.168.94.2:5060 (h2) as
    seen on h2's underlay u1: who acted (the caller's INVITE, the caller's BYE) as inner
    addresses in source/destination and the community id; the triggering packet's outer
    addresses under sipcm.tunnel and its direction in network.direction."""
    assert actions(events) == {"call-start": len(cids), "call-end": len(cids)}
    assert ids(events, "call-start") == ids(events, "call-end") == cids
    for e in events:
        if e["event"]["action"] == "call-start":  # the UAS's 200 OK leaving h2
            inner = ("192.168.94.1", 5062, "192.168.94.2", 5060, "ipv4", "udp", "egress")
            outer = ("172.31.94.2", 42000, "172.31.94.1", port)
            side = "egress"
        else:  # the UAC's BYE arriving on h2
            inner = ("192.168.94.1", 5062, "192.168.94.2", 5060, "ipv4", "udp", "ingress")
            outer = ("172.31.94.1", 41000, "172.31.94.2", port)
            side = "ingress"
        assert endpoints(e) == inner
        assert e["network"]["community_id"] == community_id("udp", *inner[:4])
        t = e["sipcm"]["tunnel"]
        assert t == {
            "type": "vxlan",
            "vni": 42,
            "source": {"ip": outer[0], "port": outer[1]},
            "destination": {"ip": outer[2], "port": outer[3]},
        }
        assert e["observer"][side]["interface"]["name"] == "u1"
        assert e["client"] == {"ip": "192.168.94.1", "port": 5062}
        assert e["server"] == {"ip": "192.168.94.2", "port": 5060}
        assert sorted(e["related"]["ip"]) == sorted(
            ["192.168.94.1", "192.168.94.2", "172.31.94.1", "172.31.94.2"]
        )


def test_sip_in_vxlan_seen_on_the_underlay(net, procs, overlay):
    h1, h2 = overlay
    make_overlay(net, h1, h2, 4789)
    sensor = attach(net, procs, h2, "u1")
    cids = calls(net, procs, h1, h2, "192.168.94.1", "192.168.94.2", 4)
    assert_overlay_calls(sensor.stop(8), cids, 4789)


def test_vxlan_on_a_configured_port(net, procs, overlay):
    h1, h2 = overlay
    make_overlay(net, h1, h2, 8472)
    sensor = attach(net, procs, h2, "u1", "-E", "vxlan_ports=[8472]")
    cids = calls(net, procs, h1, h2, "192.168.94.1", "192.168.94.2", 3)
    assert_overlay_calls(sensor.stop(6), cids, 8472)


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_fragmented_invite_gives_one_start_and_one_end(net, procs, v6):
    a, b = pair(net, "10.94.1", "fd94:1")
    uac, uas = ("fd94:1::1", "fd94:1::2") if v6 else ("10.94.1.1", "10.94.1.2")
    sensor = attach(net, procs, b, "v1")
    cids = calls(net, procs, a, b, uac, uas, 3, scenario=SCN / "uac_big_sdp.xml")
    events = sensor.stop(6)
    assert actions(events) == {"call-start": 3, "call-end": 3}
    assert ids(events, "call-start") == ids(events, "call-end") == cids
    host = f"[{uas}]" if v6 else uas
    for e in events:
        # Request-side facts come from the reassembled INVITE: without it the 200 OK alone
        # would give a reconstructed call without a request URI.
        assert e["url"]["original"] == f"sip:service@{host}:5060"
        assert e["sip"]["method"] == "INVITE"
        assert e["sip"]["call"]["reconstructed"] is False
        assert e["sip"]["call"]["retransmissions"] == 0
        assert e["network"]["type"] == ("ipv6" if v6 else "ipv4")


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_ipv6_calls(net, procs, transport):
    a, b = pair(net, "10.94.2", "fd94:2")
    sensor = attach(net, procs, b, "v1")
    cids = calls(net, procs, a, b, "fd94:2::1", "fd94:2::2", 3, transport=transport)
    events = sensor.stop(6)
    assert actions(events) == {"call-start": 3, "call-end": 3}
    assert ids(events, "call-start") == ids(events, "call-end") == cids
    proto = "udp" if transport == "u1" else "tcp"
    for e in events:
        assert e["network"]["type"] == "ipv6"
        assert e["network"]["transport"] == proto
        assert e["client"]["ip"] == "fd94:2::1"
        assert e["server"] == {"ip": "fd94:2::2", "port": 5060}
        assert e["url"]["original"] == "sip:service@[fd94:2::2]:5060"


def test_each_host_sees_each_call_once_across_ingress_and_egress(net, procs):
    """A sensor on the UAS (INVITE and BYE in, 200 OK out) and one on the UAC (the reverse)
    at the same time: each gives exactly one call-start (at the 200 OK) and one call-end (at
    the BYE) per call, with the direction the triggering message had on its host; who acted
    is the caller both times (its INVITE, its BYE)."""
    a, b = pair(net, "10.94.3", "fd94:3")
    on_uac = attach(net, procs, a, "v0")
    on_uas = attach(net, procs, b, "v1")
    cids = calls(net, procs, a, b, "10.94.3.1", "10.94.3.2", 4)
    caller = ("10.94.3.1", 5062, "10.94.3.2", 5060, "ipv4", "udp")
    for sensor, iface, start_dir, end_dir in (
        (on_uas, "v1", "egress", "ingress"),
        (on_uac, "v0", "ingress", "egress"),
    ):
        events = sensor.stop(8)
        assert actions(events) == {"call-start": 4, "call-end": 4}
        assert ids(events, "call-start") == ids(events, "call-end") == cids
        for e in events:
            if e["event"]["action"] == "call-start":
                assert endpoints(e) == (*caller, start_dir)
                assert e["observer"][start_dir]["interface"]["name"] == iface
            else:
                assert endpoints(e) == (*caller, end_dir)
                assert e["observer"][end_dir]["interface"]["name"] == iface
                assert e["sip"]["call"]["originator"] == "caller"
            assert e["sip"]["call"]["reconstructed"] is False


def write_cfg(path: Path, **keys: object) -> None:
    path.write_text("sipcm:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in keys.items()))


def hup(sensor: Sensor, expect: str, count: int = 1) -> None:
    sensor.proc.send_signal(signal.SIGHUP)
    sensor.wait_for(expect, count)


def test_sighup_adds_a_sip_port(net, procs, cfg_dir):
    a, b = pair(net, "10.94.4", "fd94:4")
    cfg = cfg_dir / "cfg.yml"
    write_cfg(cfg, sip_ports=[5060])
    sensor = attach(net, procs, b, "v1", "-c", str(cfg))
    before = calls(net, procs, a, b, "10.94.4.1", "10.94.4.2", 2, port=5080)
    write_cfg(cfg, sip_ports=[5060, 5080])
    hup(sensor, "reloaded:")
    after = calls(net, procs, a, b, "10.94.4.1", "10.94.4.2", 2, port=5080)
    events = sensor.stop(4)
    reloaded = [x for x in sensor.err if " INFO sipcm.run: reloaded: " in x]
    assert [x.split(" INFO sipcm.run: ", 1)[1] for x in reloaded] == [
        "reloaded: sip_ports=[5060, 5080] vxlan_ports=[4789] event_types_blst=['msg-probe']\n"
    ]
    assert actions(events) == {"call-start": 2, "call-end": 2}
    assert ids(events, "call-start") == ids(events, "call-end") == after
    assert not set(before) & set(after)
    for e in events:
        assert e["server"] == {"ip": "10.94.4.2", "port": 5080}


def test_sighup_adds_a_vxlan_port(net, procs, overlay, cfg_dir):
    h1, h2 = overlay
    make_overlay(net, h1, h2, 8472)
    cfg = cfg_dir / "cfg.yml"
    write_cfg(cfg, vxlan_ports=[4789])
    sensor = attach(net, procs, h2, "u1", "-c", str(cfg))
    calls(net, procs, h1, h2, "192.168.94.1", "192.168.94.2", 2)
    write_cfg(cfg, vxlan_ports=[4789, 8472])
    hup(sensor, "reloaded: sip_ports=[5060] vxlan_ports=[4789, 8472]")
    after = calls(net, procs, h1, h2, "192.168.94.1", "192.168.94.2", 2)
    assert_overlay_calls(sensor.stop(4), after, 8472)


def test_sighup_changes_the_event_blacklist(net, procs, cfg_dir):
    a, b = pair(net, "10.94.5", "fd94:5")
    cfg = cfg_dir / "cfg.yml"
    write_cfg(cfg, event_types_blst=["call-start"])
    sensor = attach(net, procs, b, "v1", "-c", str(cfg))
    first = calls(net, procs, a, b, "10.94.5.1", "10.94.5.2", 2)
    # call-end comes from the BYE, the last message of a call that gives an event: once both
    # are out, nothing of the first calls can reach the pipeline after the reload.
    assert actions(sensor.wait_events(2)) == {"call-end": 2}
    write_cfg(cfg, event_types_blst=["call-end"])
    hup(sensor, "reloaded:")
    second = calls(net, procs, a, b, "10.94.5.1", "10.94.5.2", 2)
    events = sensor.stop(4)
    assert "event_types_blst=['call-end']" in sensor.stderr()
    assert actions(events) == {"call-start": 2, "call-end": 2}
    assert ids(events, "call-end") == first
    assert ids(events, "call-start") == second


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ("bad value", "invalid value for 'sip_ports[1]': 70000"),
        ("broken yaml", "invalid YAML in "),
        ("unknown key", "unknown config key 'sip_portz' (did you mean 'sip_ports'?)"),
        ("file removed", "config file not found: "),
    ],
)
def test_bad_config_on_sighup_keeps_the_running_one(net, procs, cfg_dir, breakage, reason):
    a, b = pair(net, "10.94.6", "fd94:6")
    cfg = cfg_dir / "cfg.yml"
    write_cfg(cfg, sip_ports=[5060, 5080])
    # Started with 5080 from the file: falling back to the defaults would lose it.
    sensor = attach(net, procs, b, "v1", "-c", str(cfg))
    if breakage == "bad value":
        write_cfg(cfg, sip_ports=[5060, 70000])
    elif breakage == "broken yaml":
        cfg.write_text("sipcm:\n  sip_ports: [5060\n")
    elif breakage == "unknown key":
        write_cfg(cfg, sip_portz=[5060])
    else:
        cfg.unlink()
    hup(sensor, "reload failed, keeping the running configuration: ")
    assert reason in sensor.stderr()
    cids = calls(net, procs, a, b, "10.94.6.1", "10.94.6.2", 2, port=5080)
    events = sensor.stop(4)
    assert "reloaded:" not in sensor.stderr()
    assert actions(events) == {"call-start": 2, "call-end": 2}
    assert ids(events, "call-start") == ids(events, "call-end") == cids


def test_fragmented_invite_inside_vxlan(net, procs, overlay):
    """The big INVITE is fragmented by h1's overlay stack (vx0 MTU 1450), each inner fragment
    carried in its own VXLAN datagram: reassembly happens on the inner packets."""
    h1, h2 = overlay
    make_overlay(net, h1, h2, 4789)
    sensor = attach(net, procs, h2, "u1")
    big = SCN / "uac_big_sdp.xml"
    cids = calls(net, procs, h1, h2, "192.168.94.1", "192.168.94.2", 2, scenario=big)
    events = sensor.stop(4)
    assert_overlay_calls(events, cids, 4789)
    for e in events:
        assert e["sip"]["call"]["reconstructed"] is False
        assert e["url"]["original"] == "sip:service@192.168.94.2:5060"
