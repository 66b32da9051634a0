"""`make bench`: end-to-end replay throughput, linearity, memory per dialog/registration, and
where the time goes.

Replay is measured end to end (pcap read, decode, parse, correlate, build events) on one core,
on generated calls and on the shared corpus, twice per input: every event written as NDJSON
through the real console output to /dev/null (the way users run it), and with a null output
that drops the documents (the pipeline alone). Each row gives wall and CPU seconds (CPU time is
the figure to compare on a shared machine). A cProfile run of the NDJSON replay ends the report
with the top functions by cumulative share. Figures are printed as tables; the README quotes
them with this command.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sipcm import accel  # noqa: E402
from sipcm.config import load_config  # noqa: E402
from sipcm.run import build_outputs, replay  # noqa: E402
from tests.sipgen import MS, T0, Capture, Leg, basic_call  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"


class NullOutput:
    """Counts documents and drops them."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, events: list[dict]) -> None:
        self.count += len(events)

    def write_lines(self, lines: list[bytes]) -> None:
        """Take the encoded documents as they come (nothing decoded back into dicts)."""
        self.count += len(lines)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def gen_calls(path: Path, calls: int, talk_s: int = 3, gap_ms: float = 5.0) -> int:
    """Write `calls` UDP calls starting `gap_ms` apart (7 messages each, so about
    (2 + talk_s) / gap_s calls are up at once whatever `calls` is); returns the message count."""
    cap = Capture()
    for i in range(calls):
        leg = Leg(
            f"bench-{i}@example.com",
            a_ip=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
            from_tag=f"ft{i}",  # unique per call, as RFC 3261 19.3 wants (no cross-call sharing)
        )
        basic_call(cap, leg, T0 + round(i * gap_ms * MS), talk_s=talk_s)
    cap.write(path)
    return calls * 7


OUTPUTS = ("ndjson", "null")


def _outputs(kind: str, sink):
    """Output factory for replay(): the real console output as NDJSON into `sink`, or null."""
    if kind == "ndjson":
        return lambda c: build_outputs(CFG, c, stdout=sink, pretty=False)
    return lambda _c: [NullOutput()]


# Rate limits off: every event is built and written, so the figure is the whole pipeline's cost.
CFG = load_config(None, ["stats_interval=0", "evr_limits=[0,0,0]"])


def time_replay(
    files: list[str], repeat: int = 3, output: str = "ndjson"
) -> tuple[float, float, int, int]:
    """Best-of-`repeat` (wall seconds, CPU seconds) of a replay of `files` with `output`; also
    the events written and the SIP messages."""
    best = cpu_best = float("inf")
    events = messages = 0
    with open(os.devnull, "w") as sink:
        for _ in range(repeat):
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            totals = replay(CFG, files, _outputs(output, sink), end="expire-all")
            best = min(best, time.perf_counter() - t0)
            cpu_best = min(cpu_best, time.process_time() - c0)
            events, messages = sum(t.events for t in totals), sum(t.messages for t in totals)
    return best, cpu_best, events, messages


# The loop around the per-message work: near 100% cumulative, they would say nothing.
_DRIVERS = frozenset(
    {
        "run.replay",
        "run._replay_one",
        "pipeline.feed",
        "pipeline._feed",
        "pipeline._dispatch",
        "pipeline.submit",
        "shard.run",
    }
)


def profile_summary(files: list[str], top: int = 14) -> list[tuple[str, float, float]]:
    """(function, cumulative share, own share) of an NDJSON replay under cProfile, the `top`
    functions of sipcm by cumulative time (the drivers above the per-message loop left out)."""
    prof = cProfile.Profile()
    with open(os.devnull, "w") as sink:
        prof.enable()
        replay(CFG, files, _outputs("ndjson", sink), end="expire-all")
        prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in stats.values())
    rows = []
    for (path, _line, name), (_cc, _nc, tt, ct, _callers) in stats.items():
        if "/sipcm/" not in path:
            continue
        function = path.split("/sipcm/", 1)[1].removesuffix(".py").replace("/", ".") + "." + name
        if function not in _DRIVERS:
            rows.append((function, ct / total, tt / total))
    rows.sort(key=lambda r: -r[1])
    return rows[:top]


def memory_per_entry(n: int) -> tuple[float, float, float]:
    """Bytes of tracker memory per established dialog, per pending call (an INVITE nobody
    answered yet) and per registration binding."""
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
        tracker = Tracker(Counters().group("t"), max_calls=n * 2, max_regs=n * 2, max_pending=n * 2)
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        feed(tracker, msgs)
        del msgs
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        return used / n

    def calls(answered: bool = True) -> list[tuple[bytes, int]]:
        out = []
        for i in range(n):
            leg = Leg(f"mem-{i}@example.com", from_tag=f"mf{i}")
            leg.to_tag = None
            inv = leg.req("INVITE")
            leg.to_tag = f"tt{i}"
            t = T0 + i * MS
            out.append((inv.raw, t))
            if answered:
                out.append((leg.resp(inv, 200, "OK"), t + MS))
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

    return measure(calls), measure(lambda: calls(answered=False)), measure(regs)


def _profile(path: str) -> list[tuple[str, float, float]]:
    """`profile_summary` on the pure Python sources, in a child process when this one runs
    the compiled build (cProfile cannot see inside compiled functions)."""
    if not accel.status().startswith("compiled"):
        return profile_summary([path])
    env = dict(os.environ, **{accel.PURE_ENV: "1"})
    cmd = [sys.executable, "-m", "bench.run", "--profile-file", path]
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=True)
    return [tuple(row) for row in json.loads(out.stdout)]


def main() -> None:
    from sipcm.gcpolicy import freeze_survivors

    freeze_survivors()  # the replays run in this process as in the `sipcm` command
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--calls",
        type=int,
        default=50000,
        help="calls in the smaller generated run (the larger has 10x); 50000 calls span 250 s "
        "of capture, past the 32 s duplicate window, so both runs are in steady state",
    )
    ap.add_argument("--profile-calls", type=int, default=20000, help="calls in the profiled run")
    ap.add_argument("--profile-file", help=argparse.SUPPRESS)  # the child that profiles
    args = ap.parse_args()
    if args.profile_file:
        print(json.dumps(profile_summary([args.profile_file])))
        return
    print(f"hot modules: {accel.status()}")
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    rows = []
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        for calls, repeat in ((args.calls, 2), (args.calls * 10, 1)):
            path = Path(tmp, f"calls{calls}.pcap")
            n = gen_calls(path, calls)
            for output in OUTPUTS:
                t, cpu, ev, msgs = time_replay([str(path)], repeat, output)
                assert msgs == n, (msgs, n)
                rows.append((f"generated {calls} calls", output, n, t, cpu, ev))
                ratios.setdefault(output, []).append(cpu)
            path.unlink()
        corpus = sorted(str(p) for p in CORPUS.rglob("*.pcap*"))
        if not corpus:
            print(f"no corpus rows: {CORPUS} not found", file=sys.stderr)
        for output in OUTPUTS if corpus else ():
            t, cpu, ev, n = time_replay(corpus * 20, 3, output)
            rows.append((f"corpus x20 (all {len(corpus)} files)", output, n, t, cpu, ev))
        prof_path = Path(tmp, "profile.pcap")
        gen_calls(prof_path, args.profile_calls)
        summary = _profile(str(prof_path))
    print(
        f"{'input':28} {'output':6} {'SIP msgs':>9} {'seconds':>8} {'CPU s':>8} {'msgs/s':>9} "
        f"{'us/msg':>7} {'events':>7}"
    )
    for name, output, n, t, cpu, ev in rows:
        print(
            f"{name:28} {output:6} {n:9d} {t:8.3f} {cpu:8.3f} {n / t:9.0f} {t / n * 1e6:7.1f} "
            f"{ev:7d}"
        )
    for output, (small, large) in ratios.items():
        ratio = large / small
        print(f"linearity ({output}): 10x messages took {ratio:.2f}x the CPU time (limit 10.5x)")
    per_call, per_pending, per_reg = memory_per_entry(20000)
    print(
        f"memory: {per_call:.0f} B per established dialog, {per_pending:.0f} B per pending "
        f"call (INVITE not answered), {per_reg:.0f} B per registration"
    )
    print(
        f"\nprofile: NDJSON replay of {args.profile_calls} generated calls (cProfile, on the "
        "pure Python sources: compiled functions are invisible to it)"
    )
    print(f"{'function':52} {'cumulative':>10} {'own':>6}")
    for name, cum, own in summary:
        print(f"{name:52} {cum:10.1%} {own:6.1%}")


if __name__ == "__main__":
    main()
