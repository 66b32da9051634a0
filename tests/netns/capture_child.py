"""Child process for detach tests: attach, say "ready", drain until SIGTERM/SIGINT.

Run inside the namespace: `ip netns exec NS python -m tests.netns.capture_child IFACE
[--netlink] [--drop]`. With --netlink the programs are attached the old way (they outlive the
process, as on kernels without BPF links), so `sipcm detach` has something to remove after
kill -9. With --drop the child drops privileges as `sipcm attach` does
(privileges.secure) and says "ready HELPER_PID" (0 without a detach helper).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections import Counter


def main() -> None:
    iface, netlink = sys.argv[1], "--netlink" in sys.argv
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if "--drop" in sys.argv:
        dropped(iface, netlink, stop)
        return
    if netlink:
        from sipcm.capture.attach import attach, release
        from sipcm.capture.program import Program

        prog = Program()
        att = attach(iface, prog.xdp_fd, prog.egress_fd, links=False)
        print("ready", flush=True)
        stop.wait(60)
        release(att)
        prog.close()
        return
    from sipcm.capture.live import LiveCapture

    with LiveCapture([iface], counters=Counter()) as cap:
        print("ready", flush=True)
        for _ in cap.batches(stop):
            pass


def dropped(iface: str, netlink: bool, stop: threading.Event) -> None:
    """Attach (netlink or links), drop privileges, drain until stopped, detach."""
    import functools

    from sipcm.capture import attach as att
    from sipcm.capture import live, privileges
    from sipcm.capture.live import LiveCapture

    if netlink:  # what a kernel without BPF links gets
        live.attach = functools.partial(att.attach, links=False)
    target = privileges.resolve("auto")
    helper = None
    with LiveCapture([iface], counters=Counter()) as cap:
        helper = privileges.secure(cap, target)
        print("ready", helper.pid if helper else 0, flush=True)
        for _ in cap.batches(stop):
            pass
    if helper is not None:
        helper.finish()


if __name__ == "__main__":
    main()
