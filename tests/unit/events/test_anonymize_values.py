"""Value-level anonymization: URI splitting, URI syntax kept, hosts, IP methods, round trips."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcm.events.anon import codec as codec_mod
from sipcm.events.anon.codec import Codec, canonical_ip
from sipcm.events.anon.keys import AnonKey
from sipcm.events.anon.uri import UriParts, split_uri
from sipcm.sip.nameaddr import parse_uri

KEY = AnonKey(bytes(range(16)))
PAN = Codec(KEY, ipcipher4=False)
IPC = Codec(KEY, ipcipher4=True)
COIN = AnonKey.from_settings(passphrase="crypto is not a coin")


# --- split_uri -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("sip:alice@atlanta.example.com", UriParts("sip", "alice", "atlanta.example.com")),
        ("SIPS:bob@192.0.2.20:5062", UriParts("SIPS", "bob", "192.0.2.20", "5062")),
        (
            "sip:bob@[2001:db8::5]:5070;transport=tcp?X=y",
            UriParts("sip", "bob", "[2001:db8::5]", "5070", ";transport=tcp?X=y"),
        ),
        ("sip:reg.example.com;lr", UriParts("sip", None, "reg.example.com", None, ";lr")),
        ("sip:a;b=c@host", UriParts("sip", "a;b=c", "host")),  # user-unreserved ";" in the user
        ("sip:h?to=x@y", UriParts("sip", None, "h", None, "?to=x@y")),  # "@" in a header
        ("sip:u@h:12x", UriParts("sip", "u", "h:12x")),  # a bad port stays in the host
        ("sip:u@[::1]x", UriParts("sip", "u", "[::1]x")),
        ("sip:u@a:b:5060", UriParts("sip", "u", "a:b:5060")),  # bare IPv6: no port split
        ("tel:+1-201-555-0123;x=y", UriParts("tel", "+1-201-555-0123", rest=";x=y")),
        ("tel:911", UriParts("tel", "911")),
        ("urn:service:sos", UriParts("urn", opaque="service:sos")),
        ("no scheme here", UriParts(None, opaque="no scheme here")),
        ("1x:y", UriParts(None, opaque="1x:y")),
    ],
)  # fmt: skip
def test_split_uri_examples(text: str, parts: UriParts) -> None:
    assert split_uri(text) == parts
    assert parts.join() == text


@given(st.text())
def test_split_uri_is_lossless(text: str) -> None:
    assert split_uri(text).join() == text


@given(st.text(alphabet="sipte:l@;?[]:.x1", max_size=30))
def test_split_uri_is_lossless_on_uri_like_text(text: str) -> None:
    assert split_uri(text).join() == text


# --- IPs -----------------------------------------------------------------------------------


def test_ip_methods() -> None:
    c_pan, c_ipc = Codec(COIN, False), Codec(COIN, True)
    # ipcipher mode reproduces the published ipcipher vectors for IPv4 ...
    assert c_ipc.ip("198.41.0.4") == "139.111.117.167"
    # ... and IPv6 is ipcipher in both modes.
    for c in (c_pan, c_ipc):
        assert c.ip("::1") == "a551:9cb0:c9b:f6e1:6112:58a:af29:3a6c"
        assert c.ip_decrypt("a551:9cb0:c9b:f6e1:6112:58a:af29:3a6c") == "::1"
    # Prefix mode keeps the /24 of two addresses of one /24 and differs from ipcipher.
    a, b = c_pan.ip("198.41.0.4"), c_pan.ip("198.41.0.200")
    assert a.rsplit(".", 1)[0] == b.rsplit(".", 1)[0]
    assert a != "139.111.117.167"


@pytest.mark.parametrize("bad", ["", "x", "1.2.3", "1.2.3.4.5", "300.1.1.1", "::g", "1.2.3.4\x00"])
def test_ip_rejects_non_addresses(bad: str) -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        PAN.ip(bad)
    with pytest.raises(ValueError, match="not an IP address"):
        PAN.ip_decrypt(bad)


ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6 = st.integers(0, 2**128 - 1).map(lambda n: ipaddress.IPv6Address(n).packed)
ips = st.one_of(ipv4, ipv6.map(lambda b: codec_mod.unpack_ip(b)))


@given(ips, st.booleans())
def test_ip_round_trip_same_family(ip: str, ipcipher4: bool) -> None:
    c = IPC if ipcipher4 else PAN
    e = c.ip(ip)
    assert (":" in e) == (":" in ip)
    assert canonical_ip(e) is not None
    assert c.ip_decrypt(e) == ip


# --- hosts ---------------------------------------------------------------------------------


def test_hosts() -> None:
    e = PAN.host("192.0.2.10")
    assert e == PAN.ip("192.0.2.10")
    v6 = PAN.host("[2001:db8::5]")
    assert v6 == f"[{PAN.ip('2001:db8::5')}]"
    assert PAN.host("2001:db8::5") == PAN.ip("2001:db8::5")
    name = PAN.host("atlanta.example.com")
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz234567")
    # Non-canonical IP text is a name (so decryption gives back the exact text).
    for text in ("[2001:DB8::5]", "010.0.0.1", "[::1]x", "[fe80::1%eth0]"):
        tok = PAN.host(text)
        assert canonical_ip(tok.strip("[]")) is None
        assert PAN.host_decrypt(tok) == text
    for h in ("192.0.2.10", "[2001:db8::5]", "2001:db8::5", "atlanta.example.com"):
        assert PAN.host_decrypt(PAN.host(h)) == h


# --- URIs ----------------------------------------------------------------------------------


def test_sip_uri_keeps_syntax_and_parts_match_field_tokens() -> None:
    text = "sip:alice@atlanta.example.com:5060;transport=tcp?Subject=hi"
    e = PAN.uri(text)
    u = parse_uri(e)
    assert u is not None
    assert u.scheme == "sip"
    assert u.port == 5060
    assert u.user == PAN.text("user", "alice")
    assert u.host == PAN.host("atlanta.example.com")
    assert list(u.params) == ["sipcm"]
    assert u.params["sipcm"] == PAN.text("rest", ";transport=tcp?Subject=hi")
    assert e == f"sip:{u.user}@{u.host}:5060;sipcm={u.params['sipcm']}"
    for clear in ("alice", "atlanta", "example", "transport", "Subject"):
        assert clear not in e
    assert PAN.uri_decrypt(e) == text


def test_uri_with_ip_hosts() -> None:
    e = PAN.uri("sip:bob@[2001:db8::5]:5070")
    u = parse_uri(e)
    assert u is not None
    assert u.host == PAN.ip("2001:db8::5")
    assert e.endswith(f"@[{u.host}]:5070")
    e4 = PAN.uri("sip:192.0.2.20")
    assert e4 == "sip:" + PAN.ip("192.0.2.20")


def test_tel_other_schemes_and_star() -> None:
    e = PAN.uri("tel:+15551234;phone-context=example.com")
    assert e == "tel:" + PAN.text("user", "+15551234") + ";sipcm=" + PAN.text(
        "rest", ";phone-context=example.com"
    )
    u = parse_uri(e)
    assert u is not None
    assert (u.scheme, u.user) == ("tel", PAN.text("user", "+15551234"))
    assert PAN.uri("urn:service:sos") == "urn:" + PAN.text("opaque", "service:sos")
    assert PAN.uri("garbage") == PAN.text("opaque", "garbage")
    assert PAN.uri("*") == "*"
    assert PAN.uri_decrypt("*") == "*"


def test_uri_decrypt_rejects_foreign_text() -> None:
    with pytest.raises(ValueError, match="not an encrypted token"):
        PAN.uri_decrypt("sip:alice@atlanta.example.com")
    good = PAN.uri("sip:a@b;x")
    with pytest.raises(ValueError, match="not an anonymized URI"):
        PAN.uri_decrypt(good.replace(";sipcm=", ";other="))


user_s = st.text(alphabet="abcXYZ019-_.!~*'()&=+$,;?/%", min_size=0, max_size=12)
host_s = st.one_of(
    st.from_regex(r"[a-z0-9]([a-z0-9\-]{0,10}\.){0,3}[a-z]{2,5}", fullmatch=True),
    ipv4,
    ipv6.map(lambda b: f"[{codec_mod.unpack_ip(b)}]"),
)
sip_uris = st.builds(
    lambda scheme, user, host, port, rest: (
        f"{scheme}:{'' if user is None else user.replace('?', '') + '@'}{host}"
        f"{'' if port is None else ':' + str(port)}{rest}"
    ),
    st.sampled_from(["sip", "sips", "SIP"]),
    st.none() | user_s,
    host_s,
    st.none() | st.integers(0, 65535),
    st.sampled_from(["", ";transport=udp", ";lr;maddr=10.0.0.1", "?Replaces=abc%40h", ";a?b"]),
)


@given(sip_uris, st.booleans())
def test_sip_uri_round_trip_and_syntax(text: str, ipcipher4: bool) -> None:
    c = IPC if ipcipher4 else PAN
    e = c.uri(text)
    assert c.uri_decrypt(e) == text
    clear, anon = split_uri(text), split_uri(e)
    assert (anon.scheme, anon.port) == (clear.scheme, clear.port)
    assert (anon.user is None) == (clear.user is None)
    assert anon.host == c.host(clear.host or "")
    if clear.rest:
        assert anon.rest == ";sipcm=" + c.text("rest", clear.rest)
    # The URI parser accepts what it accepted before.
    if parse_uri(text) is not None:
        assert parse_uri(e) is not None


@given(st.text())
def test_any_text_round_trips_as_uri(text: str) -> None:
    assert PAN.uri_decrypt(PAN.uri(text)) == text


@given(st.sampled_from(["user", "display", "call_id", "ua"]), st.text())
def test_text_kinds_round_trip(kind: str, text: str) -> None:
    assert PAN.text_decrypt(kind, PAN.text(kind, text)) == text


def test_cache_is_bounded_and_stays_correct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec_mod, "_CACHE_MAX", 3)
    c = Codec(KEY, False)
    want = {f"10.0.0.{i}": PAN.ip(f"10.0.0.{i}") for i in range(10)}
    for ip, e in want.items():
        assert c.ip(ip) == e
    assert len(c._cache["ip"]) <= 3
    for ip, e in want.items():
        assert c.ip(ip) == e


@given(st.one_of(st.text(), host_s))
def test_host_round_trip(h: str) -> None:
    e = PAN.host(h)
    assert PAN.host_decrypt(e) == h
    bracket = h.startswith("[") and h.endswith("]")
    if canonical_ip(h[1:-1] if bracket else h) is not None:  # IP literals stay IP literals
        assert canonical_ip(e[1:-1] if bracket else e) is not None
        assert e.startswith("[") == bracket
