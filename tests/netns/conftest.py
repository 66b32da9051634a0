"""Network-namespace fixtures: unique names, a cleanup registry, veth/bridge/VXLAN builders,
and running the capture inside the namespace of the host it watches."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PREFIX = f"sipcmt{os.getpid() % 100000}"
_seq = itertools.count()
_created: list[str] = []


def _remove_all() -> None:
    from pyroute2 import netns

    while _created:
        name = _created.pop()
        with contextlib.suppress(OSError):
            netns.remove(name)


atexit.register(_remove_all)


def _require() -> None:
    if os.geteuid() != 0:
        pytest.skip("netns tests need root")
    try:
        import bcc  # noqa: F401
    except ImportError:
        pytest.skip("BCC (python3-bpfcc) not importable")


class Net:
    """Builds namespaces and links; everything it creates is removed at teardown."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def ns(self, role: str) -> str:
        from pyroute2 import NetNS, netns

        name = f"{PREFIX}{role}{next(_seq)}"
        netns.create(name)
        _created.append(name)
        self.names.append(name)
        with NetNS(name) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        return name

    def _addr(self, ns: str, ifname: str, addrs: tuple[str, ...]) -> None:
        from pyroute2 import NetNS

        with NetNS(ns) as ipr:
            idx = ipr.link_lookup(ifname=ifname)[0]
            for a in addrs:
                ip, plen = a.split("/")
                if ":" in ip:
                    # nodad: the address is usable at once (no duplicate address detection wait)
                    ipr.addr("add", index=idx, address=ip, prefixlen=int(plen), flags=0x02)
                else:
                    ipr.addr("add", index=idx, address=ip, prefixlen=int(plen))
            ipr.link("set", index=idx, state="up")

    def veth(
        self,
        ns_a: str,
        if_a: str,
        addrs_a: tuple[str, ...],
        ns_b: str,
        if_b: str,
        addrs_b: tuple[str, ...],
    ) -> None:
        """A veth pair between two namespaces, with addresses (CIDR strings), both up."""
        from pyroute2 import NetNS

        with NetNS(ns_a) as ipr:
            ipr.link("add", ifname=if_a, kind="veth", peer={"ifname": if_b, "net_ns_fd": ns_b})
        self._addr(ns_a, if_a, addrs_a)
        self._addr(ns_b, if_b, addrs_b)

    def vxlan(
        self,
        ns: str,
        ifname: str,
        vni: int,
        underlay: str,
        local: str,
        remote: str,
        addrs: tuple[str, ...] = (),
        port: int = 4789,
    ) -> None:
        """A unicast VXLAN device over `underlay` to `remote`."""
        from pyroute2 import NetNS

        with NetNS(ns) as ipr:
            ipr.link(
                "add",
                ifname=ifname,
                kind="vxlan",
                vxlan_id=vni,
                vxlan_link=ipr.link_lookup(ifname=underlay)[0],
                vxlan_local=local,
                vxlan_group=remote,
                vxlan_port=port,
                vxlan_learning=0,
            )
        self._addr(ns, ifname, addrs)

    def bridge(self, ns: str, ifname: str, members: list[str], addrs: tuple[str, ...] = ()) -> None:
        from pyroute2 import NetNS

        with NetNS(ns) as ipr:
            ipr.link("add", ifname=ifname, kind="bridge")
            br = ipr.link_lookup(ifname=ifname)[0]
            for m in members:
                ipr.link("set", index=ipr.link_lookup(ifname=m)[0], master=br, state="up")
        self._addr(ns, ifname, addrs)

    def run(self, ns: str, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout
        )

    def popen(self, ns: str, *cmd: str, **kw) -> subprocess.Popen:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(["ip", "netns", "exec", ns, *cmd], **kw)

    def cleanup(self) -> None:
        from pyroute2 import netns

        for name in self.names:
            with contextlib.suppress(OSError):
                netns.remove(name)
            if name in _created:
                _created.remove(name)


@pytest.fixture
def net() -> Iterator[Net]:
    _require()
    n = Net()
    yield n
    n.cleanup()


@pytest.fixture
def cfg_dir() -> Iterator[Path]:
    """A directory whose files the sensor can still read after dropping to its run_as user
    (pytest's tmp_path is private to root), e.g. a configuration re-read on SIGHUP."""
    with tempfile.TemporaryDirectory(prefix="sipcm-cfg-") as d:
        os.chmod(d, 0o755)
        yield Path(d)


@contextlib.contextmanager
def in_ns(ns: str) -> Iterator[None]:
    """Run the block with this thread inside namespace `ns`."""
    from pyroute2 import netns

    netns.pushns(ns)
    try:
        yield
    finally:
        netns.popns()


@contextlib.contextmanager
def capture(ns: str, ifaces: list[str], **kw):
    """A started LiveCapture attached to `ifaces` of namespace `ns`."""
    from sipcm.capture.live import LiveCapture

    cap = LiveCapture(ifaces, counters=Counter(), **kw)
    with in_ns(ns):
        cap.__enter__()
    try:
        yield cap
    finally:
        with in_ns(ns):
            cap.close()


def collect(
    cap, until: Callable[[list], bool] | None = None, timeout: float = 20, settle: float = 0.3
) -> list[tuple[int, bytes]]:
    """(direction, frame) of every record until `until(records)` is true (or timeout), then
    `settle` seconds more so that anything extra would show up."""
    out: list[tuple[int, bytes]] = []
    stop = threading.Event()
    deadline = time.monotonic() + timeout
    done_at = None
    for batch in cap.batches(stop):
        for i in range(len(batch)):
            o, c = int(batch.offset[i]), int(batch.caplen[i])
            out.append((int(batch.direction[i]), bytes(batch.data[o : o + c])))
        now = time.monotonic()
        if done_at is None and until is not None and until(out):
            done_at = now
        if now > deadline or (done_at is not None and now - done_at > settle):
            stop.set()
    return out


def l4(frame: bytes) -> tuple[int, int, int, int, bytes]:
    """(ip version, proto, sport, dport, payload) of an untagged frame; ports 0 for later
    fragments (payload is then the fragment data)."""
    et = struct.unpack_from("!H", frame, 12)[0]
    if et == 0x0800:
        ihl = (frame[14] & 15) * 4
        proto, fo = frame[23], struct.unpack_from("!H", frame, 20)[0]
        off = 14 + ihl
        if fo & 0x1FFF:
            return 4, proto, 0, 0, frame[off:]
        ver = 4
    elif et == 0x86DD:
        proto, off, ver = frame[20], 54, 6
        if proto == 44:
            proto, fo = frame[off], struct.unpack_from("!H", frame, off + 2)[0]
            off += 8
            if fo & 0xFFF8:
                return 6, proto, 0, 0, frame[off:]
    else:
        return 0, 0, 0, 0, b""
    sport, dport = struct.unpack_from("!HH", frame, off)
    if proto == 17:
        return ver, proto, sport, dport, frame[off + 8 :]
    if proto == 6:
        return ver, proto, sport, dport, frame[off + (frame[off + 12] >> 4) * 4 :]
    return ver, proto, sport, dport, b""


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")


# -- the real `sipcm attach` and its web interface, inside a namespace -------------------------

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Sensor:
    """A running `sipcm attach` (started by `start_sipcm`): a thread collects its stdout lines
    (NDJSON events when the console output is on) so the test can read them while it runs."""

    def __init__(self, proc: subprocess.Popen, err: bytes) -> None:
        self.proc = proc
        self.err = err
        self.lines: list[bytes] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def events(self) -> list[dict]:
        """The events printed so far (stats events included)."""
        import json

        with self._cond:
            lines = list(self.lines)
        return [json.loads(x) for x in lines if x.strip()]

    def wait_events(self, pred: Callable[[list[dict]], bool], timeout: float = 20) -> list[dict]:
        """The events printed so far, once `pred(events)` holds; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            evs = self.events()
            if pred(evs):
                return evs
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise AssertionError(f"events never matched; got {[actions_of(evs)]}")
            with self._cond:
                self._cond.wait(min(left, 0.2))

    def stop(self, timeout: float = 30) -> tuple[int, list[dict], str]:
        """SIGTERM, wait; (exit status, every event printed, stderr text)."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rest = self.proc.stderr.read()  # ends when the process exits
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise
        self._reader.join(10)
        self.err += rest or b""
        return self.proc.returncode, self.events(), self.err.decode(errors="replace")

    def kill(self) -> None:
        """Teardown on failure: SIGTERM, then SIGKILL if it does not exit."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def actions_of(events: list[dict]) -> list[str]:
    """event.action of each event, in order, stats events left out."""
    return [e["event"]["action"] for e in events if e["event"]["action"] != "stats"]


# Correlation workers of every sensor the tests start (modules that run each scenario with
# several worker counts set it through the `workers` fixture).
WORKERS = 1


@pytest.fixture(params=[1, 2], ids=["workers1", "workers2"])
def workers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the test with one process and with two correlation workers: a module that wants
    every scenario both ways uses it autouse; each run must give the exact expected events."""
    import tests.netns.conftest as here

    monkeypatch.setattr(here, "WORKERS", request.param)
    return request.param


def sipcm_cmd(ifaces: list[str], *overrides: str) -> list[str]:
    """The `sipcm ... attach IFACES` command line with `-E` overrides (after `workers`)."""
    import sys

    # state_file off unless overridden: one test's saved calls must not be restored by the
    # next test's sensor
    args = [sys.executable, "-m", "sipcm", "-E", f"workers={WORKERS}", "-E", "state_file="]
    for o in overrides:
        args += ["-E", o]
    return [*args, "attach", *ifaces]


def start_sipcm(
    net: Net,
    ns: str,
    ifaces: list[str],
    *overrides: str,
    timeout: float = 30,
    cpu: int | None = None,
) -> Sensor:
    """The real `sipcm attach` in `ns` (pinned to core `cpu` if given); returns once it says it
    is attached (or fails with its stderr)."""
    import select

    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    cmd = sipcm_cmd(ifaces, *overrides)
    proc = net.popen(ns, *cmd, stdout=subprocess.PIPE, cwd=REPO_ROOT, preexec_fn=pin)
    deadline, err = time.monotonic() + timeout, b""
    while time.monotonic() < deadline and b"attached to" not in err:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            err += chunk
    if b"attached to" not in err:
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"sensor did not attach: {err.decode(errors='replace')[-1500:]}")
    return Sensor(proc, err)


def http(
    ns: str,
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request from inside namespace `ns`: (status, headers, body)."""
    from http.client import HTTPConnection
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    with in_ns(ns):
        conn = HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        conn.connect()  # the socket belongs to the namespace it was created in
    try:
        conn.request(method, target or "/", body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def http_json(ns: str, url: str, **kw) -> dict:
    """GET `url` from inside `ns`; the decoded JSON body of a 200 answer."""
    import json

    status, _, body = http(ns, "GET", url, **kw)
    if status != 200:
        raise AssertionError(f"GET {url}: {status} {body[:300]!r}")
    return json.loads(body)


def prom_samples(text: str) -> dict[str, float]:
    """Prometheus exposition text as {sample name with labels: value}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def programs_on(net: Net, ns: str, ifname: str) -> dict[str, object]:
    """What is attached to `ifname`: the XDP line of `ip link`, tc egress filters, tcx links."""
    from pyroute2 import IPRoute

    from sipcm.capture import attach as att

    link = net.run(ns, "ip", "link", "show", "dev", ifname).stdout
    flt = net.run(ns, "tc", "filter", "show", "dev", ifname, "egress").stdout.strip()
    with in_ns(ns), IPRoute() as ipr:  # BPF_PROG_QUERY resolves the ifindex in this netns
        tcx = len(att._tcx_prog_ids(att.ifindex_of(ipr, ifname)))
    return {"xdp": " xdp" in link or "prog/xdp" in link, "tc_egress": flt, "tcx": tcx}


def wait_listening(net: Net, ns: str, port: int, *, tcp: bool = False, timeout: float = 15.0):
    """Wait until something in `ns` listens on `port` (UDP or TCP), so a client started next
    does not race the server's start-up on a loaded machine."""
    flags = "-ltnH" if tcp else "-lunH"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = net.run(ns, "ss", flags, f"sport = :{port}").stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {'tcp' if tcp else 'udp'} port {port} in {ns}")


def stop_proc(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`; pipes are drained so a
    child blocked writing to a full pipe can still exit."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=timeout)
