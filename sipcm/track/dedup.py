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

Memory is bounded by `max_entries` (oldest first) and by the window (pruned as time advances).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sipcm.sip.message import SipMessage

NEW, RETRANS, COPY = 0, 1, 2
_MAX_SIGS = 4  # sightings remembered per fingerprint (legs of a proxy chain)


class DupFilter:
    """Fingerprint cache with a time window and a size cap (insertion-ordered dict)."""

    __slots__ = ("_seen", "evicted", "max_entries", "window_ns")

    def __init__(self, window_ns: int, max_entries: int) -> None:
        self.window_ns = window_ns
        self.max_entries = max_entries
        # fingerprint -> [first-seen ns, (branch, via count, direction), ...]
        self._seen: OrderedDict[tuple, list] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, msg: SipMessage, ts: int) -> int:
        """Classify `msg` (seen at capture time `ts`) and remember it."""
        seen = self._seen
        if seen:
            self._prune(ts)
        if msg.is_request:
            fp = (msg.call_id, msg.cseq, msg.method, msg.from_.tag, msg.to.tag)
        else:
            fp = (msg.call_id, msg.cseq, msg.cseq_method, msg.status, msg.from_.tag, msg.to.tag)
        p = msg.payload
        sig = (msg.vias[0].branch if msg.vias else None, len(msg.vias), p.direction if p else None)
        rec = seen.get(fp)
        if rec is None:
            if len(seen) >= self.max_entries:
                seen.popitem(last=False)
                self.evicted += 1
            seen[fp] = [ts, sig]
            return NEW
        if sig in rec[1:]:
            return RETRANS
        if len(rec) <= _MAX_SIGS:
            rec.append(sig)
        return COPY

    def _prune(self, now: int) -> None:
        seen = self._seen
        limit = now - self.window_ns
        while seen:
            rec = seen[next(iter(seen))]
            if rec[0] >= limit:
                break
            seen.popitem(last=False)
