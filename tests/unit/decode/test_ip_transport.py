"""IPv4, IPv6 extension headers, UDP and TCP headers: fields, candidates and truncations."""

from __future__ import annotations

import struct

import pytest

from tests.unit.decode.frames import INVITE, OK, eth, ext8, frag6, ip4, ip6, run, tcp, udp, udp4

A6, B6 = "2001:db8::1", "2001:db8::2"


def e4(pkt: bytes) -> bytes:
    return eth(0x0800, pkt)


def e6(pkt: bytes) -> bytes:
    return eth(0x86DD, pkt)


def test_ipv4_options_and_tso_zero_length():
    opts = b"\x94\x04\x00\x00"  # router alert, 4 bytes -> IHL 6
    out, counts = run([e4(ip4("10.0.0.1", "10.0.0.2", 17, udp(5060, 5060, INVITE), options=opts))])
    assert ([p.data for p in out], counts) == ([INVITE], {"payloads": 1})
    out, _ = run([e4(ip4("10.0.0.1", "10.0.0.2", 17, udp(5060, 5060, INVITE), tot=0))])
    assert [p.data for p in out] == [INVITE]


@pytest.mark.parametrize(
    ("chain", "first_nh"),
    [
        (ext8(17), 0),  # hop-by-hop
        (ext8(17, 14), 43),  # routing, 16 bytes
        (ext8(17), 60),  # destination options
        (ext8(60) + ext8(43) + ext8(17, 22), 0),  # hop-by-hop, dest opts, routing (24 bytes)
        (bytes([17, 1]) + b"\x00" * 10, 51),  # AH: (1 + 2) * 4 = 12 bytes
        (frag6(17, 0, False, 9), 44),  # atomic fragment (RFC 6946)
    ],
)
def test_ipv6_extension_header_walk(chain, first_nh):
    out, counts = run([e6(ip6(A6, B6, first_nh, chain + udp(5060, 5061, INVITE)))])
    assert [(p.src_ip, p.dst_ip, p.dst_port, p.data) for p in out] == [(A6, B6, 5061, INVITE)]
    assert counts == {"payloads": 1}


def test_ipv6_stops_at_esp_and_no_next_header():
    assert run([e6(ip6(A6, B6, 50, b"\x00" * 40))]) == ([], {"ip6_esp": 1})
    assert run([e6(ip6(A6, B6, 0, ext8(59)))]) == ([], {"ip6_no_next": 1})
    assert run([e6(ip6(A6, B6, 58, b"\x80\x00" + b"\x00" * 6))]) == ([], {"ip_proto_other": 1})


@pytest.mark.parametrize(
    ("frame", "counter"),
    [
        (e4(udp4()[:19]), "ip4_truncated"),
        (e4(b"\x44" + udp4()[1:]), "ip4_bad_header"),  # IHL 4 < 5
        (e4(b"\x65" + udp4()[1:]), "ip4_bad_header"),  # version 6 in an IPv4 ethertype
        (e4(ip4("1.1.1.1", "2.2.2.2", 17, udp(1, 5060, INVITE), tot=12)), "ip4_bad_header"),
        (e4(udp4()[:-1]), "ip4_truncated"),  # total length past the captured bytes
        (e6(ip6(A6, B6, 17, udp(1, 5060, INVITE))[:39]), "ip6_truncated"),
        (e6(b"\x40" + ip6(A6, B6, 17, udp(1, 5060, INVITE))[1:]), "ip6_bad_header"),
        (e6(ip6(A6, B6, 17, udp(1, 5060, INVITE))[:-1]), "ip6_truncated"),
        (e6(ip6(A6, B6, 0, b"\x11\x00\x00")), "ip6_ext_truncated"),
        (e6(ip6(A6, B6, 0, bytes([17, 3]) + b"\x00" * 14)), "ip6_ext_truncated"),
        (e6(ip6(A6, B6, 44, b"\x11\x00\x00\x01")), "ip6_ext_truncated"),
        (e4(ip4("1.1.1.1", "2.2.2.2", 17, b"\x13\xc4\x13\xc4")), "udp_truncated"),
        (e4(ip4("1.1.1.1", "2.2.2.2", 17, udp(5060, 5060, INVITE, length=7))), "udp_bad_length"),
        (e4(ip4("1.1.1.1", "2.2.2.2", 17, udp(5060, 5060, INVITE, length=999))), "udp_truncated"),
        (e4(ip4("1.1.1.1", "2.2.2.2", 17, udp(5060, 5060, b""))), "udp_empty"),
        (e4(ip4("1.1.1.1", "2.2.2.2", 6, tcp(5060, 5060, 1, b"")[:19])), "tcp_truncated"),
        (e4(ip4("1.1.1.1", "2.2.2.2", 6, tcp(5060, 5060, 1, INVITE, doff=4))), "tcp_bad_header"),
        (e4(ip4("1.1.1.1", "2.2.2.2", 6, tcp(5060, 5060, 1, b"", doff=8))), "tcp_truncated"),
    ],
)
def test_truncation_and_bad_headers_are_counted(frame, counter):
    assert run([frame]) == ([], {counter: 1})


def test_ipv4_ihl6_with_short_total_length():
    # Header claims 24 bytes but total length 20: bad header, never an exception.
    pkt = ip4("1.1.1.1", "2.2.2.2", 17, b"\x00" * 4 + udp(5060, 5060, INVITE), tot=20)
    assert run([e4(b"\x46" + pkt[1:])]) == ([], {"ip4_bad_header": 1})


def test_udp_length_shorter_than_ip_payload_trims():
    pkt = ip4("1.1.1.1", "2.2.2.2", 17, udp(5060, 5060, INVITE, length=8 + 10) + INVITE[10:])
    assert [p.data for p in run([e4(pkt)])[0]] == [INVITE[:10]]


def test_sip_candidates_by_port_and_heuristic():
    frames = [
        e4(udp4(sport=40000, dport=5060, payload=b"\x80\x00rtp-ish")),  # on port: kept
        e4(udp4(sport=40000, dport=15060, payload=INVITE)),  # request line: kept
        e4(udp4(sport=15060, dport=40000, payload=OK)),  # status line: kept
        e4(udp4(sport=40000, dport=40002, payload=b"\x80\x00" * 20)),  # RTP: dropped
        e4(udp4(sport=40000, dport=40002, payload=b"GET / HTTP/1.1\r\n\r\n")),  # dropped
        e4(udp4(sport=40000, dport=5060, payload=b"\r\n\r\n")),  # keep-alive: dropped
        e4(udp4(sport=40000, dport=5060, payload=b"\x00\x00\x00\x00")),  # keep-alive: dropped
    ]
    out, counts = run(frames)
    assert [(p.dst_port, p.on_sip_port) for p in out] == [
        (5060, True),
        (15060, False),
        (40000, False),
    ]
    assert counts == {"payloads": 3, "not_sip_candidate": 2, "udp_keepalive": 2}
    out, counts = run(frames, heuristic=False)
    assert [p.dst_port for p in out] == [5060]
    out, counts = run(frames, sip_ports=(15060,))
    assert [(p.dst_port, p.on_sip_port) for p in out] == [(15060, True), (40000, True)]


def test_set_ports_changes_candidates():
    from collections import Counter

    from sipcm.decode.decoder import Decoder
    from tests.unit.decode.frames import batch

    d = Decoder(Counter(), heuristic=False)
    pkt = udp4(sport=40000, dport=5080)
    frames = [e4(pkt), eth(0x8100, b"\x00\x01\x08\x00" + pkt)]
    assert d.decode(batch(frames)) == []
    d.set_ports((5080,), (4789,))
    assert [p.vlan for p in d.decode(batch(frames))] == [None, 1]


def test_udp_over_ipv6_general_path_fields():
    out, _ = run([e6(ip6(A6, B6, 17, udp(5070, 5060, OK)))])
    assert [(p.src_ip, p.src_port, p.ip_version, p.transport, p.data) for p in out] == [
        (A6, 5070, 6, "udp", OK)
    ]


def test_tcp_without_reassembler_gives_each_candidate_segment():
    frames = [
        e4(
            ip4(
                "10.0.0.1",
                "10.0.0.2",
                6,
                tcp(40000, 5060, 100, INVITE, doff=6, options=b"\x02\x04\x05\xb4"),
            )
        ),
        e4(ip4("10.0.0.1", "10.0.0.2", 6, tcp(40000, 5060, 200, b"", flags=0x10))),
        e4(ip4("10.0.0.1", "10.0.0.2", 6, tcp(40000, 8080, 1, b"GET / HTTP/1.1\r\n\r\n"))),
    ]
    out, counts = run(frames)
    assert [(p.transport, p.data, p.reassembled) for p in out] == [("tcp", INVITE, False)]
    assert counts == {"payloads": 1, "not_sip_candidate": 1}


def test_heuristic_request_line_shapes():
    from sipcm.decode.detect import looks_sip

    assert looks_sip(b"INVITE sip:a@b SIP/2.0\r\n")
    assert looks_sip(b"SUBSCRIBE sip:a@b SIP/2.0\n")
    assert looks_sip(b"FOOBAR tel:+1 sip/2.0\r\n")  # extension method, any case
    assert looks_sip(b"xxSIP/2.0 180 Ringing\r\n", 2)
    assert looks_sip(b"OPTIONS sip:a SIP/2.0")  # start line cut at the segment end
    assert not looks_sip(b"SIP/2.0 99 Bad\r\n")
    assert not looks_sip(b"INVITE sip:a@b HTTP/1.1\r\n")
    assert not looks_sip(b"INVITE  sip:a SIP/2.0\r\n")
    assert not looks_sip(b"")
    assert not looks_sip(struct.pack("!I", 0x80000000))
