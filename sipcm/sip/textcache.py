"""TextCache: the parser's bounded map from a header text to its parse.

Two generations of at most `size` entries each: lookups try the young one, then the old one
(and move a hit there into the young one); when the young one is full it becomes the old one
and the previous old one is dropped. That keeps what is in use, as a least-recently-used cache
would, at the cost of one or two dict lookups, and it is a native class in the compiled build:
no call through `functools.lru_cache`'s generic wrapper. Cached values are shared between the
messages that repeat a text, so they must never be mutated (see sip/nameaddr.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

# Returned by `get` for a text not cached (None is a legitimate cached value).
MISS: Final = object()


class TextCache:
    """Bounded cache of parsed header texts (at most 2 x `size` entries)."""

    __slots__ = ("_old", "_young", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._young: dict[str, object] = {}
        self._old: dict[str, object] = {}

    def get(self, text: str) -> object:
        """The cached parse of `text`, or MISS."""
        got = self._young.get(text, MISS)
        if got is MISS:
            got = self._old.get(text, MISS)
            if got is not MISS:
                self.put(text, got)
        return got

    def lookup(self, text: str, parse: Callable[[str], object]) -> object:
        """The parse of `text`: the cached one, else `parse(text)`, remembered.

        The parser's caches write get/put out instead: in the compiled build `parse` would be
        called through the generic vectorcall path (its Python wrapper parses the arguments),
        about 20 M of 575 M instructions for 21,000 messages of distinct calls."""
        got = self.get(text)
        if got is MISS:
            got = parse(text)
            self.put(text, got)
        return got

    def put(self, text: str, value: object) -> None:
        """Remember `value` as the parse of `text`."""
        young = self._young
        if len(young) >= self.size:
            self._old = young
            self._young = young = {}
        young[text] = value

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def clear(self) -> None:
        """Forget every entry."""
        self._young, self._old = {}, {}
