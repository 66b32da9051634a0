"""Collector: the sensor-wide end of the pipeline, in the main process.

Rows from every shard (sipcm.shard.Emitted) -> one order -> event-type blacklist -> rate
limiter -> outputs, plus the recent-events window the web API reads. There is one collector
per sensor whatever the number of workers, so a rate key's limits and the blacklist apply
once, and the merge order (capture time, then the shard-independent tiebreaks the rows
carry) makes the output the same bytes for every worker count.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from sipcm.authsources import ACTION as AUTH_FAILED
from sipcm.authsources import AuthSources
from sipcm.outputs.base import ndjson_bytes

if TYPE_CHECKING:
    from sipcm.events.filters import TypeBlacklist
    from sipcm.events.rates import RateLimiter
    from sipcm.outputs.base import Output
    from sipcm.shard import Emitted

# The counter group of published events per event name (the dashboard's event-rate charts).
BY_ACTION_GROUP = "events_published"


class Collector:
    """Publishes merged rows; `totals` (when set) counts events per replayed file. Counts the
    published events per event name (`by_action`) and auth failures per source IP
    (`auth_sources`, before the rate limiter)."""

    def __init__(
        self,
        counters: Counter[str],
        blacklist: TypeBlacklist,
        rates: RateLimiter,
        outputs: Sequence[Output],
        *,
        recent_events: int = 1000,
        by_action: Counter[str] | None = None,
    ) -> None:
        self._ev = counters
        self.by_action: Counter[str] = Counter() if by_action is None else by_action
        self.auth_sources = AuthSources()
        self.blacklist = blacklist
        self.rates = rates
        self.outputs = list(outputs)
        self.recent: deque[bytes] = deque(maxlen=recent_events)
        self.totals: Any = None

    def publish(self, rows: list[Emitted]) -> None:
        """Order `rows`, filter them through the blacklist and the rate limiter, write them."""
        if not rows:
            return
        rows.sort()
        if self.rates.unlimited:
            actions = [row[4] for row in rows]
            if self.blacklist.allows_all(actions):
                self._publish_all(rows, actions)
                return
        allows = self.blacklist.allows
        check = self.rates.check
        lines: list[bytes] = []
        by_action = self.by_action
        for ts, _cls, _tb, _sub, action, ip, line in rows:
            if not allows(action):
                continue
            if action == AUTH_FAILED:
                self.auth_sources.add(ip, ts)
            verdict = check(action, ip, ts)
            if verdict is False:
                if self.totals is not None:  # the replay summary says what was held back
                    lim = self.totals.limited
                    lim[action] = lim.get(action, 0) + 1
                continue
            if verdict is not True:
                line = _with_rate(line, verdict)
            lines.append(line)
            by_action[action] += 1
        self.emit(lines)

    def _publish_all(self, rows: list[Emitted], actions: list[str]) -> None:
        """`publish` when nothing is held back (no rate limit, no row's event name is
        blacklisted): the same counts and lines, without a Python step per row beyond
        picking its fields out."""
        if AUTH_FAILED in actions:
            for ts, _cls, _tb, _sub, action, ip, _line in rows:
                if action == AUTH_FAILED:
                    self.auth_sources.add(ip, ts)
        self.rates.seen(rows[-1][0])  # rows are sorted: the last is the latest
        self.by_action.update(actions)
        self.emit([row[6] for row in rows])

    def emit_doc(self, doc: dict[str, Any]) -> None:
        """Publish one document built here (stats)."""
        self.by_action[str(doc.get("event", {}).get("action", "stats"))] += 1
        self.emit([ndjson_bytes(doc)])

    def emit(self, lines: list[bytes]) -> None:
        """Write encoded documents (one NDJSON line each) to every output."""
        if not lines:
            return
        self._ev["published"] += len(lines)
        if self.totals is not None:
            self.totals.events += len(lines)
        self.recent.extend(lines)
        docs: list[dict[str, Any]] | None = None
        for out in self.outputs:
            write_lines = getattr(out, "write_lines", None)
            if write_lines is not None:
                write_lines(lines)
                continue
            if docs is None:
                docs = [orjson.loads(line) for line in lines]
            out.write(docs)

    def recent_docs(self) -> list[dict[str, Any]]:
        """The recent published documents, oldest first."""
        return [orjson.loads(line) for line in self.recent]


def _with_rate(line: bytes, fields: dict[str, Any]) -> bytes:
    """Add `sipcm.rate.*` to an encoded document (only a limited key's reported events)."""
    doc = orjson.loads(line)
    doc.setdefault("sipcm", {})["rate"] = dict(fields)
    return ndjson_bytes(doc)
