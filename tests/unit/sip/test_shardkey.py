"""Shard keys: Call-ID for everything but REGISTER, which is keyed by its To AOR."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from sipcm.sip.message import SipMessage
from sipcm.sip.parser import parse
from sipcm.sip.shardkey import (
    BUCKETS,
    message_shard_key,
    shard_in,
    shard_key,
    shard_table,
)
from tests.unit.sip.test_corpus_messages import payloads

INVITE = (
    b"INVITE sip:bob@b.example SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n"
    b"From: <sip:alice@a.example>;tag=1\r\n"
    b"To: <sip:bob@b.example>\r\n"
    b"Call-ID:   abc@a.example  \r\n"
    b"CSeq: 1 INVITE\r\n\r\n"
)
REGISTER = (
    b"REGISTER sip:b.example SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP a.example;branch=z9hG4bK2\r\n"
    b"From: <sip:alice@a.example>;tag=2\r\n"
    b't: "Alice" <sip:alice@A.Example:5060;transport=udp>\r\n'
    b"i: reg-1@a.example\r\n"
    b"CSeq: 7 REGISTER\r\n\r\n"
)
REG_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP a.example;branch=z9hG4bK2\r\n"
    b"From: <sip:alice@a.example>;tag=2\r\n"
    b"TO: sip:alice@a.example:5060;tag=99\r\n"
    b"CALL-ID: reg-2@a.example\r\n"
    b"cseq: 8 register\r\n\r\n"
)


def both(data: bytes) -> tuple[bytes | None, bytes]:
    msg = parse(data)
    assert isinstance(msg, SipMessage)
    return shard_key(data), message_shard_key(msg)


def test_call_id_key_is_the_trimmed_value() -> None:
    assert both(INVITE) == (b"abc@a.example", b"abc@a.example")


def test_register_request_and_reply_share_the_aor_key_across_call_ids() -> None:
    # Different Call-IDs, To written differently (display name, case, params, tag): one AOR.
    assert both(REGISTER) == (b"sip:alice@a.example:5060", b"sip:alice@a.example:5060")
    assert both(REG_200) == (b"sip:alice@a.example:5060", b"sip:alice@a.example:5060")


def test_a_reply_to_invite_keys_by_call_id() -> None:
    reply = INVITE.replace(b"INVITE sip:bob@b.example SIP/2.0", b"SIP/2.0 180 Ringing")
    assert both(reply) == (b"abc@a.example", b"abc@a.example")


def test_mixed_case_and_odd_start_lines_follow_the_parser() -> None:
    mixed = REGISTER.replace(b"REGISTER sip:", b"ReGiStEr sip:")
    assert both(mixed) == (b"sip:alice@a.example:5060", b"sip:alice@a.example:5060")
    tabbed = REGISTER.replace(b"REGISTER sip:", b"REGISTER\tsip:")
    assert shard_key(tabbed) is None  # the parser splits on the tab: left to it
    longer = INVITE.replace(b"INVITE sip:", b"REGISTERX sip:")
    assert shard_key(longer) == b"abc@a.example"
    status = REG_200.replace(b"SIP/2.0 200", b"SIP/2.0\t200")
    assert shard_key(status) is None


def test_layouts_left_to_the_parser() -> None:
    folded = INVITE.replace(b"Call-ID:   abc@a.example  \r\n", b"Call-ID:\r\n abc@a.example\r\n")
    assert shard_key(folded) is None
    assert message_shard_key(parse(folded)) == b"abc@a.example"  # type: ignore[arg-type]
    # A folded CSeq in a response: the parser reads "2 REGISTER" (the To AOR is the key).
    reg_reply = (
        b"SIP/2.0 200 OK\r\nTo: <sip:al@Example.COM>\r\nFrom: <sip:al@example.com>;tag=4\r\n"
        b"Call-ID: r1@pc\r\nCSeq:\r\n 2 REGISTER\r\n\r\n"
    )
    assert shard_key(reg_reply) is None
    assert message_shard_key(parse(reg_reply)) == b"sip:al@example.com"  # type: ignore[arg-type]
    assert shard_key(b"\r\n" + INVITE) is None  # keep-alive before the start line
    assert shard_key(INVITE.replace(b"abc@", "äbc@".encode())) is None  # an 8-bit value
    assert shard_key(INVITE.replace(b"alice", "älice".encode())) == b"abc@a.example"
    assert shard_key(INVITE[:-2]) is None  # no blank line
    assert shard_key(INVITE.replace(b"Call-ID:   abc@a.example  \r\n", b"")) is None


def test_shard_in_is_stable_and_in_range() -> None:
    table = shard_table([342, 341, 341])  # three equal shards
    keys = [f"{i}@x".encode() for i in range(1000)]
    got = [shard_in(k, table) for k in keys]
    assert got == [shard_in(k, table) for k in keys]
    assert set(got) == {0, 1, 2}
    assert shard_in(b"abc@a.example", table) == table[zlib.crc32(b"abc@a.example") % BUCKETS]


def test_corpus_fast_keys_agree_with_the_parser(corpus: Path) -> None:
    fast = total = 0
    for path in sorted(corpus.rglob("*.pcap*")):
        for data in payloads(path):
            msg = parse(data)
            if not isinstance(msg, SipMessage):
                continue
            total += 1
            key = shard_key(data)
            if key is not None:
                fast += 1
                assert key == message_shard_key(msg), (path.name, data[:200])
    # What the fast path declines is a layout the parser must see (folding, leading CRLF,
    # 8-bit text); on real traffic that is the exception.
    assert total > 200
    assert fast / total > 0.9, (fast, total)


def test_shard_table_gives_each_shard_its_weight_in_buckets() -> None:
    table = shard_table([600, 424])
    assert len(table) == BUCKETS
    assert table.count(0) == 600
    assert table.count(1) == 424
    assert shard_in(b"abc@a.example", table) == table[zlib.crc32(b"abc@a.example") % BUCKETS]
    keys = [f"{i}@x".encode() for i in range(20000)]
    local = sum(shard_in(k, table) == 1 for k in keys)
    assert 0.39 < local / len(keys) < 0.44  # the weight, give or take the hash's spread
    with pytest.raises(ValueError, match="sum to 1024"):
        shard_table([600, 400])


def test_first_call_id_line_of_any_spelling_is_the_key() -> None:
    # Any case, blanks before the colon, the compact form; the first such line wins.
    lower = INVITE.replace(b"Call-ID:   abc@a.example  ", b"call-id \t:abc@a.example")
    assert both(lower) == (b"abc@a.example", b"abc@a.example")
    upper = INVITE.replace(b"Call-ID:   abc@a.example  ", b"CALL-ID : abc@a.example")
    assert both(upper) == (b"abc@a.example", b"abc@a.example")
    compact_first = INVITE.replace(b"To: ", b"I: first@x\r\nTo: ")
    assert both(compact_first) == (b"first@x", b"first@x")


def test_lines_that_only_look_like_call_id_are_skipped() -> None:
    # A name that starts like Call-ID or i, a Call-ID inside another header's value, and one
    # after the blank line (in the body) are not the key.
    lookalikes = INVITE.replace(
        b"To: ",
        b"Identity: abc\r\nCall-IDs: no\r\ncall-id2: no\r\nI-Extra: no\r\n"
        b"Subject: Call-ID: no\r\nTo: ",
    )
    assert both(lookalikes) == (b"abc@a.example", b"abc@a.example")
    identity_then_compact = INVITE.replace(b"Call-ID:   abc@a.example  ", b"i : xyz@a")
    identity_then_compact = identity_then_compact.replace(b"To: ", b"Identity: q\r\nTo: ")
    assert both(identity_then_compact) == (b"xyz@a", b"xyz@a")
    body = INVITE[:-2] + b"Content-Length: 16\r\n\r\nCall-ID: no@body"
    assert both(body) == (b"abc@a.example", b"abc@a.example")
    only_in_body = body.replace(b"Call-ID:   abc@a.example  \r\n", b"")
    assert shard_key(only_in_body) is None
    after_blank = INVITE.replace(b"Call-ID:   abc@a.example  \r\n", b"") + b"Call-ID: x@y\r\n"
    assert shard_key(after_blank) is None


def test_register_keys_read_the_first_to_and_cseq_lines() -> None:
    # A REGISTER request with Timestamp (a t-line that is not To) before its compact To.
    timestamp = REGISTER.replace(b"t: ", b"Timestamp: 5\r\nt : ")
    assert both(timestamp) == (b"sip:alice@a.example:5060", b"sip:alice@a.example:5060")
    # A reply: the first CSeq decides; a later CSeq REGISTER does not make it a REGISTER reply.
    invite_reply = REG_200.replace(b"cseq: 8 register", b"CSeq: 8 INVITE\r\nCSeq: 9 REGISTER")
    assert both(invite_reply) == (b"reg-2@a.example", b"reg-2@a.example")
    # Blanks around the method, \x1c among them (str.strip takes it off, bytes.split does not).
    blanks = REG_200.replace(b"cseq: 8 register", b"cseq:\x1c 8  register\x1c ")
    assert both(blanks) == (b"sip:alice@a.example:5060", b"sip:alice@a.example:5060")


def test_a_body_after_the_blank_line_still_needs_the_blank_line() -> None:
    sdp = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"
    with_body = INVITE[:-2] + b"Content-Length: %d\r\n\r\n" % len(sdp) + sdp
    assert both(with_body) == (b"abc@a.example", b"abc@a.example")
    # Header lines only, the last one running into a body-like line: no blank line at all.
    no_blank = INVITE[:-2] + b"Content-Length: 4\r\nv=0\r\n"
    assert shard_key(no_blank) is None
    bare_lf_blank = INVITE[:-4] + b"\n\r\n"  # "\n\r\n" after a line ending in a bare LF
    assert both(bare_lf_blank) == (b"abc@a.example", b"abc@a.example")
