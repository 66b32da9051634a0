"""URIs, name-addrs, parameters and comma lists: exact fields from hand-read inputs."""

from __future__ import annotations

import pytest

from sipcm.sip.message import NameAddr, Uri
from sipcm.sip.nameaddr import (
    name_addr_general,
    parse_hostport,
    parse_name_addr,
    parse_params,
    parse_uri,
    split_values,
    uri_general,
)


def test_sip_uri_all_parts() -> None:
    u = parse_uri("sip:alice@Atlanta.Example.COM:5061;transport=TCP;lr?subject=x")
    assert u == Uri(
        "sip:alice@Atlanta.Example.COM:5061;transport=TCP;lr?subject=x",
        "sip",
        "alice",
        "atlanta.example.com",
        5061,
        {"transport": "TCP", "lr": ""},
    )


def test_sips_upper_case_scheme_and_no_user() -> None:
    u = parse_uri("SIPS:proxy.example.org")
    assert (u.scheme, u.user, u.host, u.port, u.params) == (
        "sips",
        None,
        "proxy.example.org",
        None,
        {},
    )


def test_password_is_dropped_everywhere() -> None:
    u = parse_uri("sip:bob:s3cret@biloxi.com:5060;transport=udp")
    assert u == Uri(
        "sip:bob@biloxi.com:5060;transport=udp",
        "sip",
        "bob",
        "biloxi.com",
        5060,
        {"transport": "udp"},
    )
    assert "s3cret" not in repr(parse_name_addr('"Bob" <sip:bob:s3cret@biloxi.com>;tag=1'))


def test_ipv6_host_with_and_without_port() -> None:
    u = parse_uri("sip:carol@[2001:DB8::10]:5070;maddr=x")
    assert (u.user, u.host, u.port, u.params) == ("carol", "2001:db8::10", 5070, {"maddr": "x"})
    u = parse_uri("sip:[::1]")
    assert (u.user, u.host, u.port) == (None, "::1", None)
    assert parse_uri("sip:[::1]x") is None
    assert parse_uri("sip:[::1") is None


def test_user_with_phone_context_semicolon() -> None:
    u = parse_uri("sip:+1-212-555-1212;phone-context=example.com@gw.example.com;user=phone")
    assert u.user == "+1-212-555-1212;phone-context=example.com"
    assert (u.host, u.params) == ("gw.example.com", {"user": "phone"})


def test_tel_uri() -> None:
    u = parse_uri("tel:+1-201-555-0123;phone-context=+1;ext=22")
    assert u == Uri(
        "tel:+1-201-555-0123;phone-context=+1;ext=22",
        "tel",
        "+1-201-555-0123",
        "",
        None,
        {"phone-context": "+1", "ext": "22"},
    )
    assert parse_uri("tel:") is None
    assert parse_uri("tel:;x=1") is None


def test_other_scheme_kept_with_original_only() -> None:
    assert parse_uri("urn:service:sos") == Uri("urn:service:sos", "urn")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip",
        "sip:",
        "nocolon",
        "1sip:a@b",
        "sip:a@",
        "sip:a@b:70000",
        "sip:a@b:123456",
        "sip:a@b c",
        "sip:a@<b>",
        "sip:a@b:5x",
    ],
)
def test_bad_uris(text: str) -> None:
    assert parse_uri(text) is None


def test_unbracketed_ipv6_is_the_whole_host() -> None:
    assert parse_hostport("2001:db8::1") == ("2001:db8::1", None)
    assert parse_hostport("host:5060:1") is None
    assert parse_hostport("h:") == ("h", None)


def test_quoted_display_with_escapes_comma_and_angle() -> None:
    na = parse_name_addr(r'"Smith, \"Bob\" <boss>" <sip:bob@b.example>;tag=a6c85cf;x=1')
    assert na.display == 'Smith, "Bob" <boss>'
    assert na.uri.original == "sip:bob@b.example"
    assert (na.tag, na.params) == ("a6c85cf", {"x": "1"})


def test_unquoted_display_and_params() -> None:
    na = parse_name_addr("Bob Smith  <sip:bob@b.example;transport=udp> ;expires=60;q=0.7")
    assert na.display == "Bob Smith"
    assert na.uri.params == {"transport": "udp"}
    assert na.params == {"expires": "60", "q": "0.7"}
    assert (na.expires, na.q, na.tag) == (60, 0.7, None)


def test_addr_spec_params_are_header_params() -> None:
    # RFC 3261 20.10: without <> the parameters belong to the header, not to the URI.
    na = parse_name_addr("sip:alice@atlanta.example;tag=88sja8x;expires=0")
    assert na == NameAddr(
        Uri("sip:alice@atlanta.example", "sip", "alice", "atlanta.example"),
        None,
        "88sja8x",
        {"expires": "0"},
    )
    assert na.expires == 0


def test_tag_not_first_and_tag_given_twice() -> None:
    assert parse_name_addr("<sip:a@b>;x=1;tag=t2").tag == "t2"
    na = parse_name_addr("<sip:a@b>;tag=t1;tag=t2")
    assert (na.tag, na.params) == ("t1", {})


def test_backslash_quoted_outside_quotes_as_in_corpus() -> None:
    # suricata-verify sip-compact-form: f: \"arik\" <sip:816666@voip.brurjula.net>;tag=6433ef9
    na = parse_name_addr(r"\"arik\" <sip:816666@voip.brurjula.net>;tag=6433ef9")
    assert (na.display, na.uri.user, na.uri.host, na.tag) == (
        r"\"arik\"",
        "816666",
        "voip.brurjula.net",
        "6433ef9",
    )


def test_tel_and_ipv6_name_addrs() -> None:
    na = parse_name_addr("<tel:+4930123456>;tag=z")
    assert (na.uri.scheme, na.uri.user, na.uri.host, na.tag) == ("tel", "+4930123456", "", "z")
    na = parse_name_addr('"v6" <sip:u@[fe80::1]:5062>')
    assert (na.display, na.uri.host, na.uri.port) == ("v6", "fe80::1", 5062)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        '"unterminated <sip:a@b>',
        '"name" sip:a@b',
        "<sip:a@b",
        "<sip:a@b>junk",
        "<>",
        "<notauri>",
        "Bob <sip:a@:1>",
    ],
)
def test_bad_name_addrs(text: str) -> None:
    assert parse_name_addr(text) is None


def test_expires_and_q_helpers_reject_odd_values() -> None:
    def na(p: str) -> NameAddr:
        return parse_name_addr("<sip:a@b>;" + p)

    assert na("expires=²").expires is None  # isdigit() would accept it, int() would not
    assert na("expires=" + "9" * 5000).expires is None  # int() limits the number of digits
    assert na("expires=-1").expires is None
    assert (na("q=1").q, na("q=0.001").q, na("q=1.000").q) == (1.0, 0.001, 1.0)
    assert (na("q=1.5").q, na("q=abc").q, na("q=.5").q, na("q=0.1234").q) == (None,) * 4


def test_params_flags_quotes_case_and_first_wins() -> None:
    assert parse_params('Expires=60;LR;x="a;b";expires=1; y = 2 ') == {
        "expires": "60",
        "lr": "",
        "x": "a;b",
        "y": "2",
    }
    assert parse_params("") == {}
    assert parse_params("=1") == {}
    assert parse_params("tag=abc") == {"tag": "abc"}


def test_split_values_respects_quotes_brackets_and_escapes() -> None:
    text = '"Doe, J" <sip:j@x;a=1,2>, <sip:k@y>,sip:z@w ,, "q\\",x" <sip:q@v>'
    assert split_values(text) == [
        '"Doe, J" <sip:j@x;a=1,2>',
        "<sip:k@y>",
        "sip:z@w",
        '"q\\",x" <sip:q@v>',
    ]
    assert split_values("a, b") == ["a", "b"]
    assert split_values('"unterminated, x') == ['"unterminated, x']
    assert split_values("<sip:a@b, c") == ["<sip:a@b, c"]


@pytest.mark.parametrize(
    "text",
    [
        '"Alice Liddell" <sip:alice@atlanta.example.com>;tag=1928301774',
        "Bob <sip:bob@biloxi.example.com>",
        "<sip:alice@pc33.example.com;transport=udp>",
        "<sips:x@Host.Example:5061;lr>;tag=1;expires=30",
        "<sip:@h>",
        "<sip:h:65535>;tag=",
        "<sip:u@h;tag=x>;tag=y;tag=z",
        "<sip:u@h?Replaces=a%40b>;q=0.5",
    ],
)
def test_fast_path_equals_general_path(text: str) -> None:
    assert parse_name_addr(text) == name_addr_general(text)
    inner = text[text.index("<") + 1 : text.index(">")]
    assert parse_uri(inner) == uri_general(inner)
