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
# One split of the payload into lines and compiled byte comparisons find all three: about
# half the cost of case-insensitive regular expressions searched one after the other.
_NONE: Final = 0
_CALL_ID: Final = 1
_CSEQ: Final = 2
_TO: Final = 3
_CASE: Final = 32  # upper-case ASCII letter + 32 = lower-case
_SP: Final = 32
_HT: Final = 9
_CR: Final = 13
_COLON: Final = 58
# str.strip()'s ASCII whitespace (bytes.strip() leaves out \x1c-\x1f).
_WS: Final = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_REGISTER: Final = b"REGISTER"
_RESPONSE: Final = b"SIP/2.0 "


def _colon(line: bytes, name: bytes) -> int:
    """Where `line` has its colon if it starts with header name `name` (lower case; its
    letters match either case) followed by blanks and a colon; else -1."""
    n = len(name)
    size = len(line)
    if size <= n:
        return -1
    for k in range(n):
        c = line[k]
        w = name[k]
        if c != w and not (w >= 97 and c + _CASE == w):
            return -1
    i = n
    while i < size:
        c = line[i]
        if c == _COLON:
            return i
        if c != _SP and c != _HT:
            return -1
        i += 1
    return -1


def _kind(line: bytes) -> tuple[int, int]:
    """(kind, colon) of a header line: which of the three names it has, where its colon is."""
    c = line[0]
    if c < 97:
        c += _CASE
    if c == 99:  # c
        colon = _colon(line, b"call-id")
        if colon >= 0:
            return _CALL_ID, colon
        colon = _colon(line, b"cseq")
        return (_CSEQ, colon) if colon >= 0 else (_NONE, -1)
    if c == 105:  # i
        colon = _colon(line, b"i")
        return (_CALL_ID, colon) if colon >= 0 else (_NONE, -1)
    if c == 116:  # t
        colon = _colon(line, b"to")
        if colon < 0:
            colon = _colon(line, b"t")
        return (_TO, colon) if colon >= 0 else (_NONE, -1)
    return _NONE, -1


def _value(lines: list[bytes], k: int, colon: int) -> bytes | None:
    """The value of header line `k` as the parser keeps it; None if the line is folded or
    not ASCII."""
    nxt = lines[k + 1]
    if nxt and nxt[0] in (_SP, _HT):
        return None  # a line starting with a blank continues this one
    value = lines[k][colon + 1 :].strip(_WS)
    return value if value.isascii() else None


def shard_key(data: bytes) -> bytes | None:
    """The shard key of a payload (Call-ID, or for REGISTER the To AOR, as bytes), or None
    when the layout needs the full parser to be sure (None never claims it is not SIP).

    Only the lines read are checked: an ASCII value decodes the same whether the parser
    takes the block as UTF-8 or Latin-1, and a bare-LF blank line before a header makes the
    message a parse error (no key needed) or leaves the first match the parser's too."""
    if not data[:1].isupper():
        return None  # leading CRLF keep-alives, a lower-case method, not SIP at all
    lines = data.split(b"\n")
    last = len(lines) - 1
    found = [-1, -1, -1, -1]  # by kind: its first line
    colons = [-1, -1, -1, -1]
    k = 1
    while True:
        if k >= last:
            return None  # no blank line (a CR line followed by a line feed)
        line = lines[k]
        if line:
            if line[0] == _CR and len(line) == 1:
                break  # the blank line: the end of the header block
            kind, colon = _kind(line)
            if kind != _NONE and found[kind] < 0:
                found[kind] = k
                colons[kind] = colon
        k += 1
    if found[_CALL_ID] < 0:
        return None
    call_id = _value(lines, found[_CALL_ID], colons[_CALL_ID])
    if not call_id:
        return None
    if data[:4].upper() == b"SIP/":
        if not data.startswith(_RESPONSE):
            return None  # a status line the parser splits its own way
        value = _value(lines, found[_CSEQ], colons[_CSEQ]) if found[_CSEQ] >= 0 else None
        if value is None:
            return None  # no CSeq, or a folded one (the parser joins the next line)
        parts = value.split()
        register = len(parts) == 2 and parts[1].upper() == _REGISTER
    else:
        register = data[:8].upper() == _REGISTER
        if register and data[8:9] != b" ":
            if data[8:9].isspace() or data[8:9] in (b"\x1c", b"\x1d", b"\x1e", b"\x1f"):
                return None  # the parser would split the start line on this blank too
            register = False  # a longer method name
    if not register:
        return call_id
    if found[_TO] < 0:
        return None
    value = _value(lines, found[_TO], colons[_TO])
    na = cached_name_addr(value.decode("ascii")) if value is not None else None
    return aor_of(na.uri).encode() if na is not None else None


def message_shard_key(msg: SipMessage) -> bytes:
    """The shard key of a parsed message (see the module docstring)."""
    method = msg.method if msg.is_request else msg.cseq_method
    key = aor_of(msg.to.uri) if method == "REGISTER" else msg.call_id
    return key.encode("utf-8", "surrogateescape")


# Hash buckets of a shard table: a shard's weight is how many it owns.
BUCKETS = 1024


def shard_table(weights: list[int]) -> bytes:
    """Bucket -> shard index for shards of the given weights (summing to `BUCKETS`; at most
    256 shards), each owning a contiguous run of buckets."""
    if sum(weights) != BUCKETS or len(weights) > 256 or min(weights) < 0:
        raise ValueError(f"shard weights must be 0 or more and sum to {BUCKETS}: {weights}")
    return b"".join(bytes([i]) * w for i, w in enumerate(weights))


def shard_in(key: bytes, table: bytes) -> int:
    """Shard index of a key in a `shard_table` (stable across runs and processes)."""
    return table[zlib.crc32(key) % BUCKETS]
