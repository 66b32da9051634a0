"""Named counters shared by every stage.

Each rejected, odd or limited input increments a counter with a stable snake_case name
(`ip4_bad_header`, `frag_timeout`, `tcp_resync`, `sip_parse_error`, ...). Counters are grouped by
the stage that owns them (`decode`, `sip`, `track`, `events`, `outputs`, `capture`) so that
stats events, `/metrics` and tests read one snapshot. Every name is declared, with its meaning,
in `sipcm.counterdefs` (a test fails on a name raised but not declared there).
"""

from __future__ import annotations

from collections import Counter


class Counters:
    """A registry of per-group `collections.Counter`s; stages keep a reference to their group."""

    def __init__(self) -> None:
        self._groups: dict[str, Counter[str]] = {}

    def group(self, name: str) -> Counter[str]:
        """Return the counter group `name`, creating it empty."""
        grp = self._groups.get(name)
        if grp is None:
            grp = self._groups[name] = Counter()
        return grp

    def snapshot(self) -> dict[str, dict[str, int]]:
        """A sorted, plain-dict copy of every non-zero counter."""
        return {
            g: {k: v for k, v in sorted(c.items()) if v} for g, c in sorted(self._groups.items())
        }
