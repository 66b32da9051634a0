"""bench.live's senders on a real veth pair: every frame of a step arrives on the watched side
unchanged and in order, at the rate asked, and the sender's CPU is measured."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from bench.live import SERVER, call_frames
from bench.senders import SENDERS, make_sender
from tests.netns.conftest import in_ns, need

pytestmark = pytest.mark.netns
ETH_P_ALL = 0x0003


def receive(ns: str, ifname: str, wanted: set[bytes], count: int, stop: threading.Event):
    """A packet socket on `ifname` of `ns`; returns (its thread, the frames in `wanted` it saw)."""
    with in_ns(ns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((ifname, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
    sock.settimeout(0.2)
    got: list[bytes] = []

    def run() -> None:
        with sock:
            while len(got) < count and not stop.is_set():
                try:
                    frame = sock.recv(65536)
                except TimeoutError:
                    continue
                if frame in wanted:  # not the namespaces' own IPv6 neighbour discovery
                    got.append(frame)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, got


@pytest.mark.parametrize("kind", SENDERS)
def test_sender_delivers_every_frame_in_order_at_the_rate(net, tmp_path, kind):
    if kind == "tcpreplay":
        need("tcpreplay")
    tx, rx = net.ns("peer"), net.ns("host")
    net.veth(tx, "v0", ("10.99.0.1/24",), rx, "v1", (f"{SERVER}/24",))
    frames = call_frames(kind, 300, 50, 1.0)  # 2,100 SIP frames, each with one RTP frame
    assert len(frames) == 4200
    stop = threading.Event()
    thread, got = receive(rx, "v1", set(frames), len(frames), stop)
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        sent = make_sender(kind, tx, "v0", tmp_path).send(frames, 10_000, timeout=30)
        thread.join(10)
    finally:
        stop.set()
    assert sent.frames == len(frames)
    assert os.getpriority(os.PRIO_PROCESS, 0) == nice  # raised only while sending
    assert got == frames
    # 4,199 gaps of 100 µs, paced in bursts of at most 1 ms
    assert 0.40 <= sent.seconds <= 0.44
    assert sent.user_s >= 0
    assert sent.sys_s >= 0
    assert sent.cpu_s < sent.seconds  # well under one core at 10,000 frames/s
