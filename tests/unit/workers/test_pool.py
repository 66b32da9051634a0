"""Worker processes: same events as one process, sensor-wide state, death noticed at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sipcm.capture.pcapfile import PcapReader
from sipcm.config import load_config
from sipcm.errors import WorkerError
from sipcm.pipeline import Pipeline
from sipcm.sip.shardkey import shard_table
from sipcm.workers.pool import WorkerPool
from sipcm.workers.shares import LIVE, REPLAY, weights
from tests.replayutil import Collect
from tests.sipgen import MS, T0, Capture, Leg, S, basic_call

REPO = Path(__file__).resolve().parents[3]


def calls_pcap(path: Path, n: int, talk_s: int = 30) -> Path:
    cap = Capture()
    for i in range(n):
        leg = Leg(f"pool-{i}@example.com", a_ip=f"192.0.2.{i % 250 + 1}", from_tag=f"pf{i}")
        basic_call(cap, leg, T0 + i * 20 * MS, talk_s=talk_s)
    return cap.write(path)


def pipeline(workers: int, *overrides: str) -> tuple[Pipeline, Collect]:
    cfg = load_config(None, ["stats_interval=0", "http_port=0", f"workers={workers}", *overrides])
    out = Collect()
    return Pipeline(cfg, [out], hostname="h", workers=workers), out


def feed_until(pipe: Pipeline, path: Path, until_ns: int) -> None:
    for batch in PcapReader(path).batches(1):
        if int(batch.ts_ns[0]) >= until_ns:
            break
        pipe.feed(batch)
    pipe.sync()


def test_a_killed_worker_is_named_and_stops_the_run() -> None:
    pool = WorkerPool(load_config(None, []), 2, hostname="h", ifnames={}, counters=Counter())
    try:
        victim = pool.pids()[1]
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(WorkerError, match=rf"worker 1 \(pid {victim}\) was killed by SIGKILL"):
            submit_until_noticed(pool)
    finally:
        pool.close()
    assert not Path(f"/proc/{victim}").exists()


def submit_until_noticed(pool: WorkerPool) -> None:
    for _ in range(50):  # a notice may still go into the socket buffer before the death shows
        pool.submit([], T0)
        pool.drain()
        time.sleep(0.05)


def test_workers_ignore_sigint_and_stop_when_told(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group: workers keep their state for the flush."""
    pipe, out = pipeline(2)
    try:
        pipe.snapshot()  # every worker has started (and set its signal handling)
        for pid in pipe.backend.pids():  # type: ignore[union-attr]
            assert os.getpgid(pid) != os.getpgid(0)  # the terminal's Ctrl-C never reaches it
            os.kill(pid, signal.SIGINT)
        path = calls_pcap(tmp_path / "c.pcap", 4, talk_s=1)
        for batch in PcapReader(path).batches(16):
            pipe.feed(batch)
        pipe.finish("expire-all")
    finally:
        pipe.close()
    assert [d["event"]["action"] for d in out.docs].count("call-end") == 4


def test_active_calls_and_blacklist_span_every_worker(tmp_path: Path) -> None:
    path = calls_pcap(tmp_path / "c.pcap", 40)
    pipe, out = pipeline(3, "event_types_blst=[]")
    try:
        feed_until(pipe, path, T0 + 40 * 20 * MS + 3 * S)  # every call answered, none ended
        with pipe.lock:
            calls = pipe.active_calls()
            sizes = pipe.snapshot()["track_active"]  # what /metrics reports instead of rows
            pipe.set_blacklist(["call-end"])
        assert sizes["dialogs"] == len(calls) == 40
        assert sorted(c["call_id"] for c in calls) == sorted(
            f"pool-{i}@example.com" for i in range(40)
        )
        assert {c["state"] for c in calls} == {"inv_established"}
        for batch in PcapReader(path).batches(1):
            if int(batch.ts_ns[0]) >= T0 + 40 * 20 * MS + 3 * S:
                pipe.feed(batch)
        pipe.finish("conclude")
        snap = pipe.snapshot()
    finally:
        pipe.close()
    actions = [d["event"]["action"] for d in out.docs]
    assert actions.count("call-start") == 40
    assert "call-end" not in actions  # the change reached every worker
    assert snap["events"]["blacklisted_call-end"] == 40
    assert snap["sip"]["messages"] == 40 * 7
    assert snap["workers"]["workers"] == 3


def test_a_worker_killed_during_replay_exits_non_zero_with_its_name(tmp_path: Path) -> None:
    """workers=3: two worker processes (the third shard runs in the main process)."""
    path = calls_pcap(tmp_path / "big.pcap", 6000, talk_s=2)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sipcm",
            "-E",
            "workers=3",
            "-E",
            "http_port=0",
            "replay",
            str(path),
            "--speed",
            "20",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        kids: list[int] = []
        deadline = time.monotonic() + 60
        while len(kids) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            kids = children(proc.pid)
        assert len(kids) == 2, kids
        time.sleep(0.5)
        os.kill(kids[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, err
    assert f"worker 0 (pid {kids[0]}) was killed by SIGKILL" in err
    assert "Traceback" not in err
    deadline = time.monotonic() + 10
    while Path(f"/proc/{kids[1]}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{kids[1]}").exists()  # the other worker went with the sensor


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def test_unknown_timeout_fails_before_workers_start() -> None:
    from sipcm.errors import ConfigError

    with pytest.raises(ConfigError, match="calls_timeouts"):
        pipeline(2, "calls_timeouts={inv_frist: 3s}")


def test_chunks_too_large_for_the_rings_travel_inline(tmp_path: Path, monkeypatch) -> None:
    """Rings of 64 KiB: most chunks and answers go on the socket; the events are the same."""
    import sipcm.workers.channel as channel
    from tests.replayutil import replay_docs

    path = calls_pcap(tmp_path / "c.pcap", 300, talk_s=1)
    expected, _ = replay_docs([path], "event_types_blst=[]", end="expire-all", workers=1)
    monkeypatch.setattr(channel, "RING_BYTES", 64 << 10)
    got, _ = replay_docs([path], "event_types_blst=[]", end="expire-all", workers=2)
    assert got == expected
    assert [d["event"]["action"] for d in got].count("call-end") == 300


def test_end_of_input_streams_from_every_worker_in_merge_order(tmp_path: Path, monkeypatch) -> None:
    """300 calls still up at the end, concluded 7 at a time: each worker streams its own
    conclusion and the merge gives the same bytes as one process."""
    import sipcm.pipeline
    from tests.replayutil import replay_docs

    path = calls_pcap(tmp_path / "c.pcap", 300, talk_s=600)
    monkeypatch.setattr(sipcm.pipeline, "FINISH_CHUNK", 7)
    one, _ = replay_docs([path], "event_types_blst=[]", end="expire-all", workers=1)
    three, _ = replay_docs([path], "event_types_blst=[]", end="expire-all", workers=3)
    assert three == one
    assert [d["event"]["action"] for d in one].count("call-end") == 300


def test_two_workers_are_one_process_and_a_shard_in_the_main_process(tmp_path: Path) -> None:
    """workers=2: one worker process; the main process's shard owns the calls whose key
    falls in its (smaller) share of the buckets, and every view includes them."""
    from sipcm.sip.shardkey import shard_in

    path = calls_pcap(tmp_path / "c.pcap", 60)
    pipe, out = pipeline(2, "event_types_blst=[]")
    try:
        pool = pipe.backend
        assert isinstance(pool, WorkerPool)
        assert pool.local is not None
        assert len(pool.pids()) == 1
        assert pool.pids()[0] != os.getpid()
        feed_until(pipe, path, T0 + 60 * 20 * MS + 3 * S)  # every call answered, none ended
        with pipe.lock:
            calls = pipe.active_calls()
            here = {c["call_id"] for c in pool.local.call_rows()}
            sizes = pipe.snapshot()["track_active"]
        ids = [f"pool-{i}@example.com" for i in range(60)]
        assert here == {k for k in ids if shard_in(k.encode(), pool.table) == 1}
        assert 0 < len(here) < 30  # the smaller share
        assert sorted(c["call_id"] for c in calls) == sorted(ids)
        assert sizes["dialogs"] == 60
        assert pipe.flow(sorted(here)[0]) is not None  # the local shard's message store
        for batch in PcapReader(path).batches(1):
            if int(batch.ts_ns[0]) >= T0 + 60 * 20 * MS + 3 * S:
                pipe.feed(batch)
        pipe.finish("conclude")
    finally:
        pipe.close()
    actions = [d["event"]["action"] for d in out.docs]
    assert actions.count("call-start") == actions.count("call-end") == 60


def test_live_capture_gives_the_main_process_its_live_share() -> None:
    """The shares follow the mode: a live message costs more to read and to correlate."""
    tables = {}
    for live in (False, True):
        cfg = load_config(None, ["stats_interval=0", "http_port=0", "workers=2"])
        pipe = Pipeline(cfg, [Collect()], hostname="h", workers=2, live=live)
        try:
            tables[live] = pipe.backend.table  # type: ignore[union-attr]
        finally:
            pipe.close()
    assert tables[False] == shard_table(weights(2, local=True, mode=REPLAY))
    assert tables[True] == shard_table(weights(2, local=True, mode=LIVE))
    assert (tables[False].count(1), tables[True].count(1)) == (425, 418)  # the main's buckets
