"""How `bench.live` puts its prebuilt Ethernet frames on the veth: the senders and their cost.

`Tcpreplay` (the default) writes a step's frames to a pcap and replays it once with
`tcpreplay --pps` inside the peer namespace: a C loop, one `send()` per frame, sleeping
(`--timer nano`) between bursts of `burst(pps)` frames (about `BURST_S` of traffic each), so
the pacing is smooth and the sender's own user-space work is about a third of the Python
loop's. `Python` is the former sender (one `socket.send()` per frame from this process, 0.5 ms
sleeps), kept for machines without tcpreplay (`--sender python`).

Each `send` returns what it sent, the seconds from the first frame to the last, and the
sender's CPU (user and system, from `wait4`/`getrusage`). The system part holds the kernel's
work for the frame: the veth runs the watched side's XDP program and the host stack in the
softirq of the sending core, inside the sender's system calls, so it is part of the figure.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BURST_S = 0.001  # traffic per tcpreplay burst (--pps-multi), seconds: one wakeup per ms
SENDERS = ("tcpreplay", "python")
NICE = -10  # traffic arrives whatever the sensor does: the sender is not starved by it


@dataclass
class Sent:
    """One paced send: how many frames left, over how long, at what CPU cost."""

    frames: int
    seconds: float  # first frame to last frame
    end: float  # time.perf_counter() once the last frame was sent
    user_s: float
    sys_s: float

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


def burst(pps: float) -> int:
    """Frames per tcpreplay burst at `pps`: `BURST_S` worth, at least 1."""
    return max(1, round(pps * BURST_S))


def write_pcap(path: Path, frames: list[bytes]) -> None:
    """The frames as a pcap, 1 µs apart (tcpreplay --pps ignores the timestamps)."""
    from sipcm.capture.pcapwriter import PcapWriter

    with open(path, "wb") as fh:
        w = PcapWriter(fh)
        for i, f in enumerate(frames):
            w.write(i * 1000, f)


_ACTUAL = re.compile(r"Actual: (\d+) packets \(\d+ bytes\) sent in ([\d.]+) seconds")
_RATED = re.compile(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps")
_STAT = re.compile(r"^\s*(Successful|Failed|Truncated) packets:\s+(\d+)", re.M)


def parse_tcpreplay(out: str) -> tuple[int, float, dict[str, int]]:
    """(frames sent, seconds first to last frame, {Successful, Failed, Truncated}) from
    tcpreplay's report; the seconds come from its pps figure, which has more digits."""
    actual = _ACTUAL.search(out)
    if not actual:
        raise RuntimeError(f"tcpreplay printed no 'Actual:' line: {out[-500:]!r}")
    n, seconds = int(actual.group(1)), float(actual.group(2))
    rated = _RATED.search(out)
    if rated and float(rated.group(1)) > 0:
        seconds = n / float(rated.group(1))
    return n, seconds, {k: int(v) for k, v in _STAT.findall(out)}


class Tcpreplay:
    """`tcpreplay` on `iface` of namespace `ns`, one pcap per step in `workdir`."""

    name = "tcpreplay"

    def __init__(self, ns: str, iface: str, workdir: Path) -> None:
        if shutil.which("tcpreplay") is None:
            raise SystemExit(
                "bench.live: tcpreplay not found (apt-get install tcpreplay), "
                "or run with --sender python"
            )
        self.ns, self.iface, self.pcap = ns, iface, Path(workdir, "step.pcap")

    def command(self, pps: float) -> list[str]:
        return [
            *("nice", "-n", str(NICE), "ip", "netns", "exec", self.ns),
            *("tcpreplay", "--intf1", self.iface),
            *(f"--pps={pps:.0f}", f"--pps-multi={burst(pps)}", "--timer=nano"),
            *("--no-flow-stats", str(self.pcap)),
        ]

    def send(self, frames: list[bytes], pps: float, timeout: float) -> Sent:
        """Replay `frames` once at `pps`; fails if tcpreplay did not send every one."""
        write_pcap(self.pcap, frames)
        with open(Path(self.pcap.parent, "tcpreplay.out"), "w+") as out:
            proc = subprocess.Popen(self.command(pps), stdout=out, stderr=subprocess.STDOUT)
            killer = threading.Timer(timeout, proc.kill)
            killer.start()
            try:
                _, status, ru = os.wait4(proc.pid, 0)  # its rusage: user and system CPU
            finally:
                killer.cancel()
            end = time.perf_counter()
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            text = out.read()
        if proc.returncode != 0:
            raise RuntimeError(f"tcpreplay exited {proc.returncode}: {text[-500:]}")
        n, seconds, stats = parse_tcpreplay(text)
        if stats.get("Failed") or stats.get("Truncated"):
            raise RuntimeError(f"tcpreplay: {stats}")
        return Sent(n, seconds, end, ru.ru_utime, ru.ru_stime)


def send_paced(sock: socket.socket, frames: list[bytes], pps: float) -> float:
    """Send `frames` at `pps` frames per second (in small bursts); returns the seconds taken."""
    send = sock.send
    n, i = len(frames), 0
    t0 = time.perf_counter()
    while i < n:
        due = min(n, int((time.perf_counter() - t0) * pps) + 1)
        if due > i:
            for f in frames[i:due]:
                send(f)
            i = due
        else:
            time.sleep(0.0005)
    return time.perf_counter() - t0


class Python:
    """An AF_PACKET socket opened in namespace `ns`, bound to `iface`; one send() per frame."""

    name = "python"

    def __init__(self, ns: str, iface: str) -> None:
        from tests.netns.conftest import in_ns

        with in_ns(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.sock.bind((iface, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)

    def send(self, frames: list[bytes], pps: float, timeout: float) -> Sent:
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        seconds = send_paced(self.sock, frames, pps)
        end = time.perf_counter()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        return Sent(len(frames), seconds, end, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime)


def make_sender(kind: str, ns: str, iface: str, workdir: Path) -> Tcpreplay | Python:
    """The sender named `kind` (one of SENDERS)."""
    if kind == "tcpreplay":
        return Tcpreplay(ns, iface, workdir)
    return Python(ns, iface)
