"""Property tests for the SIP parser: totality, exact round trips, fast == general paths, and
linear cost on inputs built to trigger quadratic behaviour.

The totality tests call `_parse` (without the safety net of `parse`), so any exception is a bug
in the parser itself, not something hidden by the wrapper.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipcm.sip.message import ParseError, SipMessage
from sipcm.sip.nameaddr import name_addr_general, parse_name_addr, parse_uri, uri_general
from sipcm.sip.parser import _parse

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"v: SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bKb, SIP/2.0/UDP h;branch=z9hG4bKc\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b'From: "Al \\"x\\", Jr" <sip:alice:pw@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b'Contact: "A, B" <sip:alice@pc33.atlanta.example.com>;expires=60;q=0.5, *\r\n'
    b"P-Asserted-Identity: <tel:+15551234>, sip:x@y;user=phone\r\n"
    b'Authorization: Digest username="alice", realm="atlanta", nonce="abc", response="de"\r\n'
    b'WWW-Authenticate: Digest realm="r", nonce="n"\r\n'
    b"Subject: folded\r\n  line\r\n"
    b"Expires: 60\r\nReason: Q.850;cause=16\r\nRoute: <sip:p@x;lr>, <sip:q@y;lr>\r\n"
    b"Content-Length: 4\r\n\r\nv=0\r\n"
)
SPECIAL = [
    b'"',
    b"<",
    b">",
    b";",
    b",",
    b"\\",
    b":",
    b"\r",
    b"\n",
    b" ",
    b"\t",
    b"\x80",
    b"\xff",
    b"=",
    b"@",
    b"[",
    b"]",
    b"\r\n ",
    b"\n\n",
    b"\r\n\r\n",
    b"\xc3",
    b"9" * 12,
]


def check_total(data: bytes) -> SipMessage | ParseError:
    result = _parse(data)
    assert isinstance(result, SipMessage | ParseError)
    if isinstance(result, ParseError):
        assert 0 <= result.offset <= len(data), result
        assert result.reason != "internal_error"
        assert result.probe == (result.reason in ("too_short", "not_text"))
    else:
        assert result.size == len(data)
        assert len(result.body) <= len(data)
        assert result.bad_headers >= 0
        assert 0 <= result.cseq < 2**32
    return result


@SETTINGS
@given(st.binary(max_size=2000))
def test_any_bytes(data: bytes) -> None:
    check_total(data)


@SETTINGS
@given(st.binary(max_size=400))
def test_any_bytes_after_a_start_line(tail: bytes) -> None:
    check_total(b"OPTIONS sip:x@y SIP/2.0\r\n" + tail)
    check_total(VALID[: VALID.index(b"Content-Length")] + tail)


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.integers(0, 3))
        if op == 0:
            data[pos:pos] = draw(st.sampled_from(SPECIAL))
        elif op == 1:
            del data[pos : pos + draw(st.integers(1, 20))]
        elif op == 2:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:
            end = draw(st.integers(pos, len(data)))
            data[pos:pos] = data[pos:end]  # duplicate a slice (repeated headers, params)
    return bytes(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_valid_message(data: bytes) -> None:
    check_total(data)


# -- secrets never stored -------------------------------------------------------------------

# Header names and keywords stay in the parsed message by design: a secret that is part of
# one of them (e.g. "authenticati") would be found there without any leak.
_KEPT_WORDS = (
    "authorization proxyauthorization wwwauthenticate proxyauthenticate authenticationinfo "
    "proxyauthenticationinfo registrar"
)
_SECRET = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=12, max_size=24).filter(
    lambda s: not any(s in w for w in _KEPT_WORDS.split())
)
_AUTH_NAMES = st.sampled_from(
    ["Authorization", "authorization", "Proxy-Authorization", "PROXY-AUTHORIZATION"]
)
_CHALLENGE_NAMES = st.sampled_from(
    ["WWW-Authenticate", "Proxy-Authenticate", "Authentication-Info", "proxy-authentication-info"]
)
_URI_NAMES = st.sampled_from(
    [
        "From",
        "f",
        "To",
        "t",
        "Contact",
        "m",
        "Route",
        "Record-Route",
        "Refer-To",
        "r",
        "Referred-By",
        "b",
        "P-Asserted-Identity",
        "Path",
        "Reply-To",
    ]
)


@st.composite
def secret_headers(draw, secret: str) -> list[str]:
    """Header lines that each carry `secret` where the parser must not keep it."""
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 2))
        if kind == 0:
            param = draw(st.sampled_from(["nonce", "response", "cnonce", "opaque"]))
            lines.append(f'{draw(_AUTH_NAMES)}: Digest username="u", {param}="{secret}", realm="r"')
        elif kind == 1:
            param = draw(st.sampled_from(["nonce", "opaque", "nextnonce", "rspauth"]))
            scheme = draw(st.sampled_from(["Digest ", ""]))
            lines.append(f'{draw(_CHALLENGE_NAMES)}: {scheme}realm="r", {param}="{secret}"')
        else:
            shape = draw(
                st.sampled_from(
                    [
                        "<sip:u:{}@h>",
                        "sip:u:{}@h",
                        '"d" <sips:u:{}@h;lr>',
                        "<sip:u:{}@h>, <broken",
                        "<sip:u:{}@h> junk",
                    ]
                )
            )
            lines.append(f"{draw(_URI_NAMES)}: " + shape.format(secret))
    return lines


@SETTINGS
@given(st.data(), _SECRET, st.sampled_from(["\r\n", "\n"]))
def test_secrets_never_reach_the_message(data, secret: str, eol: str) -> None:
    # The valid mandatory headers come first, so repeated or broken From/To lines are extra
    # copies kept as raw text (the case that must still drop the password).
    mandatory = data.draw(
        st.permutations(["From: <sip:a@x>;tag=1", "To: <sip:a@x>", "Call-ID: c", "CSeq: 2 X"])
    )
    lines = [f"REGISTER sip:u:{secret}@registrar SIP/2.0", *mandatory]
    lines += data.draw(secret_headers(secret))
    m = check_total((eol.join(lines) + eol + eol).encode())
    assert isinstance(m, SipMessage)
    assert secret not in repr(m)


def test_unmutated_valid_message() -> None:
    m = check_total(VALID)
    assert isinstance(m, SipMessage)
    assert [v.branch for v in m.vias] == ["z9hG4bK776asdhds", "z9hG4bKb", "z9hG4bKc"]
    assert m.from_.display == 'Al "x", Jr'
    assert m.from_.uri.original == "sip:alice@atlanta.example.com"
    # "*" is only valid alone (RFC 3261 10.2.2): mixed with an address it is a bad value.
    assert (m.contact_star, [c.display for c in m.contacts]) == (False, ["A, B"])
    assert m.headers["contact"] == ["*"]
    assert [p.uri.scheme for p in m.pai] == ["tel", "sip"]
    assert (m.credentials.username, m.credentials.realm) == ("alice", "atlanta")
    assert m.headers["subject"] == ["folded line"]
    assert m.headers["www-authenticate"] == ['Digest realm="r"']
    assert m.bad_headers == 1


# -- exact round trips of generated messages ----------------------------------------------

_TOKEN = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+~",
    min_size=1,
    max_size=16,
)
# A request method: a token starting with a letter (the probe rule wants a letter first).
_METHOD = st.builds(lambda a, b: a + b, st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz"), _TOKEN)
_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
_DISPLAY = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="\x7f"),
    max_size=20,
)
_WS = st.sampled_from(["", " ", "  ", "\t", " \t"])


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def address(draw) -> tuple[str, str | None, str, str, int | None, str | None]:
    """(text, display, user, host, port, tag) of a From/To value."""
    user = draw(_LABEL)
    host = ".".join(draw(st.lists(_LABEL, min_size=1, max_size=3)))
    port = draw(st.none() | st.integers(1, 65535))
    tag = draw(st.none() | _TOKEN)
    display = draw(st.none() | _DISPLAY)
    uri = f"sip:{user}@{host}" + (f":{port}" if port is not None else "")
    text = (_quote(display) + draw(_WS) if display is not None else "") + f"<{uri}>"
    if tag is not None:
        text += f";tag={tag}"
    return text, display, user, host, port, tag


@SETTINGS
@given(
    address(),
    address(),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
    st.integers(0, 2**32 - 1),
    _METHOD,
    st.sampled_from(["\r\n", "\n"]),
    st.booleans(),
    _WS,
    st.binary(max_size=50),
)
def test_generated_message_round_trip(fr, to, call_id, cseq, method, eol, compact, ws, body):
    names = ("f", "t", "i") if compact else ("From", "To", "Call-ID")
    lines = [
        f"{method} sip:{to[2]}@{to[3]} SIP/2.0",
        f"{names[0]}:{ws}{fr[0]}{ws}",
        f"{names[1].upper()}:{ws}{to[0]}",
        f"{names[2]}: {call_id}",
        f"cseq: {cseq} {method}",
        f"Content-Length: {len(body)}",
    ]
    data = (eol.join(lines) + eol + eol).encode() + body
    m = check_total(data)
    assert isinstance(m, SipMessage), m
    for got, want in ((m.from_, fr), (m.to, to)):
        _, display, user, host, port, tag = want
        assert (got.display, got.uri.user, got.uri.host, got.uri.port, got.tag) == (
            display or None,
            user,
            host,
            port,
            tag,
        )
    assert (m.call_id, m.cseq, m.cseq_method, m.method) == (
        call_id,
        cseq,
        method.upper(),
        method.upper(),
    )
    assert (m.body, m.content_length, m.bad_headers, m.headers) == (body, len(body), 0, {})


_URI_CHARS = st.text(alphabet='sipSIPtel:@;=?<>[]"\\,. \t0123456789abcxyz%+-', max_size=40)


@settings(max_examples=2000, deadline=None)
@given(_URI_CHARS)
def test_fast_paths_agree_with_general_paths(text: str) -> None:
    assert parse_uri(text) == uri_general(text.strip(" \t"))
    assert parse_name_addr(text) == name_addr_general(text)


@SETTINGS
@given(address(), st.dictionaries(_LABEL, st.none() | _TOKEN, max_size=4), st.booleans())
def test_fast_name_addr_with_params_agrees(addr, params, tag_first) -> None:
    text = addr[0]
    for k, v in params.items():
        text += f";{k}" + (f"={v}" if v is not None else "")
    assert parse_name_addr(text) == name_addr_general(text)
    assert parse_name_addr(text) is not None


# -- linear cost ---------------------------------------------------------------------------

HEAD = b"INVITE sip:u@h SIP/2.0\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c\r\n"
END = b"CSeq: 1 INVITE\r\n\r\n"

# Inputs of size proportional to n, each aimed at a different loop or regex of the parser.
SHAPES: dict[str, Callable[[int], bytes]] = {
    "many headers": lambda n: HEAD + b"X-H: v\r\n" * n + END,
    "many via values": lambda n: (
        HEAD + b"Via: " + b"SIP/2.0/UDP h;branch=z9hG4bKx," * n + b"\r\n" + END
    ),
    "many via headers": lambda n: HEAD + b"Via: SIP/2.0/UDP h:5060;branch=z9hG4bKx\r\n" * n + END,
    "long folded header": lambda n: HEAD + b"Subject: a" + b"\r\n b" * n + b"\r\n" + END,
    "many contacts quoted": lambda n: HEAD + b"Contact: " + b'"a,b" <sip:c@d>,' * n + b"\r\n" + END,
    "unterminated quote": lambda n: HEAD + b'Contact: "' + b"a,\\" * n + b"\r\n" + END,
    "many open angles": lambda n: HEAD + b"Contact: " + b"<<sip:a@b;" * n + b"\r\n" + END,
    "many route values": lambda n: HEAD + b"Route: " + b"<sip:u:p@h;lr>," * n + b"\r\n" + END,
    "many pai values": lambda n: (
        HEAD + b"P-Asserted-Identity: " + b'"x" <tel:+1>, ' * n + b"\r\n" + END
    ),
    "many contact params": lambda n: HEAD + b"Contact: <sip:a@b>" + b";p=1" * n + b"\r\n" + END,
    "long call-id": lambda n: HEAD.replace(b"Call-ID: c", b"Call-ID: " + b"c" * (8 * n)) + END,
    "spaces in value": lambda n: HEAD + b"X: a" + b" " * (8 * n) + b"b \r\n" + END,
    "long from display": lambda n: (
        b"INVITE sip:u@h SIP/2.0\r\nFrom: "
        + b"a " * (4 * n)
        + b"<sip:a@x>\r\n"
        + END[:-2]
        + b"To: <sip:b@y>\r\nCall-ID: c\r\n\r\n"
    ),
    "bad from colons": lambda n: (
        b"INVITE sip:u@h SIP/2.0\r\nTo: <sip:b@y>\r\nCall-ID: c\r\nCSeq: 1 A\r\nFrom: <sip:"
        + b"a:" * (4 * n)
        + b">\r\n\r\n"
    ),
    "uri semicolons": lambda n: b"INVITE sip:u@h" + b";p=1" * (4 * n) + b" SIP/2.0\r\n\r\n",
    "auth params": lambda n: HEAD + b"Authorization: Digest " + b'a="x\\"y",' * n + b"\r\n" + END,
    "auth backslashes": lambda n: (
        HEAD + b'Authorization: Digest username="' + b"\\" * (8 * n) + b"\r\n" + END
    ),
    "challenge params": lambda n: (
        HEAD + b"WWW-Authenticate: Digest " + b"a=b, " * n + b"\r\n" + END
    ),
    "many bad lines": lambda n: HEAD + b"no colon here\r\n" * n + END,
    "many duplicate from": lambda n: HEAD + b"From: <sip:a@x>;tag=2\r\n" * n + END,
    "bare lf headers": lambda n: HEAD.replace(b"\r\n", b"\n") + b"X: y\n" * n + b"\n\nbody",
    "token start line": lambda n: b"A" * (8 * n) + b" sip:a@b SIP/2.0\r\n\r\n",
    "utf8 then bad cseq": lambda n: (
        HEAD + ("X: " + "é" * (4 * n) + "\r\n").encode() + b"CSeq: x INVITE\r\n\r\n"
    ),
    "via lws": lambda n: HEAD + b"Via: SIP " + b"/ " * (4 * n) + b"\r\n" + END,
    "ipv6 brackets": lambda n: HEAD + b"Via: SIP/2.0/UDP [" + b"1:" * (4 * n) + b"\r\n" + END,
}


def best_time(data: bytes, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        _parse(data)
        best = min(best, time.perf_counter() - t0)
    return best


def test_cost_is_linear_in_input_size() -> None:
    """10x the input must stay far below 100x the time (a quadratic path); bound 30x."""
    n = 400
    slow = {}
    for name, shape in SHAPES.items():
        small, large = shape(n), shape(10 * n)
        check_total(small)
        check_total(large)
        t_small = max(best_time(small), 20e-6)  # floor: timer noise on tiny inputs
        t_large = best_time(large)
        if t_large > 30 * t_small:
            # One retry with more repeats before calling it quadratic (shared, loaded CPUs).
            t_small = max(best_time(small, 15), 20e-6)
            t_large = best_time(large, 15)
            if t_large > 30 * t_small:
                slow[name] = round(t_large / t_small, 1)
    assert slow == {}
