"""TCP stream reassembly for SIP: per-direction byte streams ordered by sequence number.

Input: TCP segments of one direction (4-tuple key, sequence number, flags, payload, capture
time). Output: the SIP messages those segments complete, in stream order, cut by
`framing.SipFramer`. Out-of-order segments wait in a bounded buffer; retransmitted and
overlapping bytes are trimmed; a gap that does not fill (buffer limit or timeout) is skipped
and framing resynchronises on the next start line.

Never raises on any segment, never holds more than the configured limits, never flushes an
unfinished message at FIN/RST/expiry. Sequence arithmetic is modulo 2**32 (RFC 9293 section
3.4). All times are capture times.
"""

from __future__ import annotations

from collections import Counter, OrderedDict

from sipcm.decode.framing import SipFramer

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

_MASK = 0xFFFFFFFF
_HALF = 1 << 31

StreamKey = tuple[str, int, str, int]
Message = tuple[bytes, bool]


class _Stream:
    """State of one direction of one connection."""

    __slots__ = ("fin_seq", "framer", "gap_ts", "isn", "last_ts", "next_seq", "ooo", "ooo_bytes")

    def __init__(self, next_seq: int, isn: int, framer: SipFramer, ts_ns: int) -> None:
        self.next_seq = next_seq  # sequence number of the next in-order byte
        self.isn = isn  # initial sequence number from the SYN, -1 if picked up mid-way
        self.framer = framer
        self.ooo: dict[int, bytes] = {}  # out-of-order segments by sequence number
        self.ooo_bytes = 0
        self.gap_ts = 0  # capture time since which a gap has been waiting
        self.last_ts = ts_ns
        self.fin_seq = -1  # sequence number of the FIN, once seen

    def pending(self) -> bool:
        return bool(self.ooo) or self.framer.pending() > 0


class TcpReassembler:
    """Reassembles TCP directions into SIP messages, bounded in streams, bytes and time."""

    def __init__(
        self,
        counters: Counter[str],
        *,
        max_streams: int = 10000,
        max_stream_bytes: int = 1 << 20,
        max_message_bytes: int = 1 << 20,
        max_ooo_segments: int = 64,
        idle_timeout_s: float = 300.0,
        gap_timeout_s: float = 2.0,
    ) -> None:
        self._c = counters
        self._max_streams = max(1, max_streams)
        self._max_stream_bytes = max_stream_bytes
        self._max_message_bytes = max_message_bytes
        self._max_ooo = max(1, max_ooo_segments)
        self._idle_ns = int(idle_timeout_s * 1e9)
        self._gap_ns = int(gap_timeout_s * 1e9)
        self._streams: OrderedDict[StreamKey, _Stream] = OrderedDict()  # least recent first

    def __len__(self) -> int:
        return len(self._streams)

    def has(self, key: StreamKey) -> bool:
        """Whether this direction is already tracked."""
        return key in self._streams

    def segment(
        self, key: StreamKey, seq: int, flags: int, data: bytes, ts_ns: int
    ) -> list[Message]:
        """Add one segment; return the SIP messages it completes, in stream order."""
        streams = self._streams
        st = streams.get(key)
        if flags & RST:
            if st is not None:
                self._close(key, st, "tcp_incomplete_at_close")
            return []
        if flags & SYN:
            if st is None or st.isn != seq:  # a new connection (a SYN retransmit keeps it)
                if st is not None:
                    self._close(key, st, "tcp_incomplete_at_close")
                st = self._open(key, (seq + 1) & _MASK, seq, ts_ns)
            else:
                streams.move_to_end(key)
            seq = (seq + 1) & _MASK  # data on a SYN (TCP Fast Open) follows the ISN
        elif st is None:
            if not data:
                return []  # no stream for bare ACKs or a FIN of an unknown connection
            self._c["tcp_midstream_start"] += 1
            st = self._open(key, seq, -1, ts_ns)
        else:
            streams.move_to_end(key)
        st.last_ts = ts_ns
        out: list[Message] = []
        if data:
            self._data(st, seq, data, ts_ns, out)
        if st.ooo and ts_ns - st.gap_ts > self._gap_ns:
            self._c["tcp_gap_timeout"] += 1
            self._skip_gap(st, out, ts_ns)
        if flags & FIN:
            st.fin_seq = (seq + len(data)) & _MASK
        if st.fin_seq >= 0 and ((st.next_seq - st.fin_seq) & _MASK) < _HALF:
            self._close(key, st, "tcp_incomplete_at_close")
        return out

    def expire(self, now_ns: int) -> int:
        """Drop streams idle for longer than the idle timeout; returns how many."""
        streams = self._streams
        n = 0
        while streams:
            key = next(iter(streams))
            st = streams[key]
            if now_ns - st.last_ts <= self._idle_ns:
                break  # least recently used first, so the rest are fresher
            self._c["tcp_stream_expired"] += 1
            self._close(key, st, "tcp_incomplete_at_expiry")
            n += 1
        return n

    def _open(self, key: StreamKey, next_seq: int, isn: int, ts_ns: int) -> _Stream:
        streams = self._streams
        while len(streams) >= self._max_streams:
            _, old = streams.popitem(last=False)
            self._c["tcp_stream_evicted"] += 1
            if old.pending():
                self._c["tcp_incomplete_at_evict"] += 1
        st = _Stream(next_seq, isn, SipFramer(self._c, self._max_message_bytes), ts_ns)
        streams[key] = st
        return st

    def _close(self, key: StreamKey, st: _Stream, counter: str) -> None:
        if st.pending():
            self._c[counter] += 1
        del self._streams[key]

    def _data(self, st: _Stream, seq: int, data: bytes, ts_ns: int, out: list[Message]) -> None:
        """Place one segment's payload: deliver it, trim it, or buffer it out of order."""
        c = self._c
        while True:
            off = (seq - st.next_seq) & _MASK
            if off == 0:
                self._deliver(st, data, out)
                return
            if off >= _HALF:  # starts before the next expected byte
                back = (1 << 32) - off
                if back >= len(data):
                    c["tcp_retransmit"] += 1
                    return
                c["tcp_overlap"] += 1
                self._deliver(st, data[back:], out)
                return
            if off > self._max_stream_bytes:  # too far ahead to wait for: skip to it
                c["tcp_gap_skipped"] += 1
                st.ooo.clear()
                st.ooo_bytes = 0
                self._resync_at(st, seq, out)
                continue
            old = st.ooo.get(seq)
            if old is not None and len(old) >= len(data):
                c["tcp_retransmit"] += 1
                return
            extra = len(data) - (len(old) if old is not None else 0)
            if old is None and len(st.ooo) >= self._max_ooo:
                c["tcp_ooo_limit"] += 1
            elif st.ooo_bytes + extra + st.framer.pending() > self._max_stream_bytes:
                c["tcp_stream_bytes_limit"] += 1
            else:
                if not st.ooo:
                    st.gap_ts = ts_ns
                st.ooo[seq] = data
                st.ooo_bytes += extra
                c["tcp_out_of_order"] += 1
                return
            if st.ooo:
                self._skip_gap(st, out, ts_ns)
            else:
                c["tcp_gap_skipped"] += 1
                self._resync_at(st, seq, out)

    def _deliver(self, st: _Stream, data: bytes, out: list[Message]) -> None:
        """Frame in-order bytes, then any buffered segments they make contiguous."""
        st.next_seq = (st.next_seq + len(data)) & _MASK
        out.extend(st.framer.feed(data))
        if st.ooo:
            self._drain(st, out)

    def _drain(self, st: _Stream, out: list[Message]) -> None:
        ooo = st.ooo
        while ooo:
            nxt = st.next_seq
            for s in ooo:
                if ((s - nxt) & _MASK) == 0 or ((s - nxt) & _MASK) >= _HALF:
                    break
            else:
                return
            data = ooo.pop(s)
            st.ooo_bytes -= len(data)
            back = (nxt - s) & _MASK
            if back >= len(data):
                self._c["tcp_retransmit"] += 1
                continue
            if back:
                self._c["tcp_overlap"] += 1
                data = data[back:]
            st.next_seq = (nxt + len(data)) & _MASK
            out.extend(st.framer.feed(data))

    def _skip_gap(self, st: _Stream, out: list[Message], ts_ns: int) -> None:
        """Give up on the missing bytes: continue from the earliest buffered segment."""
        self._c["tcp_gap_skipped"] += 1
        nxt = st.next_seq
        first = min(st.ooo, key=lambda s: (s - nxt) & _MASK)
        self._resync_at(st, first, out)
        if st.ooo:
            st.gap_ts = ts_ns  # a further gap gets its own full wait

    def _resync_at(self, st: _Stream, seq: int, out: list[Message]) -> None:
        """Drop the unfinished message and continue the stream at seq."""
        st.framer.drop()
        st.next_seq = seq
        if st.ooo:
            self._drain(st, out)
