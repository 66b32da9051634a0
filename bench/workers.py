"""Replay throughput by worker count, with every event written as NDJSON (`make bench`).

For each `workers` value the same generated capture (calls of 7 messages, rate limits off so
every event is built and written) is replayed through the real pipeline into NDJSON on
/dev/null, and these figures are taken, as CPU per message of the whole capture:
wall-clock messages/s; the main process's CPU, split into its own shard (parse, track,
build, encode of the keys it owns) and the rest, the dispatcher (pcap read, decode, shard
keys, chunk marshalling, merge, rates, output); and the worker processes' CPU added up.
From the dispatcher's cost and a worker's cost per message it handles, the rate on N cores
(N shards: `sipcm.workers.shares` gives the main process's share) is estimated for 8 and 16.

`--pair` also measures what this machine gives two processes with nothing shared: two
independent `workers: 1` replays of the same capture started together (forked), their
combined messages/s against one alone. That is the ceiling of any split of the work in two
on these cores (sharding's own costs excluded), the figure to read the `workers: 2` ratio
against on a VM whose cores slow each other down.
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
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.run import gen_calls  # noqa: E402
from sipcm.config import load_config  # noqa: E402
from sipcm.outputs.console import ConsoleOutput  # noqa: E402
from sipcm.run import replay  # noqa: E402
from sipcm.workers.shares import balanced_share, local_share  # noqa: E402


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class _TimedShard:
    """The main process's shard, with the CPU time of its `run` added up."""

    def __init__(self, shard: Any) -> None:
        self.shard = shard
        self.cpu = 0.0

    def run(self, items: Any, advance_to: int) -> Any:
        t = time.process_time()
        try:
            return self.shard.run(items, advance_to)
        finally:
            self.cpu += time.process_time() - t

    def __getattr__(self, name: str) -> Any:
        return getattr(self.shard, name)


def run_once(path: str, workers: int) -> tuple[float, float, float, float, int, int]:
    """(wall s, main process CPU s, its shard's CPU s, worker processes' CPU s, SIP
    messages, events) of one replay."""
    from sipcm.workers.pool import WorkerPool

    cfg = load_config(
        None, ["stats_interval=0", "evr_limits=[0,0,0]", "http_port=0", f"workers={workers}"]
    )
    timed: list[_TimedShard] = []
    init = WorkerPool.__init__

    def timed_init(self: WorkerPool, *args: Any, local: Any = None, **kw: Any) -> None:
        if local is not None:
            timed.append(_TimedShard(local))
            local = timed[-1]
        init(self, *args, local=local, **kw)

    WorkerPool.__init__ = timed_init  # type: ignore[method-assign]
    try:
        with open(os.devnull, "w") as sink:
            out = ConsoleOutput(sink)
            gc.collect()
            w0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
            totals = replay(cfg, [path], lambda _c: [out], end="expire-all")
            wall = time.perf_counter() - w0
            main_cpu = time.process_time() - c0
            kids = _children_cpu() - k0
    finally:
        WorkerPool.__init__ = init  # type: ignore[method-assign]
    own = sum(t.cpu for t in timed)
    msgs = sum(t.messages for t in totals)
    return wall, main_cpu, own, kids, msgs, out.counters["published"]


def run_pair(path: str) -> tuple[float, float, int]:
    """(wall s until both finished, wall s of the faster, SIP messages of both) of two
    independent single-process replays of `path` started together in two forked children."""
    pids: list[tuple[int, int]] = []
    t0 = time.perf_counter()
    for _ in range(2):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: one plain replay, its (wall, messages) to the parent
            code = 1
            try:
                os.close(r)
                wall, _, _, _, msgs, _ = run_once(path, 1)
                os.write(w, f"{wall} {msgs}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        pids.append((pid, r))
    walls, total = [], 0
    for pid, r in pids:
        with os.fdopen(r) as fh:
            text = fh.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not text:
            raise RuntimeError(f"a paired replay failed (status {status})")
        wall, msgs = text.split()
        walls.append(float(wall))
        total += int(msgs)
    both = time.perf_counter() - t0
    return both, min(walls), total


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
    from sipcm.gcpolicy import freeze_survivors

    freeze_survivors()  # the replays run in this process as in the `sipcm` command
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=20000, help="generated calls (7 msgs each)")
    ap.add_argument(
        "--gap-ms",
        type=float,
        default=5.0,
        help="capture time between call starts: 5 ms is 1,400 msgs/s of capture time and about "
        "1,000 calls up at once; 0.15 ms is 47,000 msgs/s and 33,000 up at once, the state a "
        "sensor keeps at that live rate",
    )
    ap.add_argument("--workers", default="1,2", help="worker counts to compare (comma list)")
    ap.add_argument(
        "--repeat", type=int, default=2, help="runs per count, counts alternating (best is kept)"
    )
    ap.add_argument(
        "--pair",
        action="store_true",
        help="also run two independent workers=1 replays at once: the cores' own ceiling",
    )
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    print(f"cores usable: {len(os.sched_getaffinity(0))}")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp, "calls.pcap"))
        n = gen_calls(Path(path), args.calls, gap_ms=args.gap_ms)
        rows = []
        spread: dict[int, float] = {}
        # One unmeasured run first (a process's first replay pays its heap's page faults),
        # then the counts in turn, so the VM's drift over minutes reaches every count alike.
        run_once(path, counts[0])
        runs: dict[int, list[tuple]] = {w: [] for w in counts}
        pairs: list[tuple[float, float, int]] = []
        for _ in range(args.repeat):
            for w in counts:
                runs[w].append(run_once(path, w))
            if args.pair:
                pairs.append(run_pair(path))
        for w in counts:
            assert all(r[4] == n for r in runs[w]), [r[4] for r in runs[w]]
            best = min(runs[w], key=lambda r: r[0])
            spread[w] = max(r[0] for r in runs[w]) / best[0] - 1
            rows.append((w, *best))
        parts = dispatcher_breakdown(path)
    base = rows[0][1]
    print(
        f"{'workers':>7} {'msgs/s':>8} {'x':>5} {'events':>7} {'main us/msg':>11} "
        f"{'its shard':>9} {'worker processes us/msg':>23} {'spread':>6}"
    )
    for w, wall, main_cpu, own, kids, msgs, events in rows:
        print(
            f"{w:7d} {msgs / wall:8.0f} {base / wall:5.2f} {events:7d} "
            f"{main_cpu / msgs * 1e6:11.1f} {own / msgs * 1e6:9.1f} {kids / msgs * 1e6:23.1f} "
            f"{spread[w]:6.0%}"
        )
    if pairs:
        both, fastest, msgs = min(pairs)
        print(
            f"two independent workers=1 replays at once: {msgs / both:8.0f} msgs/s combined "
            f"({msgs / both / (rows[0][5] / base):.2f}x one alone; the faster finished in "
            f"{fastest / both:.0%} of the time of the slower)"
        )
    print("dispatcher steps alone: " + ", ".join(f"{name} {us:.1f}" for name, us in parts))
    multi = [r for r in rows if r[0] > 1]
    if multi:
        w, wall, main_cpu, own, kids, msgs, _ = multi[-1]
        d_us = (main_cpu - own) / msgs * 1e6
        # A worker's cost per message it handles (its share of the keys: 1 - the local one).
        k_us = kids / msgs * 1e6 / (1 - local_share(w))
        s_us = own / msgs * 1e6 / local_share(w) if local_share(w) else k_us
        print(f"dispatcher alone: {d_us:.1f} us/msg, ceiling {1e6 / d_us:,.0f} msgs/s")
        print(f"worker: {k_us:.1f} us per message it handles")
        # What sipcm.workers.shares would hold if this run's costs were its constants.
        f = balanced_share(w, d_us, s_us, k_us - s_us)
        print(
            f"main's own shard: {s_us:.1f} us per message it owns; from this run's costs "
            f"(DISPATCH_US {d_us:.1f}, SHARD_US {s_us:.1f}, CHANNEL_US {k_us - s_us:.1f}) the "
            f"balanced share of the main process is {f:.1%} (sipcm.workers.shares: "
            f"{local_share(w):.1%})"
        )
        for cores in (8, 16):
            f = local_share(cores)
            main_us = d_us + f * k_us
            worker_us = (1 - f) / (cores - 1) * k_us
            print(
                f"{cores} cores ({cores - 1} worker processes, main's share {f:.0%}): about "
                f"{1e6 / max(main_us, worker_us):,.0f} msgs/s"
            )


if __name__ == "__main__":
    main()
