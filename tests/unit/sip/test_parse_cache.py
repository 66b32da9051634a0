"""The parser's header-value caches: same values as the uncached functions, bounded."""

from __future__ import annotations

from sipcm.sip import nameaddr, via
from sipcm.sip.nameaddr import cached_name_addr, cached_uri, parse_name_addr, parse_uri
from sipcm.sip.parser import parse
from sipcm.sip.via import cached_via, parse_via

FROM = '"Alice" <sip:alice@example.com;transport=udp>;tag=ft1;x=y'


def _msg(status: str, from_: str) -> bytes:
    return (
        f"SIP/2.0 {status}\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKc1;rport\r\n"
        f"From: {from_}\r\nTo: <sip:bob@example.com>;tag=tt\r\nCall-ID: c1@x\r\n"
        "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_cached_values_equal_uncached_and_are_reused_across_messages() -> None:
    a, b = parse(_msg("100 Trying", FROM)), parse(_msg("200 OK", FROM))
    assert a.from_ == b.from_ == parse_name_addr(FROM)
    assert a.from_.uri.params == {"transport": "udp"}
    assert a.from_.params == {"x": "y"}
    assert a.from_ is b.from_  # parsed once: a shared, read-only value
    assert a.vias[0] is b.vias[0]
    assert a.vias[0].branch == "z9hG4bKc1"
    assert cached_uri("sip:bob@example.com") == parse_uri("sip:bob@example.com")
    assert cached_via("SIP/2.0/TCP h:5;branch=z") == parse_via("SIP/2.0/TCP h:5;branch=z")
    assert cached_name_addr("<sip:bad host>") is None


def test_long_texts_bypass_the_cache_and_entries_are_bounded() -> None:
    long_from = "<sip:" + "a" * nameaddr.CACHE_MAX_TEXT + "@example.com>;tag=1"
    before = len(nameaddr._name_addrs)
    first, second = cached_name_addr(long_from), cached_name_addr(long_from)
    assert first == second
    assert first is not second
    assert first.uri.user == "a" * nameaddr.CACHE_MAX_TEXT
    assert len(nameaddr._name_addrs) == before
    for i in range(3 * nameaddr.CACHE_SIZE + 10):
        cached_via(f"SIP/2.0/UDP h;branch=z9hG4bK{i}")
    assert nameaddr.CACHE_SIZE < len(via._vias) <= 2 * nameaddr.CACHE_SIZE  # two generations


def test_cseq_values_cached_and_checked() -> None:
    from sipcm.sip.parser import _cseq

    assert _cseq("1 invite") == (1, "INVITE")
    assert _cseq("0001  BYE") == (1, "BYE")
    assert _cseq("4294967296 BYE") is None
    assert _cseq("1 INVITE x") is None
    assert _cseq("\u00b2 BYE") is None
    long_cseq = "0" * 100 + "7 OPTIONS"  # longer than the cache takes: parsed directly
    m = parse(_msg("200 OK", FROM).replace(b"CSeq: 1 INVITE", f"CSeq: {long_cseq}".encode()))
    assert (m.cseq, m.cseq_method) == (7, "OPTIONS")
