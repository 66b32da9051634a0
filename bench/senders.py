"""How `bench.live` puts its prebuilt Ethernet frames on the veth: the senders and their cost.

`Mmsg` (the default) sends from this process through an AF_PACKET socket opened in the peer
namespace: every `BURST_S` (1 ms) it wakes and sends the frames due by then with one
`sendmmsg(2)`, so the pacing is smooth and the system-call cost is paid once per burst, not
once per frame. The iovecs and message headers are built (numpy, about 0.4 µs per frame) before
the clock starts. `Tcpreplay` (`--sender tcpreplay`) writes the step's frames to a pcap and
replays it once with `tcpreplay --pps --pps-multi` inside the peer namespace: C, but one
`send()` per frame, so it costs more per frame; it is there to cross-check that a figure does
not depend on the sender. Both run at nice -10 while they send: traffic arrives whatever the
sensor does, as a NIC's interrupts would, so the sensor never starves its own sender.

Each `send` returns what it sent, the seconds from the first frame to the last, and the
sender's CPU while sending (user and system, from `getrusage`/`wait4`). The system part holds
the kernel's work for each frame: the packet socket, the veth, and on the watched side the
XDP program and the host stack (which drops the frame, addressed to another host), all run in
the softirq of the sending core inside the sender's system calls.
"""

from __future__ import annotations

import ctypes
import errno
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

import numpy as np

BURST_S = 0.001  # traffic per burst, seconds: the sender wakes once a millisecond
SENDERS = ("mmsg", "tcpreplay")
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
    """Frames per burst at `pps`: `BURST_S` worth, at least 1."""
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
                "or run with --sender mmsg"
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


class Mmsg:
    """An AF_PACKET socket opened in namespace `ns` and bound to `iface`, sending each burst of
    due frames with one sendmmsg(2) from this process."""

    name = "mmsg"
    MAX_VLEN = 1024  # the kernel's UIO_MAXIOV: messages per sendmmsg call at most

    def __init__(self, ns: str, iface: str) -> None:
        from tests.netns.conftest import in_ns

        with in_ns(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.sock.bind((iface, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
        self._sendmmsg = ctypes.CDLL(None, use_errno=True).sendmmsg
        self._sendmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
        self.retries = 0  # sendmmsg calls that sent nothing for want of buffer space

    @staticmethod
    def messages(frames: list[bytes]) -> tuple[np.ndarray, ...]:
        """The frames in one buffer, an iovec per frame and a `struct mmsghdr` per frame
        (x86-64/aarch64 layout: 8 words, only msg_iov and msg_iovlen set), as arrays whose
        memory stays put while they are referenced. Returns (data, iovecs, mmsghdrs)."""
        n = len(frames)
        data = np.frombuffer(b"".join(frames), np.uint8)
        lens = np.fromiter(map(len, frames), np.uint64, n)
        iov = np.empty((n, 2), np.uint64)  # struct iovec {iov_base, iov_len}
        iov[:, 0] = data.ctypes.data
        iov[1:, 0] += np.cumsum(lens)[:-1]
        iov[:, 1] = lens
        msgs = np.zeros((n, 8), np.uint64)  # msg_name, namelen, msg_iov, msg_iovlen, control, ...
        msgs[:, 2] = iov.ctypes.data + 16 * np.arange(n, dtype=np.uint64)
        msgs[:, 3] = 1
        return data, iov, msgs

    def send(self, frames: list[bytes], pps: float, timeout: float) -> Sent:
        """Send `frames` at `pps`: every `BURST_S` the frames due by then, in one system call."""
        keep = self.messages(frames)  # built before the clock starts
        base, fd, n, step = keep[2].ctypes.data, self.sock.fileno(), len(frames), burst(pps)
        old_nice = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, NICE)
        try:
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            i = 0
            t0 = time.perf_counter()
            deadline = t0 + timeout
            while i < n:
                due = min(n, int((time.perf_counter() - t0) * pps) + 1)
                while i < due:
                    sent = self._sendmmsg(fd, base + 64 * i, min(due - i, self.MAX_VLEN), 0)
                    if sent < 0:
                        err = ctypes.get_errno()
                        if (
                            err not in (errno.ENOBUFS, errno.EAGAIN)
                            or time.perf_counter() > deadline
                        ):
                            raise OSError(err, f"sendmmsg: {os.strerror(err)}")
                        self.retries += 1
                        time.sleep(0.0001)
                        continue
                    i += sent
                if i < n:  # asleep until the next burst is due
                    time.sleep(max(0.0, t0 + (i + step - 1) / pps - time.perf_counter()))
            end = time.perf_counter()
            r1 = resource.getrusage(resource.RUSAGE_SELF)
        finally:
            os.setpriority(os.PRIO_PROCESS, 0, old_nice)
        # the first frame left at t0 (frame 0 is due at once)
        return Sent(n, end - t0, end, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime)


def make_sender(kind: str, ns: str, iface: str, workdir: Path) -> Mmsg | Tcpreplay:
    """The sender named `kind` (one of SENDERS)."""
    if kind == "tcpreplay":
        return Tcpreplay(ns, iface, workdir)
    return Mmsg(ns, iface)
