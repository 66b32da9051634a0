"""Shard keys: which correlation worker a SIP message belongs to.

Every message of a dialog or transaction carries the same Call-ID, so Call-ID is the key;
REGISTER requests and replies are keyed by the address-of-record of their To URI instead, so
that every binding of one AOR lives in one worker even when a phone changes Call-ID between
refreshes. `shard_key` reads the key straight from the payload bytes for the common,
unambiguous layout (ASCII headers, no folding, CRLF blank line) and returns None for anything
else; `message_shard_key` derives the same key from a parsed message. The two agree on every
message that parses (tests/fuzz/test_shardkey_fuzz.py), so a dispatcher may use the fast one
and fall back to a full parse. What cannot be joined by this key (an auth retry that starts a
new Call-ID) is counted by the tracker (`auth_retry_unjoined`).
"""

from __future__ import annotations

import zlib
from typing import Final

from sipcm.sip.message import SipMessage
from sipcm.sip.nameaddr import aor_of, cached_name_addr

# First header of each name, as the parser sees header lines: the name (any case, compact
# form, blanks before the colon) at the start of a line, the value to the end of the line.
# Lines are found with `str.find` and only their first bytes are compared, compiled; the
# scan stops once the headers the key needs are found (no list of every line, no method call
# per value): 15% less CPU than splitting the payload into lines.
_CASE: Final = 32  # upper-case ASCII letter + 32 = lower-case
_SP: Final = 32
_HT: Final = 9
_COLON: Final = 58
_REGISTER: Final = b"REGISTER"
_SIP: Final = b"SIP/"
_RESPONSE: Final = b"SIP/2.0 "


def _colon(data: bytes, i: int, name: bytes) -> int:
    """Where the colon is if the line at `i` starts with header name `name` (lower case; its
    letters match either case) followed by blanks and a colon; else -1. The caller's data
    has a line feed after the line, where any scan here stops."""
    n = len(name)
    for k in range(n):
        c = data[i + k]
        w = name[k]
        if c != w and not (w >= 97 and c + _CASE == w):
            return -1
    j = i + n
    while True:
        c = data[j]
        if c == _COLON:
            return j
        if c != _SP and c != _HT:
            return -1
        j += 1


def _blank(c: int) -> bool:
    """str.strip()'s ASCII whitespace (bytes.strip() leaves out \x1c-\x1f)."""
    return c == _SP or 9 <= c <= 13 or 28 <= c <= 31


def _value(data: bytes, colon: int, eol: int, ascii: bool) -> bytes | None:
    """The value of the header line whose colon is at `colon` and line feed at `eol`, as the
    parser keeps it; None if the line is folded or not ASCII (`ascii`: the whole payload is,
    so the value need not be checked)."""
    nxt = data[eol + 1]
    if nxt in (_SP, _HT):
        return None  # a line starting with a blank continues this one
    i = colon + 1
    j = eol
    while i < j and _blank(data[i]):
        i += 1
    while j > i and _blank(data[j - 1]):
        j -= 1
    value = data[i:j]
    return value if ascii or value.isascii() else None


def _word_at(data: bytes, i: int, word: bytes) -> bool:
    """Whether `data` has `word` (upper case) at `i`, its letters in any case."""
    n = len(word)
    if i < 0 or i + n > len(data):
        return False
    for k in range(n):
        c = data[i + k]
        w = word[k]
        if c != w and not (65 <= w <= 90 and c == w + _CASE):
            return False
    return True


def shard_key(data: bytes) -> bytes | None:
    """The shard key of a payload (Call-ID, or for REGISTER the To AOR, as bytes), or None
    when the layout needs the full parser to be sure (None never claims it is not SIP).

    Only the lines read are checked: an ASCII value decodes the same whether the parser
    takes the block as UTF-8 or Latin-1, and a bare-LF blank line before a header makes the
    message a parse error (no key needed) or leaves the first match the parser's too."""
    if not data or not 65 <= data[0] <= 90:
        return None  # leading CRLF keep-alives, a lower-case method, not SIP at all
    # Lines are found in a Latin-1 copy (same offsets): compiled, `str.find` is a direct C
    # call, where `bytes.find` parses its arguments from a tuple (~1,000 instructions each).
    text = data.decode("latin-1")
    # A decoded str knows whether it is all ASCII (no scan), where each value's
    # `bytes.isascii` would be a method call.
    ascii = text.isascii()
    end = text.find("\n\r\n")  # the line feed before the blank line ending the headers
    if end < 0:
        return None
    response = _word_at(data, 0, _SIP)
    if response:  # the key needs the CSeq method
        if not data.startswith(_RESPONSE):
            return None  # a status line the parser splits its own way
        register = False
    else:
        register = _word_at(data, 0, _REGISTER)
        if register and data[8:9] != b" ":
            if data[8:9].isspace() or data[8:9] in (b"\x1c", b"\x1d", b"\x1e", b"\x1f"):
                return None  # the parser would split the start line on this blank too
            register = False  # a longer method name
    want_to = register or response  # a reply to REGISTER: known from its CSeq
    # The first line of each name the key needs: its colon and its line feed.
    call_id = cseq = to = -1
    call_id_end = cseq_end = to_end = -1
    pos = text.find("\n")
    while pos < end:
        i = pos + 1
        pos = text.find("\n", i)
        c = data[i]
        if c < 97:
            c += _CASE
        if c == 99:  # c
            colon = _colon(data, i, b"call-id") if call_id < 0 else -1
            if colon >= 0:
                call_id, call_id_end = colon, pos
            elif response and cseq < 0:
                colon = _colon(data, i, b"cseq")
                if colon >= 0:
                    cseq, cseq_end = colon, pos
        elif c == 105:  # i
            if call_id < 0:
                colon = _colon(data, i, b"i")
                if colon >= 0:
                    call_id, call_id_end = colon, pos
        elif c == 116:  # t
            if want_to and to < 0:
                colon = _colon(data, i, b"to")
                if colon < 0:
                    colon = _colon(data, i, b"t")
                if colon >= 0:
                    to, to_end = colon, pos
        else:
            continue
        if call_id >= 0 and (cseq >= 0 or not response) and (to >= 0 or not want_to):
            break
    if call_id < 0:
        return None
    key = _value(data, call_id, call_id_end, ascii)
    if not key:
        return None
    if response:
        if cseq < 0:
            return None
        value = _value(data, cseq, cseq_end, ascii)
        if value is None:
            return None  # no CSeq, or a folded one (the parser joins the next line)
        if _word_at(value, len(value) - len(_REGISTER), _REGISTER):
            parts = value.split()
            register = len(parts) == 2 and parts[1].upper() == _REGISTER
    if not register:
        return key
    if to < 0:
        return None
    value = _value(data, to, to_end, ascii)
    na = cached_name_addr(value.decode("ascii")) if value is not None else None
    return aor_of(na.uri).encode() if na is not None else None


def message_shard_key(msg: SipMessage) -> bytes:
    """The shard key of a parsed message (see the module docstring)."""
    method = msg.method if msg.is_request else msg.cseq_method
    key = aor_of(msg.to.uri) if method == "REGISTER" else msg.call_id
    return key.encode("utf-8", "surrogateescape")


# Hash buckets of a shard table: a shard's weight is how many it owns.
BUCKETS = 1024
# A Final copy: compiled, `zlib.crc32` would be looked up in the module's dict on every call.
_CRC32: Final = zlib.crc32


def shard_table(weights: list[int]) -> bytes:
    """Bucket -> shard index for shards of the given weights (summing to `BUCKETS`; at most
    256 shards), each owning a contiguous run of buckets."""
    if sum(weights) != BUCKETS or len(weights) > 256 or min(weights) < 0:
        raise ValueError(f"shard weights must be 0 or more and sum to {BUCKETS}: {weights}")
    return b"".join(bytes([i]) * w for i, w in enumerate(weights))


def shard_in(key: bytes, table: bytes) -> int:
    """Shard index of a key in a `shard_table` (stable across runs and processes)."""
    return table[_CRC32(key) % BUCKETS]
