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

from array import array
from collections import Counter
from typing import TYPE_CHECKING, Final, cast

if TYPE_CHECKING:
    from sipcm.decode.packet import Payload
    from sipcm.sip.message import SipMessage

NEW: Final = 0
RETRANS: Final = 1
COPY: Final = 2
_MAX_SIGS: Final = 4  # sightings remembered per fingerprint (legs of a proxy chain)
_GROW: Final = 1024  # slots added to the first-seen times when they are full
_GROW_BYTES: Final = bytes(8 * _GROW)


class MsgKey:
    """The fields of one message that the duplicate filter and the routing key on, read once
    per message: a parsed message's attributes are generic Python lookups, these are native
    slots. The tracker holds one and reloads it for every message (nothing keeps it)."""

    __slots__ = (
        "branch", "call_id", "cseq", "cseq_method", "direction", "from_tag", "is_request",
        "method", "nvias", "payload", "status", "to_tag",
    )  # fmt: skip

    def __init__(self) -> None:
        self.is_request = False
        self.method: str | None = None  # request method, None for a response
        self.cseq_method = ""
        self.status: int | None = None
        self.call_id = ""
        self.cseq = 0
        self.from_tag: str | None = None
        self.to_tag: str | None = None
        self.branch: str | None = None  # of the top Via
        self.nvias = 0
        self.payload: Payload | None = None
        self.direction: str | None = None  # capture direction of the packet

    def load(self, msg: SipMessage) -> MsgKey:
        """Read `msg`'s fields; returns self."""
        self.is_request = msg.is_request
        self.method = msg.method
        self.cseq_method = msg.cseq_method
        self.status = msg.status
        self.call_id = msg.call_id
        self.cseq = msg.cseq
        self.from_tag = msg.from_.tag
        self.to_tag = msg.to.tag
        vias = msg.vias
        self.nvias = n = len(vias)
        self.branch = vias[0].branch if n else None
        self.payload = p = msg.payload
        self.direction = p.direction if p is not None else None
        return self


class DupFilter:
    """Fingerprint table with a time window and a size cap, oldest first-sighting first out."""

    __slots__ = (
        "_cap", "_fps", "_head", "_len", "_oldest", "_seen", "_slots", "_times", "c",
        "max_entries", "window_ns",
    )  # fmt: skip

    def __init__(self, window_ns: int, max_entries: int, counters: Counter[str]) -> None:
        self.c = counters
        self.window_ns = window_ns
        self.max_entries = max_entries
        # hash(fingerprint) -> hash((branch, via count, direction)) of its first sighting, or a
        # tuple of up to _MAX_SIGS of them once a copy was seen. Hashes keep entries small and
        # hold no message strings; a 64-bit collision is negligible at these table sizes.
        # (Typed `object` and boxed once, see check_key: compiled, an int would be unboxed
        # and boxed again at every use, a new int object each time.)
        self._seen: dict[object, object] = {}
        # First-seen ns and fingerprint of every entry, in arrival order from `_head` on (no
        # tuple per entry: the table is ~45,000 entries at 200 calls/s). The fingerprints are
        # the `_seen` keys themselves (the same objects). A fingerprint is only re-added after
        # its entry left both, so each key has exactly one position.
        # The times are a machine-word array (8 bytes each, not an int object apiece: a
        # list of ints costs ~20 B more per entry, i.e. per message in the window). The array
        # is grown ahead, _GROW slots at a time (`_cap` of them), and written through
        # `_slots`, a memoryview of it: an array's item assignment converts the int with
        # PyArg_Parse (~500 instructions), a memoryview's directly (~100). The view pins the
        # array's size, so it is released around every resize (once per _GROW entries).
        self._times: array[int] = array("q")
        self._slots = memoryview(self._times)
        self._fps: list[object] = []
        self._head = 0  # entries before it left the table
        self._len = 0  # entries in use in self._times (from 0: those before _head are gone)
        self._cap = 0  # len(self._times), kept here: the array's own is a generic call
        self._oldest = 0  # self._times[self._head] while head < len: the next to expire

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, msg: SipMessage, ts: int) -> int:
        """Classify `msg` (seen at capture time `ts`) and remember it."""
        return self.check_key(MsgKey().load(msg), ts)

    def check_key(self, k: MsgKey, ts: int) -> int:
        """`check` for the message whose fields `k` holds (the tracker's per-message path)."""
        seen = self._seen
        if self._head < self._len and self._oldest < ts - self.window_ns:
            self._expire(ts - self.window_ns)  # about one per message
        # cast(object, ...) boxes each hash once (a plain `fp: object` is narrowed to int).
        fp: object
        if k.is_request:
            fp = cast(object, hash((k.call_id, k.cseq, k.method, k.from_tag, k.to_tag)))
        else:
            fp = cast(
                object, hash((k.call_id, k.cseq, k.cseq_method, k.status, k.from_tag, k.to_tag))
            )
        sig = cast(object, hash((k.branch, k.nvias, k.direction)))
        rec = seen.get(fp)
        if rec is None:
            while len(seen) >= self.max_entries:
                self._drop_oldest()
                self.c["dup_evicted"] += 1
            seen[fp] = sig
            if self._len == self._cap:
                self._slots.release()
                self._times.frombytes(_GROW_BYTES)
                self._slots = memoryview(self._times)
                self._cap += _GROW
            self._slots[self._len] = ts
            self._fps.append(fp)
            if self._head == self._len:
                self._oldest = ts
            self._len += 1
            return NEW
        if not isinstance(rec, tuple):
            if rec == sig:
                return RETRANS
            seen[fp] = (rec, sig)
            return COPY
        if sig in rec:
            return RETRANS
        if len(rec) < _MAX_SIGS:
            seen[fp] = (*rec, sig)
        return COPY

    def _expire(self, limit: int) -> None:
        """Forget the entries first seen before `limit`."""
        while self._head < self._len and self._oldest < limit:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        head = self._head
        del self._seen[self._fps[head]]
        head += 1
        if head >= 1024 and 2 * head >= self._len:  # reclaim the consumed front
            self._slots.release()
            del self._times[:head]
            self._slots = memoryview(self._times)
            del self._fps[:head]
            self._len -= head
            self._cap -= head
            head = 0
        self._head = head
        if head < self._len:
            self._oldest = self._times[head]
