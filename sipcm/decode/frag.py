"""IPv4 and IPv6 fragment reassembly, bounded in datagrams, bytes and capture time.

Input: one fragment at a time (key, byte offset, more-fragments flag, data, capture time).
Output: the reassembled IP payload once every byte from 0 to the end given by
the last fragment is present. Out of order and duplicate fragments are fine; where fragments
overlap the bytes that arrived first are kept (counted `frag_overlap`; RFC 5722 would drop the
datagram, but a passive sensor prefers to see what the receiver most likely saw).

Never raises, never holds more than `max_datagrams` sets of at most `max_bytes` each; every
limit is a counter. Times are capture times, never the wall clock.
"""

from __future__ import annotations

from collections import Counter, OrderedDict

FragKey = tuple[int, bytes, bytes, int, int]  # (ip version, src, dst, protocol, id)


class _Set:
    """The fragments of one datagram collected so far."""

    __slots__ = ("buf", "first_ts", "have", "total")

    def __init__(self, ts_ns: int) -> None:
        self.buf = bytearray()
        self.have: list[tuple[int, int]] = []  # sorted, merged [start, end) ranges present
        self.total = -1  # datagram payload length, known once the last fragment arrived
        self.first_ts = ts_ns


class FragmentReassembler:
    """Collects fragments per (version, src, dst, proto, id) and returns completed payloads."""

    def __init__(
        self,
        counters: Counter[str],
        *,
        max_datagrams: int = 1024,
        timeout_s: float = 30.0,
        max_bytes: int = 65535,
    ) -> None:
        self._c = counters
        self._max = max(1, max_datagrams)
        self._timeout_ns = int(timeout_s * 1e9)
        self._max_bytes = max_bytes
        self._sets: OrderedDict[FragKey, _Set] = OrderedDict()  # oldest first

    def __len__(self) -> int:
        return len(self._sets)

    def add(self, key: FragKey, off: int, more: bool, data: bytes, ts_ns: int) -> bytes | None:
        """Add one fragment; return the reassembled payload when this one completes it."""
        c = self._c
        c["frag_fragments"] += 1
        end = off + len(data)
        sets = self._sets
        st = sets.get(key)
        if st is not None and ts_ns - st.first_ts > self._timeout_ns:
            c["frag_timeout"] += 1
            del sets[key]
            st = None
        if end > self._max_bytes:
            c["frag_too_big"] += 1
            if st is not None:
                del sets[key]
            return None
        if not data or (
            st is not None and st.total >= 0 and (end > st.total or (not more and end != st.total))
        ):
            c["frag_bad_length"] += 1  # empty, past the known end, or a second different end
            return None
        if st is None:
            while len(sets) >= self._max:
                sets.popitem(last=False)
                c["frag_limit_evicted"] += 1
            st = sets[key] = _Set(ts_ns)
        if not more:
            if st.have and st.have[-1][1] > end:
                c["frag_bad_length"] += 1
                del sets[key]
                return None
            st.total = end
        self._place(st, off, end, data)
        if st.total >= 0 and st.have == [(0, st.total)]:
            del sets[key]
            c["frag_reassembled"] += 1
            return bytes(st.buf[: st.total])
        return None

    def _place(self, st: _Set, off: int, end: int, data: bytes) -> None:
        """Copy the bytes of [off, end) not yet present; count overlaps and duplicates."""
        gaps: list[tuple[int, int]] = []
        cur = off
        for a, b in st.have:
            if b <= cur:
                continue
            if a >= end:
                break
            if a > cur:
                gaps.append((cur, a))
            cur = max(cur, b)
            if cur >= end:
                break
        if cur < end:
            gaps.append((cur, end))
        if gaps != [(off, end)]:
            same = not gaps and st.buf[off:end] == data
            self._c["frag_duplicate" if same else "frag_overlap"] += 1
        buf = st.buf
        if len(buf) < end:
            buf.extend(bytes(end - len(buf)))
        for a, b in gaps:
            buf[a:b] = data[a - off : b - off]
        have = sorted([*st.have, *gaps])
        merged: list[tuple[int, int]] = []
        for a, b in have:
            if merged and a <= merged[-1][1]:
                if b > merged[-1][1]:
                    merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        st.have = merged

    def expire(self, now_ns: int) -> int:
        """Drop sets whose first fragment is older than the timeout; returns how many."""
        sets = self._sets
        limit = now_ns - self._timeout_ns
        n = 0
        while sets:
            key = next(iter(sets))
            if sets[key].first_ts >= limit:
                break  # oldest first: the rest are fresher
            del sets[key]
            n += 1
        if n:
            self._c["frag_timeout"] += n
        return n
