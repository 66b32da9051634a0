"""The per-call message store: every message of the recent calls, transactions and
registrations, for ladder diagrams (`sipcm flow`, `/api/calls/{id}/flow`) and per-call pcaps.

Input: each parsed SIP message with its payload (capture time, addresses, ports, transport,
capture direction, VLAN), its sensor-wide payload number and the duplicate filter's verdict
(new, retransmission or copy). Output: `flow(call_id)`, the call's messages in capture order
as plain dicts (marshal-able, so a worker sends them as they are).

A shard keeps the flows of the Call-IDs it owns. Bounds, each counted in group `flows`:
- `max_calls` Call-IDs (least recently active evicted first: `calls_evicted`);
- `max_bytes` in total, a message costing `OVERHEAD` plus its raw size, or plus its first
  line when kept without text (least recently active calls evicted until it fits:
  `calls_evicted`);
- `max_call_bytes` per call: a message that does not fit is kept without its raw text
  (`raw_dropped`) while its first line still fits, otherwise not kept (`messages_dropped`);
  the flow says how many of its messages lost their text or were not kept.
With anonymization on (`anon`), raw text is never kept, and addresses, the request URI of
the first line and the Call-ID are stored transformed exactly as the event documents show
them (`Anonymizer.value` per event field), so the store reveals nothing the events hide and
the call is looked up by the Call-ID its events carry.
"""

from __future__ import annotations

import io
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from sipcm.track.dedup import COPY, NEW, RETRANS

if TYPE_CHECKING:
    from sipcm.events.anonymize import Anonymizer
    from sipcm.sip.message import SipMessage

DUP_NAMES: Final = {NEW: "new", RETRANS: "retrans", COPY: "copy"}
# Accounted bytes of one stored message besides its raw text (its dict and strings).
OVERHEAD: Final = 400
# What `FlowStore._account` kept of a message.
_NOT_KEPT: Final = 0
_LINE_KEPT: Final = 1
_RAW_KEPT: Final = 2


# One stored message: a dict with these keys in `flow()`. While stored, with anonymization
# these values; without, the fields of `CLEAR_RECORD` (the payload is kept itself and its
# fields read when the flow is). A call's records are stored back to back in one list (no
# tuple per message: one object fewer for every stored message, which the cycle collector
# would traverse).
RECORD: Final = (
    "seq", "ts_ns", "src_ip", "src_port", "dst_ip", "dst_port", "transport", "direction",
    "vlan", "tunnel", "reassembled", "leg", "first_line", "dup", "size", "raw",
)  # fmt: skip
CLEAR_RECORD: Final = ("seq", "payload", "leg", "dup", "raw_kept")


def first_line(data: bytes) -> str:
    """The start line of a message (at most 200 bytes when it has no line end)."""
    end = data.find(b"\r\n")
    return data[: end if end >= 0 else 200].decode("utf-8", "replace")


class _Flow:
    __slots__ = ("bytes", "dropped", "messages", "raw_dropped")

    def __init__(self) -> None:
        self.messages: list[object] = []  # the records' values back to back
        self.bytes = 0
        self.dropped = 0
        self.raw_dropped = 0


class FlowStore:
    """Bounded messages per Call-ID; see the module docstring."""

    def __init__(
        self,
        counters: Counter[str],
        *,
        max_calls: int,
        max_call_bytes: int,
        max_bytes: int,
        anon: Anonymizer | None = None,
    ) -> None:
        self.c = counters
        self.max_calls = max_calls
        self.max_call_bytes = max_call_bytes
        self.max_bytes = max_bytes
        self.anon = anon if anon is not None and anon.enabled else None
        self.enabled = max_calls > 0
        self.bytes = 0
        self._flows: OrderedDict[str, _Flow] = OrderedDict()
        # Bound once (the table is never replaced): compiled, `move_to_end` would be looked up
        # on the type at every message.
        self._touch: Callable[[str], None] = self._flows.move_to_end
        self._stride = len(RECORD) if self.anon is not None else len(CLEAR_RECORD)

    def __len__(self) -> int:
        return len(self._flows)

    def add(self, seq: int, msg: SipMessage, dup: int) -> None:
        """Keep one message of `msg.call_id` (its payload must be set)."""
        p = msg.payload
        if p is None or not self.enabled:
            return
        if self.anon is None:
            flow = self._flow(msg.call_id)
            kept = self._account(flow, p.data, None, raw_allowed=True)
            if kept != _NOT_KEPT:
                flow.messages.extend((seq, p, msg.to.tag, dup, kept == _RAW_KEPT))
            return
        anon = self.anon
        call_id, src_ip, dst_ip, first = self._anonymized(msg, first_line(p.data))
        t = p.tunnel
        tunnel = None
        if t is not None:
            tunnel = (
                t.kind, anon.value("sipcm.tunnel.source.ip", t.src_ip) or "?",
                anon.value("sipcm.tunnel.destination.ip", t.dst_ip) or "?",
                t.src_port, t.dst_port, t.vni,
            )  # fmt: skip
        flow = self._flow(call_id)
        if self._account(flow, p.data, first, raw_allowed=False) != _NOT_KEPT:
            flow.messages.extend(
                (seq, p.ts_ns, src_ip, p.src_port, dst_ip, p.dst_port, p.transport, p.direction,
                 p.vlan, tunnel, p.reassembled, msg.to.tag, first, DUP_NAMES[dup],
                 len(p.data), None)
            )  # fmt: skip

    def _flow(self, call_id: str) -> _Flow:
        """The flow of `call_id`, made when new (evicting the least recently active call past
        `max_calls`), marked most recently active."""
        flows = self._flows
        flow = flows.get(call_id)
        if flow is None:
            while len(flows) >= self.max_calls:
                self._evict()
            flow = flows[call_id] = _Flow()
        else:
            self._touch(call_id)
        return flow

    def _account(self, flow: _Flow, data: bytes, first: str | None, *, raw_allowed: bool) -> int:
        """Account one message to `flow`: its raw text when allowed and within the call's
        room, else its first line (`first`, or derived from `data`); older calls are evicted
        to stay within `max_bytes` (never `flow`, the most recently active). Returns
        _RAW_KEPT, _LINE_KEPT or _NOT_KEPT (counted)."""
        room = self.max_call_bytes - flow.bytes
        keep_raw = raw_allowed and OVERHEAD + len(data) <= room
        if keep_raw:
            cost = OVERHEAD + len(data)
        else:
            cost = OVERHEAD + len(first if first is not None else first_line(data))
            if cost > room:
                flow.dropped += 1
                self.c["messages_dropped"] += 1
                return _NOT_KEPT
            if raw_allowed:
                flow.raw_dropped += 1
                self.c["raw_dropped"] += 1
        flows = self._flows
        while self.bytes + cost > self.max_bytes and len(flows) > 1:
            self._evict()
        if self.bytes + cost > self.max_bytes:  # one call alone over the total
            flow.dropped += 1
            self.c["messages_dropped"] += 1
            return _NOT_KEPT
        flow.bytes += cost
        self.bytes += cost
        return _RAW_KEPT if keep_raw else _LINE_KEPT

    def _evict(self) -> None:
        _, flow = self._flows.popitem(last=False)
        self.bytes -= flow.bytes
        self.c["calls_evicted"] += 1

    def flow(self, call_id: str) -> dict[str, Any] | None:
        """The call's messages in capture order with what the bounds cut, or None."""
        flow = self._flows.get(call_id)
        if flow is None:
            return None
        msgs = []
        values, stride = flow.messages, self._stride
        for i in range(0, len(values), stride):
            rec = tuple(values[i : i + stride])
            m = dict(zip(RECORD, rec if stride == len(RECORD) else _expand(rec), strict=True))
            if m["first_line"] is None:
                m["first_line"] = first_line(m["raw"])
            msgs.append(m)
        return {
            "call_id": call_id,
            "messages": msgs,
            "messages_dropped": flow.dropped,
            "raw_dropped": flow.raw_dropped,
            "anonymized": self.anon is not None,
        }

    def stats(self) -> dict[str, int]:
        """Gauges: calls held and bytes accounted."""
        return {"calls": len(self._flows), "bytes": self.bytes}

    def _anonymized(self, msg: SipMessage, first: str) -> tuple[str, str, str, str]:
        """Call-ID, addresses and first line as the event documents show them ("?" for a
        value the anonymizer cannot transform: never the clear text)."""
        p = msg.payload
        anon = self.anon
        assert p is not None
        assert anon is not None
        if msg.is_request and msg.uri is not None:
            uri = anon.value("sip.uri.original", msg.uri.original) or "?"
            first = f"{msg.method} {uri} SIP/2.0"
        return (
            anon.value("sip.call_id", msg.call_id) or "?",
            anon.value("source.ip", p.src_ip) or "?",
            anon.value("destination.ip", p.dst_ip) or "?",
            first,
        )


def _expand(rec: tuple) -> tuple:
    """A CLEAR_RECORD (seq, payload, leg, dup, raw kept) as a RECORD tuple."""
    seq, p, leg, dup, keep_raw = rec
    t = p.tunnel
    tunnel = None if t is None else (t.kind, t.src_ip, t.dst_ip, t.src_port, t.dst_port, t.vni)
    data = p.data
    return (
        seq, p.ts_ns, p.src_ip, p.src_port, p.dst_ip, p.dst_port, p.transport, p.direction,
        p.vlan, tunnel, p.reassembled, leg, None if keep_raw else first_line(data),
        DUP_NAMES[dup], len(data), data if keep_raw else None,
    )  # fmt: skip


def merge_flows(parts: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """One flow from the workers' answers (the owner answers; the others have None). A key
    that fell back to another worker (no shard key) may leave messages in several: they are
    merged in capture order (sensor-wide payload number)."""
    found = [p for p in parts if p is not None]
    if not found:
        return None
    if len(found) == 1:
        return found[0]
    out = dict(found[0])
    out["messages"] = sorted((m for p in found for m in p["messages"]), key=lambda m: m["seq"])
    for k in ("messages_dropped", "raw_dropped"):
        out[k] = sum(p[k] for p in found)
    return out


def pcap_bytes(messages: list[dict[str, Any]]) -> bytes:
    """A pcap of stored messages (with their raw text), in the given order."""
    from sipcm.capture.rebuild import write_messages  # pcap exports only, not at start-up

    buf = io.BytesIO()
    write_messages(buf, messages)
    return buf.getvalue()
