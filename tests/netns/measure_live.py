"""Measure live capture throughput (SPEC section 13, live): packets per second from a veth
peer in another namespace through the kernel program to RecordBatches, ring loss, and the
share of non-SIP packets reaching user space.

Run as root: `python -m tests.netns.measure_live [--sip N] [--noise M]`. Bounded: one sender
process sends N SIP datagrams (442 bytes, port 5060) interleaved with M non-SIP datagrams
(port 9999) as fast as Python can; the reader drains the ring every 5 ms.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter

from tests.netns.conftest import Net, in_ns

SENDER = """
import socket, sys, time
n_sip, n_noise = int(sys.argv[1]), int(sys.argv[2])
sip = b"OPTIONS sip:bench@10.97.0.2 SIP/2.0\\r\\nCall-ID: x\\r\\n" + b"p" * 392
noise = b"n" * 442
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
dst_sip, dst_noise = ("10.97.0.2", 5060), ("10.97.0.2", 9999)
every = max(1, (n_sip + n_noise) // max(n_sip, 1))
t0 = time.monotonic(); sent = 0
for i in range(n_sip + n_noise):
    if i % every == 0 and sent < n_sip:
        s.sendto(sip, dst_sip); sent += 1
    else:
        s.sendto(noise, dst_noise)
print(sent, time.monotonic() - t0, flush=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sip", type=int, default=200_000)
    ap.add_argument("--noise", type=int, default=0)
    args = ap.parse_args()
    from sipcm.capture.live import LiveCapture

    net = Net()
    try:
        tx, rx = net.ns("tx"), net.ns("rx")
        net.veth(tx, "v0", ("10.97.0.1/24",), rx, "v1", ("10.97.0.2/24",))
        cap = LiveCapture(["v1"], counters=Counter(), egress=False)
        with in_ns(rx):
            cap.__enter__()
        try:
            stop = threading.Event()
            got, first, last = 0, 0.0, 0.0
            sender = net.popen(
                tx,
                sys.executable,
                "-c",
                SENDER,
                str(args.sip),
                str(args.noise),
                stdout=-1,
            )
            deadline = time.monotonic() + 120
            for batch in cap.batches(stop):
                if len(batch):
                    now = time.monotonic()
                    first = first or now
                    last = now
                    got += len(batch)
                if (
                    got >= args.sip
                    or time.monotonic() > deadline
                    or (sender.poll() is not None and time.monotonic() - max(last, 1) > 1)
                ):
                    stop.set()
            out = sender.stdout.read().split()
            k = cap.kernel_counters()
        finally:
            with in_ns(rx):
                cap.close()
        sent, send_s = int(out[0]), float(out[1])
        non_sip_seen = k["seen"] - k["selected"]
        print(
            f"sent {sent} SIP + {args.noise} non-SIP in {send_s:.3f} s "
            f"({(sent + args.noise) / send_s:,.0f} pps offered)"
        )
        print(
            f"records delivered: {got} / {sent}; ring_full_lost {k['ring_full_lost']}; "
            f"delivered rate {got / max(last - first, 1e-9):,.0f} records/s"
        )
        print(f"kernel: {k}")
        print(
            f"non-SIP packets seen by the program: {non_sip_seen}; reaching user space: "
            f"{got - k['selected'] if got >= k['selected'] else 0} "
            f"(share {(got - sent) / max(got, 1):.4%})"
        )
    finally:
        net.cleanup()


if __name__ == "__main__":
    main()
