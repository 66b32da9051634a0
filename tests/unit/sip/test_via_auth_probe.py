"""Via values, credentials, challenge redaction, the probe rule and header names."""

from __future__ import annotations

import pytest

from sipcm.sip.auth import parse_credentials, redact_challenge
from sipcm.sip.headers import COMPACT, canonical
from sipcm.sip.message import Credentials, Via
from sipcm.sip.probe import probe
from sipcm.sip.via import parse_via


@pytest.mark.parametrize(
    ("text", "via"),
    [
        (
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9;received=198.51.100.7;rport=5061",
            Via(
                "UDP",
                "192.0.2.1",
                5060,
                "z9hG4bK74bf9",
                {"received": "198.51.100.7", "rport": "5061"},
            ),
        ),
        ("SIP/2.0/tcp Host.Example", Via("TCP", "host.example", None, None, {})),
        (
            "SIP / 2.0 / UDP first.example.com: 4000;ttl=16\t;maddr=224.2.0.1 "
            ";branch=z9hG4bKa7c6a8",
            Via(
                "UDP",
                "first.example.com",
                4000,
                "z9hG4bKa7c6a8",
                {"ttl": "16", "maddr": "224.2.0.1"},
            ),
        ),
        (
            "sip/2.0/WSS [2001:db8::1]:443;rport;branch=z9hG4bKx;branch=second",
            Via("WSS", "2001:db8::1", 443, "z9hG4bKx", {"rport": ""}),
        ),
        ("SIP/2.0/UDP h;rport;branch=z9hG4bKy", Via("UDP", "h", None, "z9hG4bKy", {"rport": ""})),
        (
            "SIP / 2.0 / UDP h.example:4000;branch=z9hG4bKb",
            Via("UDP", "h.example", 4000, "z9hG4bKb", {}),
        ),
    ],
)
def test_via_forms(text: str, via: Via | None) -> None:
    assert parse_via(text) == via


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0/UDP",
        "HTTP/1.1/TCP h",
        "SIP/2.0/ h",
        "SIP/2.0/UDP h:99999",
        "SIP/2.0/UDP a b",
        "SIP/2.0/UDP [::1",
    ],
)
def test_bad_vias(text: str) -> None:
    assert parse_via(text) is None


def test_digest_credentials_quoted_escapes_and_order() -> None:
    value = (
        r'Digest realm="a \"b\" c",  nonce="x,y", username="u\\1" , uri="sip:u=2",'
        r" response=deadbeef"
    )
    assert parse_credentials(value) == Credentials("Digest", "u\\1", 'a "b" c', False)
    assert parse_credentials("digest username=bob", proxy=True) == Credentials(
        "digest", "bob", None, True
    )


def test_empty_digest_response_is_not_an_answer() -> None:
    """IMS initial REGISTER: the private identity with an empty nonce and response."""
    value = 'Digest username="263734@imstest.lan",realm="imstest.lan",nonce="",response=""'
    assert parse_credentials(value) == Credentials(
        "Digest", "263734@imstest.lan", "imstest.lan", False, answered=False
    )
    assert parse_credentials('Digest username="u", response="00ff"').answered is True


def test_username_inside_another_value_is_not_taken() -> None:
    value = 'Digest uri="sip:x;username=evil", realm=r'
    assert parse_credentials(value) == Credentials("Digest", None, "r", False)


def test_basic_and_other_schemes_keep_no_secret() -> None:
    assert parse_credentials("Basic dXNlcjpwYXNzd29yZA==") == Credentials("Basic", None, None)
    assert parse_credentials("Bearer abc.def.ghi") == Credentials("Bearer", None, None)
    assert parse_credentials("") is None
    assert parse_credentials('nonce="x"') is None


def test_challenge_redaction() -> None:
    assert redact_challenge('Digest realm="atlanta.com", nonce="84a4cc6f", qop="auth"') == (
        'Digest realm="atlanta.com"'
    )
    assert redact_challenge('Digest nonce="1", realm="r\\"q"') == 'Digest realm="r\\"q"'
    assert redact_challenge("Digest") == "Digest"
    assert redact_challenge('nextnonce="abc", rspauth="def"') is None


@pytest.mark.parametrize(
    ("data", "result"),
    [
        (b"", (0, "too_short")),
        (b"x" * 12, (0, "too_short")),
        (b"x" * 13, (0, None)),
        (b"\r\n\r\n" + b"x" * 12, (4, "too_short")),
        (b"\r\n" + b"OPTIONS sip:a SIP/2.0", (2, None)),
        (b"\x00\x01\x00\x08" + b"\x00" * 16, (0, "not_text")),
        (b"1INVITE sip:x SIP/2.0", (0, "not_text")),
        (b" INVITE sip:x SIP/2.0", (0, "not_text")),
        ("ÉINVITE sip:x SIP/2.0".encode(), (0, "not_text")),
    ],
)
def test_probe_rule(data: bytes, result: tuple[int, str | None]) -> None:
    assert probe(data) == result


def test_compact_table_matches_rfcs() -> None:
    assert COMPACT == {
        "a": "accept-contact",
        "b": "referred-by",
        "c": "content-type",
        "d": "request-disposition",
        "e": "content-encoding",
        "f": "from",
        "i": "call-id",
        "j": "reject-contact",
        "k": "supported",
        "l": "content-length",
        "m": "contact",
        "o": "event",
        "r": "refer-to",
        "s": "subject",
        "t": "to",
        "u": "allow-events",
        "v": "via",
        "x": "session-expires",
        "y": "identity",
    }


@pytest.mark.parametrize(
    ("name", "canon"),
    [
        ("V", "via"),
        ("CALL-ID", "call-id"),
        ("Call-Id", "call-id"),
        ("X-Foo", "x-foo"),
        ("y", "identity"),
        ("Y", "identity"),
        ("cSeQ", "cseq"),
        ("n", "n"),
    ],
)
def test_canonical_names(name: str, canon: str) -> None:
    assert canonical(name) == canon
