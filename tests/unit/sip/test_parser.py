"""parse(): whole messages, header forms, body rules and every error reason with its offset."""

from __future__ import annotations

import pytest

from sipcm.sip.message import Credentials, NameAddr, ParseError, SipMessage, Uri, Via
from sipcm.sip.parser import parse

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"User-Agent: Zoiper rv2.10\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\r\n"
)


def ok(data: bytes) -> SipMessage:
    msg = parse(data)
    assert isinstance(msg, SipMessage), msg
    return msg


def err(data: bytes) -> ParseError:
    e = parse(data)
    assert isinstance(e, ParseError), e
    return e


def test_typical_invite_every_field() -> None:
    m = ok(INVITE)
    assert (m.is_request, m.method, m.status, m.reason) == (True, "INVITE", None, None)
    assert m.uri == Uri("sip:bob@biloxi.example.com", "sip", "bob", "biloxi.example.com")
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert m.from_ == NameAddr(
        Uri("sip:alice@atlanta.example.com", "sip", "alice", "atlanta.example.com"),
        "Alice",
        "1928301774",
        {},
    )
    assert m.to == NameAddr(
        Uri("sip:bob@biloxi.example.com", "sip", "bob", "biloxi.example.com"), "Bob"
    )
    assert (m.cseq, m.cseq_method) == (314159, "INVITE")
    assert m.vias == [
        Via("UDP", "pc33.atlanta.example.com", 5060, "z9hG4bK776asdhds", {"rport": ""})
    ]
    assert m.branch == "z9hG4bK776asdhds"
    assert [c.uri.original for c in m.contacts] == ["sip:alice@pc33.atlanta.example.com"]
    assert (m.contact_star, m.expires, m.user_agent, m.server) == (
        False,
        None,
        "Zoiper rv2.10",
        None,
    )
    assert (m.reason_hdr, m.pai, m.credentials) == (None, [], None)
    assert (m.content_length, m.body, m.size, m.truncated) == (4, b"v=0\r", len(INVITE), False)
    assert m.headers == {"max-forwards": ["70"], "content-type": ["application/sdp"]}
    assert m.bad_headers == 0


def test_response_with_multi_via_server_reason_and_contact_params() -> None:
    m = ok(
        b"SIP/2.0 486 Busy Here  \r\n"
        b"v: SIP/2.0/UDP p1.example.com;branch=z9hG4bKa, SIP/2.0/TCP [2001:db8::9]:5070"
        b";branch=z9hG4bKb;received=192.0.2.1\r\n"
        b"Via: SIP/2.0/TLS p3.example.com:5061;branch=z9hG4bKc\r\n"
        b"From: <sip:a@x>;tag=f1\r\nTo: <sip:b@y>;tag=t1\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\n"
        b"Server: Kamailio 5.7\r\n"
        b'Reason: Q.850;cause=17;text="User busy"\r\nReason: SIP;cause=486\r\n'
        b'Contact: "Bob, Jr" <sip:bob@192.0.2.4>;expires=3600;q=0.8, <sip:bob@192.0.2.5>\r\n'
        b"Content-Length: 0\r\n\r\n"
    )
    assert (m.is_request, m.method, m.uri, m.status, m.reason) == (
        False,
        None,
        None,
        486,
        "Busy Here",
    )
    assert m.vias == [
        Via("UDP", "p1.example.com", None, "z9hG4bKa", {}),
        Via("TCP", "2001:db8::9", 5070, "z9hG4bKb", {"received": "192.0.2.1"}),
        Via("TLS", "p3.example.com", 5061, "z9hG4bKc", {}),
    ]
    assert (m.from_.tag, m.to.tag, m.server) == ("f1", "t1", "Kamailio 5.7")
    assert m.reason_hdr == 'Q.850;cause=17;text="User busy"'
    assert m.headers == {"reason": ["SIP;cause=486"]}
    assert [(c.display, c.uri.user, c.expires, c.q) for c in m.contacts] == [
        ("Bob, Jr", "bob", 3600, 0.8),
        (None, "bob", None, None),
    ]
    assert (m.content_length, m.body, m.bad_headers) == (0, b"", 0)


def test_register_credentials_only_username_and_realm() -> None:
    data = (
        b"REGISTER sip:registrar.biloxi.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bKnashds7\r\n"
        b"To: Bob <sip:bob@biloxi.com>\r\nFrom: Bob <sip:bob@biloxi.com>;tag=456248\r\n"
        b"Call-ID: 843817637684230@998sdasdh09\r\nCSeq: 1826 REGISTER\r\n"
        b"Contact: <sip:bob@192.0.2.4>\r\nExpires: 7200\r\n"
        b'Authorization: Digest username="bob", realm="biloxi.com", nonce="dcd98b7102dd2f0e8b1'
        b'1d0f600bfb0c093", uri="sip:registrar.biloxi.com", qop=auth, nc=00000001, '
        b'cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
        b'opaque="5ccc069c403ebaf9f0171e9517f40e41"\r\n'
        b'Proxy-Authorization: Digest username="other", realm="x", response="ffeeddcc"\r\n'
        b"Content-Length: 0\r\n\r\n"
    )
    m = ok(data)
    assert m.credentials == Credentials("Digest", "bob", "biloxi.com", False)
    assert m.expires == 7200
    assert m.headers == {}
    text = repr(m)
    for secret in (
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "6629fae49393a05397450978507c4ef1",
        "0a4f113b",
        "5ccc069c403ebaf9f0171e9517f40e41",
        "ffeeddcc",
        "nonce",
    ):
        assert secret not in text


def test_proxy_authorization_alone_and_challenge_redacted() -> None:
    base = (
        b"SIP/2.0 407 Proxy Authentication Required\r\nFrom: <sip:a@x>;tag=1\r\n"
        b"To: <sip:b@y>;tag=2\r\nCall-ID: c\r\nCSeq: 2 INVITE\r\n"
    )
    m = ok(
        base + b'Proxy-Authenticate: Digest realm="atlanta.com", nonce="wf84f1ceczx41ae6cb'
        b'e5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5\r\n'
        b'WWW-Authenticate: Digest nonce="n2"\r\n'
        b'Authentication-Info: nextnonce="47364c23432d2e131a5fb210812c"\r\n\r\n'
    )
    assert m.headers == {
        "proxy-authenticate": ['Digest realm="atlanta.com"'],
        "www-authenticate": ["Digest"],
    }
    assert "wf84f1ceczx41ae6cb" not in repr(m)
    assert "47364c23432d2e131a5fb210812c" not in repr(m)
    m = ok(
        base.replace(b"SIP/2.0 407 Proxy Authentication Required", b"BYE sip:b@y SIP/2.0")
        + b'Proxy-Authorization: Digest username="alice", realm="atlanta.com", '
        b'response="42ce3cef44b22f50c6a6071bc8"\r\n\r\n'
    )
    assert m.credentials == Credentials("Digest", "alice", "atlanta.com", True)


def test_every_compact_form() -> None:
    data = (
        b"MESSAGE sip:u@h SIP/2.0\r\nv: SIP/2.0/UDP h1;branch=z9hG4bK1\r\nf: <sip:a@x>;tag=1\r\n"
        b"t: <sip:b@y>\r\ni: cid-1\r\nCSeq: 1 MESSAGE\r\nm: <sip:a@10.0.0.1>\r\n"
        b"c: text/plain\r\nk: path\r\ns: hello\r\ne: gzip\r\no: presence\r\nu: dialog\r\n"
        b"r: <sip:c@z>\r\nb: <sip:a@x>\r\nj: *;audio\r\na: *;video\r\nd: proxy\r\nx: 1800\r\n"
        b"y: abc.def\r\nL: 2\r\n\r\nhi"
    )
    m = ok(data)
    assert (m.call_id, m.from_.tag, m.to.uri.user, m.vias[0].branch) == (
        "cid-1",
        "1",
        "b",
        "z9hG4bK1",
    )
    assert m.contacts[0].uri.host == "10.0.0.1"
    assert (m.content_length, m.body) == (2, b"hi")
    assert m.headers == {
        "content-type": ["text/plain"],
        "supported": ["path"],
        "subject": ["hello"],
        "content-encoding": ["gzip"],
        "event": ["presence"],
        "allow-events": ["dialog"],
        "refer-to": ["<sip:c@z>"],
        "referred-by": ["<sip:a@x>"],
        "reject-contact": ["*;audio"],
        "accept-contact": ["*;video"],
        "request-disposition": ["proxy"],
        "session-expires": ["1800"],
        "identity": ["abc.def"],
    }


def test_header_names_case_insensitive_and_whitespace() -> None:
    data = (
        b"OPTIONS sip:u@h SIP/2.0\r\nFROM :\t<sip:a@x>;tag=9 \r\nto:<sip:b@y>\t\r\n"
        b"call-ID:   cid \r\ncseq:\t5   options\r\nX-Custom-HDR:  v 1  \r\n\r\n"
    )
    m = ok(data)
    assert (m.from_.tag, m.to.uri.user, m.call_id, m.cseq, m.cseq_method) == (
        "9",
        "b",
        "cid",
        5,
        "OPTIONS",
    )
    assert m.headers == {"x-custom-hdr": ["v 1"]}


def test_folded_headers_are_joined() -> None:
    data = (
        b"INVITE sip:u@h SIP/2.0\r\nSubject: I know you're there,\r\n   pick up the phone\r\n"
        b"\t and talk to me!\r\nFrom: <sip:a@x>\r\n ;tag=77\r\nTo: <sip:b@y>\r\n"
        b"Call-ID: c\r\nCSeq: 1\r\n INVITE\r\n\r\n"
    )
    m = ok(data)
    assert m.headers == {"subject": ["I know you're there, pick up the phone and talk to me!"]}
    assert (m.from_.tag, m.cseq, m.cseq_method) == ("77", 1, "INVITE")


def test_address_lists_pai_and_repeated_headers() -> None:
    data = (
        b"INVITE sip:u@h SIP/2.0\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c\r\n"
        b"CSeq: 1 INVITE\r\n"
        b'P-Asserted-Identity: "Doe, John" <sip:+15551234@x;user=phone>, <tel:+15551234>\r\n'
        b"Route: <sip:p1@x;lr>, <sip:p2@y;lr;a=1,2>\r\nRoute: <sip:p3@z;lr>\r\n"
        b"Record-Route: <sip:rr@q;lr>\r\nAllow: INVITE, ACK\r\nAllow: BYE\r\n\r\n"
    )
    m = ok(data)
    assert [(p.display, p.uri.scheme, p.uri.user) for p in m.pai] == [
        ("Doe, John", "sip", "+15551234"),
        (None, "tel", "+15551234"),
    ]
    assert m.headers == {
        "route": ["<sip:p1@x;lr>", "<sip:p2@y;lr;a=1,2>", "<sip:p3@z;lr>"],
        "record-route": ["<sip:rr@q;lr>"],
        "allow": ["INVITE, ACK", "BYE"],
    }


def test_contact_star_and_expires_zero() -> None:
    data = (
        b"REGISTER sip:r SIP/2.0\r\nFrom: <sip:a@r>;tag=1\r\nTo: <sip:a@r>\r\nCall-ID: c\r\n"
        b"CSeq: 9 REGISTER\r\nContact: *\r\nExpires: 0\r\n\r\n"
    )
    m = ok(data)
    assert (m.contact_star, m.contacts, m.expires) == (True, [], 0)


def test_malformed_optional_headers_are_raw_and_counted() -> None:
    data = (
        b"INVITE sip:u@h SIP/2.0\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nTo: <sip:c@z>\r\n"
        b"Call-ID: c\r\nCSeq: 1 INVITE\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1, garbage\r\n"
        b"Contact: <sip:ok@h>, <broken\r\nExpires: soon\r\nContent-Length: xyz\r\n"
        b"no colon line\r\nBad Name: v\r\n: empty\r\nP-Asserted-Identity: nope\r\n"
        b"Authorization: =\r\n\r\nbody"
    )
    m = ok(data)
    assert [v.branch for v in m.vias] == ["z9hG4bK1"]
    assert [c.uri.user for c in m.contacts] == ["ok"]
    assert (m.expires, m.content_length, m.body, m.credentials, m.pai) == (
        None,
        None,
        b"body",
        None,
        [],
    )
    assert m.headers == {
        "to": ["<sip:c@z>"],
        "via": ["garbage"],
        "contact": ["<broken"],
        "expires": ["soon"],
        "content-length": ["xyz"],
        "p-asserted-identity": ["nope"],
    }
    # 2nd To, Via piece, Contact piece, Expires, Content-Length, 3 bad lines, PAI, Authorization
    assert m.bad_headers == 10


def test_bare_lf_leading_crlf_and_tabs() -> None:
    data = (
        b"\r\n\r\nBYE sip:u@h SIP/2.0\nFrom:\t<sip:a@x>;tag=1\nTo: <sip:b@y>;tag=2\n"
        b"Call-ID: c\nCSeq: 3 BYE\nContent-Length: 2\n\nok-extra"
    )
    m = ok(data)
    assert (m.method, m.cseq, m.to.tag, m.body, m.size) == ("BYE", 3, "2", b"ok", len(data))


def test_bare_lf_blank_line_before_a_crlf_one_in_the_body() -> None:
    data = (
        b"BYE sip:u@h SIP/2.0\nFrom: <sip:a@x>;tag=1\nTo: <sip:b@y>\nCall-ID: c\n"
        b"CSeq: 3 BYE\n\nX: not a header\r\n\r\n"
    )
    m = ok(data)
    assert (m.headers, m.body) == ({}, b"X: not a header\r\n\r\n")


def test_body_longer_and_shorter_than_content_length() -> None:
    head = (
        b"MESSAGE sip:u@h SIP/2.0\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\n"
        b"Call-ID: c\r\nCSeq: 1 MESSAGE\r\n"
    )
    m = ok(head + b"Content-Length: 3\r\n\r\nabcdef")
    assert (m.body, m.content_length, m.truncated) == (b"abc", 3, False)
    m = ok(head + b"Content-Length: 10\r\n\r\nabcdef")
    assert (m.body, m.content_length, m.truncated) == (b"abcdef", 10, True)
    m = ok(head + b"\r\nabcdef")
    assert (m.body, m.content_length, m.truncated) == (b"abcdef", None, False)
    m = ok(head + b"Content-Length: 5\r\n")  # first IP fragment: no blank line at all
    assert (m.body, m.content_length, m.truncated) == (b"", 5, True)


def test_non_utf8_header_bytes_are_read_as_latin1() -> None:
    data = (
        b'INVITE sip:u@h SIP/2.0\r\nFrom: "J\xf6rg" <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\n'
        b"Call-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"
    )
    assert ok(data).from_.display == "J\xf6rg"
    assert ok(data.replace(b"J\xf6rg", "Jörg".encode())).from_.display == "Jörg"


@pytest.mark.parametrize(
    ("data", "reason", "offset", "probe"),
    [
        (b"", "too_short", 0, True),
        (b"\r\n\r\n", "too_short", 4, True),
        (b"INVITE sip:", "too_short", 0, True),
        (b"\x80\x00" + b"\x00" * 20, "not_text", 0, True),
        (b"\r\n <INVITE sip:u@h SIP/2.0", "not_text", 2, True),
        (b"INVITE sip:u@h\r\n\r\n", "bad_start_line", 0, False),
        (b"INV(ITE sip:u@h SIP/2.0\r\n\r\n", "bad_method", 0, False),
        (b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", "bad_version", 16, False),
        (b"INVITE nouri SIP/2.0\r\n\r\n", "bad_request_uri", 7, False),
        (b"\r\nINVITE sip:u@ SIP/2.0\r\n\r\n", "bad_request_uri", 9, False),
        (b"SIP/2.0 20 OK\r\n\r\n\r\n", "bad_status", 8, False),
        (b"SIP/2.0 700 Odd\r\n\r\n", "bad_status", 8, False),
        (b"SIP/3.0 200 OK\r\n\r\n", "bad_version", 0, False),
        (b"SIP/2.0\r\nFrom: x\r\n\r\n", "bad_start_line", 7, False),
    ],
)
def test_start_line_and_probe_errors(data: bytes, reason: str, offset: int, probe: bool) -> None:
    assert err(data) == ParseError(reason, offset, probe)


MANDATORY = [b"From: <sip:a@x>;tag=1", b"To: <sip:b@y>", b"Call-ID: c9", b"CSeq: 1 INVITE"]


def build(lines: list[bytes], eol: bytes = b"\r\n") -> bytes:
    return eol.join([b"INVITE sip:u@h SIP/2.0", *lines]) + eol + eol


@pytest.mark.parametrize(
    ("drop", "reason"),
    [(0, "missing_from"), (1, "missing_to"), (2, "missing_call_id"), (3, "missing_cseq")],
)
def test_missing_mandatory_offset_is_the_blank_line(drop: int, reason: str) -> None:
    data = build([h for i, h in enumerate(MANDATORY) if i != drop])
    assert err(data) == ParseError(reason, len(data) - 2)
    unterminated = data[:-2]  # no blank line at all: the offset is the end of the payload
    assert err(unterminated) == ParseError(reason, len(unterminated))


@pytest.mark.parametrize(
    ("index", "value", "reason"),
    [
        (0, b"From: <sip:a@x", "bad_from"),
        (0, b"f:   nothing here", "bad_from"),
        (1, b"To: <mailto>", "bad_to"),
        (2, b"Call-ID:  ", "bad_call_id"),
        (3, b"CSeq: 4294967296 INVITE", "bad_cseq"),
        (3, b"CSeq: " + b"9" * 5000 + b" INVITE", "bad_cseq"),
        (3, b"CSeq: 1", "bad_cseq"),
        (3, b"CSeq: -1 INVITE", "bad_cseq"),
        (3, b"CSeq: \xc2\xb2 INVITE", "bad_cseq"),
        (3, b"CSeq: 1 INV@ITE", "bad_cseq"),
    ],
)
def test_bad_mandatory_offset_is_the_value(index: int, value: bytes, reason: str) -> None:
    lines = list(MANDATORY)
    lines[index] = value
    data = build(lines)
    colon = data.index(value) + value.index(b":") + 1
    expected = (
        colon + len(value[value.index(b":") + 1 :]) - len(value[value.index(b":") + 1 :].lstrip())
    )
    assert err(data) == ParseError(reason, expected)


def test_error_offset_counts_bytes_not_characters() -> None:
    data = build([b"Subject: \xc3\xa9\xc3\xa9\xc3\xa9", *MANDATORY[:3], b"CSeq: x INVITE"])
    assert err(data) == ParseError("bad_cseq", data.index(b"x INVITE"))


def test_error_offset_of_a_folded_bad_header() -> None:
    data = build([b"Subject: a", b" b", *MANDATORY[:2], b"Call-ID: c", b"CSeq:\r\n  9x INVITE"])
    assert err(data) == ParseError("bad_cseq", data.index(b"CSeq:") + 5)


def test_cseq_max_and_method_case() -> None:
    data = build([*MANDATORY[:3], b"CSeq: 4294967295 invite"])
    assert (ok(data).cseq, ok(data).cseq_method) == (4294967295, "INVITE")


def test_cseq_leading_zeros() -> None:
    """1*DIGIT allows leading zeros: the 33 kB fuzz CANCEL of the corpus has CSeq 0...01."""
    data = build([*MANDATORY[:3], b"CSeq: " + b"0" * 33_000 + b"1 CANCEL"])
    assert (ok(data).cseq, ok(data).cseq_method) == (1, "CANCEL")
    data = build([*MANDATORY[:3], b"CSeq: 00004294967296 INVITE"])  # still over 32 bits
    assert err(data).reason == "bad_cseq"


def test_request_method_lower_case_and_extension_method() -> None:
    m = ok(build(MANDATORY).replace(b"INVITE sip:u@h", b"publish sip:u@h"))
    assert m.method == "PUBLISH"
    m = ok(build(MANDATORY).replace(b"INVITE sip:u@h", b"X-CUSTOM.1 sip:u@h"))
    assert m.method == "X-CUSTOM.1"


def test_request_uri_tel_and_ipv6() -> None:
    m = ok(build(MANDATORY).replace(b"sip:u@h", b"tel:+1-555-0100;phone-context=x"))
    assert (m.uri.scheme, m.uri.user, m.uri.params) == (
        "tel",
        "+1-555-0100",
        {"phone-context": "x"},
    )
    m = ok(build(MANDATORY).replace(b"sip:u@h", b"sip:u@[2001:db8::1]:5080;transport=tcp"))
    assert (m.uri.host, m.uri.port, m.uri.params) == ("2001:db8::1", 5080, {"transport": "tcp"})


def test_status_line_without_reason_phrase() -> None:
    m = ok(b"SIP/2.0 100\r\n" + b"\r\n".join(MANDATORY) + b"\r\n\r\n")
    assert (m.status, m.reason) == (100, "")


def test_memoryview_and_bytearray_input() -> None:
    assert ok(bytearray(INVITE)).call_id == ok(memoryview(INVITE)).call_id  # type: ignore[arg-type]
