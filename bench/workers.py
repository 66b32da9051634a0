"""Replay throughput by worker count, with every event written as NDJSON (`make bench`).

For each `workers` value the same generated capture (calls of 7 messages, rate limits off so
every event is built and written) is replayed through the real pipeline into NDJSON on
/dev/null, and three figures are taken: wall-clock messages/s; the dispatcher's CPU per
message (the main process: pcap read, decode, shard keys, chunk marshalling, merge, rates,
output), whose inverse is the ceiling the dispatcher puts on any number of workers; and the
workers' CPU per message (parse, track, build, encode). With W workers on W + 1 free cores
the expected rate is min(1 / dispatcher cost, W / worker cost): the table prints it for 8
and 16 cores.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.run import gen_calls  # noqa: E402
from sipcm.config import load_config  # noqa: E402
from sipcm.outputs.console import ConsoleOutput  # noqa: E402
from sipcm.run import replay  # noqa: E402


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_once(path: str, workers: int) -> tuple[float, float, float, int, int]:
    """(wall s, dispatcher CPU s, workers' CPU s, SIP messages, events) of one replay."""
    cfg = load_config(
        None, ["stats_interval=0", "evr_limits=[0,0,0]", "http_port=0", f"workers={workers}"]
    )
    with open(os.devnull, "w") as sink:
        out = ConsoleOutput(sink)
        gc.collect()
        w0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
        totals = replay(cfg, [path], lambda _c: [out], end="expire-all")
        wall = time.perf_counter() - w0
        main_cpu = time.process_time() - c0
        kids = _children_cpu() - k0
    return wall, main_cpu, kids, sum(t.messages for t in totals), out.counters["published"]


def dispatcher_breakdown(path: str) -> list[tuple[str, float]]:
    """CPU us/message of each dispatcher step on its own, over the same capture: what a
    kernel program steering UDP to per-worker rings would take off the main process (read,
    decode, key, marshal) against what stays there whatever the design (merge, rates, write)."""
    import marshal

    from sipcm.capture.pcapfile import PcapReader
    from sipcm.compose import build_decoder
    from sipcm.counters import Counters
    from sipcm.sip.shardkey import shard_in, shard_key, shard_table
    from sipcm.workers.shares import weights
    from sipcm.workers.wire import pack_items

    cfg = load_config(None, [])
    t = time.process_time()
    batches = list(PcapReader(path).batches(4096))
    read = time.process_time() - t
    dec = build_decoder(cfg, Counters(), heuristic=True)
    t = time.process_time()
    payloads = [p for b in batches for p in dec.decode(b)]
    decode = time.process_time() - t
    table = shard_table(weights(2, local=True))
    t = time.process_time()
    for p in payloads:
        key = shard_key(p.data)
        shard_in(key, table) if key is not None else 0
    keys = time.process_time() - t
    items = [(i, p.ts_ns, p) for i, p in enumerate(payloads)]
    t = time.process_time()
    for k in range(0, len(items), 4096):
        marshal.dumps(pack_items(items[k : k + 4096]))
    pack = time.process_time() - t
    n = len(payloads)
    return [
        ("pcap read", read / n * 1e6),
        ("decode", decode / n * 1e6),
        ("shard key", keys / n * 1e6),
        ("pack + marshal", pack / n * 1e6),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=20000, help="generated calls (7 msgs each)")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare (comma list)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per count (best is kept)")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    print(f"cores usable: {len(os.sched_getaffinity(0))}")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp, "calls.pcap"))
        n = gen_calls(Path(path), args.calls)
        rows = []
        for w in counts:
            best = None
            for _ in range(args.repeat):
                r = run_once(path, w)
                assert r[3] == n, (r[3], n)
                if best is None or r[0] < best[0]:
                    best = r
            rows.append((w, *best))
        parts = dispatcher_breakdown(path)
    base = rows[0][1]
    print(
        f"{'workers':>7} {'msgs/s':>8} {'x':>5} {'events':>7} {'dispatch us/msg':>15} "
        f"{'worker us/msg':>13}"
    )
    for w, wall, main_cpu, kids, msgs, events in rows:
        shard_cpu = kids if w > 1 else main_cpu
        disp = main_cpu if w > 1 else float("nan")
        print(
            f"{w:7d} {msgs / wall:8.0f} {base / wall:5.2f} {events:7d} "
            f"{disp / msgs * 1e6:15.1f} {shard_cpu / msgs * 1e6:13.1f}"
        )
    print("dispatcher steps alone: " + ", ".join(f"{name} {us:.1f}" for name, us in parts))
    multi = [r for r in rows if r[0] > 1]
    if multi:
        w, wall, main_cpu, kids, msgs, _ = multi[-1]
        d_us, k_us = main_cpu / msgs * 1e6, kids / msgs * 1e6
        print(f"dispatcher ceiling: {1e6 / d_us:,.0f} msgs/s ({d_us:.1f} us/msg)")
        kernel = d_us - sum(us for _, us in parts)
        print(
            f"with kernel steering of UDP the main process would keep about {kernel:.1f} "
            f"us/msg (merge, rates, output): ceiling {1e6 / max(kernel, 0.1):,.0f} msgs/s"
        )
        for cores in (8, 16):
            workers = cores - 1
            print(
                f"{cores} cores ({workers} workers): about "
                f"{min(1e6 / d_us, workers * 1e6 / k_us):,.0f} msgs/s"
            )


if __name__ == "__main__":
    main()
