"""Counter history: the sensor's counters sampled on the capture clock, for the dashboard.

The pipeline cuts its input at every `interval` boundary of capture time (multiples of the
interval since the epoch, like its stats boundaries: everything before the boundary is
processed, with every worker's share, before the sample is taken), so a replay and a live
capture give samples at the same instants and the same values for every worker count. After
an idle gap of several intervals there is one sample, then the schedule realigns. A final
sample is taken at the end of input. The ring keeps the last `capacity` samples (an hour at
the defaults); `/api/history` serves it, so the dashboard's charts survive a reload and a
`replay --serve` shows the capture's own timeline.

A sample keeps only the running totals the charts use (`GROUPS` whole, `COUNTERS` one by one,
flattened to "group.name"; not the table sizes, which would cost a pass over every entry per
sample) and the calls decided in the last `window` (attempted, ASR, NER: `callstats.summary`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from sipcm import callstats
from sipcm.collector import BY_ACTION_GROUP

NS = 1_000_000_000
INTERVAL_S = 5
CAPACITY = 720  # one hour at INTERVAL_S
WINDOW_S = 60  # the calls window of each sample's ASR/NER
# Counter groups kept whole (each bounded: interfaces, event names, call outcome keys).
GROUPS = ("interfaces", BY_ACTION_GROUP, callstats.GROUP)
COUNTERS = (
    ("sip", "messages"),
    ("sip", "parse_errors"),
    ("events", "published"),
)


class History:
    """A bounded ring of counter samples taken at capture-time boundaries."""

    def __init__(
        self,
        interval_s: float = INTERVAL_S,
        capacity: int = CAPACITY,
        window_s: float = WINDOW_S,
        *,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled  # off: no boundary is ever scheduled, so no sample is taken
        self.interval_ns = int(interval_s * NS)
        self.window_ns = int(window_s * NS)
        self.samples: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.next_ns: int | None = None  # the next boundary (None until the first input)

    def start(self, ts_ns: int) -> None:
        """Schedule the first boundary after the first input's time (if enabled)."""
        if self.next_ns is None and self.enabled:
            self.next_ns = self._after(ts_ns)

    def _after(self, ts_ns: int) -> int:
        return (ts_ns // self.interval_ns + 1) * self.interval_ns

    def last_boundary(self, ts_ns: int) -> int:
        """The latest boundary at or before `ts_ns`."""
        return ts_ns // self.interval_ns * self.interval_ns

    def add(self, at_ns: int, snapshot: Mapping[str, Mapping[str, int]], now_ns: int) -> None:
        """Record `snapshot` as the sample at `at_ns` (replacing one at the same time) and
        schedule the next boundary after `now_ns` (the input that crossed this one)."""
        flat: dict[str, int] = {}
        for group in GROUPS:
            for name, v in (snapshot.get(group) or {}).items():
                flat[f"{group}.{name}"] = int(v)
        for group, name in COUNTERS:
            v = (snapshot.get(group) or {}).get(name)
            if v is not None:
                flat[f"{group}.{name}"] = int(v)
        if self.samples and self.samples[-1]["t"] >= at_ns:
            at_ns = self.samples.pop()["t"]
        sample = {"t": at_ns, "c": flat, "calls": self._window(at_ns, flat)}
        self.samples.append(sample)
        self.next_ns = self._after(max(at_ns, now_ns))

    def _window(self, at_ns: int, flat: Mapping[str, int]) -> dict[str, Any]:
        """Calls decided since the sample `window` before `at_ns` (or since the start)."""
        base: Mapping[str, int] = {}
        for s in reversed(self.samples):
            if s["t"] <= at_ns - self.window_ns:
                base = s["c"]
                break
        prefix = callstats.GROUP + "."
        delta = {
            k[len(prefix) :]: v - base.get(k, 0) for k, v in flat.items() if k.startswith(prefix)
        }
        s = callstats.summary(delta)
        return {"attempted": s["attempted"], "asr": s["asr"], "ner": s["ner"]}

    def view(self, after_ns: int | None = None) -> dict[str, Any]:
        """The samples (oldest first) taken after `after_ns`, or all, and the ring's shape."""
        picked = [s for s in self.samples if after_ns is None or s["t"] > after_ns]
        return {
            "interval_s": self.interval_ns / NS,
            "capacity": self.samples.maxlen,
            "window_s": self.window_ns / NS,
            "samples": picked,
        }
