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

from mypy_extensions import i64

from sipcm.sip.message import SipMessage
from sipcm.sip.nameaddr import aor_of, cached_name_addr

# First header of each name, as the parser sees header lines: the name (any case, compact
# form, blanks before the colon) at the start of a line, the value to the end of the line.
# Compiled, the cost is one `str.find("\n")` per header line up to the last one the key needs
# (~220 instructions each, a direct C call; bytes.find is a generic method call, ~960) plus
# the Latin-1 copy it searches (~490 for a 330-byte payload); each line's first byte picks
# the few lines whose name is compared, in i64 arithmetic, inline. Lower-casing a copy to
# search for "\ncall-id" costs more than the whole walk (str.lower ~6.5 instructions a
# character, a multi-character find ~370 plus ~2.7 a character).
_CASE: Final = 32  # an ASCII letter | 32 = the letter in lower case
_SP: Final = 32
_HT: Final = 9
_LF: Final = 10
_CR: Final = 13
_COLON: Final = 58
_HYPHEN: Final = 45
# Lower-case letters of the names compared (after | _CASE).
_A: Final = 97
_C: Final = 99
_D: Final = 100
_E: Final = 101
_I: Final = 105
_L: Final = 108
_O: Final = 111
_Q: Final = 113
_R: Final = 114
_S: Final = 115
_T: Final = 116
# Upper-case first letters of the start lines told apart (a request's method is upper case).
_UPPER_R: Final = 82
_UPPER_S: Final = 83
_REGISTER: Final = b"REGISTER"
_SIP: Final = b"SIP/"
_RESPONSE: Final = b"SIP/2.0 "
# A Final copy: compiled, `text.isascii()` would look the method up on every call.
_IS_ASCII: Final = str.isascii


def _colon(data: bytes, j: i64) -> i64:
    """Where the colon is if blanks and a colon follow the name that ends at `j`; else -1.
    The caller's data has a line feed after the line, where the scan stops."""
    while True:
        c: i64 = data[j]
        if c == _COLON:
            return j
        if c != _SP and c != _HT:
            return -1
        j += 1


def _trimmed(data: bytes, i: i64, j: i64) -> tuple[i64, i64]:
    """The span [i, j) without the ASCII whitespace str.strip() takes off either end
    (bytes.strip() leaves out \x1c-\x1f); written out twice, as a call per byte costs more."""
    while i < j:
        c: i64 = data[i]
        if not (c == _SP or 9 <= c <= 13 or 28 <= c <= 31):
            break
        i += 1
    while j > i:
        c = data[j - 1]
        if not (c == _SP or 9 <= c <= 13 or 28 <= c <= 31):
            break
        j -= 1
    return i, j


def _folded(data: bytes, eol: i64) -> bool:
    """Whether the line ending at line feed `eol` continues on the next (the parser joins
    them); the caller's data has bytes after `eol`."""
    nxt: i64 = data[eol + 1]
    return nxt in (_SP, _HT)


def _blank_line_after(data: bytes, text: str, pos: i64) -> bool:
    """Whether a blank line follows line feed `pos` (b"\n\r\n" at `pos` or later): where a
    body-less message ends, else found in `text`, the Latin-1 copy of `data`."""
    n: i64 = len(data)
    if n - 3 >= pos and data[n - 3] == _LF and data[n - 2] == _CR and data[n - 1] == _LF:
        return True
    return text.find("\r\n\r\n", pos - 1) >= 0 or text.find("\n\r\n", pos) >= 0


def _value(data: bytes, colon: i64, eol: i64, ascii: bool) -> bytes | None:
    """The value of the header line whose colon is at `colon` and line feed at `eol`, as the
    parser keeps it; None if the line is folded or not ASCII (`ascii`: the whole payload is,
    so the value need not be checked)."""
    if _folded(data, eol):
        return None
    i, j = _trimmed(data, colon + 1, eol)
    value = data[i:j]
    return value if ascii or value.isascii() else None


def _word_at(data: bytes, i: i64, word: bytes) -> bool:
    """Whether `data` has `word` (upper case) at `i`, its letters in any case."""
    n: i64 = len(word)
    if i < 0 or i + n > len(data):
        return False
    k: i64 = 0
    while k < n:
        c: i64 = data[i + k]
        w: i64 = word[k]
        if c != w and not (65 <= w <= 90 and c == w + _CASE):
            return False
        k += 1
    return True


def shard_key(data: bytes) -> bytes | None:
    """The shard key of a payload (Call-ID, or for REGISTER the To AOR, as bytes), or None
    when the layout needs the full parser to be sure (None never claims it is not SIP).

    Only the lines read are checked: an ASCII value decodes the same whether the parser
    takes the block as UTF-8 or Latin-1, and a bare-LF blank line before a header makes the
    message a parse error (no key needed) or leaves the first match the parser's too."""
    n: i64 = len(data)
    if n == 0:
        return None
    first: i64 = data[0]
    if not 65 <= first <= 90:
        return None  # leading CRLF keep-alives, a lower-case method, not SIP at all
    response = False
    register = False
    if first == _UPPER_S:
        if data.startswith(_RESPONSE):
            response = True  # the key needs the CSeq method
        elif _word_at(data, 0, _SIP):
            return None  # a status line the parser splits its own way
    elif first == _UPPER_R and _word_at(data, 0, _REGISTER):
        register = True
        if data[8:9] != b" ":
            if data[8:9].isspace() or data[8:9] in (b"\x1c", b"\x1d", b"\x1e", b"\x1f"):
                return None  # the parser would split the start line on this blank too
            register = False  # a longer method name
    want_to = register or response  # a reply to REGISTER: known from its CSeq
    # Lines are found in a Latin-1 copy (same offsets); bytes are read from `data`.
    text = data.decode("latin-1")
    # The first line of each name the key needs: its colon and its line feed.
    call_id: i64 = -1
    cseq: i64 = -1
    to: i64 = -1
    call_id_end: i64 = -1
    cseq_end: i64 = -1
    to_end: i64 = -1
    pos: i64 = text.find("\n")
    if pos < 0:
        return None
    while True:
        i = pos + 1  # a line starts here, the first header line's or a later one's
        pos = text.find("\n", i)
        if pos < 0:
            return None  # no blank line
        c: i64 = data[i]
        if c == _CR and pos == i + 1:
            break  # the blank line ending the headers: the key's lines are not all there
        c |= _CASE
        if c == _C:  # Call-ID, or a response's CSeq
            if (
                call_id < 0
                and data[i + 1] | _CASE == _A
                and data[i + 2] | _CASE == _L
                and data[i + 3] | _CASE == _L
                and data[i + 4] == _HYPHEN
                and data[i + 5] | _CASE == _I
                and data[i + 6] | _CASE == _D
            ):
                call_id = _colon(data, i + 7)
                call_id_end = pos
            elif (
                response
                and cseq < 0
                and data[i + 1] | _CASE == _S
                and data[i + 2] | _CASE == _E
                and data[i + 3] | _CASE == _Q
            ):
                cseq = _colon(data, i + 4)
                cseq_end = pos
        elif c == _I:  # compact Call-ID
            if call_id < 0:
                call_id = _colon(data, i + 1)
                call_id_end = pos
        elif c == _T:  # To, or compact To
            if want_to and to < 0:
                if data[i + 1] | _CASE == _O:
                    to = _colon(data, i + 2)
                if to < 0:
                    to = _colon(data, i + 1)
                to_end = pos
        else:
            continue
        if call_id >= 0 and (cseq >= 0 or not response) and (to >= 0 or not want_to):
            if not _blank_line_after(data, text, pos):
                return None  # header lines only if a blank line follows
            break
    if call_id < 0:
        return None
    # A decoded str knows whether it is all ASCII (no scan): then no value needs a check.
    ascii = _IS_ASCII(text)
    key = _value(data, call_id, call_id_end, ascii)
    if not key:
        return None  # folded, not ASCII, or empty
    if response:
        if cseq < 0 or _folded(data, cseq_end):
            return None  # no CSeq, or a folded one (the parser joins the next line)
        start, end = _trimmed(data, cseq + 1, cseq_end)  # e.g. "1 INVITE"
        if not ascii and not data[start:end].isascii():
            return None
        # Sliced and split only when it ends with the method the key depends on.
        if end - start >= len(_REGISTER) and _word_at(data, end - len(_REGISTER), _REGISTER):
            parts = data[start:end].split()
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
