"""Top sources of auth failures: auth-failed events counted per source IP, sensor-wide.

The collector counts every auth-failed row it is given (before the rate limiter, so a flood
that gets limited is still counted in full; after the shard's blacklist, which drops the
events before they exist) by the rate key's IP: the side that sent the credentials. The
table holds at most `capacity` addresses; failures from an address that finds it full are
counted as `untracked` (never silently lost), and the web API says so. IPs are clear text
here; whoever serves the rows anonymizes them (`events.rows.AUTH_SOURCE_ROW`).
"""

from __future__ import annotations

from typing import Any

CAPACITY = 10_000
ACTION = "auth-failed"


class AuthSources:
    """Failures per source IP: [count, first capture time, last capture time]."""

    __slots__ = ("capacity", "table", "total", "untracked")

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self.table: dict[str | None, list[int]] = {}
        self.total = 0
        self.untracked = 0  # failures from addresses that found the table full

    def add(self, ip: str | None, ts_ns: int) -> None:
        """Count one auth failure from `ip` (None: no address known) at capture time `ts_ns`."""
        self.total += 1
        row = self.table.get(ip)
        if row is not None:
            row[0] += 1
            row[2] = max(row[2], ts_ns)
        elif len(self.table) < self.capacity:
            self.table[ip] = [1, ts_ns, ts_ns]
        else:
            self.untracked += 1

    def top(self, limit: int) -> dict[str, Any]:
        """The `limit` addresses with the most failures (ties: the most recent first, then by
        address), and the table's totals."""
        ranked = sorted(self.table.items(), key=lambda kv: (-kv[1][0], -kv[1][2], kv[0] or ""))
        return {
            "total": self.total,
            "sources": len(self.table),
            "capacity": self.capacity,
            "untracked": self.untracked,
            "top": [
                {"source_ip": ip, "failures": n, "first_ns": first, "last_ns": last}
                for ip, (n, first, last) in ranked[:limit]
            ],
        }
