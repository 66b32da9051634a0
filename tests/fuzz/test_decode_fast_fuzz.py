"""Property test: the decoder's inline Ethernet/IPv4/UDP path gives exactly what the layer
functions give (the same payloads, the same counters) for frames on and around that path."""

from __future__ import annotations

import struct
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from sipcm.decode.decoder import Decoder
from tests.unit.decode.frames import INVITE, OK, batch, eth, ip4, udp

PORTS = (5060, 5080, 4789, 2152, 40000)  # SIP, another SIP port, VXLAN, GTP-U, other
PAYLOADS = (INVITE, OK, b"\r\n\r\n", b"", b"\x00 \t", b"hello world", b"OPTIONS sip:x SIP/2.0\r\n")


def _usually(value, *others):
    """`value` most of the time, else one of `others` (frames stay near the common case)."""
    return st.one_of(st.just(value), st.just(value), st.just(value), st.sampled_from(others))


@st.composite
def frames(draw) -> bytes:
    """An Ethernet frame that is, or nearly is, one unfragmented IPv4 UDP datagram: each
    field is usually the common value and sometimes one that leaves the fast path."""
    payload = draw(st.sampled_from(PAYLOADS) | st.binary(max_size=40))
    ulen = draw(_usually(None, 0, 7, 8, 9, 8 + len(payload) + 1, 200))
    datagram = udp(draw(st.sampled_from(PORTS)), draw(st.sampled_from(PORTS)), payload, ulen)
    options = draw(_usually(b"", b"\x01\x01\x01\x00"))
    frag = draw(_usually(0, 0x4000, 0x2000, 0x0001, 0x6000))
    tot = draw(_usually(None, 0, 20, 27, 28, 20 + len(datagram) - 1, 20 + len(datagram) + 1))
    src = draw(st.sampled_from(["10.0.0.1", "192.0.2.200", "255.255.255.255"]))
    proto = draw(_usually(17, 6, 50))
    packet = ip4(src, "10.0.0.2", proto, datagram, frag=frag, options=options, tot=tot)
    packet = bytes([draw(_usually(packet[0], 0x46, 0x44, 0x65))]) + packet[1:]
    frame = eth(draw(_usually(0x0800, 0x86DD, 0x0806)), packet)
    frame += draw(_usually(b"", b"\x00" * 6, b"\r\n"))  # link-layer padding
    return frame[: draw(_usually(len(frame), 13, 41, 42, len(frame) - 1))]


@settings(max_examples=600, deadline=None)
@given(st.lists(frames(), min_size=1, max_size=6), st.booleans(), st.integers(0, 2))
def test_fast_path_agrees_with_the_layer_functions(frame_list, heuristic, direction) -> None:
    results = []
    for fast in (True, False):
        c: Counter[str] = Counter()
        d = Decoder(c, sip_ports=(5060, 5080), heuristic=heuristic, fast_path=fast)
        out = d.decode(batch(frame_list, direction=direction, ifindex=3))
        results.append((out, {k: v for k, v in c.items() if v}))
    assert results[0] == results[1]


def test_fast_path_is_taken_and_gives_the_payload() -> None:
    """The common frame: one payload, with every field as the layer functions set them."""
    frame = eth(0x0800, ip4("192.0.2.1", "10.0.0.2", 17, udp(5062, 5060, INVITE)))
    c: Counter[str] = Counter()
    (p,) = Decoder(c).decode(batch([frame], first_frame=9))
    assert (p.data, p.src_ip, p.dst_ip, p.src_port, p.dst_port) == (
        INVITE,
        "192.0.2.1",
        "10.0.0.2",
        5062,
        5060,
    )
    assert (p.transport, p.ip_version, p.on_sip_port, p.frame_no, p.tunnel) == (
        "udp",
        4,
        True,
        9,
        None,
    )
    assert c == {"frames": 1, "payloads": 1}
    assert struct.unpack("!H", frame[12:14]) == (0x0800,)
