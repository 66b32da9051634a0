"""`python -m bench.live`: the live figure of SPEC 13, measured with the real `sipcm attach`.

SIP messages per second delivered from a veth peer in another namespace through the kernel
program to events with zero ring loss, and the share of non-SIP traffic that reaches user
space (it must be none).

Setup: namespaces `peer` (v0) and `host` (v1, watched by `sipcm attach v1`, events to an NDJSON
file, console off, web interface on 127.0.0.1 of the host namespace for counters). The peer
injects prebuilt Ethernet frames on v0: complete UDP calls (INVITE, 100, 180, 200, ACK, BYE,
200: 7 messages, 2 events: call-start and call-end), each from its own caller address to one
server, with about `--concurrency` calls up at once, and non-SIP UDP (RTP-sized, port 30000)
interleaved at `--noise` datagrams per SIP message. The frames are addressed to another host's
MAC (a mirror port's view), so the host's stack answers nothing.

The sender (`bench/senders.py`, `--sender`): by default an AF_PACKET socket in the peer
namespace that wakes every millisecond and sends the frames due by then with one `sendmmsg`
(message headers built before the clock starts), at nice -10 while sending, so traffic keeps
its rate whatever the sensor does; `--sender tcpreplay` replays a pcap of the same frames with
`tcpreplay --pps` instead (one `send()` per frame) as a cross-check. Each step reports the
sender's CPU per frame (user and system: the system part includes the kernel's delivery of the
frame, i.e. the veth, the sensor's XDP program and the host stack, which run in the sending
core's softirq), and fails unless the sender sent every frame and the veth dropped none.

Each rate step sends a bounded number of calls paced at the target SIP message rate, then
waits (bounded) until the step's last event is in the events file (watched from the file, not
by asking the sensor's web API, which answers under the pipeline's lock) and the counters
show every message parsed and every event published. A step
keeps up when the kernel's `ring_full_lost` did not move, every message and event arrived, and
the last event came within 10% of the step's sending time (plus 0.2 s) after the last frame.
Rates double until a step fails, then a few bisection steps narrow the figure. With one worker
the sensor and the sender are pinned to different cores when there are two, so the figure is
per core; with `--workers N` the sensor's processes run on every core, sharing them with the
sender. `--workers 1,2` (what `make bench` runs) measures each count in turn with a fresh
sensor and then compares their top steps: the ratio, the CPU per message of each, and the
ratio the sender's share of the same cores leaves possible even if sharding cost nothing.

The kernel program's cost (`bench/bpfcost.py`): before the steps, an unattached copy runs on
one SIP and one non-SIP frame with `BPF_PROG_TEST_RUN`; during them `kernel.bpf_stats_enabled`
is on (restored after) and each step reports the attached XDP program's ns per packet
(`run_time_ns / run_cnt`, column `XDP`). Column `msgs/read` is the SIP messages per ring read
that returned records (the sensor's chunk size).

Root only; prints why and exits 0 when not root or BPF is unavailable. `--quick` is a smoke run.
Event rate limits are disabled (`evr_limits=[0,0,0]`) and stats events off, so every event the
calls produce is published and counted.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.senders import SENDERS  # noqa: E402

MSGS_PER_CALL = 7
EVENTS_PER_CALL = 2
PORT = 18080
SERVER = "10.99.0.2"
RTP = bytes(12) + b"\xd5" * 160  # a G.711 RTP packet's size


def unavailable() -> str | None:
    """Why the benchmark cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "bench.live needs root (network namespaces and BPF): run it with sudo"
    from sipcm.capture.doctor import run_checks

    for chk in run_checks(attach_test=False)[:6]:  # privileges, kernel, BPF, ring, BCC, headers
        if not chk.ok:
            return f"BPF unavailable: {chk.name}: {chk.detail}" + (
                f" (fix: {chk.fix})" if chk.fix else ""
            )
    return None


def call_frames(prefix: str, calls: int, concurrency: int, noise: float) -> list[bytes]:
    """Ethernet frames of `calls` complete calls, about `concurrency` up at once, with
    `noise` non-SIP datagrams per SIP message spread evenly among them."""
    from sipcm.capture.pcapwriter import udp_frame
    from tests.sipgen import SDP, Leg

    setups: list[list[bytes]] = []
    teardowns: list[list[bytes]] = []
    for i in range(calls):
        ip = f"10.{100 + (i >> 16 & 63)}.{i >> 8 & 255}.{i & 255}"
        leg = Leg(f"{prefix}-{i}@bench.example", a_ip=ip, b_ip=SERVER, from_tag=f"f{i}")
        a, b = (ip, 5060), (SERVER, 5060)

        def a2b(data: bytes, a=a, b=b) -> bytes:
            return udp_frame(a[0], a[1], b[0], b[1], data)

        def b2a(data: bytes, a=a, b=b) -> bytes:
            return udp_frame(b[0], b[1], a[0], a[1], data)

        inv = leg.req("INVITE", body=SDP, headers=("Content-Type: application/sdp",))
        trying = b2a(leg.resp(inv, 100, "Trying"))
        leg.to_tag = f"t{i}"
        ringing = b2a(leg.resp(inv, 180, "Ringing"))
        ok = b2a(leg.resp(inv, 200, "OK", body=SDP, headers=("Content-Type: application/sdp",)))
        ack = leg.req("ACK", cseq=inv.cseq, ruri=f"sip:bob@{SERVER}:5060")
        bye = leg.req("BYE", ruri=f"sip:bob@{SERVER}:5060")
        setups.append([a2b(inv.raw), trying, ringing, ok, a2b(ack.raw)])
        teardowns.append([a2b(bye.raw), b2a(leg.resp(bye, 200, "OK"))])
    sip: list[bytes] = []
    for r in range(calls + concurrency):
        if r < calls:
            sip += setups[r]
        if r >= concurrency:
            sip += teardowns[r - concurrency]
    if noise <= 0:
        return sip
    out: list[bytes] = []
    owed = 0.0
    rtp = udp_frame("10.100.0.1", 40000, SERVER, 30000, RTP)
    for f in sip:
        out.append(f)
        owed += noise
        while owed >= 1:
            out.append(rtp)
            owed -= 1
    return out


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process `pid` so far; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, from field 3
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sensor:
    """`sipcm attach v1` in the host namespace, events to a file; counters via its web API."""

    def __init__(self, net, ns: str, events_path: Path, cpu: int | None, workers: int = 1) -> None:
        from tests.netns.conftest import start_sipcm

        self.ns = ns
        self.events_path = events_path
        self.proc = start_sipcm(
            net,
            ns,
            ["v1"],
            f"http_port={PORT}",
            "outputs.console.enabled=false",
            "outputs.file.enabled=true",
            f"outputs.file.path={events_path}",
            "outputs.file.rotate_bytes=16GiB",
            "evr_limits=[0,0,0]",
            "stats_interval=0",
            f"workers={workers}",
            cpu=cpu,
        )

    def counters(self) -> dict:
        from tests.netns.conftest import http_json

        return http_json(self.ns, f"http://127.0.0.1:{PORT}/api/counters")

    def cpu(self) -> tuple[float, float]:
        """CPU seconds (user + system) so far of the main process and of its workers."""
        pid = self.proc.proc.pid
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return process_cpu(pid), sum(process_cpu(int(k)) for k in kids)

    def stop(self) -> tuple[int, str]:
        rc, _, err = self.proc.stop(timeout=60)
        return rc, err


@dataclass
class Step:
    target: float  # SIP messages/s asked for
    calls: int
    offered: float = 0.0  # SIP messages/s actually sent
    send_s: float = 0.0
    done_s: float = 0.0  # first frame to last event
    lag_s: float = 0.0  # last frame to last event
    messages: int = 0
    events: int = 0
    ring_lost: int = 0
    seen: int = 0
    selected: int = 0
    copied: int = 0
    records: int = 0
    noise: int = 0
    ok: bool = False
    why: str = ""
    label: str = ""
    events_file: int = 0
    frames: int = 0  # SIP and non-SIP frames sent
    sender_user_s: float = 0.0
    sender_sys_s: float = 0.0
    softirqd_s: float = 0.0  # ksoftirqd threads' CPU while sending (deferred kernel delivery)
    main_cpu_s: float = 0.0  # the sensor's main process, over the step (sending and settling)
    workers_cpu_s: float = 0.0  # its worker processes, added up
    veth: dict[str, int] = field(default_factory=dict)  # v0 tx / v1 rx packets and drops
    batches: int = 0  # ring reads that returned records (the sensor's chunks)
    bpf: dict[str, tuple[int, int]] = field(default_factory=dict)  # prog: (run ns, runs)

    @property
    def main_us(self) -> float:
        """The sensor's main process: CPU per SIP message of the step, µs."""
        return self.main_cpu_s / max(self.messages, 1) * 1e6

    @property
    def workers_us(self) -> float:
        """The sensor's worker processes: CPU per SIP message of the step, µs."""
        return self.workers_cpu_s / max(self.messages, 1) * 1e6

    @property
    def sender_us(self) -> float:
        """The sender's CPU per frame, µs (user and system, kernel delivery included)."""
        return (self.sender_user_s + self.sender_sys_s) / max(self.frames, 1) * 1e6

    def bpf_ns(self, prog: str = "sipcm_xdp") -> float:
        """The kernel program's mean ns per packet it ran on over the step (0: no stats)."""
        ns, runs = self.bpf.get(prog, (0, 0))
        return ns / runs if runs else 0.0

    @property
    def expected_messages(self) -> int:
        return self.calls * MSGS_PER_CALL

    @property
    def expected_events(self) -> int:
        return self.calls * EVENTS_PER_CALL

    @property
    def non_sip_user(self) -> int:
        """Records that reached user space beyond the SIP frames the kernel could copy."""
        return self.records - (self.expected_messages - self.ring_lost)


def _sums(c: dict) -> dict[str, int]:
    k = c.get("kernel", {})
    return {
        "messages": c.get("sip", {}).get("messages", 0),
        "events": c.get("events", {}).get("published", 0),
        "records": c.get("capture", {}).get("ring_records", 0),
        "batches": c.get("capture", {}).get("ring_batches", 0),
        "ring_lost": k.get("ring_full_lost", 0),
        "seen": k.get("seen", 0),
        "selected": k.get("selected", 0),
        "copied": k.get("copied", 0),
    }


def settle(sensor: Sensor, quiet_s: float = 0.5, limit_s: float = 60) -> dict[str, int]:
    """Wait until the pipeline has parsed nothing new for `quiet_s` (a backlog left by a
    step that fell behind must not count in the next one); returns the counters then."""
    last = _sums(sensor.counters())
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        time.sleep(quiet_s)
        now = _sums(sensor.counters())
        if now["messages"] == last["messages"] and now["records"] == last["records"]:
            return now
        last = now
    return last


def veth_counters(net, tx: str, rx: str) -> dict[str, int]:
    """Packets and drops of the veth pair: what the sender put on v0 and what reached v1."""
    out: dict[str, int] = {}
    for ns, ifname, side in ((tx, "v0", "tx"), (rx, "v1", "rx")):
        st = json.loads(net.run(ns, "ip", "-j", "-s", "link", "show", ifname).stdout)[0]
        st = st["stats64"][side]
        out[f"{ifname}_{side}"], out[f"{ifname}_{side}_dropped"] = st["packets"], st["dropped"]
    return out


def softirqd_seconds() -> float:
    """CPU seconds used so far by the ksoftirqd threads: the veth's delivery (XDP program,
    host stack) runs there instead of in the sender's system calls when softirqs pile up."""
    total = 0
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if "(ksoftirqd/" in stat:
                total += sum(int(x) for x in stat.rsplit(")", 1)[1].split()[11:13])
    return total / os.sysconf("SC_CLK_TCK")


class EventsTail:
    """Lines appended to the events file since it was made: how the end of a step is seen
    without asking the sensor (its web API answers under the pipeline's lock, so polling it
    every few milliseconds while the last messages are processed would slow them down)."""

    def __init__(self, path: Path) -> None:
        self.fh = open(path, "rb")  # noqa: SIM115 (closed when the step is over)
        self.fh.seek(0, os.SEEK_END)
        self.lines = 0

    def count(self) -> int:
        chunk = self.fh.read()
        self.lines += chunk.count(b"\n")
        return self.lines

    def close(self) -> None:
        self.fh.close()


def run_step(sensor: Sensor, sender, step: Step, label: str, args, veth, bpf) -> Step:
    """Send one step's calls at its rate and wait (bounded) until every message is parsed.

    Events are checked from the counters here and per Call-ID from the events file at the
    end (`check_events`): timers of calls broken by an earlier step's loss may fire later."""
    frames = call_frames(label, step.calls, args.concurrency, args.noise)
    step.label = label
    step.noise = len(frames) - step.expected_messages
    pps = step.target * len(frames) / step.expected_messages
    before = settle(sensor)
    events = EventsTail(sensor.events_path)
    cpu0 = sensor.cpu()
    veth0, softirqd0, bpf0 = veth(), softirqd_seconds(), bpf.read()
    sent = sender.send(frames, pps, timeout=60 + 3 * len(frames) / pps)
    step.softirqd_s = softirqd_seconds() - softirqd0
    t_end = sent.end  # the last frame; the first one left `sent.seconds` before
    t0 = t_end - sent.seconds
    step.frames, step.send_s = sent.frames, sent.seconds
    step.sender_user_s, step.sender_sys_s = sent.user_s, sent.sys_s
    step.offered = step.expected_messages / step.send_s
    allowed = 0.1 * step.send_s + 0.2
    deadline = t_end + max(allowed * 3, 2.0)
    done_at = None
    while True:  # until the step's last event is in the file (each call ends with one)
        now = time.perf_counter()
        if events.count() >= step.expected_events:
            done_at = now
            break
        if now > deadline:
            break
        time.sleep(0.005)
    events.close()
    for k, v in settle(sensor).items():
        setattr(step, k, v - before[k])
    cpu1 = sensor.cpu()
    step.main_cpu_s, step.workers_cpu_s = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    step.veth = {k: v - veth0[k] for k, v in veth().items()}
    step.bpf = {k: (v[0] - bpf0[k][0], v[1] - bpf0[k][1]) for k, v in bpf.read().items()}
    if done_at is not None:
        step.done_s = done_at - t0
        step.lag_s = done_at - t_end
    problems = []
    if sent.frames != len(frames) or step.veth["v0_tx"] < len(frames):
        problems.append(
            f"sender sent {sent.frames}/{len(frames)} frames, v0 counted {step.veth['v0_tx']}"
        )
    if step.veth["v0_tx_dropped"] or step.veth["v1_rx_dropped"]:
        problems.append(
            f"veth dropped {step.veth['v0_tx_dropped']} on v0, {step.veth['v1_rx_dropped']} on v1"
        )
    if step.ring_lost:
        problems.append(f"ring loss {step.ring_lost}")
    if step.messages != step.expected_messages or step.events != step.expected_events:
        problems.append(
            f"{step.messages}/{step.expected_messages} messages, "
            f"{step.events}/{step.expected_events} events"
        )
    if done_at is not None and step.lag_s > allowed:
        problems.append(f"fell behind: last event {step.lag_s:.2f} s after the last frame")
    step.ok, step.why = not problems, "; ".join(problems)
    return step


def check_events(steps: list[Step], events_path: Path) -> dict[str, int]:
    """Count each step's call-start/call-end in the events file by Call-ID prefix; a step
    whose own events are not exactly 2 per call fails. Returns the totals by action."""
    per: dict[str, int] = {}
    kinds: dict[str, int] = {}
    with open(events_path, "rb") as fh:
        for line in fh:
            doc = json.loads(line)
            action = doc["event"]["action"]
            kinds[action] = kinds.get(action, 0) + 1
            if action in ("call-start", "call-end"):
                label = doc["sip"]["call_id"].split("-", 1)[0]
                per[label] = per.get(label, 0) + 1
    for s in steps:
        s.events_file = per.get(s.label, 0)
        if s.events_file != s.expected_events and s.ok:
            s.ok = False
            s.why = f"{s.events_file}/{s.expected_events} events in the file"
    return kinds


def row(s: Step) -> str:
    verdict = "keeps up" if s.ok else f"NO: {s.why}"
    rate = f"{s.expected_messages / s.done_s:>9,.0f}" if s.done_s else f"{'-':>9}"
    ev = f"{s.events / s.done_s:>8,.0f}" if s.done_s else f"{'-':>8}"
    return (
        f"{s.target:>9,.0f} {s.offered:>9,.0f} {rate} {ev} {s.lag_s:>6.2f} "
        f"{s.ring_lost:>6} {s.seen - s.selected:>8} {s.non_sip_user:>8} {s.sender_us:>6.2f} "
        f"{s.bpf_ns():>5.0f} {s.main_us:>6.1f} {s.workers_us:>6.1f} "
        f"{s.messages / max(s.batches, 1):>5.0f}  "
        f"{verdict}"
    )


HEADER = (
    f"{'target':>9} {'offered':>9} {'msgs/s':>9} {'events/s':>8} {'lag s':>6} "
    f"{'lost':>6} {'nonSIP@k':>8} {'nonSIP@u':>8} {'snd µs':>6} {'XDP':>5} {'main':>6} "
    f"{'wkrs':>6} {'msgs':>5}  verdict\n"
    f"{'':>9} {'(SIP messages per second)':^37} {'':>24} {'/frame':>6} {'ns/p':>5} "
    f"{'µs/SIP msg':>13} {'/read':>5}"
)


def plan_rates(args) -> list[float]:
    return [args.start * 2**i for i in range(args.max_steps)]


def measure(args, net, tx: str, rx: str, events_path: Path) -> list[Step]:
    from bench.bpfcost import RunStats, sipcm_programs  # libbpf: loaded only to measure
    from bench.senders import make_sender

    cpus = sorted(os.sched_getaffinity(0))
    sensor_cpu = cpus[-1] if len(cpus) > 1 and args.workers == 1 else None
    if sensor_cpu is not None:
        os.sched_setaffinity(0, {cpus[0]})  # the sender (and its softirq work) on another core
    print(
        f"workers={args.workers}, sender {args.sender}; sensor on "
        + (
            f"core {sensor_cpu}, sender on core {cpus[0]}"
            if sensor_cpu is not None
            else f"all {len(cpus)} cores, shared with the sender"
        ),
        flush=True,
    )
    loaded = set(sipcm_programs())
    sensor = Sensor(net, rx, events_path, sensor_cpu, args.workers)
    steps: list[Step] = []
    try:
        bpf = RunStats(loaded)
        sender = make_sender(args.sender, tx, "v0", events_path.parent)
        veth = functools.partial(veth_counters, net, tx, rx)
        warm = run_step(sensor, sender, Step(args.start, 100), "warm", args, veth, bpf)
        if not warm.ok:
            raise SystemExit(f"warm-up failed ({warm.why}); the sensor does not work here")
        print(HEADER, flush=True)

        def one(rate: float) -> Step:
            calls = max(50, int(rate * args.seconds / MSGS_PER_CALL))
            s = run_step(sensor, sender, Step(rate, calls), f"s{len(steps)}", args, veth, bpf)
            steps.append(s)
            print(row(s), flush=True)
            return s

        good, bad = None, None
        for rate in plan_rates(args):
            s = one(rate)
            if s.offered < 0.9 * rate:
                print(f"  (the sender reached only {s.offered:,.0f} msgs/s; stopping here)")
                if s.ok:
                    good = rate
                break
            if not s.ok:
                bad = rate
                break
            good = rate
        if good is not None and bad is not None:
            for _ in range(args.refine):
                mid = (good + bad) / 2
                s = one(mid)
                good, bad = (mid, bad) if s.ok else (good, mid)
    finally:
        rc, err = sensor.stop()
    if rc != 0 or "Traceback" in err:
        raise SystemExit(f"sensor exited {rc}: {err[-1500:]}")
    kinds = check_events([warm, *steps], events_path)
    expected = sum(s.expected_events for s in [warm, *steps])
    print(f"\nevents file: {sum(kinds.values())} events {kinds} ({expected} from the calls sent)")
    failed_late = [s for s in steps if not s.ok and s.why.endswith("in the file")]
    for s in failed_late:
        print(f"  step at {s.target:,.0f} msgs/s: {s.why}")
    return steps


def summarize(steps: list[Step]) -> None:
    top = best(steps)
    noise = sum(s.noise for s in steps)
    non_sip_k = sum(s.seen - s.selected for s in steps)
    non_sip_sel = sum(s.selected - s.expected_messages for s in steps)
    non_sip_u = sum(s.non_sip_user for s in steps)
    if top is not None:
        print(
            f"sustained: {top.expected_messages / top.done_s:,.0f} SIP messages/s "
            f"({top.events / top.done_s:,.0f} events/s) at {top.offered:,.0f} offered, "
            f"ring loss {top.ring_lost}, last event {top.lag_s:.2f} s after the last frame"
        )
    else:
        print("sustained: no step kept up")
    lost = sum(s.ring_lost for s in steps)
    print(f"ring loss over all steps: {lost} records (ring_full_lost)")
    frames = sum(s.frames for s in steps)
    user, system = sum(s.sender_user_s for s in steps), sum(s.sender_sys_s for s in steps)
    per = (user + system) / max(frames, 1) * 1e6
    softirqd = sum(s.softirqd_s for s in steps)
    dropped = sum(s.veth.get("v0_tx_dropped", 0) + s.veth.get("v1_rx_dropped", 0) for s in steps)
    print(
        f"sender: {frames} frames, {user:.2f} s user + {system:.2f} s system CPU = {per:.2f} µs "
        f"per frame ({(user + system) / max(sum(s.send_s for s in steps), 1e-9):.0%} of a core "
        f"while sending); ksoftirqd while sending "
        f"{softirqd / max(frames, 1) * 1e6:.2f} µs per frame; veth drops {dropped}"
    )
    progs = sorted({p for s in steps for p in s.bpf})
    for prog in progs:
        ns = sum(s.bpf[prog][0] for s in steps if prog in s.bpf)
        runs = sum(s.bpf[prog][1] for s in steps if prog in s.bpf)
        print(
            f"kernel program {prog}: {runs} runs, {ns / max(runs, 1):.0f} ns per packet "
            f"(kernel.bpf_stats_enabled; SIP and non-SIP as sent)"
        )
    batches = sum(s.batches for s in steps)
    print(
        f"sensor: {sum(s.records for s in steps) / max(batches, 1):.0f} records per ring read "
        f"({batches} reads with records)"
    )
    print(
        f"non-SIP: {noise} datagrams sent; {non_sip_k} packets seen by the kernel program and "
        f"not selected; {non_sip_sel} selected beyond the SIP frames; {non_sip_u} reaching "
        f"user space (share {max(non_sip_u, 0) / max(noise, 1):.4%})"
    )


def worker_counts(text: str) -> list[int]:
    """`--workers`: one count or a comma list of counts, each at least 1."""
    try:
        counts = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a count or a comma list of counts: {text!r}"
        ) from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"worker counts must be 1 or more: {text!r}")
    return counts


def best(steps: list[Step]) -> Step | None:
    """The step that kept up at the highest offered rate (None: none did)."""
    ok = [s for s in steps if s.ok]
    return max(ok, key=lambda s: s.offered) if ok else None


def compare(runs: list[tuple[int, list[Step]]], cores: int) -> None:
    """Each worker count's top step against the first count's, and the ratio the cores allow
    when the sender shares them: with one worker the sensor has a core and the sender
    another, with more the sensor's processes and the sender share all `cores`, so N workers
    can give at most cores x C1 / (C1 + s f) times one worker's rate even if sharding cost
    nothing (C1: one worker's CPU per SIP message, s: the sender's CPU per frame, f: frames
    per SIP message)."""
    print(
        f"{'workers':>7} {'msgs/s':>9} {'offered':>9} {'sensor µs/msg':>14} "
        f"{'sender µs/frame':>15} {'frames/msg':>10}"
    )
    top = [(n, best(steps)) for n, steps in runs]
    for n, s in top:
        if s is None:
            print(f"{n:>7} {'-':>9} {'-':>9}  no step kept up")
            continue
        cpu = f"{s.main_us:.1f}" + (f" + {s.workers_us:.1f}" if n > 1 else "")
        print(
            f"{n:>7} {s.expected_messages / s.done_s:>9,.0f} {s.offered:>9,.0f} {cpu:>14} "
            f"{s.sender_us:>15.2f} {s.frames / max(s.expected_messages, 1):>10.2f}"
        )
    n1, first = top[0]
    if first is None or n1 != 1:
        return
    c1 = first.main_us
    for n, s in top[1:]:
        if s is None:
            continue
        ratio = (s.expected_messages / s.done_s) / (first.expected_messages / first.done_s)
        sf = s.sender_us * s.frames / max(s.expected_messages, 1)
        bound = min(n, cores) * c1 / (c1 + sf)
        print(
            f"workers {n} / 1: {ratio:.2f}x sustained ({s.offered / first.offered:.2f}x by the "
            f"offered rates); CPU per message {s.main_us + s.workers_us:.1f} µs against "
            f"{c1:.1f} ({(s.main_us + s.workers_us) / c1 - 1:+.0%}); the sender's {sf:.1f} µs "
            f"per SIP message on the same {min(n, cores)} cores caps the ratio at "
            f"{bound:.2f}x even if sharding cost nothing"
        )


def on_sigterm(owner: int, *_) -> None:
    """SIGTERM: exit through the `finally` that removes the namespaces, in this process only.
    pyroute2 forks helpers that inherit the handler and are ended with SIGTERM: raising
    SystemExit there would run that `finally` in the child and delete the namespaces under
    the running benchmark."""
    if os.getpid() != owner:
        os._exit(128 + signal.SIGTERM)
    sys.exit(128 + signal.SIGTERM)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: two short steps")
    ap.add_argument("--start", type=float, default=2000, help="first rate, SIP messages/s")
    ap.add_argument("--seconds", type=float, default=2.0, help="sending time per step")
    ap.add_argument("--max-steps", type=int, default=7, help="rate doublings at most")
    ap.add_argument("--refine", type=int, default=4, help="bisection steps after a failure")
    ap.add_argument("--noise", type=float, default=1.0, help="non-SIP datagrams per SIP one")
    ap.add_argument("--concurrency", type=int, default=500, help="calls up at once")
    ap.add_argument(
        "--sender",
        choices=SENDERS,
        default=SENDERS[0],
        help="mmsg: one sendmmsg() per millisecond of frames from this process (cheapest); "
        "tcpreplay: a paced replay of a pcap of the step's frames (one send() per frame)",
    )
    ap.add_argument(
        "--workers",
        type=worker_counts,
        default=[1],
        help="correlation workers of the sensor, or a comma list measured one after the "
        "other and compared (e.g. 1,2); with 1 it is pinned to one core and the sender to "
        "the other, with more it runs on every core, shared with the sender",
    )
    args = ap.parse_args()
    counts = args.workers
    if args.quick:
        args.start, args.seconds, args.max_steps, args.refine = 1000, 1.0, 2, 0
        args.concurrency = min(args.concurrency, 100)
    why = unavailable()
    if why:
        print(f"bench.live skipped: {why}")
        return
    from bench.bpfcost import enable_stats, isolated_cost, restore_stats

    frames = call_frames("cost", 1, 1, 1.0)
    cost = isolated_cost(frames[0], frames[1])
    print(
        f"XDP program alone (BPF_PROG_TEST_RUN, unattached copy): {cost.sip_ns:.0f} ns per SIP "
        f"frame ({cost.sip_bytes} B, copied to the ring), {cost.non_sip_ns:.0f} ns per non-SIP "
        f"frame",
        flush=True,
    )
    old_stats = enable_stats()
    from tests.netns.conftest import Net

    net = Net()
    old = signal.signal(signal.SIGTERM, functools.partial(on_sigterm, os.getpid()))
    try:
        tx, rx = net.ns("peer"), net.ns("host")
        net.veth(tx, "v0", ("10.99.0.1/24",), rx, "v1", (f"{SERVER}/24",))
        affinity = os.sched_getaffinity(0)
        runs: list[tuple[int, list[Step]]] = []
        for n in counts:
            args.workers = n
            if len(counts) > 1:
                print(f"\n== workers: {n}", flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                os.chmod(tmp, 0o1777)  # the sensor writes events as its run_as user
                try:
                    steps = measure(args, net, tx, rx, Path(tmp, "events.ndjson"))
                finally:
                    os.sched_setaffinity(0, affinity)  # one worker pinned this process
            print()
            summarize(steps)
            runs.append((n, steps))
        if len(runs) > 1:
            print()
            compare(runs, len(affinity))
    finally:
        signal.signal(signal.SIGTERM, old)
        net.cleanup()
        restore_stats(old_stats)


if __name__ == "__main__":
    try:
        main()
    except subprocess.TimeoutExpired as exc:
        raise SystemExit(f"bench.live: timed out: {exc}") from None
