"""`/metrics`: the pipeline's counters as Prometheus families (prometheus_client).

Input: a `MetricsView` (the counter snapshot, which with workers is the sum over them, plus a
few levels of the web side and the worker processes). Output: the text exposition format
0.0.4 (`prometheus_client.exposition.generate_latest`). Families, HELP texts, label names and
zero values all come from the declarations in `sipcm.counterdefs`, so every declared family is
present from the first scrape, with zeros for counters not raised yet and for every known
label value (methods, status classes, event actions). Histogram groups become Prometheus
histograms in seconds. The main process's CPU, memory, file descriptors and the Python
version come from prometheus_client's process and platform collectors; the worker processes'
CPU time and resident memory are read from /proc with a `worker` label.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry

from sipcm import __version__
from sipcm.counterdefs import (
    COUNTERS,
    HISTOGRAM_GROUPS,
    HISTOGRAMS,
    WEB_GAUGES,
    CounterDef,
    lookup,
)

if TYPE_CHECKING:
    from sipcm.web.state import MetricsView

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
INTERFACES_GROUP = "interfaces"  # keys IFACE/DIRECTION (the web API nests them)
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _label_sets(d: CounterDef) -> list[tuple[str, ...]]:
    """Every combination of the label values known in advance (none when a label has none)."""
    domains = [d.values.get(label) for label in d.labels]
    if not domains or any(v is None for v in domains):
        return []
    return list(itertools.product(*domains))  # type: ignore[arg-type]


def _families(counters: dict[str, dict[str, int]]) -> Iterator[Metric]:
    """Every declared family, zeros included, with the values of `counters`."""
    values: dict[CounterDef, dict[tuple[str, ...], int]] = {d: {} for d in COUNTERS}
    for d in COUNTERS:
        for labels in _label_sets(d):
            values[d][labels] = 0
    for group, names in counters.items():
        if group in HISTOGRAM_GROUPS:
            continue
        for name, value in names.items():
            found = lookup(group, name)
            if found is None:
                continue  # undeclared: tests/unit/test_counterdefs.py keeps this from happening
            d, labels = found
            key = tuple(labels[label] for label in d.labels)
            values[d][key] = values[d].get(key, 0) + int(value)
    for d in COUNTERS:
        if d.group in HISTOGRAM_GROUPS:
            continue
        cls = CounterMetricFamily if d.kind == "counter" else GaugeMetricFamily
        fam = cls(d.family, d.meaning, labels=d.labels)
        samples = values[d]
        if not d.labels and not samples:
            samples = {(): 0}
        for key in sorted(samples):
            fam.add_metric(list(key), samples[key])
        yield fam
    times_by_group = {g: counters.get(g, {}) for g in HISTOGRAM_GROUPS}
    for h in HISTOGRAMS:
        got = times_by_group[h.group]
        buckets, total = [], 0
        for bound, name in zip((*h.bounds_s, float("inf")), h.names[:-1], strict=True):
            total += got.get(name, 0)
            buckets.append((_le(bound), total))
        fam = HistogramMetricFamily(h.metric, h.meaning)
        fam.add_metric([], buckets, got.get(h.names[-1], 0) / 1000)
        yield fam


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def _proc_stats(pid: int) -> tuple[float, int] | None:
    """(CPU seconds, resident bytes) of process `pid` from /proc; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    # after the command: state(0) ... utime(11) stime(12) ... rss(21), in pages
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS
    return cpu, int(fields[21]) * _PAGE


class SnapshotCollector:
    """A prometheus_client collector over one `MetricsView`."""

    def __init__(self, view: MetricsView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        view = self.view
        yield from _families(view.counters)
        for (name, meaning), value in zip(
            WEB_GAUGES, (view.recent_events, view.blacklisted_types), strict=True
        ):
            yield GaugeMetricFamily(name, meaning, value=value)
        info = InfoMetricFamily("sipcm_build", "The sipcm version serving these metrics.")
        info.add_metric([], {"version": __version__})
        yield info
        cpu = CounterMetricFamily(
            "sipcm_worker_cpu_seconds",
            "CPU time (user and system) used by each correlation worker process.",
            labels=["worker"],
        )
        rss = GaugeMetricFamily(
            "sipcm_worker_resident_memory_bytes",
            "Resident memory of each correlation worker process.",
            labels=["worker"],
        )
        for index, pid in view.worker_pids:
            got = _proc_stats(pid)
            if got is not None:
                cpu.add_metric([str(index)], got[0])
                rss.add_metric([str(index)], got[1])
        yield cpu
        yield rss


_PROCESS = ProcessCollector(registry=None)
_PLATFORM = PlatformCollector(registry=None)


def render(view: MetricsView) -> str:
    """The exposition text for `view` (families sorted by name so scrapes diff cleanly)."""
    registry = CollectorRegistry(auto_describe=False)
    for c in (SnapshotCollector(view), _PROCESS, _PLATFORM):
        registry.register(c)
    return generate_latest(_Sorted(registry)).decode()


class _Sorted:
    """A registry view yielding its families in name order."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        return iter(sorted(self._registry.collect(), key=_exposed_name))


def _exposed_name(m: Metric) -> str:
    """The family name as the text format writes it (counters with `_total`)."""
    return m.name + {"counter": "_total", "info": "_info"}.get(m.type, "")
