"""Community ID v1 against the specification's published baseline (corelight/community-id-spec,
baseline/baseline_deflt.json and baseline_seed1.json): every port-carrying flow of the baseline,
in both directions, with seed 0 and seed 1."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcm.events.community_id import _packed, community_id, ipv4_value

# (proto, saddr, sport, daddr, dport, seed 0, seed 1), copied from the spec's baseline files.
BASELINE = [
    (17, "192.168.1.52", 54585, "8.8.8.8", 53,
     "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="),
    (6, "128.232.110.120", 34855, "66.35.250.204", 80,
     "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="),
    (6, "2001:470:e5bf:dead:4957:2174:e82c:4887", 63943, "2607:f8b0:400c:c03::1a", 25,
     "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", "1:eJYTW6AOzFLlSUoESovMjnu7rMw="),
    (132, "192.168.170.8", 7, "192.168.170.56", 7,
     "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg="),
]  # fmt: skip


@pytest.mark.parametrize(("proto", "sip", "sport", "dip", "dport", "seed0", "seed1"), BASELINE)
def test_baseline_both_directions(proto, sip, sport, dip, dport, seed0, seed1) -> None:
    assert community_id(proto, sip, sport, dip, dport) == seed0
    assert community_id(proto, dip, dport, sip, sport) == seed0
    assert community_id(proto, sip, sport, dip, dport, seed=1) == seed1
    assert community_id(proto, dip, dport, sip, sport, seed=1) == seed1


def test_transport_names_are_the_protocol_numbers() -> None:
    assert community_id("udp", "8.8.8.8", 53, "192.168.1.52", 54585) == BASELINE[0][5]
    assert community_id("tcp", "66.35.250.204", 80, "128.232.110.120", 34855) == BASELINE[1][5]


def test_equal_addresses_order_by_port() -> None:
    """Same host on both ends (loopback): the endpoint with the smaller port comes first, so
    both directions still hash alike."""
    a = community_id("udp", "127.0.0.1", 5060, "127.0.0.1", 5080)
    assert a == community_id("udp", "127.0.0.1", 5080, "127.0.0.1", 5060)
    assert a != community_id("udp", "127.0.0.1", 5060, "127.0.0.1", 5081)


@pytest.mark.parametrize(
    "args",
    [
        ("icmp", "10.0.0.1", 8, "10.0.0.2", 0),  # no ports: not hashed here
        (1, "192.168.0.89", 8, "192.168.0.1", 0),
        ("udp", "10.0.0.1", 1, "::1", 2),  # mixed families
        ("udp", "not-an-ip", 1, "10.0.0.2", 2),
    ],
)
def test_unhashable_flows_are_none(args) -> None:
    assert community_id(*args) is None


def _ipaddress_packed(text: str) -> bytes | None:
    try:
        return ipaddress.ip_address(text).packed
    except ValueError:
        return None


def _fast_packed(text: str) -> bytes | None:
    try:
        return _packed(text)
    except ValueError:
        return None


@pytest.mark.parametrize(
    "text",
    [
        "192.0.2.1", "0.0.0.0", "255.255.255.255", "01.2.3.4", "1.2.3", "256.1.1.1", "1.2.3.4 ",
        "1.2.3.04", "1..2.3", "+1.2.3.4", "1.2.3.4\n", "\u0661.2.3.4", "1.2.3.2555", "1.2.3.-0",
        "::", "::1", "2001:db8::1", "2001:DB8::1", "2001:db8:0:0:0:0:0:1", "::ffff:192.0.2.1",
        "::192.0.2.1", "fe80::1%eth0", "1::", "[::1]", "", "example.com", "1:2:3:4:5:6:7::",
    ],
)  # fmt: skip
def test_address_bytes_are_those_of_ipaddress(text: str) -> None:
    assert _fast_packed(text) == _ipaddress_packed(text)


@given(st.one_of(st.ip_addresses(), st.ip_addresses().map(lambda a: a.exploded)))
def test_address_bytes_of_any_address_text(addr: object) -> None:
    text = str(addr)
    assert _fast_packed(text) == _ipaddress_packed(text)


def _ipaddress_value(text: str) -> int:
    try:
        addr = ipaddress.IPv4Address(text)
    except ValueError:
        return -1
    return int(addr) if str(addr) == text else -1


@given(
    st.one_of(
        st.ip_addresses(v=4).map(str),
        st.lists(st.integers(0, 999).map(str), min_size=1, max_size=5).map(".".join),
        st.text(alphabet="0123456789.\u0661 x", max_size=16),
    )
)
def test_ipv4_value_reads_exactly_canonical_dotted_quads(text: str) -> None:
    assert ipv4_value(text) == _ipaddress_value(text)
