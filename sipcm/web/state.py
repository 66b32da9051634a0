"""The thread-safe bridge between the pipeline and the web server.

The pipeline builds one `WebState` from callables that read its live structures; the server
thread calls them only while holding the pipeline's lock (which the pipeline holds while it
processes a batch), copies what it needs and releases the lock before serializing anything.
This module never changes pipeline state except through `set_blacklist`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


class PipelineBusy(Exception):
    """The pipeline held its lock longer than the server is willing to wait."""


@dataclass(frozen=True, slots=True)
class MetricsView:
    """Everything `/metrics` needs, read under one lock acquisition."""

    counters: dict[str, dict[str, int]]  # the snapshot: workers summed, table sizes included
    recent_events: int
    blacklisted_types: int
    worker_pids: tuple[tuple[int, int], ...] = ()  # (worker index, pid) of worker processes


class WebState:
    """Read (and, for the blacklist, change) pipeline state on behalf of the web server."""

    def __init__(
        self,
        *,
        lock: threading.Lock,
        counters: Callable[[], dict],
        recent: Callable[[], list[dict]],
        active_calls: Callable[[], list[dict]],
        registrations: Callable[[], list[dict]],
        get_blacklist: Callable[[], list[str]],
        set_blacklist: Callable[[list[str]], None],
        valid_events: Sequence[str],
        rate_table: Callable[[], list[dict]],
        config: Callable[[], dict],
        lock_timeout_s: float = 5.0,
        published: Callable[[], int] | None = None,
        flow: Callable[[str], dict | None] | None = None,
        pcap_of: Callable[[list[dict]], bytes] | None = None,
        worker_pids: Callable[[], Sequence[tuple[int, int]]] | None = None,
        history: Callable[[int | None], dict] | None = None,
        auth_sources: Callable[[int], dict] | None = None,
        clock: Callable[[], int] | None = None,
        live: bool = False,
    ) -> None:
        self._lock = lock
        self._counters = counters
        self._recent = recent
        self._active_calls = active_calls
        self._registrations = registrations
        self._get_blacklist = get_blacklist
        self._set_blacklist = set_blacklist
        self.valid_events: tuple[str, ...] = tuple(sorted(valid_events))
        self._rate_table = rate_table
        self._config = config
        self._worker_pids = worker_pids or tuple
        self._timeout = lock_timeout_s
        self._flow = flow or (lambda _call_id: None)
        self.pcap_of = pcap_of  # stored messages -> pcap bytes (no pipeline state: no lock)
        self._history = history or (lambda _after: {"samples": []})
        self._auth_sources = auth_sources or (
            lambda _limit: {"total": 0, "sources": 0, "capacity": 0, "untracked": 0, "top": []}
        )
        self._clock = clock or (lambda: 0)
        self.live = live  # a live capture: the clock follows wall time (durations tick on)
        # The published-events total; a cheap reader avoids a full counter snapshot per poll.
        self._published = published or (
            lambda: int(self._counters().get("events", {}).get("published", 0))
        )

    def _locked(self, fn: Callable[[], T]) -> T:
        """Run `fn` under the pipeline lock, giving up after the timeout."""
        if not self._lock.acquire(timeout=self._timeout):
            raise PipelineBusy("the pipeline is busy; try again")
        try:
            return fn()
        finally:
            self._lock.release()

    def counters(self) -> dict[str, dict[str, int]]:
        """A copy of every counter group (group -> name -> int)."""
        return self._locked(lambda: _copy_counters(self._counters()))

    def events(self) -> tuple[list[dict], int]:
        """The recent published documents, oldest first, and the published-events total."""

        def read() -> tuple[list[dict], int]:
            published = int(self._published())
            return list(self._recent()), published

        return self._locked(read)

    def active_calls(self) -> list[dict]:
        """The dialogs being followed."""
        return self._locked(lambda: list(self._active_calls()))

    def calls_at(self) -> tuple[list[dict], int]:
        """The dialogs being followed and the capture clock their durations run to."""
        return self._locked(lambda: (list(self._active_calls()), int(self._clock())))

    def history(self, after_ns: int | None) -> dict[str, Any]:
        """The counter samples taken after `after_ns` (all: None), oldest first."""
        return self._locked(lambda: dict(self._history(after_ns)))

    def auth_sources(self, limit: int) -> dict[str, Any]:
        """The `limit` source IPs with the most auth failures, and the table's totals."""
        return self._locked(lambda: dict(self._auth_sources(limit)))

    def registrations(self) -> list[dict]:
        """The cached registration bindings."""
        return self._locked(lambda: list(self._registrations()))

    def flow(self, call_id: str) -> dict | None:
        """The stored messages of one call (sipcm.flows), None when none are held."""
        return self._locked(lambda: self._flow(call_id))

    def blacklist(self) -> list[str]:
        """The blacklisted event names, sorted."""
        return self._locked(lambda: sorted(self._get_blacklist()))

    def set_blacklist(self, names: list[str]) -> list[str]:
        """Replace the blacklist with `names` (already validated); returns the new list."""

        def swap() -> list[str]:
            self._set_blacklist(list(names))
            return sorted(self._get_blacklist())

        return self._locked(swap)

    def rates(self) -> list[dict]:
        """The event rate table."""
        return self._locked(lambda: list(self._rate_table()))

    def config(self) -> dict[str, Any]:
        """The effective configuration, secrets masked by the provider."""
        return self._locked(lambda: dict(self._config()))

    def metrics(self) -> MetricsView:
        """The counter snapshot and web-side levels for `/metrics`, read together."""

        def read() -> MetricsView:
            return MetricsView(
                counters=_copy_counters(self._counters()),
                recent_events=len(self._recent()),
                blacklisted_types=len(self._get_blacklist()),
                worker_pids=tuple(self._worker_pids()),
            )

        return self._locked(read)


def _copy_counters(snap: dict) -> dict[str, dict[str, int]]:
    return {str(g): {str(k): int(v) for k, v in names.items()} for g, names in snap.items()}
