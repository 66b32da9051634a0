"""Named counters shared by every stage.

Each rejected, odd or limited input increments a counter with a stable snake_case name
(`ip4_bad_header`, `frag_timeout`, `tcp_resync`, `sip_parse_error`, ...). Counters are grouped by
the stage that owns them (`decode`, `sip`, `track`, `events`, `outputs`, `capture`) so that
stats events, `/metrics` and tests read one snapshot. Every name is declared, with its meaning,
in `sipcm.counterdefs` (a test fails on a name raised but not declared there).
"""

from __future__ import annotations

from collections import Counter


class Tally(Counter[str]):
    """A `Counter` whose item assignment is dict's own: `collections.Counter` defines
    `__delitem__`, which makes CPython route every `c[name] += 1` through a Python-level
    `__setitem__` lookup and call (~650 instructions, several per SIP message). Restoring
    both dict slots gives the plain dict store back. The one difference: deleting a name
    that is not there raises KeyError (nothing deletes counters)."""

    __slots__ = ()
    __setitem__ = dict.__setitem__  # type: ignore[assignment]
    __delitem__ = dict.__delitem__  # type: ignore[assignment]


class Counters:
    """A registry of per-group `collections.Counter`s; stages keep a reference to their group."""

    def __init__(self) -> None:
        self._groups: dict[str, Counter[str]] = {}

    def group(self, name: str) -> Counter[str]:
        """Return the counter group `name`, creating it empty."""
        grp = self._groups.get(name)
        if grp is None:
            grp = self._groups[name] = Tally()
        return grp

    def snapshot(self) -> dict[str, dict[str, int]]:
        """A sorted, plain-dict copy of every non-zero counter."""
        return {
            g: {k: v for k, v in sorted(c.items()) if v} for g, c in sorted(self._groups.items())
        }
