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
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

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
