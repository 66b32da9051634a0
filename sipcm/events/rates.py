"""Event rates and rate-based blacklisting (SPEC 10).

Input: one call per outcome that passed the event-type blacklist, with its event name, source IP
and CAPTURE time (ns). Output: publish (True), suppress (False), or publish with the dict that
goes under `sipcm.rate` (exceeded, current, limit, window, since). It never reads the wall clock
(replay is deterministic), never builds documents and never drops an event because its key table
is full.

Estimator: a two-bucket sliding window per (key, window), with buckets of length I aligned to
the key's first event. The key keeps, per window, `cur` (events in the bucket holding its newest
event), `prev` (events in the bucket before) and `end` (where the current bucket ends). At time t
in the current bucket the estimated number of events in the last I seconds is

    est = prev * (end - t) / I + cur.

It is exact when the previous bucket's events were spread evenly; in the worst case (all of them
bunched at one end of that bucket) it is off by at most `prev`, the previous bucket's count.
Within a key's first bucket it is the exact count since its first event, so with 21 events within
1 s of the first one the 21st is the first over a 20/1 s limit. Cost per event and window: one
comparison and an increment (a bucket change adds an addition or a modulo); the float expression
only runs when `cur <= limit < cur + prev`.

sipcmbeat used a fixed window restarted once an interval has passed, holding the previous
window's extrapolated rate as a peak until then; the sliding estimate needs no peak-hold and
decays smoothly, which is what makes recovery (below) happen at a predictable time.

Limits are per event name: `limits` is one list for every event, or a mapping of event name to
list with a "default" entry for the names it does not list (the configuration's default keeps
the server-confirmed outcomes call-start, call-end, reg-new, reg-del and reg-expired unlimited:
they are the call records). A window is enabled when its interval is > 0 and some event has a
limit > 0 in it; every event is counted in every enabled window (the table shows its rates) but
only a limit > 0 limits it, so an unlimited event is counted and never suppressed. With no
window enabled nothing is counted at all. Suppressed events are counted per event name in the
`limited` counter group (the replay summary and stats events report it).

A key is over the limit when est > limit for any enabled window where its limit is > 0. An
over key is blacklisted: its c-th event over the limit (c = 1 at the transition) is published
with `sipcm.rate.*` when c == 1, c == report_min * 2**k < report_max, or c is a multiple of
report_max; the others are suppressed. Its first event with every window back under its limit
takes it off the blacklist (counted `rate_recovered`) and is published normally. As in
sipcmbeat there is no extra hysteresis: the sliding estimate remembers a burst for one full
interval, so a key cannot flap faster than its rate genuinely changes.

Key table: bounded by `max_entries`, kept in two LRU orders (ok keys, blacklisted keys). For a
new key when full: the least recently used blacklisted key is evicted if it is stale (its
estimate, decayed to now, is under every limit: its next event would have recovered it); else
the least recently used ok key is evicted; both count `rate_evicted`. If every entry is an
active blacklisted key the new key is not tracked, its event is published and `rate_table_full`
counted: an actively flooding key is never forgotten and no event is lost.

An out-of-order capture time (several interfaces, timers) is taken as the key's newest time.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence

from sipcm.events.build import rfc3339

_NS = 1_000_000_000
DEFAULT = "default"  # the limits of every event name a limits mapping does not list


def _published(interval_s: float) -> float:
    """A window length as published: an int when whole (1, 60, 3600), else the float."""
    return int(interval_s) if float(interval_s).is_integer() else float(interval_s)


def next_report(c: int, report_min: int, report_max: int) -> int:
    """The smallest repeat number > c that is published (0: none). A 0 report_min reports only
    multiples of report_max; a 0 report_max doubles without a cap; both 0: only the first."""
    best = (c // report_max + 1) * report_max if report_max > 0 else 0
    if report_min > 0:
        p = report_min
        while p <= c:
            p *= 2
        if (report_max <= 0 or p < report_max) and (best == 0 or p < best):
            best = p
    return best


class _Key:
    """State of one (event name, source IP) key. `counts` holds, per enabled window, the events
    in the current bucket, in the previous one, and the end of the current bucket (ns)."""

    __slots__ = ("counts", "events", "exceeded", "last", "next", "since")  # last: newest time

    def __init__(self, ts_ns: int, counts: list[int]) -> None:
        self.counts = counts
        self.last = ts_ns
        self.events = 1
        self.exceeded = 0
        self.next = 0
        self.since = ""


class RateLimiter:
    """Per (event name, source IP) rates over its windows; thins blacklisted keys. Events
    without a source IP (None) share one key per event name."""

    def __init__(
        self,
        counters: Counter[str],
        *,
        intervals_s: Sequence[float] = (1.0, 60.0, 3600.0),
        limits: Sequence[int] | Mapping[str, Sequence[int]] = (20, 240, 3600),
        max_entries: int = 1_048_576,
        report_min: int = 100,
        report_max: int = 10_000,
        limited: Counter[str] | None = None,
    ) -> None:
        by_event = dict(limits) if isinstance(limits, Mapping) else {DEFAULT: limits}
        if DEFAULT not in by_event:
            raise ValueError(f"a limits mapping needs a {DEFAULT!r} entry")
        for lims in by_event.values():
            if len(intervals_s) != len(lims):
                raise ValueError("intervals_s and limits must have the same length")
        if max_entries < 1 or report_min < 0 or report_max < 0:
            raise ValueError("max_entries must be >= 1, report_min/report_max >= 0")
        if any(i < 0 for i in intervals_s) or any(
            lim < 0 for lims in by_event.values() for lim in lims
        ):
            raise ValueError("rate intervals and limits must be >= 0")
        self._ctr = counters
        self._limited: Counter[str] = limited if limited is not None else Counter()
        on = [
            n
            for n, iv in enumerate(intervals_s)
            if iv > 0 and any(lims[n] > 0 for lims in by_event.values())
        ]
        # Enabled windows: (index into counts, interval ns, window as published).
        self._wins = tuple(
            (3 * k, round(intervals_s[n] * _NS), _published(intervals_s[n]))
            for k, n in enumerate(on)
        )
        self._n = len(self._wins)
        # Event name -> its limit per enabled window (0: counted, never limited).
        self._lims = {name: tuple(int(lims[n]) for n in on) for name, lims in by_event.items()}
        self._default = self._lims[DEFAULT]
        self.max_entries = max_entries
        self.report_min = report_min
        self.report_max = report_max
        self._first_next = next_report(1, report_min, report_max)
        self._ok: OrderedDict[tuple[str, str | None], _Key] = OrderedDict()
        self._bl: OrderedDict[tuple[str, str | None], _Key] = OrderedDict()
        self._now = 0  # latest capture time seen, for the table

    @property
    def unlimited(self) -> bool:
        """True when no window has a limit: `check` then passes every event."""
        return not self._n

    def seen(self, ts_ns: int) -> None:
        """Note capture time `ts_ns` as `check` does (for callers that skip `check` because
        the limiter is `unlimited`)."""
        if ts_ns > self._now:
            self._now = ts_ns

    def limits_of(self, action: str) -> tuple[int, ...]:
        """The limit of `action` in each enabled window (0: not limited there)."""
        return self._lims.get(action, self._default)

    def check(self, action: str, src_ip: str | None, ts_ns: int) -> dict | bool:
        """True: publish; False: suppress; dict: publish with these `sipcm.rate` fields."""
        if ts_ns > self._now:
            self._now = ts_ns
        if not self._n:
            return True
        key = (action, src_ip)
        e = self._ok.get(key)
        if e is not None:
            self._ok.move_to_end(key)
            blacklisted = False
        else:
            e = self._bl.get(key)
            if e is None:
                self._add(key, ts_ns)
                return True
            self._bl.move_to_end(key)
            blacklisted = True

        if ts_ns < e.last:  # out-of-order time: count it as at the key's newest time
            ts_ns = e.last
        e.last = ts_ns
        e.events += 1
        c = e.counts
        lims = self._lims.get(action, self._default)
        hit = -1
        rate = 0.0
        for n, (j, iv, _w) in enumerate(self._wins):
            end = c[j + 2]
            if ts_ns < end:
                cur = c[j] = c[j] + 1
                prev = c[j + 1]
            else:
                if ts_ns < end + iv:
                    prev = c[j + 1] = c[j]
                    c[j + 2] = end + iv
                else:
                    prev = c[j + 1] = 0
                    c[j + 2] = ts_ns - (ts_ns - end) % iv + iv
                cur = c[j] = 1
            lim = lims[n]
            if hit < 0 and lim and cur + prev > lim:
                est = prev * (c[j + 2] - ts_ns) / iv + cur if prev else float(cur)
                if est > lim:
                    hit = n
                    rate = est

        if not blacklisted:
            if hit < 0:
                return True
            del self._ok[key]
            self._bl[key] = e
            e.exceeded = 1
            e.next = self._first_next
            e.since = rfc3339(ts_ns)
            self._ctr["rate_blacklisted_keys"] += 1
            self._ctr["rate_reported"] += 1
            return self._fields(e, rate, lims[hit], self._wins[hit][2])
        if hit < 0:
            del self._bl[key]
            self._ok[key] = e
            e.exceeded = 0
            self._ctr["rate_recovered"] += 1
            return True
        x = e.exceeded = e.exceeded + 1
        if x != e.next:
            self._ctr["rate_suppressed"] += 1
            self._limited[action] += 1
            return False
        e.next = next_report(x, self.report_min, self.report_max)
        self._ctr["rate_reported"] += 1
        return self._fields(e, rate, lims[hit], self._wins[hit][2])

    @staticmethod
    def _fields(e: _Key, rate: float, limit: int, window: float) -> dict:
        return {
            "exceeded": e.exceeded,
            "current": round(rate, 3),
            "limit": limit,
            "window": window,
            "since": e.since,
        }

    def _add(self, key: tuple[str, str | None], ts_ns: int) -> None:
        """Track a new key (its first event is never over a limit >= 1), making room if full."""
        if len(self._ok) + len(self._bl) >= self.max_entries:
            if self._bl and self._stale(*next(iter(self._bl.items())), ts_ns):
                self._bl.popitem(last=False)
            elif self._ok:
                self._ok.popitem(last=False)
            else:
                self._ctr["rate_table_full"] += 1
                return
            self._ctr["rate_evicted"] += 1
        counts = [0] * (3 * self._n)
        for j, iv, _w in self._wins:
            counts[j] = 1
            counts[j + 2] = ts_ns + iv
        self._ok[key] = _Key(ts_ns, counts)

    def _estimates(self, e: _Key, ts_ns: int) -> list[float]:
        """Each enabled window's estimate for key `e` at time ts_ns (no event counted)."""
        c = e.counts
        out = []
        for j, iv, _w in self._wins:
            end = c[j + 2]
            if ts_ns < end:
                cur, prev = c[j], c[j + 1]
            elif ts_ns < end + iv:
                cur, prev, end = 0, c[j], end + iv
            else:
                cur, prev = 0, 0
            out.append(round(prev * min(end - ts_ns, iv) / iv + cur, 3))
        return out

    def _stale(self, key: tuple[str, str | None], e: _Key, ts_ns: int) -> bool:
        est = self._estimates(e, ts_ns)
        lims = self.limits_of(key[0])
        return all(not lim or r <= lim for r, lim in zip(est, lims, strict=True))

    def table(self, limit: int = 100) -> list[dict]:
        """Up to `limit` keys for the web API: blacklisted ones first, each group most recently
        seen first. Rates are estimated at the latest capture time seen."""
        rows: list[dict] = []
        for od, blk in ((self._bl, True), (self._ok, False)):
            for (action, ip), e in reversed(od.items()):
                if len(rows) >= limit:
                    return rows
                est = self._estimates(e, self._now)
                lims = self.limits_of(action)
                rows.append(
                    {
                        "event": action,
                        "source_ip": ip,
                        "rates": [
                            {"window": w[2], "limit": lim, "current": r}
                            for w, lim, r in zip(self._wins, lims, est, strict=True)
                        ],
                        "events": e.events,
                        "last_seen": rfc3339(e.last),
                        "blacklisted": blk,
                        "exceeded": e.exceeded,
                        "since": e.since if blk else None,
                    }
                )
        return rows

    def stats(self) -> dict[str, int]:
        """Gauges: tracked keys, blacklisted keys, capacity."""
        return {
            "rate_entries": len(self._ok) + len(self._bl),
            "rate_blacklisted": len(self._bl),
            "rate_max_entries": self.max_entries,
        }
