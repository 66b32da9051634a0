"""Duplicate filter: recognises a message already seen (retransmission or another copy of it).

Input: SipMessages with their capture time; output per message: NEW, RETRANS or COPY. It never
changes state machines; the tracker drops RETRANS/COPY messages after counting them.

Fingerprint (what makes two messages "the same message"): Call-ID, CSeq number and method,
request method or response status, From-tag and To-tag. Within `window_ns` of the first
sighting a second message with the same fingerprint is:
- a RETRANS when its top Via branch, Via count and capture direction equal an earlier
  sighting's (RFC 3261 17: a retransmission is the same transaction resent), and
- a COPY otherwise: a proxy's outgoing copy (one more Via, new top branch), ingress and egress
  of one host (same bytes, other direction), a response on its way back through a proxy.
Limitation: a client that reuses Call-ID, CSeq and From-tag for a genuinely new request within
the window is seen as a copy. Password crackers that reuse Call-ID and CSeq send a new From-tag
with every guess, so each guess is new here and the tracker tells the transactions apart by
their Via branch (`core.same_txn`).

Memory is bounded by `max_entries` (oldest first, counter `dup_evicted`) and by the window
(pruned as time advances).
"""

from __future__ import annotations

from collections import Counter, deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sipcm.sip.message import SipMessage

NEW, RETRANS, COPY = 0, 1, 2
_MAX_SIGS = 4  # sightings remembered per fingerprint (legs of a proxy chain)


class DupFilter:
    """Fingerprint table with a time window and a size cap, oldest first-sighting first out."""

    __slots__ = ("_fps", "_seen", "_times", "c", "max_entries", "window_ns")

    def __init__(self, window_ns: int, max_entries: int, counters: Counter[str]) -> None:
        self.c = counters
        self.window_ns = window_ns
        self.max_entries = max_entries
        # hash(fingerprint) -> hash((branch, via count, direction)) of its first sighting, or a
        # tuple of up to _MAX_SIGS of them once a copy was seen. Hashes keep entries small and
        # hold no message strings; a 64-bit collision is negligible at these table sizes.
        self._seen: dict[int, int | tuple[int, ...]] = {}
        # First-seen ns and fingerprint of every entry, in arrival order (two deques of ints,
        # no tuple per entry: the table is ~45,000 entries at 200 calls/s). A fingerprint is
        # only re-added after its entry left both, so each key has exactly one position here.
        self._times: deque[int] = deque()
        self._fps: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, msg: SipMessage, ts: int) -> int:
        """Classify `msg` (seen at capture time `ts`) and remember it."""
        seen, times = self._seen, self._times
        limit = ts - self.window_ns
        if times and times[0] < limit:  # expired sightings: about one per message
            fps = self._fps
            while times and times[0] < limit:
                times.popleft()
                del seen[fps.popleft()]
        if msg.is_request:
            fp = hash((msg.call_id, msg.cseq, msg.method, msg.from_.tag, msg.to.tag))
        else:
            fp = hash(
                (msg.call_id, msg.cseq, msg.cseq_method, msg.status, msg.from_.tag, msg.to.tag)
            )
        p = msg.payload
        vias = msg.vias
        sig = hash(
            (vias[0].branch if vias else None, len(vias), p.direction if p is not None else None)
        )
        rec = seen.get(fp)
        if rec is None:
            while len(seen) >= self.max_entries:
                self._drop_oldest()
                self.c["dup_evicted"] += 1
            seen[fp] = sig
            times.append(ts)
            self._fps.append(fp)
            return NEW
        if isinstance(rec, int):
            if rec == sig:
                return RETRANS
            seen[fp] = (rec, sig)
            return COPY
        if sig in rec:
            return RETRANS
        if len(rec) < _MAX_SIGS:
            seen[fp] = (*rec, sig)
        return COPY

    def _drop_oldest(self) -> None:
        self._times.popleft()
        del self._seen[self._fps.popleft()]
