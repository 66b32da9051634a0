"""Link layers: every supported link type, VLAN/QinQ tags, PPPoE, and their truncations."""

from __future__ import annotations

import struct

import pytest

from sipcm.capture import records as rec
from tests.unit.decode.frames import INVITE, eth, ip4, ip6, run, udp, udp4

V6 = ip6("2001:db8::1", "2001:db8::2", 17, udp(5060, 5060, INVITE))


def _one(frames, linktype=rec.LINKTYPE_ETHERNET):
    out, counts = run(frames, linktype)
    assert len(out) == 1, counts
    return out[0], counts


def test_ethernet_ipv4_udp_fields():
    p, counts = _one([eth(0x0800, udp4("192.0.2.1", "192.0.2.2", 5062, 5060))])
    assert (p.src_ip, p.dst_ip, p.src_port, p.dst_port) == ("192.0.2.1", "192.0.2.2", 5062, 5060)
    assert (p.transport, p.ip_version, p.on_sip_port, p.data) == ("udp", 4, True, INVITE)
    assert (p.vlan, p.tunnel, p.reassembled, p.frame_no) == (None, None, False, 1)
    assert counts == {"payloads": 1}


def test_ethernet_padding_is_trimmed_by_ip_length():
    # A minimum-size frame pads after the IP packet; the payload must not include the padding.
    short = udp4(payload=b"SIP/2.0 200 OK\r\n\r\n")
    p, _ = _one([eth(0x0800, short + b"\x00" * 30)])
    assert p.data == b"SIP/2.0 200 OK\r\n\r\n"


@pytest.mark.parametrize(
    ("vlans", "tpids", "expect"),
    [
        ((100,), (), 100),
        ((0x2000 | 300,), (), 300),  # priority bits are not part of the id
        ((10, 20), (0x88A8, 0x8100), 10),  # 802.1ad QinQ: outermost id
        ((10, 20), (0x9100, 0x8100), 10),
        ((7, 8, 9), (0x88A8, 0x88A8, 0x8100), 7),  # three tags
    ],
)
def test_vlan_tags(vlans, tpids, expect):
    p, _ = _one([eth(0x0800, udp4(), vlans, tpids)])
    assert p.vlan == expect
    assert p.data == INVITE


def test_vlan_ipv6():
    p, _ = _one([eth(0x86DD, V6, (42,))])
    assert (p.vlan, p.ip_version, p.src_ip) == (42, 6, "2001:db8::1")


def test_pppoe_session_ipv4_and_ipv6():
    def pppoe(proto: int, pkt: bytes) -> bytes:
        return struct.pack("!BBHHH", 0x11, 0, 0x1234, len(pkt) + 2, proto) + pkt

    out, counts = run([eth(0x8864, pppoe(0x0021, udp4())), eth(0x8864, pppoe(0x0057, V6))])
    assert [(p.ip_version, p.data) for p in out] == [(4, INVITE), (6, INVITE)]
    assert counts == {"payloads": 2}
    out, counts = run([eth(0x8864, pppoe(0xC021, b"\x01" * 10))])  # LCP
    assert (out, counts) == ([], {"ppp_other": 1})
    out, counts = run([eth(0x8864, struct.pack("!BBHHH", 0x11, 0x09, 0, 2, 0))])  # discovery code
    assert (out, counts) == ([], {"pppoe_bad_header": 1})


def test_linux_sll_and_sll2():
    sll = struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, 0x0800) + udp4()
    sll2 = struct.pack("!HHIHBB8s", 0x86DD, 0, 3, 1, 4, 6, b"\x02" * 8) + V6
    p, _ = _one([sll], rec.LINKTYPE_LINUX_SLL)
    assert (p.ip_version, p.data) == (4, INVITE)
    p, _ = _one([sll2], rec.LINKTYPE_LINUX_SLL2)
    assert (p.ip_version, p.dst_ip) == (6, "2001:db8::2")


@pytest.mark.parametrize(
    ("hdr", "pkt", "ver"),
    [
        (struct.pack("<I", 2), udp4(), 4),  # little-endian capturing host
        (struct.pack(">I", 2), udp4(), 4),  # big-endian capturing host
        (struct.pack("<I", 30), V6, 6),  # macOS AF_INET6
        (struct.pack("<I", 24), V6, 6),  # NetBSD/OpenBSD AF_INET6
        (struct.pack("<I", 10), V6, 6),  # Linux AF_INET6
    ],
)
def test_null_link(hdr, pkt, ver):
    p, _ = _one([hdr + pkt], rec.LINKTYPE_NULL)
    assert p.ip_version == ver


def test_loop_raw_ipv4_ipv6_links():
    assert _one([struct.pack(">I", 2) + udp4()], rec.LINKTYPE_LOOP)[0].ip_version == 4
    assert _one([udp4()], rec.LINKTYPE_RAW)[0].ip_version == 4
    assert _one([V6], rec.LINKTYPE_RAW)[0].ip_version == 6
    assert _one([udp4()], rec.LINKTYPE_IPV4)[0].ip_version == 4
    assert _one([V6], rec.LINKTYPE_IPV6)[0].ip_version == 6


def test_unsupported_link_type_and_family():
    assert run([udp4(), udp4()], 147) == ([], {"link_unsupported": 2})
    assert run([struct.pack("<I", 7) + udp4()], rec.LINKTYPE_NULL) == ([], {"link_other_family": 1})
    assert run([b"\x50" + udp4()[1:]], rec.LINKTYPE_RAW) == ([], {"ip_bad_version": 1})


def test_non_ip_ethertypes_are_counted():
    arp = eth(0x0806, b"\x00" * 28)
    llc = eth(0x0026, b"\x42" * 38)  # 802.3 length field
    assert run([arp, llc]) == ([], {"ethertype_other": 2})


@pytest.mark.parametrize(
    ("frame", "linktype", "counter"),
    [
        (eth(0x0800, udp4())[:13], rec.LINKTYPE_ETHERNET, "eth_truncated"),
        (eth(0x0800, b"", (5,))[:-2] + b"\x81\x00\x00", rec.LINKTYPE_ETHERNET, "vlan_truncated"),
        (eth(0x8864, b"\x11\x00\x00"), rec.LINKTYPE_ETHERNET, "pppoe_truncated"),
        (eth(0x8864, struct.pack("!BBHHH", 0x11, 0, 1, 40, 0x21)), 1, "pppoe_truncated"),
        (b"\x00" * 15, rec.LINKTYPE_LINUX_SLL, "link_truncated"),
        (b"\x00" * 19, rec.LINKTYPE_LINUX_SLL2, "link_truncated"),
        (b"\x02\x00", rec.LINKTYPE_NULL, "link_truncated"),
        (b"\x00\x00\x02", rec.LINKTYPE_LOOP, "link_truncated"),
        (b"", rec.LINKTYPE_RAW, "link_truncated"),
    ],
)
def test_link_truncation(frame, linktype, counter):
    assert run([frame], linktype) == ([], {counter: 1})


def test_direction_ifindex_and_frame_numbers_come_from_the_batch():
    from collections import Counter

    from sipcm.decode.decoder import Decoder
    from tests.unit.decode.frames import batch

    d = Decoder(Counter())
    frames = [
        eth(0x0800, udp4()),
        eth(0x0800, ip4("10.0.0.1", "10.0.0.2", 1, b"x")),
        eth(0x0800, udp4(), (3,)),
    ]
    out = d.decode(batch(frames, first_frame=41, ifindex=7, direction=rec.DIR_EGRESS))
    assert [(p.frame_no, p.ifindex, p.direction, p.vlan) for p in out] == [
        (41, 7, "egress", None),
        (43, 7, "egress", 3),
    ]
    live = d.decode(batch(frames[:1], first_frame=0, direction=rec.DIR_INGRESS))
    assert [(p.frame_no, p.direction) for p in live] == [(0, "ingress")]
