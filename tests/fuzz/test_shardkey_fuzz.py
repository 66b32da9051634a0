"""The dispatcher's fast shard key agrees with the key of the fully parsed message."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipcm.sip.message import SipMessage
from sipcm.sip.parser import parse
from sipcm.sip.shardkey import message_shard_key, shard_key
from tests.fuzz.test_parser_fuzz import SPECIAL, VALID

REGISTER = (
    b"REGISTER sip:registrar.example SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.example:5060;branch=z9hG4bK7\r\n"
    b'To: "Al" <sip:alice@Example.COM;transport=udp>\r\n'
    b"From: <sip:alice@example.com>;tag=4\r\n"
    b"i: r1@pc33\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"Contact: <sip:alice@192.0.2.4>;expires=60\r\n\r\n"
)
EXTRA = [
    b"\r\nCall-ID: x",
    b"\r\nt: <sip:z@q>",
    b"\r\nCSeq: 3 REGISTER",
    b"\t",
    b"\x1c",
    b"REGISTER",
    b"SIP/2.0 ",
    b"\r\n\r\n",
    b"\n\n",
    b"\r\ncall-id :y",
    b"\r\nI\t: w",
    b"\r\nIdentity: z",
    b"\r\nCSEQ: 4 register",
    b"\r\nTimestamp: 1",
]
REPLY = REGISTER.replace(b"REGISTER sip:registrar.example SIP/2.0", b"SIP/2.0 200 OK")


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from([VALID, REGISTER, REPLY])))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.integers(0, 3))
        if op == 0:
            data[pos:pos] = draw(st.sampled_from([*SPECIAL, *EXTRA]))
        elif op == 1:
            del data[pos : pos + draw(st.integers(1, 20))]
        elif op == 2:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:
            end = draw(st.integers(pos, len(data)))
            data[pos:pos] = data[pos:end]
    return bytes(data)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fast_key_equals_parsed_key(data: bytes) -> None:
    key = shard_key(data)
    msg = parse(data)
    if key is not None and isinstance(msg, SipMessage):
        assert key == message_shard_key(msg)


# Header lines the key reads, look-alikes, and lines it skips, in any order around a valid
# message's lines: the first line of each name decides, whatever its spelling, and nothing
# after the blank line counts.
NAMES = [b"Call-ID", b"call-id", b"CALL-ID", b"i", b"I", b"Identity", b"Call-IDs", b"CSeq"]
NAMES += [b"cseq", b"To", b"t", b"T", b"Timestamp", b"Via", b"From", b"Contact"]
SEPARATORS = [b": ", b":", b" : ", b"\t:", b" "]
VALUES = [b"a@h", b" b@h ", b"<sip:u@H.example:5060>;tag=1", b"1 REGISTER", b"2 INVITE"]
VALUES += [b"\xc3\xa9@h", b"Call-ID: v@h", b"\x1c c@h \x1c", b""]
ENDS = [b"\r\n"] * 6 + [b"\n", b"\r\n ", b"\r\n\t"]
STARTS = {
    b"REGISTER sip:r.example SIP/2.0": b"REGISTER",
    b"INVITE sip:b@h SIP/2.0": b"INVITE",
    b"SIP/2.0 200 OK": b"",
}
VALID_SEPARATORS = [b": ", b":", b" : ", b"\t:"]


@st.composite
def layout(draw) -> bytes:
    start = draw(st.sampled_from(sorted(STARTS)))
    method = STARTS[start] or draw(st.sampled_from([b"REGISTER", b"INVITE", b"register"]))
    headers = [
        b"Via: SIP/2.0/UDP h:5060;branch=z9hG4bK1",
        b"From: <sip:f@h>;tag=2",
        draw(st.sampled_from([b"To", b"t", b"T"]))
        + b": <sip:%d@H.example:5060>" % draw(st.integers(0, 3)),
        draw(st.sampled_from([b"Call-ID", b"call-id", b"i", b"I"]))
        + draw(st.sampled_from(VALID_SEPARATORS))
        + b"c%d@h" % draw(st.integers(0, 3)),
        draw(st.sampled_from([b"CSeq", b"cseq"])) + b": 1 " + method,
    ]
    for _ in range(draw(st.integers(0, 6))):
        name, sep = draw(st.sampled_from(NAMES)), draw(st.sampled_from(SEPARATORS))
        headers.append(name + sep + draw(st.sampled_from(VALUES)))
    lines = [start, *draw(st.permutations(headers))]
    head = b"".join(line + draw(st.sampled_from(ENDS)) for line in lines)
    body = b"".join(
        draw(st.sampled_from(NAMES)) + b": " + draw(st.sampled_from(VALUES)) + b"\r\n"
        for _ in range(draw(st.integers(0, 3)))
    )
    return head + draw(st.sampled_from([b"\r\n", b"", b"\n"])) + body


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout())
def test_header_layouts_fast_key_equals_parsed_key(data: bytes) -> None:
    key = shard_key(data)
    msg = parse(data)
    if key is not None and isinstance(msg, SipMessage):
        assert key == message_shard_key(msg)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_never_raise(data: bytes) -> None:
    key = shard_key(data)
    assert key is None or (isinstance(key, bytes) and key)
