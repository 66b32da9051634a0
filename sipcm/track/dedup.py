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
Limitation: a client that reuses Call-ID and CSeq for a genuinely new request within the window
(some scanners) is seen as a copy.

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

    __slots__ = ("_order", "_seen", "c", "max_entries", "window_ns")

    def __init__(self, window_ns: int, max_entries: int, counters: Counter[str]) -> None:
        self.c = counters
        self.window_ns = window_ns
        self.max_entries = max_entries
        # hash(fingerprint) -> (first-seen ns, hash((branch, via count, direction)), ...).
        # Hashes keep entries small and hold no message strings; a 64-bit collision is
        # negligible at these table sizes.
        self._seen: dict[int, tuple[int, ...]] = {}
        self._order: deque[tuple[int, int]] = deque()  # (first-seen ns, hash) in arrival order

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, msg: SipMessage, ts: int) -> int:
        """Classify `msg` (seen at capture time `ts`) and remember it."""
        seen, order = self._seen, self._order
        limit = ts - self.window_ns
        if order and order[0][0] < limit:  # expired sightings: about one per message
            while order and order[0][0] < limit:
                first, old = order.popleft()
                rec = seen.get(old)
                if rec is not None and rec[0] == first:
                    del seen[old]
        if msg.is_request:
            fp = hash((msg.call_id, msg.cseq, msg.method, msg.from_.tag, msg.to.tag))
        else:
            fp = hash(
                (msg.call_id, msg.cseq, msg.cseq_method, msg.status, msg.from_.tag, msg.to.tag)
            )
        p = msg.payload
        via = msg.vias[0].branch if msg.vias else None
        sig = hash((via, len(msg.vias), p.direction if p is not None else None))
        rec = seen.get(fp)
        if rec is None:
            while len(seen) >= self.max_entries:
                self._drop_oldest()
                self.c["dup_evicted"] += 1
            seen[fp] = (ts, sig)
            order.append((ts, fp))
            return NEW
        if sig in rec[1:]:
            return RETRANS
        if len(rec) <= _MAX_SIGS:
            seen[fp] = (*rec, sig)
        return COPY

    def _drop_oldest(self) -> None:
        ts, fp = self._order.popleft()
        rec = self._seen.get(fp)
        if rec is not None and rec[0] == ts:
            del self._seen[fp]
