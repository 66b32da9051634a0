"""Property tests for TCP reassembly and SIP framing: any segmentation, order or garbage."""

from __future__ import annotations

import itertools
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipcm.decode.framing import MAX_START_LINE, SipFramer
from sipcm.decode.stream import ACK, SYN, TcpReassembler

K = ("192.0.2.1", 5060, "192.0.2.2", 5060)
_ALNUM = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
_PIECES = [b"\r\n", b"SIP/2.0 200 OK\r\n", b"l: 9\r\n", b"\r\n\r\nINVITE a SIP/2.0\r\n"]
_VALUE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@st.composite
def sip_message(draw) -> bytes:
    """A well-framed SIP message whose body (any bytes) has an exact Content-Length."""
    if draw(st.booleans()):
        method = draw(st.sampled_from(["INVITE", "ACK", "BYE", "OPTIONS", "REGISTER", "X-Y"]))
        start = f"{method} sip:{draw(_ALNUM)}@{draw(_ALNUM)} SIP/2.0"
    else:
        start = f"SIP/2.0 {draw(st.integers(100, 699))} {draw(_VALUE)}"
    names = st.sampled_from(["Via", "From", "To", "Call-ID", "CSeq", "X-Note", "Subject"])
    headers = [f"{n}: {v}" for n, v in draw(st.lists(st.tuples(names, _VALUE), max_size=6))]
    body = draw(st.binary(max_size=300))
    cl_name = draw(st.sampled_from(["Content-Length", "content-length", "l", "L", "l "]))
    headers.insert(draw(st.integers(0, len(headers))), f"{cl_name}: {len(body)}")
    eol = "\r\n"
    return (start + eol + eol.join(headers) + eol + eol).encode() + body


def _cuts(draw, total: int) -> list[int]:
    points = draw(st.lists(st.integers(1, max(1, total - 1)), max_size=40, unique=True))
    return [0, *sorted(p for p in points if 0 < p < total), total]


@given(st.data(), st.lists(sip_message(), min_size=1, max_size=8))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_segmentation_reproduces_the_messages(data, messages):
    keepalive = st.sampled_from([b"", b"", b"\r\n", b"\r\n\r\n"])
    stream = b"".join(data.draw(keepalive) + m for m in messages)
    cuts = _cuts(data.draw, len(stream))
    segments = [(cuts[i], stream[cuts[i] : cuts[i + 1]]) for i in range(len(cuts) - 1)]
    isn = data.draw(st.integers(0, 0xFFFFFFFF))
    c: Counter[str] = Counter()
    r = TcpReassembler(c, max_ooo_segments=len(segments) + 1)
    out = r.segment(K, isn, SYN, b"", 0)
    order = data.draw(st.permutations(segments))
    dups = data.draw(st.lists(st.sampled_from(segments), max_size=5))
    for off, seg in [*order, *dups]:
        out += r.segment(K, (isn + 1 + off) & 0xFFFFFFFF, ACK, seg, 0)
    assert [m for m, _ in out] == messages
    assert c["tcp_resync"] == 0
    assert c["tcp_garbage_bytes"] == 0
    assert c["tcp_gap_skipped"] == 0
    assert r._streams[K].framer.pending() == 0


@given(
    st.lists(
        st.tuples(
            st.integers(0, 3000),
            st.sampled_from([0, ACK, SYN, 0x01 | ACK, 0x04, SYN | ACK]),
            st.binary(max_size=200)
            | st.sampled_from([b"\r\n", b"SIP/2.0 200 OK\r\n", b"l: 9\r\n"]),
            st.integers(0, 3),
        ),
        max_size=40,
    ),
    st.integers(1, 300),
)
@settings(max_examples=300, deadline=None)
def test_random_segments_never_raise_and_stay_bounded(segments, max_message):
    c: Counter[str] = Counter()
    r = TcpReassembler(
        c, max_streams=3, max_stream_bytes=600, max_message_bytes=max_message,
        max_ooo_segments=4, idle_timeout_s=1e-6,
    )  # fmt: skip
    keys = [("198.51.100.1", p, "198.51.100.2", 5060) for p in range(4)]
    for i, (seq, flags, payload, k) in enumerate(segments):
        for m, spans in r.segment(keys[k], seq, flags, payload, i * 1000):
            assert isinstance(m, bytes)
            assert isinstance(spans, bool)
            assert len(m) <= max_message + 200
        for s in r._streams.values():
            assert s.framer.pending() <= max_message + 200 + MAX_START_LINE
            assert len(s.ooo) <= 4
            assert s.ooo_bytes <= 600
        assert len(r) <= 3
    r.expire(10**12)
    assert len(r) == 0


@given(st.binary(max_size=3000), st.lists(st.integers(1, 3000), max_size=30))
@settings(max_examples=300, deadline=None)
def test_framer_random_bytes_never_raise(blob, points):
    """Any bytes in any split: no exception, output is whole slices of the input."""
    c: Counter[str] = Counter()
    f = SipFramer(c, 1 << 20)
    out = []
    cuts = [0, *sorted(p for p in set(points) if p < len(blob)), len(blob)]
    for a, b in itertools.pairwise(cuts):
        out += f.feed(blob[a:b])
    consumed = sum(len(m) for m, _ in out)
    assert consumed + f.pending() <= len(blob)
    for m, _ in out:
        assert m in blob


class _CountingBytes(bytes):
    """bytes whose find() adds the number of bytes it examined to a shared tally."""

    tally = [0]

    def find(self, sub, start=0, end=None, /):  # type: ignore[override]
        stop = len(self) if end is None else min(end, len(self))
        r = super().find(sub, start, stop)
        self.tally[0] += (stop - start) if r < 0 else (r + len(sub) - start)
        return r


class _CountingBytearray(bytearray):
    def find(self, sub, start=0, end=None, /):  # type: ignore[override]
        stop = len(self) if end is None else min(end, len(self))
        r = super().find(sub, start, stop)
        _CountingBytes.tally[0] += (stop - start) if r < 0 else (r + len(sub) - start)
        return r


def _big_invite(n: int) -> bytes:
    head = b"INVITE sip:b@example.com SIP/2.0\r\nCall-ID: big\r\n"
    m = head + b"X-Pad: " + b"h" * n + b"\r\n" + f"l: {n}\r\n\r\n".encode()
    return m + b"v=0\r\n" * (n // 5) + b"x" * (n % 5)


def _scanned(m: bytes, sizes: list[int]) -> tuple[int, int]:
    """Bytes examined by find() while framing m (plus a 100 Trying) cut into sizes."""
    trying = b"SIP/2.0 100 Trying\r\nContent-Length: 0\r\n\r\n"
    data = m + trying
    f = SipFramer(Counter(), 1 << 24)
    f._buf = _CountingBytearray()
    _CountingBytes.tally[0] = 0
    out, pos, i = [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        out += f.feed(_CountingBytes(data[pos : pos + size]))
        pos += size
        i += 1
    assert [x for x, _ in out] == [m, trying]
    return _CountingBytes.tally[0], i


def test_search_work_is_linear_in_input_size():
    """A big INVITE in 1..1460-byte segments: find() examines O(bytes + segments), so 16x
    the input costs about 16x the work (a rescan from the start would cost ~256x)."""
    sizes = [1, 7, 1460, 3, 512, 1, 1, 64, 999, 2]
    for n in (64 * 1024, 1024 * 1024):
        m = _big_invite(n)
        scanned, segments = _scanned(m, sizes)
        assert scanned <= 3 * len(m) + 16 * segments, (n, scanned, segments)
    one_byte, segments = _scanned(_big_invite(64 * 1024), [1])
    assert segments > 128 * 1024
    assert one_byte <= 3 * 128 * 1024 + 16 * segments
