"""TcpReassembler and SipFramer: hand-built segments with hand-derived expected messages."""

from __future__ import annotations

from collections import Counter

import pytest

from sipcm.decode.framing import SipFramer
from sipcm.decode.stream import ACK, FIN, RST, SYN, TcpReassembler

K = ("10.0.0.1", 40000, "10.0.0.2", 5060)
K2 = ("10.0.0.2", 5060, "10.0.0.1", 40000)
S = 1_000_000_000  # one second in ns


def msg(start: bytes, body: bytes = b"", cl: bytes | None = None, name: bytes = b"Content-Length"):
    """A SIP message with a Content-Length header (value len(body) unless cl given)."""
    value = str(len(body)).encode() if cl is None else cl
    return (
        start + b"\r\nVia: SIP/2.0/TCP 10.0.0.1:40000;branch=z9hG4bK776\r\n"
        b"Call-ID: c1@10.0.0.1\r\nCSeq: 1 INVITE\r\n" + name + b": " + value + b"\r\n\r\n" + body
    )


INVITE = msg(b"INVITE sip:bob@example.com SIP/2.0", b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\n")
TRYING = msg(b"SIP/2.0 100 Trying")
OPTIONS = msg(b"OPTIONS sip:example.com SIP/2.0", b"hello")
NO_CL = b"MESSAGE sip:bob@example.com SIP/2.0\r\nCall-ID: c2@10.0.0.1\r\nCSeq: 2 MESSAGE\r\n\r\n"


def new(**kw) -> tuple[TcpReassembler, Counter[str]]:
    c: Counter[str] = Counter()
    return TcpReassembler(c, **kw), c


def send(r: TcpReassembler, chunks, isn: int = 1000, key=K, ts: int = 0):
    """SYN at isn, then chunks back to back; returns all (message, spans) produced."""
    out = r.segment(key, isn, SYN, b"", ts)
    seq = isn + 1
    for ch in chunks:
        out += r.segment(key, seq & 0xFFFFFFFF, ACK, ch, ts)
        seq += len(ch)
    return out


def msgs(out) -> list[bytes]:
    return [m for m, _ in out]


def test_several_messages_in_one_segment():
    r, c = new()
    out = send(r, [INVITE + TRYING + OPTIONS])
    assert out == [(INVITE, False), (TRYING, False), (OPTIONS, False)]
    assert +c == Counter()


@pytest.mark.parametrize("data", [INVITE, INVITE + TRYING + b"\r\n\r\n" + OPTIONS])
def test_every_split_gives_the_same_messages(data):
    expected = [m for m in (INVITE, TRYING, OPTIONS) if m in data]
    for i in range(1, len(data)):
        r, _ = new()
        assert msgs(send(r, [data[:i], data[i:]])) == expected, i
    r, _ = new()
    assert msgs(send(r, [data[i : i + 1] for i in range(len(data))])) == expected


def test_spans_flag_marks_messages_built_from_several_segments():
    r, _ = new()
    cut = len(INVITE) - 5
    out = send(r, [INVITE[:cut], INVITE[cut:] + TRYING, OPTIONS[:10], OPTIONS[10:]])
    assert out == [(INVITE, True), (TRYING, False), (OPTIONS, True)]


def test_out_of_order_segments_wait_for_the_gap():
    r, c = new()
    r.segment(K, 99, SYN, b"", 0)
    a, b = INVITE + TRYING[:20], TRYING[20:] + OPTIONS
    assert r.segment(K, 100 + len(a), ACK, b, 1) == []
    assert c["tcp_out_of_order"] == 1
    assert r.segment(K, 100, ACK, a, 2) == [(INVITE, False), (TRYING, True), (OPTIONS, False)]
    assert r.segment(K, 100 + len(a) + len(b), ACK, TRYING, 3) == [(TRYING, False)]


def test_duplicate_and_overlapping_segments_are_trimmed():
    r, c = new()
    r.segment(K, 0, SYN, b"", 0)
    assert r.segment(K, 1, ACK, INVITE, 1) == [(INVITE, False)]
    assert r.segment(K, 1, ACK, INVITE, 2) == []  # retransmission
    assert c["tcp_retransmit"] == 1
    # resends the last 10 bytes of INVITE together with TRYING
    tail = INVITE[-10:] + TRYING
    assert r.segment(K, 1 + len(INVITE) - 10, ACK, tail, 3) == [(TRYING, False)]
    assert c["tcp_overlap"] == 1
    # an out-of-order duplicate is kept once
    nxt = 1 + len(INVITE) + len(TRYING)
    assert r.segment(K, nxt + 5, ACK, OPTIONS[5:], 4) == []
    assert r.segment(K, nxt + 5, ACK, OPTIONS[5:], 5) == []
    assert c["tcp_retransmit"] == 2
    assert r.segment(K, nxt, ACK, OPTIONS[:5], 6) == [(OPTIONS, True)]


def test_keepalives_counted_and_ignored():
    r, c = new()
    out = send(r, [b"\r\n\r\n", INVITE + b"\r\n", b"\r\n\r\n" + TRYING, b"\r\n"])
    assert out == [(INVITE, False), (TRYING, False)]
    assert c["tcp_keepalive"] == 4
    assert r.has(K)
    assert r.segment(K, 1001 + 4 + len(INVITE) + 2 + 4 + len(TRYING) + 2, FIN | ACK, b"", 1) == []
    assert not r.has(K)
    assert c["tcp_incomplete_at_close"] == 0


def test_garbage_then_resync_on_next_start_line():
    garbage = b"\x16\x03\x01 binary\r\nINVITE sip:x SIP/3.0\r\nfoo SIP/2.0 200 x\n"
    r, c = new()
    out = send(r, [garbage[:7], garbage[7:] + TRYING[:30], TRYING[30:]])
    assert out == [(TRYING, True)]
    assert c["tcp_resync"] == 1
    assert c["tcp_garbage_bytes"] == len(garbage)


def test_garbage_without_newline_never_abandons_the_stream():
    r, c = new()
    blob = bytes(range(256)) * 40  # no start line anywhere, LFs inside
    out = send(r, [blob, b"tail\n", OPTIONS])
    assert out == [(OPTIONS, False)]
    assert c["tcp_resync"] == 1
    assert c["tcp_garbage_bytes"] == len(blob) + 5


def test_missing_content_length():
    r, c = new()
    # followed by a start line: empty body
    out = send(r, [NO_CL + OPTIONS])
    assert out == [(NO_CL, False), (OPTIONS, False)]
    # body lines up to the next start line
    r, c = new()
    out = send(r, [NO_CL + b"line one\r\nline two\r\n" + TRYING])
    assert msgs(out) == [NO_CL + b"line one\r\nline two\r\n", TRYING]
    assert c["tcp_no_content_length"] == 1
    # nothing follows yet: emitted at once with an empty body
    r, c = new()
    assert msgs(send(r, [NO_CL])) == [NO_CL]
    assert c["tcp_no_content_length"] == 1


def test_bare_lf_header_end_tolerated():
    lf = b"OPTIONS sip:a SIP/2.0\nCall-ID: x\nContent-Length: 2\n\nok"
    r, _ = new()
    assert msgs(send(r, [lf + TRYING])) == [lf, TRYING]


@pytest.mark.parametrize("value", [b"abc", b"-1", b"", b"12345678901", b"2000000"])
def test_invalid_content_length_resyncs(value):
    bad = msg(b"OPTIONS sip:a SIP/2.0", b"body!\r\n", cl=value)
    r, c = new()
    assert msgs(send(r, [bad + TRYING])) == [TRYING]
    assert c["tcp_bad_content_length"] == 1
    assert c["tcp_resync"] == 1  # the orphan body line
    assert c["tcp_garbage_bytes"] == 7


@pytest.mark.parametrize("name", [b"l", b"L", b"content-length", b"CONTENT-LENGTH ", b"l\t"])
def test_compact_and_case_insensitive_content_length(name):
    m = msg(b"MESSAGE sip:a SIP/2.0", b"\r\n\r\nINVITE x SIP/2.0\r\n", name=name)
    r, c = new()
    assert msgs(send(r, [m[:50], m[50:] + TRYING])) == [m, TRYING]
    assert +c == Counter()


def test_content_length_not_at_line_start_is_ignored():
    m = b"OPTIONS sip:a SIP/2.0\r\nX-Note: Content-Length: 99\r\nContent-Length: 1\r\n\r\nZ"
    r, _ = new()
    assert msgs(send(r, [m + TRYING])) == [m, TRYING]


def test_sequence_wraparound():
    r, c = new()
    isn = 0xFFFFFFF0
    data = INVITE + TRYING
    out = send(r, [data[:40], data[40:90], data[90:]], isn=isn)
    assert msgs(out) == [INVITE, TRYING]
    # a retransmission from before the wrap is recognised as old
    assert r.segment(K, (isn + 1) & 0xFFFFFFFF, ACK, data[:40], 1) == []
    assert c["tcp_retransmit"] == 1
    # out of order across the wrap
    r, c = new()
    r.segment(K, 0xFFFFFFFA, SYN, b"", 0)
    assert r.segment(K, (0xFFFFFFFB + 30) & 0xFFFFFFFF, ACK, data[30:], 1) == []
    assert msgs(r.segment(K, 0xFFFFFFFB, ACK, data[:30], 2)) == [INVITE, TRYING]


def test_midstream_pickup_resyncs_on_next_message():
    r, c = new()
    assert r.segment(K, 5000, ACK, b"", 0) == []  # a bare ACK creates nothing
    assert not r.has(K)
    assert r.segment(K, 5000, ACK, INVITE[40:], 1) == []
    assert r.has(K)
    assert r.segment(K, 5000 + len(INVITE) - 40, ACK, TRYING, 2) == [(TRYING, False)]
    assert c["tcp_midstream_start"] == 1
    assert c["tcp_resync"] == 1


def test_ooo_segment_limit_skips_the_gap():
    r, c = new(max_ooo_segments=2)
    r.segment(K, 0, SYN, b"", 0)
    lost = INVITE
    base = 1 + len(lost)
    assert r.segment(K, base, ACK, TRYING, 1) == []
    assert r.segment(K, base + len(TRYING), ACK, OPTIONS[:9], 2) == []
    # third buffered segment: over the limit, so the gap (the INVITE) is given up
    out = r.segment(K, base + len(TRYING) + 9, ACK, OPTIONS[9:], 3)
    assert out == [(TRYING, False), (OPTIONS, True)]
    assert c["tcp_ooo_limit"] == 1
    assert c["tcp_gap_skipped"] == 1
    # the lost bytes arriving late are old news
    assert r.segment(K, 1, ACK, lost, 4) == []
    assert c["tcp_retransmit"] == 1


def test_stream_byte_limit_skips_the_gap_and_drops_the_partial_message():
    r, c = new(max_stream_bytes=20 + len(TRYING) + len(OPTIONS) - 1)
    r.segment(K, 0, SYN, b"", 0)
    assert r.segment(K, 1, ACK, INVITE[:20], 1) == []  # partial, held
    after_gap = 1 + len(INVITE)
    assert r.segment(K, after_gap, ACK, TRYING, 2) == []  # fits with the 20 held bytes
    out = r.segment(K, after_gap + len(TRYING), ACK, OPTIONS, 3)
    assert out == [(TRYING, False), (OPTIONS, False)]
    assert c["tcp_stream_bytes_limit"] == 1
    assert c["tcp_gap_skipped"] == 1


def test_gap_after_a_segment_start_that_is_mid_message_resyncs():
    r, c = new(max_ooo_segments=1)
    r.segment(K, 0, SYN, b"", 0)
    data = INVITE + TRYING + OPTIONS
    r.segment(K, 1 + 50, ACK, data[50:100], 1)  # begins inside the INVITE headers
    out = r.segment(K, 1 + 100, ACK, data[100:], 2)
    assert msgs(out) == [TRYING, OPTIONS]
    assert c["tcp_gap_skipped"] == 1
    assert c["tcp_resync"] == 1


def test_gap_timeout_skips_the_gap():
    r, c = new(gap_timeout_s=2.0)
    r.segment(K, 0, SYN, b"", 0)
    assert r.segment(K, 1 + len(INVITE), ACK, TRYING, 1 * S) == []
    assert r.segment(K, 1 + len(INVITE) + len(TRYING), ACK, OPTIONS, 2 * S) == []
    out = r.segment(K, 1 + len(INVITE) + len(TRYING), ACK, b"", 3 * S + 1)
    assert msgs(out) == [TRYING, OPTIONS]
    assert c["tcp_gap_timeout"] == 1
    assert c["tcp_gap_skipped"] == 1


def test_message_too_big_is_skipped():
    big = msg(b"INVITE sip:b SIP/2.0", b"x\r\n" * 600)  # 1800 + a header > 1900 bytes
    r, c = new(max_message_bytes=1900)
    chunks = [OPTIONS + big[:1000], big[1000:1500], big[1500:] + TRYING]
    assert msgs(send(r, chunks)) == [OPTIONS, TRYING]
    assert c["tcp_message_too_big"] == 1
    assert c["tcp_garbage_bytes"] == 0


def test_header_too_big_resyncs():
    endless = b"INVITE sip:b SIP/2.0\r\n" + b"X-Pad: yyyyyyyyyyyyyyyyyyyy\r\n" * 30  # 892 bytes
    # no end of header within max_message_bytes
    r, c = new(max_message_bytes=500)
    assert msgs(send(r, [endless[:300], endless[300:], b"\r\n" + TRYING])) == [TRYING]
    assert c["tcp_message_too_big"] == 1
    assert c["tcp_garbage_bytes"] == 2  # the CRLF that ended the oversized header
    # the end of the header arrives, but too late
    r, c = new(max_message_bytes=500)
    assert msgs(send(r, [endless[:300], endless[300:] + b"\r\n" + TRYING])) == [TRYING]
    assert c["tcp_message_too_big"] == 1
    assert c["tcp_garbage_bytes"] == 0


def test_fin_and_rst_drop_the_stream_and_count_unfinished_bytes():
    r, c = new()
    send(r, [INVITE[:30]])
    assert r.segment(K, 1001 + 30, FIN | ACK, b"", 1) == []
    assert not r.has(K)
    assert c["tcp_incomplete_at_close"] == 1
    # data carried on the FIN segment is still framed
    r, c = new()
    out = r.segment(K, 0, SYN, b"", 0) + r.segment(K, 1, FIN | ACK, TRYING, 1)
    assert out == [(TRYING, False)]
    assert not r.has(K)
    assert c["tcp_incomplete_at_close"] == 0
    r, c = new()
    send(r, [INVITE[:30]])
    assert r.segment(K, 1031, RST, b"", 1) == []
    assert not r.has(K)
    assert c["tcp_incomplete_at_close"] == 1


def test_fin_before_the_last_data_waits_for_it():
    r, c = new()
    r.segment(K, 0, SYN, b"", 0)
    assert r.segment(K, 1 + len(TRYING), FIN | ACK, b"", 1) == []
    assert r.has(K)
    assert r.segment(K, 1, ACK, TRYING, 2) == [(TRYING, False)]
    assert not r.has(K)
    assert c["tcp_incomplete_at_close"] == 0


def test_syn_retransmit_keeps_the_stream_new_syn_replaces_it():
    r, c = new()
    r.segment(K, 500, SYN, b"", 0)
    r.segment(K, 501, ACK, INVITE[:10], 1)
    r.segment(K, 500, SYN, b"", 2)  # retransmitted SYN: same ISN
    assert r.segment(K, 511, ACK, INVITE[10:], 3) == [(INVITE, True)]
    r.segment(K, 501 + len(INVITE), ACK, TRYING[:5], 4)
    r.segment(K, 9000, SYN, b"", 5)  # port reused by a new connection
    assert c["tcp_incomplete_at_close"] == 1
    assert r.segment(K, 9001, ACK, OPTIONS, 6) == [(OPTIONS, False)]


def test_max_streams_evicts_least_recently_used():
    r, c = new(max_streams=2)
    keys = [("10.0.0.1", p, "10.0.0.2", 5060) for p in (1, 2, 3)]
    r.segment(keys[0], 0, SYN, b"", 0)
    r.segment(keys[1], 0, SYN, b"", 1)
    r.segment(keys[0], 1, ACK, b"\r\n", 2)  # keys[0] is now the most recent
    r.segment(keys[2], 0, SYN, b"", 3)
    assert [r.has(k) for k in keys] == [True, False, True]
    assert c["tcp_stream_evicted"] == 1
    assert len(r) == 2


def test_idle_streams_expire_on_capture_time():
    r, c = new(idle_timeout_s=10.0)
    r.segment(K, 0, SYN, b"", 0)
    r.segment(K2, 0, SYN, b"", 5 * S)
    r.segment(K2, 1, ACK, OPTIONS[:20], 6 * S)
    assert r.expire(10 * S) == 0
    assert r.expire(10 * S + 1) == 1
    assert not r.has(K)
    assert r.has(K2)
    assert r.expire(16 * S + 1) == 1
    assert not r.has(K2)
    assert c["tcp_stream_expired"] == 2
    assert c["tcp_incomplete_at_expiry"] == 1


def test_syn_with_data_fast_open():
    r, _ = new()
    assert r.segment(K, 77, SYN, OPTIONS, 0) == [(OPTIONS, False)]
    assert r.segment(K, 78 + len(OPTIONS), ACK, TRYING, 1) == [(TRYING, False)]


def test_framer_linear_search_positions():
    # the header search resumes where it stopped: feeding a header one byte at a time finds
    # its end exactly once and the message comes out whole
    c: Counter[str] = Counter()
    f = SipFramer(c, 1 << 20)
    out = []
    for i in range(len(INVITE)):
        out += f.feed(INVITE[i : i + 1])
    assert out == [(INVITE, True)]
    assert f.pending() == 0
    assert +c == Counter()


def test_segment_far_ahead_jumps_instead_of_waiting():
    r, c = new(max_stream_bytes=1000)
    r.segment(K, 0, SYN, b"", 0)
    assert r.segment(K, 1, ACK, INVITE[:30], 1) == []
    assert r.segment(K, 5000, ACK, TRYING, 2) == [(TRYING, False)]
    assert c["tcp_gap_skipped"] == 1
    assert r.segment(K, 5000 + len(TRYING), ACK, OPTIONS, 3) == [(OPTIONS, False)]


def test_request_line_split_inside_sip_version_is_not_garbage():
    for cut in range(1, len(b"OPTIONS sip:example.com SIP/2.0\r\n") + 1):
        r, c = new()
        assert msgs(send(r, [OPTIONS[:cut], OPTIONS[cut:]])) == [OPTIONS]
        assert +c == Counter()


def _tcp_segments(path):
    """(key, seq, flags, payload, ts) of every IPv4 TCP segment in a capture (tiny parser:
    DLT_NULL or Ethernet, IPv4, optional IP-in-IP; just enough for these corpus files)."""
    import struct

    from sipcm.capture.pcapfile import PcapReader

    for b in PcapReader(path).batches():
        for i in range(len(b)):
            off, cap = int(b.offset[i]), int(b.caplen[i])
            frame = bytes(b.data[off : off + cap])
            ip = frame[4:] if b.linktype == 0 else frame[14:]
            while ip[9] == 4:  # IP-in-IP
                ip = ip[(ip[0] & 15) * 4 :]
            assert ip[9] == 6
            total, ihl = struct.unpack_from("!H", ip, 2)[0], (ip[0] & 15) * 4
            tcp = ip[ihl:total]
            sport, dport, seq = struct.unpack_from("!HHI", tcp)
            src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
            yield (src, sport, dst, dport), seq, tcp[13], tcp[(tcp[12] >> 4) * 4 :], int(b.ts_ns[i])


IPIP_URI = b"1bdaa608131517540001@172.28.1.3;transport=tcp"


@pytest.mark.parametrize(
    ("name", "expected", "counters"),
    [
        (
            "suricata-verify/sip-body-large.pcap",
            [(b"INVITE sip:bob@target.com SIP/2.0", 65793, 65536, True),
             (b"SIP/2.0 100 Trying", 207, 0, False)],
            {},
        ),
        (
            "suricata-verify/sip-tcp-method.pcap",
            [(b"REGISTER sip:192.168.43.100;transport=TCP SIP/2.0", 585, 0, True),
             (b"SIP/2.0 200 OK", 491, 0, False)],
            {},
        ),
        (
            "suricata-verify/sip-tcp-pattern-matching.pcap",
            [(b"REGISTER sip:sip.cybercity.dk SIP/2.0", 467, 0, False),
             (b"SIP/2.0 401 Unauthorized", 492, 0, False)],
            {},
        ),
        (
            "sngrep/ipip.pcap",
            [(b"INVITE sip:" + IPIP_URI + b" SIP/2.0", 1103, 649, False),
             (b"SIP/2.0 183 Ringing", 621, 263, False),
             (b"SIP/2.0 200 OK", 616, 263, False),
             (b"BYE sip:" + IPIP_URI + b" SIP/2.0", 409, 0, False)],
            {"tcp_midstream_start": 2},
        ),
    ],
)  # fmt: skip
def test_corpus_tcp_sip(corpus, name, expected, counters):
    c: Counter[str] = Counter()
    r = TcpReassembler(c)
    out = []
    for key, seq, flags, payload, ts in _tcp_segments(corpus / name):
        out += r.segment(key, seq, flags, payload, ts)
    got = [
        (m.split(b"\r\n", 1)[0], len(m), len(m) - m.index(b"\r\n\r\n") - 4, spans)
        for m, spans in out
    ]
    assert got == expected
    assert dict(+c) == counters
