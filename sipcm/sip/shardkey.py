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
_METHOD = re.compile(rb"([A-Za-z]{1,32}) ")
# str.strip()'s ASCII whitespace (bytes.strip() leaves out \x1c-\x1f).
_WS = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_REGISTER = b"REGISTER"
_RESPONSE = b"SIP/2.0 "


def shard_key(data: bytes) -> str | None:
    """The shard key of a payload ("c:" + Call-ID, or "r:" + AOR for REGISTER), or None when
    the layout needs the full parser to be sure (a None is never a claim that it is not SIP)."""
    if not data[:1].isupper():
        return None  # leading CRLF keep-alives, a lower-case method, not SIP at all
    end = data.find(b"\n\r\n")
    if end < 0:
        return None
    head = data[:end]
    if not head.isascii() or b"\n\n" in head or b"\n " in head or b"\n\t" in head:
        return None  # decoding, bare-LF blank lines and folding: leave them to the parser
    m = _CALL_ID.search(head)
    if m is None:
        return None
    call_id = m.group(1).strip(_WS)
    if data.startswith(_RESPONSE):
        cs = _CSEQ.search(head)
        if cs is None:
            return None
        parts = cs.group(1).split()
        register = len(parts) == 2 and parts[1].upper() == _REGISTER
    else:
        method = _METHOD.match(data)
        if method is None:
            return None
        register = method.group(1).upper() == _REGISTER
    if not register:
        return "c:" + call_id.decode("ascii") if call_id else None
    to = _TO.search(head)
    if to is None:
        return None
    na = cached_name_addr(to.group(1).strip(_WS).decode("ascii"))
    return "r:" + aor_of(na.uri) if na is not None else None


def message_shard_key(msg: SipMessage) -> str:
    """The shard key of a parsed message (see the module docstring)."""
    method = msg.method if msg.is_request else msg.cseq_method
    if method == "REGISTER":
        return "r:" + aor_of(msg.to.uri)
    return "c:" + msg.call_id


def shard_of(key: str, n: int) -> int:
    """Worker index of a key among `n` (stable across runs and processes)."""
    return zlib.crc32(key.encode("utf-8", "surrogateescape")) % n
