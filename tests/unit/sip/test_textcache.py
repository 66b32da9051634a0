"""TextCache: bounded, keeps what is in use, and never changes what a lookup returns."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sipcm.sip.textcache import MISS, TextCache


def test_entries_in_use_survive_and_the_total_is_bounded() -> None:
    cache = TextCache(4)
    cache.put("hot", 1)
    for i in range(100):
        cache.put(f"k{i}", i)
        assert cache.get("hot") == 1  # read between inserts: moved to the young generation
        assert len(cache) <= 8
    assert cache.get("k0") is MISS  # long gone
    assert cache.get("k99") == 99
    cache.put("none", None)
    assert cache.get("none") is None  # None is a value, not a miss
    cache.clear()
    assert len(cache) == 0
    assert cache.get("hot") is MISS


@given(st.lists(st.sampled_from([f"t{i}" for i in range(12)]), max_size=200), st.integers(1, 5))
def test_a_hit_is_always_the_value_put_last(keys: list[str], size: int) -> None:
    cache, truth = TextCache(size), {}
    for n, key in enumerate(keys):
        got = cache.get(key)
        if got is not MISS:
            assert got == truth[key]
        cache.put(key, n)
        truth[key] = n
        assert len(cache) <= 2 * size


def test_lookup_parses_once_and_remembers() -> None:
    calls: list[str] = []

    def parse(text: str) -> object:
        calls.append(text)
        return None if text == "bad" else text.upper()

    cache = TextCache(8)
    assert cache.lookup("a", parse) == "A"
    assert cache.lookup("a", parse) == "A"
    assert cache.lookup("bad", parse) is None
    assert cache.lookup("bad", parse) is None  # a cached None is not parsed again
    assert calls == ["a", "bad"]
