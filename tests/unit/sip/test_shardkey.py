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
