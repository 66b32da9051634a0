"""Property tests: fragment reassembly restores the original; the decoder survives any bytes."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from sipcm.capture import records as rec
from sipcm.decode.decoder import Decoder
from sipcm.decode.frag import FragmentReassembler
from sipcm.decode.stream import TcpReassembler
from tests.unit.decode.frames import INVITE, batch, eth, gtp, ip4, ip6, tcp, udp, udp4, vxlan

KEY = (4, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", 17, 1)


@st.composite
def fragment_sets(draw):
    """A datagram, its fragments (8-byte aligned) in a random order with some duplicates."""
    unit = draw(st.integers(1, 64)) * 8
    data = draw(st.binary(min_size=unit + 1, max_size=4000))
    parts = [(o, o + unit < len(data), data[o : o + unit]) for o in range(0, len(data), unit)]
    # Duplicates of any fragment but the first: a set started by a late duplicate never
    # completes, so exactly one datagram comes out.
    dups = draw(st.lists(st.sampled_from(parts[1:]), max_size=4))
    order = draw(st.permutations(parts + dups))
    return data, order


@settings(max_examples=300, deadline=None)
@given(fragment_sets())
def test_any_order_reassembles_the_original(case):
    data, order = case
    c: Counter[str] = Counter()
    r = FragmentReassembler(c)
    done = [g for g in (r.add(KEY, o, m, d, 0) for o, m, d in order) if g is not None]
    assert done == [data]
    assert c["frag_reassembled"] == 1
    assert c["frag_overlap"] == 0


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=1, max_size=2000),
    st.lists(st.tuples(st.integers(0, 2100), st.integers(1, 300), st.booleans()), max_size=20),
)
def test_random_overlapping_fragments_never_raise(seed, frags):
    c: Counter[str] = Counter()
    r = FragmentReassembler(c, max_datagrams=2, max_bytes=2048)
    for off, ln, more in frags:
        got = r.add(KEY, off, more, (seed * (ln // len(seed) + 1))[:ln], 0)
        assert got is None or isinstance(got, bytes)
    assert len(r) <= 2


@settings(max_examples=150, deadline=None)
@given(st.permutations(range(5)), st.integers(0, 0xFFFF))
def test_ipv4_fragments_in_any_order_through_the_decoder(order, ident):
    body = INVITE + b"z" * 3000
    dgram = udp(5060, 5060, body)
    frames = []
    for i, off in enumerate(range(0, len(dgram), 680)):
        more = off + 680 < len(dgram)
        flags = (0x2000 if more else 0) | off // 8
        frames.append(
            eth(
                0x0800,
                ip4("10.0.0.1", "10.0.0.2", 17, dgram[off : off + 680], ident=ident, frag=flags),
            )
        )
        assert i < 5
    c: Counter[str] = Counter()
    out = Decoder(c).decode(batch([frames[i] for i in order]))
    assert [(p.data, p.reassembled) for p in out] == [(body, True)]


LINKTYPES = [
    rec.LINKTYPE_ETHERNET,
    rec.LINKTYPE_LINUX_SLL,
    rec.LINKTYPE_LINUX_SLL2,
    rec.LINKTYPE_NULL,
    rec.LINKTYPE_LOOP,
    rec.LINKTYPE_RAW,
    rec.LINKTYPE_IPV4,
    rec.LINKTYPE_IPV6,
]


def _decoder() -> tuple[Decoder, Counter[str]]:
    c: Counter[str] = Counter()
    return Decoder(c, tcp=TcpReassembler(Counter()), frag_max_datagrams=8), c


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8), st.sampled_from(LINKTYPES))
def test_random_bytes_never_raise(frames, linktype):
    d, c = _decoder()
    out = d.decode(batch(frames, linktype))
    assert all(isinstance(p.data, bytes) and p.data for p in out)
    assert c["decode_error"] == 0


SEEDS = [
    eth(0x0800, udp4()),
    eth(0x0800, udp4(), (5, 6), (0x88A8, 0x8100)),
    eth(
        0x86DD,
        ip6(
            "2001:db8::1",
            "2001:db8::2",
            0,
            bytes([44, 0])
            + b"\x01\x04"
            + b"\x00" * 4
            + bytes([17, 0, 0, 1])
            + b"\x00\x00\x00\x09"
            + udp(5060, 5060, INVITE),
        ),
    ),
    eth(0x0800, ip4("1.1.1.1", "2.2.2.2", 17, udp(1, 4789, vxlan(3, eth(0x0800, udp4()))))),
    eth(
        0x0800, ip4("1.1.1.1", "2.2.2.2", 17, udp(2152, 2152, gtp(1, udp4(), exts=(b"\x00\x01",))))
    ),
    eth(
        0x0800,
        ip4("1.1.1.1", "2.2.2.2", 47, b"\xb0\x00\x65\x58" + b"\x00" * 12 + eth(0x0800, udp4())),
    ),
    eth(
        0x0800,
        ip4(
            "1.1.1.1", "2.2.2.2", 41, ip6("2001:db8::1", "2001:db8::2", 6, tcp(1, 5060, 5, INVITE))
        ),
    ),
    eth(0x8864, b"\x11\x00\x00\x01\x00\x00\x00\x21" + udp4()),
    eth(0x0800, ip4("1.1.1.1", "2.2.2.2", 17, udp(5060, 5060, INVITE[:600]), frag=0x2000)),
]


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
    st.integers(0, 400),
)
def test_mutated_frames_never_raise(seed, flips, cut):
    frame = bytearray(seed)
    for pos, val in flips:
        if pos < len(frame):
            frame[pos] = val
    d, c = _decoder()
    d.decode(batch([bytes(frame[: max(0, len(frame) - cut)]), bytes(frame)]))
    assert c["decode_error"] == 0
