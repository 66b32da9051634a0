"""IP fragment reassembly: the reassembler alone, and IPv4/IPv6 fragments through the decoder."""

from __future__ import annotations

from collections import Counter

from sipcm.decode.decoder import Decoder
from sipcm.decode.frag import FragmentReassembler
from tests.unit.decode.frames import INVITE, T0, batch, eth, frag6, ip4, ip6, udp

S = 1_000_000_000
KEY = (4, b"\x01\x01\x01\x01", b"\x02\x02\x02\x02", 17, 7)
DATA = bytes(range(256)) * 3  # 768 bytes


def pieces(data: bytes, size: int) -> list[tuple[int, bool, bytes]]:
    return [(o, o + size < len(data), data[o : o + size]) for o in range(0, len(data), size)]


def fr(**kw) -> tuple[FragmentReassembler, Counter]:
    c: Counter[str] = Counter()
    return FragmentReassembler(c, **kw), c


def feed(r, parts, ts=T0, key=KEY):
    got = [r.add(key, o, m, d, ts) for o, m, d in parts]
    return [g for g in got if g is not None]


def test_in_order_and_reverse_order():
    r, c = fr()
    assert feed(r, pieces(DATA, 256)) == [DATA]
    assert feed(r, pieces(DATA, 256)[::-1]) == [DATA]
    assert len(r) == 0
    assert +c == Counter(frag_fragments=6, frag_reassembled=2)


def test_duplicate_fragment_is_counted_and_harmless():
    r, c = fr()
    p = pieces(DATA, 256)
    assert feed(r, [p[0], p[0], p[2], p[1]]) == [DATA]
    assert +c == Counter(frag_fragments=4, frag_duplicate=1, frag_reassembled=1)


def test_overlap_keeps_the_first_bytes():
    r, c = fr()
    first = (0, True, b"A" * 16)
    overlapping = (8, True, b"B" * 16)  # bytes 8..15 overlap: A is kept, 16..23 come from B
    last = (24, False, b"C" * 8)
    assert feed(r, [first, overlapping, last]) == [b"A" * 16 + b"B" * 8 + b"C" * 8]
    assert c["frag_overlap"] == 1
    r, c = fr()
    inside = (4, True, b"Z" * 4)  # entirely inside, different bytes
    assert feed(r, [first, inside, (16, False, b"D" * 8)]) == [b"A" * 16 + b"D" * 8]
    assert (c["frag_overlap"], c["frag_duplicate"]) == (1, 0)


def test_timeout_by_capture_time():
    r, c = fr(timeout_s=30)
    p = pieces(DATA, 256)
    assert r.add(KEY, *p[0], T0) is None
    assert r.expire(T0 + 30 * S) == 0  # exactly the timeout: still waiting
    assert r.expire(T0 + 31 * S) == 1
    assert c["frag_timeout"] == 1
    # The rest arriving later cannot complete the dropped datagram.
    assert feed(r, p[1:], ts=T0 + 32 * S) == []
    # A set whose first fragment is stale is dropped when the next fragment arrives.
    assert r.add(KEY, *p[0], T0 + 100 * S) is None
    assert c["frag_timeout"] == 2


def test_concurrent_limit_evicts_oldest():
    r, c = fr(max_datagrams=2)
    keys = [(4, b"a", b"b", 17, i) for i in range(3)]
    for k in keys:
        assert r.add(k, 0, True, b"x" * 8, T0) is None
    assert c["frag_limit_evicted"] == 1
    assert r.add(keys[0], 8, False, b"y" * 8, T0) is None  # evicted: starts a new set
    assert c["frag_limit_evicted"] == 2
    assert r.add(keys[2], 8, False, b"y" * 8, T0) == b"x" * 8 + b"y" * 8


def test_size_cap_and_bad_lengths():
    r, c = fr(max_bytes=1000)
    assert r.add(KEY, 0, True, b"x" * 512, T0) is None
    assert r.add(KEY, 512, False, b"x" * 512, T0) is None  # ends at 1024 > 1000
    assert c["frag_too_big"] == 1
    assert len(r) == 0
    r, c = fr()
    assert r.add(KEY, 0, True, b"", T0) is None
    assert r.add(KEY, 16, False, b"x" * 8, T0) is None  # end 24 known
    assert r.add(KEY, 24, True, b"x" * 8, T0) is None  # past the end
    assert r.add(KEY, 8, False, b"x" * 8, T0) is None  # a second, different end
    assert c["frag_bad_length"] == 3
    r, c = fr()
    assert r.add(KEY, 32, True, b"x" * 8, T0) is None
    assert r.add(KEY, 0, False, b"x" * 8, T0) is None  # last fragment ends before data seen
    assert (c["frag_bad_length"], len(r)) == (1, 0)


def _ip4_frags(payload: bytes, size: int, ident: int = 0x1234) -> list[bytes]:
    out = []
    for off in range(0, len(payload), size):
        more = off + size < len(payload)
        flags = (0x2000 if more else 0) | off // 8
        out.append(
            eth(
                0x0800,
                ip4("10.0.0.1", "10.0.0.2", 17, payload[off : off + size], ident=ident, frag=flags),
            )
        )
    return out


def test_ipv4_fragments_through_the_decoder():
    big = INVITE + b"a=" + b"x" * 3000 + b"\r\n"
    frames = _ip4_frags(udp(5060, 5060, big), 1480)
    c: Counter[str] = Counter()
    d = Decoder(c)
    # Reverse order, with an unrelated frame between, in two batches.
    first = d.decode(batch([frames[2], frames[1]], first_frame=1))
    assert first == []
    out = d.decode(
        batch([eth(0x0800, ip4("9.9.9.9", "8.8.8.8", 1, b"ping")), frames[0]], first_frame=3)
    )
    assert [(p.data, p.reassembled, p.frame_no, p.ts_ns) for p in out] == [(big, True, 4, T0 + 1)]
    assert c["frag_fragments"] == 3
    assert c["frag_reassembled"] == 1


def test_ipv6_fragments_through_the_decoder():
    big = INVITE + b"y" * 2000
    dgram = udp(5062, 5060, big)
    a, b = "2001:db8::1", "2001:db8::2"
    f1 = eth(
        0x86DD,
        ip6(
            a,
            b,
            0,
            bytes([44, 0]) + b"\x01\x04\x00\x00\x00\x00" + frag6(17, 0, True, 5) + dgram[:1232],
        ),
    )
    f2 = eth(0x86DD, ip6(a, b, 44, frag6(17, 1232, False, 5) + dgram[1232:]))
    c: Counter[str] = Counter()
    out = Decoder(c).decode(batch([f2, f1], first_frame=10))
    assert [(p.src_ip, p.src_port, p.data, p.reassembled, p.frame_no) for p in out] == [
        (a, 5062, big, True, 11)
    ]
    assert c["frag_reassembled"] == 1


def test_decoder_expires_stale_fragments():
    frames = _ip4_frags(udp(5060, 5060, INVITE * 4), 160)
    c: Counter[str] = Counter()
    d = Decoder(c, frag_timeout_s=5)
    d.decode(batch(frames[:1], ts=[T0]))
    d.expire(T0 + 6 * S)
    assert c["frag_timeout"] == 1
    d.decode(batch(frames[:1], ts=[T0 + 10 * S]))
    d.decode(batch(frames[1:2], ts=[T0 + 20 * S]))  # stale set dropped on arrival
    assert c["frag_timeout"] == 2
