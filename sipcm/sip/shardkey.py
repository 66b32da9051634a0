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

import re
import zlib

from sipcm.sip.message import SipMessage
from sipcm.sip.nameaddr import aor_of, cached_name_addr

# First header of each name, as the parser sees header lines: the name (any case, compact
# form, blanks before the colon) at the start of a line, the value to the end of the line.
_CALL_ID = re.compile(rb"\n(?:call-id|i)[ \t]*:([^\n]*)", re.IGNORECASE)
_TO = re.compile(rb"\n(?:to|t)[ \t]*:([^\n]*)", re.IGNORECASE)
_CSEQ = re.compile(rb"\ncseq[ \t]*:([^\n]*)", re.IGNORECASE)
# str.strip()'s ASCII whitespace (bytes.strip() leaves out \x1c-\x1f).
_WS = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_REGISTER = b"REGISTER"
_RESPONSE = b"SIP/2.0 "
_FOLD = (32, 9)  # SP, HT: a line starting with one continues the previous line


def _value(data: bytes, m: re.Match[bytes]) -> bytes | None:
    """A header value as the parser keeps it; None if the line is folded or not ASCII."""
    nxt = m.end() + 1
    if nxt < len(data) and data[nxt] in _FOLD:
        return None
    value = m.group(1).strip(_WS)
    return value if value.isascii() else None


def shard_key(data: bytes) -> bytes | None:
    """The shard key of a payload (Call-ID, or for REGISTER the To AOR, as bytes), or None
    when the layout needs the full parser to be sure (None never claims it is not SIP).

    Only the lines read are checked: an ASCII value decodes the same whether the parser
    takes the block as UTF-8 or Latin-1, and a bare-LF blank line before a header makes the
    message a parse error (no key needed) or leaves the first match the parser's too."""
    if not data[:1].isupper():
        return None  # leading CRLF keep-alives, a lower-case method, not SIP at all
    end = data.find(b"\n\r\n")
    if end < 0:
        return None
    m = _CALL_ID.search(data, 0, end)
    if m is None:
        return None
    call_id = _value(data, m)
    if not call_id:
        return None
    if data[:4].upper() == b"SIP/":
        if not data.startswith(_RESPONSE):
            return None  # a status line the parser splits its own way
        cs = _CSEQ.search(data, 0, end)
        value = _value(data, cs) if cs is not None else None
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
    to = _TO.search(data, 0, end)
    if to is None:
        return None
    value = _value(data, to)
    na = cached_name_addr(value.decode("ascii")) if value is not None else None
    return aor_of(na.uri).encode() if na is not None else None


def message_shard_key(msg: SipMessage) -> bytes:
    """The shard key of a parsed message (see the module docstring)."""
    method = msg.method if msg.is_request else msg.cseq_method
    key = aor_of(msg.to.uri) if method == "REGISTER" else msg.call_id
    return key.encode("utf-8", "surrogateescape")


def shard_of(key: bytes, n: int) -> int:
    """Worker index of a key among `n` (stable across runs and processes)."""
    return zlib.crc32(key) % n
