"""SIP message parser: payload bytes -> `SipMessage` or `ParseError` (SPEC section 5).

Input: one UDP datagram or one framed TCP message. Output: a `SipMessage` with the start line,
the mandatory headers, the optional ones sipcm interprets, every other header as raw text
(lower-case canonical names, compact forms expanded) and counts of what was malformed; or a
`ParseError` with a stable snake_case reason and the byte offset of the problem.

It never raises and never takes super-linear time: the header block is split once, every
scan advances, and integers are length-checked before `int()`. It never keeps nonces, digest
responses or URI passwords (see auth.py and nameaddr.py).

Error reasons: too_short, not_text (probes), bad_start_line, bad_method, bad_version,
bad_status, bad_request_uri, missing_from, missing_to, missing_call_id, missing_cseq,
bad_from, bad_to, bad_call_id, bad_cseq, internal_error (a bug; never expected).
"""

from __future__ import annotations

import re
from typing import Any, Final, cast

from sipcm.sip.auth import redact_challenge
from sipcm.sip.headers import ADDRESS_LISTS, CANON, CHALLENGES, COMPACT, URI_HEADERS
from sipcm.sip.message import Credentials, NameAddr, ParseError, SipMessage, Uri, Via
from sipcm.sip.nameaddr import (
    CACHE_MAX_TEXT,
    cached_name_addr,
    cached_uri,
    scrub_passwords,
    split_values,
)
from sipcm.sip.probe import probe
from sipcm.sip.textcache import MISS, TextCache
from sipcm.sip.values import addresses, credentials
from sipcm.sip.via import cached_via

_FOLD: Final = re.compile(r"\r?\n[ \t]+")
_TOKEN: Final = re.compile(r"[!%*_+`'~.0-9A-Za-z\-]+")
_MAX_CSEQ: Final = 2**32 - 1
_DIGIT_0: Final = 48  # ord("0")
_DIGIT_9: Final = 57
# The usual start lines; anything else goes through the general checks in _start_line.
_REQUEST: Final = re.compile(r"([A-Z]++) ([^ \t\r]++) SIP/2\.0\r?")
_STATUS: Final = re.compile(r"SIP/2\.0 ([1-6][0-9][0-9]) ([^\r]*+)\r?")

# What the header loop does with each canonical name (absent: kept raw as written).
_VIA: Final = 2
_CONTACT: Final = 3
_PAI: Final = 4
_AUTH: Final = 5
_REASON: Final = 6  # several Reason headers are legitimate (RFC 3326: SIP and Q.850)
_ALIST: Final = 7  # raw, split into one entry per name-addr, URI passwords cut out
_CHALLENGE: Final = 8  # raw text reduced to scheme and realm
_URI_RAW: Final = 9  # raw, URI passwords cut out
# Headers of which the first value is kept (later copies are raw and counted bad): kind
# _SINGLE + slot, the first value at `slot` in the list the header loop returns.
_SINGLE: Final = 100
_S_FROM: Final = 0
_S_TO: Final = 1
_S_CALL_ID: Final = 2
_S_CSEQ: Final = 3
_S_CONTENT_LENGTH: Final = 4
_S_EXPIRES: Final = 5
_S_USER_AGENT: Final = 6
_S_SERVER: Final = 7
_SLOT: Final = {
    "from": _S_FROM,
    "to": _S_TO,
    "call-id": _S_CALL_ID,
    "cseq": _S_CSEQ,
    "content-length": _S_CONTENT_LENGTH,
    "expires": _S_EXPIRES,
    "user-agent": _S_USER_AGENT,
    "server": _S_SERVER,
}
if sorted(_SLOT.values()) != list(range(8)):  # 8: the list literal in _collect
    raise AssertionError("the _S_* slots must number the 8 single headers from 0")
_KIND: Final[dict[str, int]] = {
    **{name: _SINGLE + slot for name, slot in _SLOT.items()},
    "via": _VIA,
    "contact": _CONTACT,
    "p-asserted-identity": _PAI,
    "authorization": _AUTH,
    "proxy-authorization": _AUTH,
    "reason": _REASON,
}
_KIND.update(dict.fromkeys(ADDRESS_LISTS, _ALIST))
_KIND.update(dict.fromkeys(CHALLENGES, _CHALLENGE))
_KIND.update(dict.fromkeys(URI_HEADERS, _URI_RAW))
# Exact wire spelling -> (canonical name, kind): one dict lookup per header on the hot path.
_EXACT: Final[dict[str, tuple[str, int | None]]] = {n: (c, _KIND.get(c)) for n, c in CANON.items()}


def parse(data: bytes | bytearray | memoryview) -> SipMessage | ParseError:
    """Parse one SIP message in two steps (see `_parse`). Total: every input gives a
    SipMessage or a ParseError, the same as `parse_full` gives."""
    if not isinstance(data, bytes):
        data = bytes(data)
    try:
        return _parse(data)
    except Exception:  # the code below is written not to raise; this is only a safety net
        return ParseError("internal_error", 0)


def parse_full(data: bytes | bytearray | memoryview) -> SipMessage | ParseError:
    """Parse one SIP message in one step, every header at once (the general path)."""
    if not isinstance(data, bytes):
        data = bytes(data)
    try:
        return _parse_general(data)
    except Exception:
        return ParseError("internal_error", 0)


def _parse(data: bytes) -> SipMessage | ParseError:
    """The keyed step for the messages that seldom need their other fields (their first bytes
    say so: a request in KEYED_METHODS, a 1xx; or their CSeq: a final reply to such a
    request), else the general path. A message the keyed step
    cannot vouch for (folded lines, a bare-LF blank line, no blank line, any error) takes the
    general path too, so errors and their offsets are always the general path's. The payload
    is checked by `probe` and decoded once, for whichever step runs."""
    start, probe_reason = probe(data)
    if probe_reason is not None:
        return ParseError(probe_reason, start, probe=True)
    text = _decoded(data, start)
    if text is not None and start == 0 and _keyed_start(text):
        msg = _keyed_text(data, text, True)
        if msg is not None:
            return msg
    return _parse_general(data, start, text)


def _parse_general(
    data: bytes, start: int = -1, text: str | None = None
) -> SipMessage | ParseError:
    got = _general(data, None, False, start, text)
    if isinstance(got, ParseError):
        return got
    # Positional arguments: SipMessage(*got) would go through the generic call path.
    t = cast("tuple[Any, ...]", got)
    return SipMessage(
        t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13],
        t[14], t[15], t[16], t[17], t[18], t[19], t[20], t[21], t[22], t[23], t[24], t[25],
    )  # fmt: skip


def _decoded(data: bytes, start: int) -> str | None:
    """The payload from `start` as UTF-8 text; None when it is not UTF-8 throughout."""
    try:
        return (data if start == 0 else data[start:]).decode("utf-8")
    except UnicodeDecodeError:
        return None


# Requests the tracker only routes by their keys (in-dialog, or ending a transaction it already
# holds): with 1xx replies and the final replies to them, these take the keyed step. Any other
# message is stored or described by an event, so its second step would run at once; it is
# parsed in one step.
KEYED_METHODS = frozenset({"ACK", "BYE", "CANCEL", "PRACK", "UPDATE", "INFO", "NOTIFY", "REFER"})
_KEYED_STARTS = (*(m.encode() + b" " for m in sorted(KEYED_METHODS)), b"SIP/2.0 1")
# The same starts as text, by first letter: str.startswith is a native call in the compiled
# build (bytes.startswith a generic method call), but each prefix it tries costs a call.
_KEYED_BY_LETTER: Final = {
    chr(letter): tuple(s.decode() for s in _KEYED_STARTS if s[0] == letter)
    for letter in {s[0] for s in _KEYED_STARTS}
}


def _keyed_start(text: str) -> bool:
    """text.startswith(_KEYED_STARTS) (decoded), or a final response to a request in
    KEYED_METHODS (see _keyed_reply), for a non-empty text."""
    starts = _KEYED_BY_LETTER.get(text[0])
    if starts is None:
        return False
    return text.startswith(starts) or (text.startswith(_REPLY) and _keyed_reply(text))


_REPLY: Final = "SIP/2.0 "
_CSEQ_LINE: Final = "\nCSeq: "


def _keyed_reply(text: str) -> bool:
    """The CSeq line, as usually written, names a method in KEYED_METHODS (the 200 to a
    BYE): the tracker only routes such a reply by its keys. Only a hint for choosing the
    step (a reply it misreads is parsed right by either step), so no other spelling is read."""
    i = text.find(_CSEQ_LINE)
    if i < 0:
        return False
    sp = text.find(" ", i + len(_CSEQ_LINE))
    if sp < 0:
        return False
    eol = text.find("\r", sp)
    return eol >= 0 and text[sp + 1 : eol] in KEYED_METHODS


# The names the keyed step reads, as the general path reads them (ASCII case-insensitive,
# blanks before ":"): every spelling in CANON that means one of them, and their lower case.
_KEY_NAMES = frozenset({"from", "to", "call-id", "cseq", "via"})
_KEY_NAME = {n: c for n, c in CANON.items() if c in _KEY_NAMES}
_KEY_NAME.update({n: c for n, c in COMPACT.items() if c in _KEY_NAMES})
_KEY_NAME.update({c: c for c in _KEY_NAMES})
# The keyed step's codes for them, and 0 for the other known spellings (no need to look again
# at the lower case of a name written as the general path's tables write it).
_K_OTHER: Final = 0
_K_FROM: Final = 1
_K_TO: Final = 2
_K_CALL_ID: Final = 3
_K_CSEQ: Final = 4
_K_VIA: Final = 5
_KEY_CODE = {"from": _K_FROM, "to": _K_TO, "call-id": _K_CALL_ID, "cseq": _K_CSEQ, "via": _K_VIA}
_KEYED_NAMES: Final[dict[str, int]] = {
    n: _K_OTHER for n in (*CANON, *COMPACT, *_KIND) if n.rstrip(" \t").lower() not in _KEY_NAME
}
_KEYED_NAMES.update({n: _KEY_CODE[c] for n, c in _KEY_NAME.items()})


def _key_code(name: str) -> int | None:
    """_KEYED_NAMES.get(name), with the usual spellings compared as literals first (cheaper
    than hashing a new string; checked against the table below)."""
    if name == "Via":
        return _K_VIA
    if name == "From":
        return _K_FROM
    if name == "To":
        return _K_TO
    if name == "Call-ID":
        return _K_CALL_ID
    if name == "CSeq":
        return _K_CSEQ
    return _KEYED_NAMES.get(name)


if any(_KEYED_NAMES[n] != _key_code(n) for n in ("Via", "From", "To", "Call-ID", "CSeq")):
    raise AssertionError("_key_code must agree with _KEYED_NAMES")

# Their first letters, lower case (compared as ints: native in the compiled build).
_KF_V: Final = 118  # v
_KF_F: Final = 102  # f
_KF_T: Final = 116  # t
_KF_C: Final = 99  # c
_KF_I: Final = 105  # i
if {ord(n[0]) | 32 for n in _KEY_NAME} != {_KF_V, _KF_F, _KF_T, _KF_C, _KF_I}:
    raise AssertionError("_KF_* must be the first letters of the keyed header names")


# Their usual spellings start with these letters and go on with these (compared as ints); a
# name starting with "Co" (Contact, Content-*) is none of them.
_UC_V: Final = 86  # V
_UC_F: Final = 70  # F
_UC_T: Final = 84  # T
_UC_C: Final = 67  # C
_UC_S: Final = 83  # S
_LC_A: Final = 97  # a
_LC_O: Final = 111  # o
_COLON: Final = 58  # :


def _keyed(data: bytes, vias: bool = True) -> SipMessage | ParseError | None:
    """The keyed step: start line, From, To, Call-ID, CSeq and Vias, checked as the general
    path checks them; None when the general path must decide. Fields in message.DEFERRED are
    left unset for `complete`; without `vias` (shard_key) `vias` is left empty.

    The payload is decoded whole and scanned line by line with str.find (native in the
    compiled build) up to the blank line, rather than split into lines and partitioned: the
    usual spellings of the names are compared in place, and only the values of the five
    headers read here are cut out. A payload that is not UTF-8 throughout is left to the
    general path (which decodes its header block alone)."""
    start, probe_reason = probe(data)
    if probe_reason is not None:
        return ParseError(probe_reason, start, probe=True)
    text = _decoded(data, start)
    return None if text is None else _keyed_text(data, text, vias)


def _keyed_text(data: bytes, text: str, vias: bool) -> SipMessage | None:
    """_keyed once `data` passed the probe and decoded (from the probe's start) to `text`."""
    n = len(text)
    eol = text.find("\n")
    if eol < 0:
        return None
    first = _cached_start_line(text[:eol])
    if len(first) == 2:
        return None
    from_v: str | None = None
    to_v: str | None = None
    cid_v: str | None = None
    cseq_v: str | None = None
    values: list[str] = []
    pos = eol + 1
    while True:
        if pos >= n:  # no blank line
            return None
        nl = text.find("\n", pos)
        if nl < 0:
            nl = n
        # Folded lines and empty lines (a bare-LF blank line) are the general path's business.
        if nl == pos:
            return None
        c = ord(text[pos])
        if c == 13 and nl == pos + 1:  # the blank line: the header block ends before it
            break
        if c == 32 or c == 9:
            return None
        # Every keyed name starts with one of the letters of _KEY_FIRST (either case): any
        # other line is skipped without cutting out its name.
        lc = c | 32
        if lc != _KF_V and lc != _KF_F and lc != _KF_T and lc != _KF_C and lc != _KF_I:
            pos = nl + 1
            continue
        # The usual spellings are compared in place, character by character (native int
        # reads: cheaper than cutting out a slice, or finding the colon and the name).
        key = -1  # not known yet
        colon = -1
        ll = nl - pos  # the line's length, its "\n" excluded
        if c == _UC_V:
            if (
                ll > 3
                and ord(text[pos + 1]) == 105  # i
                and ord(text[pos + 2]) == 97  # a
                and ord(text[pos + 3]) == _COLON
            ):
                key, colon = _K_VIA, pos + 3
        elif c == _UC_F:
            if (
                ll > 4
                and ord(text[pos + 1]) == 114  # r
                and ord(text[pos + 2]) == 111  # o
                and ord(text[pos + 3]) == 109  # m
                and ord(text[pos + 4]) == _COLON
            ):
                key, colon = _K_FROM, pos + 4
        elif c == _UC_T:
            if ll > 2 and ord(text[pos + 1]) == 111 and ord(text[pos + 2]) == _COLON:  # o:
                key, colon = _K_TO, pos + 2
        elif c == _UC_C and ll > 1:
            c2 = ord(text[pos + 1])
            if c2 == _LC_O:
                key = _K_OTHER
            elif c2 == _LC_A:
                if (
                    ll > 7
                    and ord(text[pos + 2]) == 108  # l
                    and ord(text[pos + 3]) == 108  # l
                    and ord(text[pos + 4]) == 45  # -
                    and ord(text[pos + 5]) == 73  # I
                    and ord(text[pos + 6]) == 68  # D
                    and ord(text[pos + 7]) == _COLON
                ):
                    key, colon = _K_CALL_ID, pos + 7
            elif (
                c2 == _UC_S
                and ll > 4
                and ord(text[pos + 2]) == 101  # e
                and ord(text[pos + 3]) == 113  # q
                and ord(text[pos + 4]) == _COLON
            ):
                key, colon = _K_CSEQ, pos + 4
        if key < 0:
            colon = text.find(":", pos, nl)
            name = text[pos:nl] if colon < 0 else text[pos:colon]
            code = _key_code(name)
            if code is None and colon >= 0:
                name = name.rstrip(" \t")
                if name.isascii():
                    code = _KEYED_NAMES.get(name.lower())
            key = _K_OTHER if code is None else code
        if key != _K_OTHER:
            if key == _K_VIA:
                values.append("" if colon < 0 else _value(text, colon, nl))
            elif key == _K_FROM:
                if from_v is None:
                    from_v = "" if colon < 0 else _value(text, colon, nl)
            elif key == _K_TO:
                if to_v is None:
                    to_v = "" if colon < 0 else _value(text, colon, nl)
            elif key == _K_CALL_ID:
                if cid_v is None:
                    cid_v = "" if colon < 0 else _value(text, colon, nl)
            elif cseq_v is None:
                cseq_v = "" if colon < 0 else _value(text, colon, nl)
        pos = nl + 1
    mandatory = _mandatory(from_v, to_v, cid_v, cseq_v)
    if isinstance(mandatory, str) or cid_v is None:
        return None
    is_request, method, uri, status, reason = cast(_StartLine, first)
    from_, to, cseq, cseq_method = mandatory
    msg = SipMessage(
        is_request, method, uri, status, reason, cid_v, from_, to, cseq, cseq_method,
        _via_list(values, None) if values and vias else [], size=len(data),
    )  # fmt: skip
    msg._rest = data
    return msg


_SP: Final = 32  # ord(" ")
_CR: Final = 13  # ord("\r")


def _value(text: str, colon: int, end: int) -> str:
    """text[colon + 1 : end].strip(), the value of a header line, with one new string in
    the usual case: `: value\r` is first cut inside the space and the CR (then strip has
    nothing to remove and returns its argument)."""
    i = colon + 1
    if end - i >= 2 and ord(text[i]) == _SP and ord(text[end - 1]) == _CR:
        return text[i + 1 : end - 1].strip()
    return text[i:end].strip()


def complete(msg: SipMessage) -> None:
    """The second step: fill the DEFERRED fields of a keyed message from its bytes."""
    data = msg._rest
    if data is None:
        return
    try:
        got = _general(data, None, True)
    except Exception:  # never expected (the general path does not raise); keep what is known
        got = None
    if type(got) is tuple:
        (
            msg.contacts, msg.contact_star, msg.expires, msg.user_agent, msg.server,
            msg.reason_hdr, msg.pai, msg.credentials, msg.content_length, msg.body, msg.headers,
            msg.bad_headers,
        ) = got[11:23]  # fmt: skip
        msg.truncated = got[25]
    else:
        msg.contacts, msg.contact_star, msg.expires = [], False, None
        msg.user_agent = msg.server = msg.reason_hdr = msg.credentials = None
        msg.pai, msg.content_length, msg.body, msg.headers = [], None, b"", {}
        msg.bad_headers, msg.truncated = 0, False
    msg._rest = None


def _decode(raw: bytes) -> str:
    """Header text: UTF-8, else Latin-1 (one char per byte, so never surrogates)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _header_block(data: bytes, start: int, whole: str | None = None) -> tuple[str, int]:
    """(text, end): the header block from `start` to `end`, the offset of the first
    b"\\n\\r\\n", decoded; end is -1 when there is none, and the text runs to the end.
    `whole`: the payload from `start` decoded as UTF-8, when the caller has it.

    The usual message is all ASCII: it is decoded whole and searched as text (a native
    str.find in the compiled build; bytes.find is a generic method call), character offsets
    being byte offsets. Anything else is searched as bytes and its header block decoded."""
    if whole is None:
        whole = _decoded(data, start)
    if whole is not None and len(whole) == len(data) - start:
        cend = whole.find("\n\r\n")
        if cend < 0:
            return whole, -1
        return whole[:cend], start + cend
    end = data.find(b"\n\r\n", start)
    return _decode(data[start:end] if end >= 0 else data[start:]), end


def _via_list(values: list[str], headers: dict[str, list[str]] | None) -> list[Via]:
    """Parsed Via values in order; bad ones go raw to `headers["via"]` (when given)."""
    out: list[Via] = []
    for value in values:
        if "," not in value:
            via = cached_via(value)
            if via is not None:
                out.append(via)
            elif headers is not None:
                headers.setdefault("via", []).append(value)
            continue
        for piece in split_values(value):
            via = cached_via(piece)
            if via is not None:
                out.append(via)
            elif headers is not None:
                headers.setdefault("via", []).append(piece)
    return out


def _small_int(s: str, digits: int) -> int | None:
    """ASCII decimal of at most `digits` significant digits (int() would accept '²' or '1_0').

    Leading zeros are allowed (1*DIGIT in RFC 3261 25.1): fuzzers send CSeqs of 33,000 zeros
    and a 1, which is CSeq 1."""
    if len(s) > digits and s[:1] == "0":
        s = s.lstrip("0") or "0"
    n = len(s)
    if not 0 < n <= digits:
        return None
    value = 0
    for i in range(n):  # native character reads (isascii and int() are generic calls)
        c = ord(s[i])
        if c < _DIGIT_0 or c > _DIGIT_9:
            return None
        value = value * 10 + (c - _DIGIT_0)
    return value


# The usual spellings `_usual_at` recognises in place, and what the header loop does with each.
_USUAL: Final = (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length", "Content-Type",
    "Max-Forwards", "User-Agent", "Server",
)  # fmt: skip
_U_VIA: Final = 0
_U_FROM: Final = 1
_U_TO: Final = 2
_U_CALL_ID: Final = 3
_U_CSEQ: Final = 4
_U_CONTACT: Final = 5
_U_CONTENT_LENGTH: Final = 6
_U_CONTENT_TYPE: Final = 7
_U_MAX_FORWARDS: Final = 8
_U_USER_AGENT: Final = 9
_U_SERVER: Final = 10
_USUAL_KEY: Final = tuple(_EXACT[n][0] for n in _USUAL)
_RAW: Final = -1  # the kind of a header kept raw (None in _EXACT)
_USUAL_KIND: Final[tuple[int, ...]] = tuple(_EXACT[n][1] or _RAW for n in _USUAL)
_USUAL_COLON: Final = tuple(len(n) for n in _USUAL)


def _usual_at(text: str, pos: int, end: int) -> int:
    """Index in _USUAL of the spelling `text[pos:end]` starts with, followed by its colon;
    -1 for any other line (pos < end). Compared in place (native int reads, or one slice
    once the colon is where the spelling would end): no name is cut out and hashed."""
    n = end - pos
    c = ord(text[pos])
    if c == 86:  # V
        if (
            n > 3
            and ord(text[pos + 3]) == _COLON
            and ord(text[pos + 1]) == 105  # i
            and ord(text[pos + 2]) == 97  # a
        ):
            return _U_VIA
    elif c == 70:  # F
        if n > 4 and ord(text[pos + 4]) == _COLON and text[pos : pos + 4] == "From":
            return _U_FROM
    elif c == 84:  # T
        if n > 2 and ord(text[pos + 2]) == _COLON and ord(text[pos + 1]) == 111:  # o
            return _U_TO
    elif c == 67:  # C
        if n > 4 and ord(text[pos + 4]) == _COLON and text[pos : pos + 4] == "CSeq":
            return _U_CSEQ
        if n > 7 and ord(text[pos + 7]) == _COLON:
            name = text[pos : pos + 7]
            if name == "Call-ID":
                return _U_CALL_ID
            if name == "Contact":
                return _U_CONTACT
        elif n > 14 and ord(text[pos + 14]) == _COLON and text[pos : pos + 14] == "Content-Length":
            return _U_CONTENT_LENGTH
        if n > 12 and ord(text[pos + 12]) == _COLON and text[pos : pos + 12] == "Content-Type":
            return _U_CONTENT_TYPE
    elif c == 77:  # M
        if n > 12 and ord(text[pos + 12]) == _COLON and text[pos : pos + 12] == "Max-Forwards":
            return _U_MAX_FORWARDS
    elif c == 85:  # U
        if n > 10 and ord(text[pos + 10]) == _COLON and text[pos : pos + 10] == "User-Agent":
            return _U_USER_AGENT
    elif c == 83 and n > 6 and ord(text[pos + 6]) == _COLON and text[pos : pos + 6] == "Server":
        return _U_SERVER
    return -1


def _header_name(name: str) -> tuple[str, int | None] | None:
    """(canonical name, kind) of a name not in _EXACT; None if it is not a token."""
    key = name.rstrip(" \t").lower()
    if not _TOKEN.fullmatch(key):
        return None
    key = COMPACT.get(key, key)
    return key, _KIND.get(key)


class _Where:
    """Maps problems back to byte offsets; built only on the error path."""

    __slots__ = ("start", "text", "wide")

    def __init__(self, start: int, text: str, nbytes: int) -> None:
        self.start = start
        self.text = text
        self.wide = len(text) != nbytes

    def offset(self, ci: int) -> int:
        """Byte offset in the payload of character `ci` of the header block."""
        if self.wide:
            return self.start + len(self.text[:ci].encode("utf-8"))
        return self.start + ci

    def value_offset(self, key: str) -> int:
        """Byte offset of the value of the first header whose canonical name is `key`."""
        text = self.text
        n = len(text)
        pos = text.find("\n") + 1 if "\n" in text else n  # skip the start line
        while pos < n:
            nxt = pos
            while True:  # the logical line ends at a newline not followed by SP/HT
                nl = text.find("\n", nxt)
                nxt = n if nl < 0 else nl + 1
                if nxt >= n or text[nxt] not in " \t":
                    break
            colon = text.find(":", pos, nxt)
            if colon >= 0:
                known = _EXACT.get(text[pos:colon]) or _header_name(text[pos:colon])
                if known is not None and known[0] == key:
                    i = colon + 1
                    while i < nxt and text[i] in " \t":
                        i += 1
                    return self.offset(i)
            pos = nxt
        return self.offset(n)


def _general(
    data: bytes,
    lf_end: int | None = None,
    keyed: bool = False,
    probed: int = -1,
    decoded: str | None = None,
) -> tuple | ParseError:
    """Every SipMessage field in declaration order, or the ParseError (the general path).
    `lf_end`: where a bare-LF blank line ends the header block, once found. `keyed`: the keyed
    step accepted these bytes, so the start line and mandatory headers (fields 0-9) are not
    checked again and come back as None. `probed`: the start `probe` gave, when it passed
    (-1: not probed yet), and `decoded` the payload from there as UTF-8, when it is."""
    if probed >= 0:
        start = probed
    else:
        start, probe_reason = probe(data)
        if probe_reason is not None:
            return ParseError(probe_reason, start, probe=True)
        decoded = None
    if lf_end is None:
        text, end = _header_block(data, start, decoded)
        body_start = end + 3
    else:
        end = lf_end
        body_start = end + 2
        text = _decode(data[start:end])
    complete = end >= 0
    nbytes = (end if complete else len(data)) - start  # of the header block
    block = text  # the lines collected (unfolded, if any was folded)
    got = _collect(block, False, complete)
    if got is None:  # a folded line
        if "\n\n" not in text:  # undo the folding (RFC 3261 7.3.1) and collect again
            block = _FOLD.sub(" ", text)
            got = _collect(block, True, complete)
        else:
            got = 0  # an empty line comes first: the blank line is there
    if type(got) is int:  # an empty line: a bare-LF "\n\n" ended the headers earlier
        lf = data.find(b"\n\n", start)
        if lf_end is not None or lf < 0:  # cannot happen: the block had an empty line
            return ParseError("internal_error", start)
        return _general(data, lf)
    headers, single, vias, contacts, pais, auths, reasons, bad = cast(_Collected, got)
    # Fields 0-9 (None when `keyed`), unpacked from typed tuples: mypyc unpacks and indexes a
    # tuple of Any through a boxed copy.
    is_request: bool | None = None
    method: str | None = None
    ruri: Uri | None = None
    status: int | None = None
    reason: str | None = None
    from_: NameAddr | None = None
    to: NameAddr | None = None
    cseq: int | None = None
    cseq_method: str | None = None
    if not keyed:
        eol = block.find("\n")
        got_first = _cached_start_line(block if eol < 0 else block[:eol])
        if len(got_first) == 2:  # (reason, character offset)
            return ParseError(got_first[0], _Where(start, text, nbytes).offset(got_first[1]))
        is_request, method, ruri, status, reason = cast(_StartLine, got_first)
        mandatory = _mandatory(single[_S_FROM], single[_S_TO], single[_S_CALL_ID], single[_S_CSEQ])
        if isinstance(mandatory, str):
            if mandatory.startswith("missing_"):  # offset: where the blank line is (or is not)
                return ParseError(mandatory, end + 1 if complete else len(data))
            where = _Where(start, text, nbytes)
            return ParseError(mandatory, where.value_offset(_CHECKED[mandatory]))
        from_, to, cseq, cseq_method = mandatory

    via_list = _via_list(vias, headers) if vias else []
    if "via" in headers:
        bad += len(headers["via"])
    contact_list: list[NameAddr] = []
    star = False
    if contacts is not None:
        contact_list, star, nbad = addresses(contacts, "contact", headers, allow_star=True)
        bad += nbad
    pai_list: list[NameAddr] = []
    if pais is not None:
        pai_list, _, nbad = addresses(pais, "p-asserted-identity", headers, allow_star=False)
        bad += nbad
    creds: Credentials | None = None
    if auths is not None:
        creds, nbad = credentials(auths)
        bad += nbad
    expires = clen = None
    value = single[_S_CONTENT_LENGTH]
    if value is not None:
        clen = _small_int(value, 10)
        if clen is None or clen > _MAX_CSEQ:
            clen = None
            headers.setdefault("content-length", []).append(value)
            bad += 1
    value = single[_S_EXPIRES]
    if value is not None:
        expires = _small_int(value, 10)
        if expires is None or expires > _MAX_CSEQ:
            expires = None
            headers.setdefault("expires", []).append(value)
            bad += 1
    if reasons is not None and len(reasons) > 1:
        headers.setdefault("reason", []).extend(reasons[1:])

    truncated = not complete
    if not complete:
        body = b""
    elif clen is None:
        body = data[body_start:]
    else:
        body = data[body_start : body_start + clen]
        truncated = len(body) < clen
    return (
        is_request, method, ruri, status, reason, single[_S_CALL_ID], from_, to, cseq,
        cseq_method, via_list, contact_list, star, expires, single[_S_USER_AGENT],
        single[_S_SERVER], reasons[0] if reasons else None, pai_list, creds, clen, body,
        headers, bad, len(data), None, truncated,
    )  # fmt: skip


_Collected = tuple[
    dict[str, list[str]],  # headers kept raw
    list[str | None],  # first value of each _SLOT header, by slot
    list[str],  # Via values
    list[str] | None,  # Contact values
    list[str] | None,  # P-Asserted-Identity values
    list[tuple[str, str]] | None,  # (name, value) of Authorization / Proxy-Authorization
    list[str] | None,  # Reason values
    int,  # malformed headers so far
]


def _collect(block: str, unfolded: bool, complete: bool) -> _Collected | int | None:
    """Sort the header lines of `block` (the lines after its first) by what is done with them.

    Returns None at the first folded line unless `unfolded` (the caller unfolds and calls
    again; after unfolding such a line is only a bad line), and the offset of an empty line
    (a bare-LF blank line: the block really ended there). A final empty line is the end of
    an unterminated block unless `complete` (then the block ended with "\n" + "\n\r\n").
    The lines are those of block.split("\n"), read in place by offsets (no list of lines).
    """
    headers: dict[str, list[str]] = {}
    single: list[str | None] = [None, None, None, None, None, None, None, None]  # _SLOT
    vias: list[str] = []
    # The less usual kinds get their list at their first value (None: no such header).
    contacts: list[str] | None = None
    pais: list[str] | None = None
    auths: list[tuple[str, str]] | None = None
    reasons: list[str] | None = None
    bad = 0
    n = len(block)
    eol = block.find("\n")
    pos = n + 1 if eol < 0 else eol + 1  # the line after the start line
    while pos <= n:
        line_start = pos
        end = block.find("\n", pos)
        if end < 0:
            end = n
        pos = end + 1
        # (key, kind): from the usual spelling's index without a tuple (a tuple of an
        # optional int is boxed), else from the tables.
        usual = _usual_at(block, line_start, end) if end > line_start else -1
        if usual >= 0:
            key = _USUAL_KEY[usual]
            kind = _USUAL_KIND[usual]
            colon = line_start + _USUAL_COLON[usual]
        else:
            colon = block.find(":", line_start, end)
            name = block[line_start:end] if colon < 0 else block[line_start:colon]
            known = _EXACT.get(name)
            if known is None:
                if end == line_start:
                    if end == n and not complete:
                        continue  # the payload ended with a newline and no blank line
                    return line_start
                if block[line_start] in " \t" and not unfolded:
                    return None
                known = _header_name(name) if colon >= 0 else None
                if known is None:
                    if colon >= 0 or name.strip(" \t\r"):  # the line holds more than blanks
                        bad += 1
                    continue
            key = known[0]
            kind = _RAW if known[1] is None else known[1]
        value = "" if colon < 0 else _value(block, colon, end)
        if kind == _RAW:
            lst = headers.get(key)
            if lst is None:
                headers[key] = [value]
            else:
                lst.append(value)
        elif kind >= _SINGLE:
            slot = kind - _SINGLE
            first = single[slot]
            if first is None:
                single[slot] = value
            elif first is not value:  # as dict.setdefault(key, value) is not value
                headers.setdefault(key, []).append(scrub_passwords(value))
                bad += 1
        elif kind == _VIA:
            vias.append(value)
        elif kind == _CONTACT:
            if contacts is None:
                contacts = [value]
            else:
                contacts.append(value)
        elif kind == _ALIST:
            headers.setdefault(key, []).extend(split_values(scrub_passwords(value)))
        elif kind == _PAI:
            if pais is None:
                pais = [value]
            else:
                pais.append(value)
        elif kind == _AUTH:
            if auths is None:
                auths = [(key, value)]
            else:
                auths.append((key, value))
        elif kind == _CHALLENGE:
            red = redact_challenge(value)
            if red is not None:
                headers.setdefault(key, []).append(red)
        elif kind == _URI_RAW:
            headers.setdefault(key, []).append(scrub_passwords(value))
        else:
            if reasons is None:
                reasons = [value]
            else:
                reasons.append(value)
    return headers, single, vias, contacts, pais, auths, reasons, bad


_StartLine = tuple[bool, str | None, Uri | None, int | None, str | None]


def _start_line(line: str) -> _StartLine | tuple[str, int]:
    """Request-Line or Status-Line (RFC 3261 7.1, 7.2); on error (reason, char offset)."""
    m = _REQUEST.fullmatch(line)
    if m is not None:
        uri = cached_uri(m.group(2))
        if uri is not None:
            return True, m.group(1), uri, None, None
    else:
        m = _STATUS.fullmatch(line)
        if m is not None:
            return False, None, None, int(m.group(1)), m.group(2).strip()
    line = line.rstrip("\r")
    if line[:4].upper() == "SIP/":
        parts = line.split(None, 2)
        if parts[0].upper() != "SIP/2.0":
            return "bad_version", 0
        if len(parts) < 2:
            return "bad_start_line", len(line)
        code = _small_int(parts[1], 3)
        if code is None or not 100 <= code <= 699 or len(parts[1]) != 3:
            return "bad_status", line.find(parts[1], 7)
        return False, None, None, code, parts[2].strip() if len(parts) == 3 else ""
    parts = line.split()
    if len(parts) != 3:
        return "bad_start_line", 0
    method, uri_text, version = parts
    if not _TOKEN.fullmatch(method):
        return "bad_method", 0
    if version.upper() != "SIP/2.0":
        return "bad_version", line.rfind(version)
    uri = cached_uri(uri_text)
    if uri is None:
        return "bad_request_uri", line.find(uri_text, len(method))
    return True, method.upper(), uri, None, None


# Start lines repeat (`SIP/2.0 200 OK`, a dialog's request URIs): each distinct one is read once.
_start_lines: Final = TextCache(1024)


def _cached_start_line(line: str) -> _StartLine | tuple[str, int]:
    """_start_line through a cache (replies repeat a few status lines, requests their URIs)."""
    if len(line) > CACHE_MAX_TEXT:
        return _start_line(line)
    got = _start_lines.get(line)
    if got is MISS:
        got = _start_line(line)
        _start_lines.put(line, got)
    return cast("_StartLine | tuple[str, int]", got)


# Error reason -> the canonical header it is about.
_CHECKED: Final = {"bad_from": "from", "bad_to": "to", "bad_call_id": "call-id", "bad_cseq": "cseq"}


def _mandatory(
    fv: str | None, tv: str | None, cv: str | None, sv: str | None
) -> tuple[NameAddr, NameAddr, int, str] | str:
    """From, To, Call-ID and CSeq (their first values), checked in that order; a reason
    string on error."""
    if fv is None:
        return "missing_from"
    if tv is None:
        return "missing_to"
    if cv is None:
        return "missing_call_id"
    if sv is None:
        return "missing_cseq"
    from_ = cached_name_addr(fv)
    if from_ is None:
        return "bad_from"
    to = cached_name_addr(tv)
    if to is None:
        return "bad_to"
    if not cv:
        return "bad_call_id"
    cseq = _cached_cseq(sv)
    if cseq is None:
        return "bad_cseq"
    return from_, to, cseq[0], cseq[1]


_cseqs: Final = TextCache(1024)


def _cached_cseq(sv: str) -> tuple[int, str] | None:
    """_cseq through a cache (a dialog repeats a few CSeq values, calls share small ones)."""
    if len(sv) > 64:
        return _cseq(sv)
    got = _cseqs.get(sv)
    if got is MISS:
        got = _cseq(sv)
        _cseqs.put(sv, got)
    return cast("tuple[int, str] | None", got)


def _cseq(sv: str) -> tuple[int, str] | None:
    """(number, upper-case method) of a CSeq value, None if malformed."""
    parts = sv.split()
    num = _small_int(parts[0], 10) if len(parts) == 2 else None
    if num is None or num > _MAX_CSEQ or not _TOKEN.fullmatch(parts[1]):
        return None
    return num, parts[1].upper()
