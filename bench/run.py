"""`make bench`: end-to-end replay throughput, linearity, and memory per dialog/registration.

Replay is measured end to end (pcap read, decode, parse, correlate, build events, null output)
on one core, on generated calls and on the shared corpus. Figures are printed as a table; the
README quotes them with this command.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sipcm.config import load_config  # noqa: E402
from sipcm.run import replay  # noqa: E402
from tests.sipgen import MS, T0, Capture, Leg, basic_call  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"


class NullOutput:
    """Counts documents and drops them."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, events: list[dict]) -> None:
        self.count += len(events)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def gen_calls(path: Path, calls: int, talk_s: int = 3) -> int:
    """Write `calls` UDP calls starting 5 ms apart (7 messages each, so about
    (2 + talk_s) / 0.005 calls are up at once whatever `calls` is); returns the message count."""
    cap = Capture()
    for i in range(calls):
        leg = Leg(
            f"bench-{i}@example.com",
            a_ip=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
            from_tag=f"ft{i}",  # unique per call, as RFC 3261 19.3 wants (no cross-call sharing)
        )
        basic_call(cap, leg, T0 + i * 5 * MS, talk_s=talk_s)
    cap.write(path)
    return calls * 7


def time_replay(files: list[str], repeat: int = 3) -> tuple[float, int, int]:
    """Best-of-`repeat` seconds for a replay of `files`; also the events and SIP messages."""
    # Rate limits off: every event is built, so the figure is the whole pipeline's cost.
    cfg = load_config(None, ["stats_interval=0", "evr_limits=[0,0,0]"])
    best, events, messages = float("inf"), 0, 0
    for _ in range(repeat):
        out = NullOutput()
        gc.collect()
        t0 = time.perf_counter()
        totals = replay(cfg, files, lambda _c, o=out: [o], end="expire-all")
        best = min(best, time.perf_counter() - t0)
        events, messages = out.count, sum(t.messages for t in totals)
    return best, events, messages


def memory_per_entry(n: int) -> tuple[float, float]:
    """Bytes of tracker memory per established dialog and per registration binding."""
    from sipcm.counters import Counters
    from sipcm.decode.packet import Payload
    from sipcm.sip.parser import parse
    from sipcm.track.tracker import Tracker

    def feed(tracker: Tracker, msgs: list[tuple[bytes, int]]) -> None:
        for raw, ts in msgs:
            m = parse(raw)
            m.payload = Payload(raw, ts, "192.0.2.10", "192.0.2.20", 5060, 5060, "udp", 4, True)
            tracker.process(m)

    def measure(build) -> float:
        msgs = build()
        tracker = Tracker(Counters().group("t"), max_calls=n * 2, max_regs=n * 2)
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        feed(tracker, msgs)
        del msgs
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        return used / n

    def calls() -> list[tuple[bytes, int]]:
        out = []
        for i in range(n):
            leg = Leg(f"mem-{i}@example.com", from_tag=f"mf{i}")
            leg.to_tag = None
            inv = leg.req("INVITE")
            leg.to_tag = f"tt{i}"
            t = T0 + i * MS
            out += [(inv.raw, t), (leg.resp(inv, 200, "OK"), t + MS)]
        return out

    def regs() -> list[tuple[bytes, int]]:
        out = []
        for i in range(n):
            leg = Leg(f"reg-{i}@example.com", a_user=f"u{i}", b_user=f"u{i}", from_tag=f"rf{i}")
            leg.to_tag = f"rt{i}"
            reg = leg.req("REGISTER", headers=("Expires: 3600",))
            t = T0 + i * MS
            out += [
                (reg.raw, t),
                (
                    leg.resp(
                        reg,
                        200,
                        "OK",
                        headers=(f"Contact: <sip:u{i}@192.0.2.10:5060>;expires=3600",),
                    ),
                    t + MS,
                ),
            ]
        return out

    return measure(calls), measure(regs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--calls",
        type=int,
        default=50000,
        help="calls in the smaller generated run (the larger has 10x); 50000 calls span 250 s "
        "of capture, past the 32 s duplicate window, so both runs are in steady state",
    )
    args = ap.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    rows = []
    for calls, repeat in ((args.calls, 2), (args.calls * 10, 1)):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "calls.pcap")
            n = gen_calls(path, calls)
            t, ev, msgs = time_replay([str(path)], repeat)
            assert msgs == n, (msgs, n)
            rows.append((f"generated {calls} calls", n, t, ev))
    corpus = sorted(str(p) for p in CORPUS.rglob("*.pcap*"))
    t_corpus, ev_corpus, n_corpus = time_replay(corpus * 20)
    rows.append(("corpus x20 (all 23 files)", n_corpus, t_corpus, ev_corpus))
    print(f"{'input':32} {'SIP msgs':>9} {'seconds':>8} {'msgs/s':>9} {'us/msg':>7} {'events':>7}")
    for name, n, t, ev in rows:
        print(f"{name:32} {n:9d} {t:8.3f} {n / t:9.0f} {t / n * 1e6:7.1f} {ev:7d}")
    ratio = rows[1][2] / rows[0][2]
    print(f"linearity: 10x messages took {ratio:.2f}x the time (limit 10.5x)")
    per_call, per_reg = memory_per_entry(20000)
    print(f"memory: {per_call:.0f} B per established dialog, {per_reg:.0f} B per registration")


if __name__ == "__main__":
    main()
