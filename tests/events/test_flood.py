"""A flood of 1,000,000 INVITEs with random Call-IDs (and random branches and From-tags, as a
scanner sends them) and no replies, replayed with pending_max_entries=10000 (and
calls_max_entries=10000): the tracker never holds more than the limit, and the evictions are
counted (SPEC 6: memory is bounded).

The capture is generated with numpy from one template frame whose random hex fields are
patched in place (a few seconds for 1M frames).
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sipcm.capture.pcapfile import PcapReader
from sipcm.capture.pcapwriter import PcapWriter, udp_frame
from sipcm.config import load_config
from sipcm.pipeline import Pipeline

N = 1_000_000
LIMIT = 10_000
HOLE = "0" * 16
T0_S = 1_700_000_000
STEP_NS = 1_000  # 1M INVITEs in one second of capture time: no timer can fire meanwhile

TEMPLATE = (
    f"INVITE sip:100@192.0.2.20 SIP/2.0\r\n"
    f"Via: SIP/2.0/UDP 198.51.100.66:5060;branch=z9hG4bK{HOLE}\r\n"
    f"Max-Forwards: 70\r\n"
    f'From: "scan" <sip:100@198.51.100.66>;tag=t{HOLE}\r\n'
    f"To: <sip:100@192.0.2.20>\r\n"
    f"Call-ID: {HOLE}@flood\r\n"
    f"CSeq: 1 INVITE\r\n"
    f"Contact: <sip:100@198.51.100.66:5060>\r\n"
    f"Content-Length: 0\r\n\r\n"
).encode()


def write_flood(path: Path, n: int, seed: int = 1) -> None:
    """n INVITE frames 1 us apart; each gets one random 16-hex-digit value in its Call-ID,
    branch and From-tag."""
    frame = udp_frame("198.51.100.66", 5060, "192.0.2.20", 5060, TEMPLATE)
    holes = []
    start = 0
    while (i := frame.find(HOLE.encode(), start)) >= 0:
        holes.append(i)
        start = i + len(HOLE)
    assert len(holes) == 3
    rec = 16 + len(frame)
    rng = np.random.default_rng(seed)
    hexdigits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    with open(path, "wb") as fh:
        PcapWriter(fh)  # global header
        chunk = 100_000
        for base in range(0, n, chunk):
            m = min(chunk, n - base)
            arr = np.empty((m, rec), dtype=np.uint8)
            arr[:, 16:] = np.frombuffer(frame, dtype=np.uint8)
            ts = T0_S * 1_000_000_000 + (base + np.arange(m, dtype=np.int64)) * STEP_NS
            hdr = np.empty((m, 4), dtype="<u4")
            hdr[:, 0] = ts // 1_000_000_000
            hdr[:, 1] = ts % 1_000_000_000
            hdr[:, 2] = len(frame)
            hdr[:, 3] = len(frame)
            arr[:, :16] = hdr.view(np.uint8)
            rand = hexdigits[rng.integers(0, 16, size=(m, 16))]
            for h in holes:
                arr[:, 16 + h : 16 + h + 16] = rand
            fh.write(arr.tobytes())


class Count:
    """An output that only counts what it is given (1M documents would not fit in a list)."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()

    def write(self, events: list[dict]) -> None:
        for d in events:
            self.actions[d["event"]["action"]] += 1

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.slow
def test_flood_of_random_call_ids(tmp_path: Path) -> None:
    path = tmp_path / "flood.pcap"
    t0 = time.monotonic()
    write_flood(path, N)
    t_gen = time.monotonic() - t0

    cfg = load_config(
        None,
        ["stats_interval=0", f"pending_max_entries={LIMIT}", f"calls_max_entries={LIMIT}"],
    )
    out = Count()
    pipe = Pipeline(cfg, [out], hostname=socket.gethostname(), heuristic=True)
    peak: dict[str, int] = Counter()
    frames = 0
    t0 = time.monotonic()
    for batch in PcapReader(str(path)).batches(4096):
        pipe.feed(batch)
        frames += len(batch)
        st = pipe.tracker.stats()
        assert st["calls"] + st["transactions"] <= LIMIT
        for k, v in st.items():
            peak[k] = max(peak[k], v)
    t_replay = time.monotonic() - t0
    pipe.finish("conclude")
    print(f"\nflood: generate {t_gen:.1f} s, replay {t_replay:.1f} s ({N / t_replay:,.0f} msg/s)")

    assert frames == N
    assert pipe.counters.group("sip")["messages"] == N
    track = pipe.counters.group("track")
    # Every INVITE is a new Call-ID; none can time out within the 1 s of capture time, so each
    # one past the limit evicts exactly one older entry.
    assert track["pending_evicted"] == N - LIMIT
    assert track["calls_evicted"] == 0
    assert track["duplicate_copies"] == 0
    assert track["retransmissions"] == 0
    assert peak["calls"] == LIMIT
    # Nothing else grows with the flood either.
    for k, v in peak.items():
        assert v <= 3 * LIMIT + 1024, (k, v)
    # Evictions are counted, not reported: no event comes out during the flood. At the end
    # the LIMIT entries still held are concluded: one call-attempt (no final reply) each.
    ev = pipe.counters.group("events")
    assert ev["generated"] == LIMIT
    assert set(out.actions) == {"call-attempt"}
    # They share one (event, source IP) rate key and fall within 10 ms of capture time, so
    # SPEC 10's defaults apply (20 per 1 s): the first 20 are published, then of the 9980 over
    # the limit only the 1st, 100th, 200th, 400th, 800th, 1600th, 3200th and 6400th.
    assert out.actions["call-attempt"] == 20 + 8
    assert ev["published"] == 28
    assert pipe.counters.group("rates")["rate_suppressed"] == LIMIT - 28
