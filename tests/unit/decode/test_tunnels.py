"""Tunnels: VXLAN, GTP-U, GRE, IP-in-IP; outer view recorded, inner SIP decoded."""

from __future__ import annotations

import struct

import pytest

from sipcm.decode.packet import Tunnel
from tests.unit.decode.frames import INVITE, eth, gtp, ip4, ip6, run, udp, udp4, vxlan

INNER4 = udp4("10.1.0.1", "10.1.0.2", 5060, 5060)
INNER6 = ip6("2001:db8::a", "2001:db8::b", 17, udp(5060, 5060, INVITE))


def outer_udp(dport: int, payload: bytes, sport: int = 49152) -> bytes:
    return eth(0x0800, ip4("192.0.2.1", "192.0.2.2", 17, udp(sport, dport, payload)))


def test_vxlan_default_port():
    out, counts = run([outer_udp(4789, vxlan(5001, eth(0x0800, INNER4, (12,))))])
    assert [(p.src_ip, p.dst_ip, p.vlan, p.data) for p in out] == [
        ("10.1.0.1", "10.1.0.2", 12, INVITE)
    ]
    assert out[0].tunnel == Tunnel("vxlan", "192.0.2.1", "192.0.2.2", 49152, 4789, 5001)
    assert counts == {"vxlan_decap": 1, "payloads": 1}


def test_vxlan_configured_port_and_outer_vlan():
    frame = eth(
        0x0800,
        ip4("192.0.2.1", "192.0.2.2", 17, udp(1, 8472, vxlan(7, eth(0x86DD, INNER6)))),
        (99,),
    )
    out, counts = run([frame], vxlan_ports=(8472,))
    assert counts == {"vxlan_decap": 1, "payloads": 1}
    assert [(p.vlan, p.ip_version, p.tunnel.vni, p.tunnel.dst_port) for p in out] == [
        (99, 6, 7, 8472)
    ]
    # On the default port set, 8472 is plain UDP and the VXLAN bytes are no SIP.
    assert run([frame], heuristic=True) == ([], {"not_sip_candidate": 1})


def test_vxlan_bad_and_short_headers():
    assert run([outer_udp(4789, b"\x00" * 8 + eth(0x0800, INNER4))]) == (
        [],
        {"vxlan_bad_header": 1},
    )
    assert run([outer_udp(4789, b"\x08\x00\x00")]) == ([], {"vxlan_truncated": 1})


def test_gtp_u_inner_ipv4_and_ipv6():
    frames = [outer_udp(2152, gtp(0xABCDEF01, INNER4), sport=2152), outer_udp(2152, gtp(3, INNER6))]
    out, counts = run(frames)
    assert [(p.ip_version, p.src_ip, p.data) for p in out] == [
        (4, "10.1.0.1", INVITE),
        (6, "2001:db8::a", INVITE),
    ]
    assert out[0].tunnel == Tunnel("gtp", "192.0.2.1", "192.0.2.2", 2152, 2152, 0xABCDEF01)
    assert counts == {"gtp_decap": 2, "payloads": 2}


def test_gtp_u_extension_headers():
    # PDU session container (2 bytes of content -> 4-byte ext), then a 6-byte one (8 bytes).
    frame = outer_udp(2152, gtp(9, INNER4, exts=(b"\x00\x01", b"\x10" * 6)))
    out, counts = run([frame])
    assert [p.data for p in out] == [INVITE]
    assert counts == {"gtp_decap": 1, "payloads": 1}


@pytest.mark.parametrize(
    ("payload", "counter"),
    [
        (b"\x30\xff\x00", "gtp_truncated"),
        (struct.pack("!BBHI", 0x30, 0x01, 0, 1), "gtp_not_tpdu"),  # echo request
        (struct.pack("!BBHI", 0x50, 0xFF, 0, 1), "gtp_bad_header"),  # version 2 (GTP-C)
        (struct.pack("!BBHI", 0x30, 0xFF, 100, 1) + INNER4[:20], "gtp_truncated"),
        (struct.pack("!BBHI", 0x34, 0xFF, 4, 1) + b"\x00\x00\x00\x85", "gtp_truncated"),
        (
            struct.pack("!BBHI", 0x34, 0xFF, 8, 1) + b"\x00\x00\x00\x85\x00\x00\x00\x00",
            "gtp_truncated",
        ),
        (struct.pack("!BBHI", 0x30, 0xFF, 4, 1) + b"\x11\x22\x33\x44", "gtp_not_ip"),
    ],
)
def test_gtp_u_malformed(payload, counter):
    assert run([outer_udp(2152, payload)]) == ([], {counter: 1})


def test_sip_port_wins_over_gtp_source_port():
    out, _ = run([outer_udp(5060, INVITE, sport=2152)])
    assert [(p.tunnel, p.data) for p in out] == [(None, INVITE)]


def gre(proto: int, payload: bytes, flags: int = 0, extra: bytes = b"") -> bytes:
    return struct.pack("!HH", flags, proto) + extra + payload


@pytest.mark.parametrize(
    ("hdr_flags", "extra"),
    [
        (0, b""),
        (0x8000, b"\x12\x34\x00\x00"),  # checksum
        (0x2000, b"\x00\x00\x00\x2a"),  # key
        (0xB000, b"\x00" * 12),  # checksum, key, sequence
    ],
)
def test_gre_ipv4_with_optional_fields(hdr_flags, extra):
    frame = eth(0x0800, ip4("192.0.2.1", "192.0.2.2", 47, gre(0x0800, INNER4, hdr_flags, extra)))
    out, counts = run([frame])
    assert [(p.src_ip, p.data) for p in out] == [("10.1.0.1", INVITE)]
    assert out[0].tunnel == Tunnel("gre", "192.0.2.1", "192.0.2.2")
    assert counts == {"gre_decap": 1, "payloads": 1}


def test_gre_transparent_ethernet_and_ipv6_and_pptp():
    teb = eth(0x0800, ip4("192.0.2.1", "192.0.2.2", 47, gre(0x6558, eth(0x0800, INNER4, (5,)))))
    v6 = eth(0x86DD, ip6("2001:db8::1", "2001:db8::2", 47, gre(0x86DD, INNER6)))
    pptp = eth(
        0x0800,
        ip4(
            "192.0.2.1",
            "192.0.2.2",
            47,
            gre(0x880B, b"\xff\x03\x00\x21" + INNER4, 0x3001, b"\x00" * 8),
        ),
    )
    out, counts = run([teb, v6, pptp])
    assert [(p.vlan, p.ip_version, p.tunnel.src_ip) for p in out] == [
        (5, 4, "192.0.2.1"),
        (None, 6, "2001:db8::1"),
        (None, 4, "192.0.2.1"),
    ]
    assert counts == {"gre_decap": 3, "payloads": 3}


def test_gre_unsupported_and_truncated():
    routed = eth(0x0800, ip4("1.1.1.1", "2.2.2.2", 47, gre(0x0800, INNER4, 0x4000)))
    short = eth(0x0800, ip4("1.1.1.1", "2.2.2.2", 47, b"\x20\x00\x08\x00\x00"))
    assert run([routed, short]) == ([], {"gre_unsupported": 1, "gre_truncated": 1})


@pytest.mark.parametrize(
    ("outer", "inner_ver"),
    [
        (ip4("192.0.2.1", "192.0.2.2", 4, INNER4), 4),  # 4in4
        (ip4("192.0.2.1", "192.0.2.2", 41, INNER6), 6),  # 6in4
        (ip6("2001:db8::1", "2001:db8::2", 4, INNER4), 4),  # 4in6
        (ip6("2001:db8::1", "2001:db8::2", 41, INNER6), 6),  # 6in6
    ],
)
def test_ip_in_ip(outer, inner_ver):
    etype = 0x0800 if outer[0] >> 4 == 4 else 0x86DD
    out, counts = run([eth(etype, outer)])
    assert [(p.ip_version, p.data) for p in out] == [(inner_ver, INVITE)]
    assert out[0].tunnel.kind == "ipip"
    assert out[0].tunnel.src_ip in ("192.0.2.1", "2001:db8::1")
    assert counts == {"ipip_decap": 1, "payloads": 1}


def test_nested_tunnels_record_the_outermost():
    inner_gre = ip4("172.16.0.1", "172.16.0.2", 47, gre(0x0800, INNER4))
    frame = outer_udp(4789, vxlan(77, eth(0x0800, inner_gre)))
    out, counts = run([frame])
    assert [p.tunnel for p in out] == [Tunnel("vxlan", "192.0.2.1", "192.0.2.2", 49152, 4789, 77)]
    assert counts == {"vxlan_decap": 1, "gre_decap": 1, "payloads": 1}


def test_nesting_is_bounded():
    pkt = INNER4
    for _ in range(40):
        pkt = ip4("192.0.2.1", "192.0.2.2", 4, pkt)
    out, counts = run([eth(0x0800, pkt)])
    assert out == []
    assert counts["too_deep"] == 1
    assert counts["ipip_decap"] == 24  # MAX_DEPTH IPv4 headers were entered, the 25th refused
