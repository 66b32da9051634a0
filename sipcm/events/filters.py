"""Event-type blacklist (SPEC 10): event names that are counted but never published."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


class TypeBlacklist:
    """A mutable set of blacklisted event names; `allows(name)` counts what it suppresses."""

    def __init__(self, names: Iterable[str], counters: Counter[str]) -> None:
        self._names = frozenset(n.lower() for n in names)
        self._counters = counters

    @property
    def names(self) -> list[str]:
        """The blacklisted names, sorted."""
        return sorted(self._names)

    def allows_all(self, names: Iterable[str]) -> bool:
        """True when `allows` would pass every one of `names` (nothing to count)."""
        return self._names.isdisjoint(names)

    def replace(self, names: Iterable[str]) -> None:
        """Swap the whole set at run time (web API)."""
        self._names = frozenset(n.lower() for n in names)

    def allows(self, name: str) -> bool:
        """True if events called `name` may be published; counts the ones that may not."""
        if name in self._names:
            self._counters["blacklisted_" + name] += 1
            return False
        return True
