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

from sipcm.sip.auth import parse_credentials, redact_challenge
from sipcm.sip.headers import ADDRESS_LISTS, CANON, CHALLENGES, COMPACT
from sipcm.sip.message import Credentials, NameAddr, ParseError, SipMessage, Uri, Via
from sipcm.sip.nameaddr import parse_name_addr, parse_uri, split_values
from sipcm.sip.probe import probe
from sipcm.sip.via import parse_via

_FOLD = re.compile(r"\r?\n[ \t]+")
_TOKEN = re.compile(r"[!%*_+`'~.0-9A-Za-z\-]+")
_MAX_CSEQ = 2**32 - 1

# What the header loop does with each canonical name.
_SINGLE = 1  # first value kept, later copies are raw and counted bad
_VIA = 2
_CONTACT = 3
_PAI = 4
_AUTH = 5
_REASON = 6  # several Reason headers are legitimate (RFC 3326: SIP and Q.850)
_KIND: dict[str, int] = {
    "from": _SINGLE,
    "to": _SINGLE,
    "call-id": _SINGLE,
    "cseq": _SINGLE,
    "content-length": _SINGLE,
    "expires": _SINGLE,
    "user-agent": _SINGLE,
    "server": _SINGLE,
    "via": _VIA,
    "contact": _CONTACT,
    "p-asserted-identity": _PAI,
    "authorization": _AUTH,
    "proxy-authorization": _AUTH,
    "reason": _REASON,
}


def parse(data: bytes) -> SipMessage | ParseError:
    """Parse one SIP message. Total: every input gives a SipMessage or a ParseError."""
    if not isinstance(data, bytes):
        data = bytes(data)
    try:
        return _parse(data)
    except Exception:  # the code below is written not to raise; this is only a safety net
        return ParseError("internal_error", 0)


def _small_int(s: str, digits: int) -> int | None:
    """ASCII decimal of at most `digits` digits (int() would accept '²' or '1_0')."""
    if 0 < len(s) <= digits and s.isascii() and s.isdigit():
        return int(s)
    return None


def _end_of_headers(data: bytes, start: int) -> tuple[int, int]:
    """(end of header block, start of body); (-1, len) when there is no blank line."""
    a = data.find(b"\n\r\n", start)
    b = data.find(b"\n\n", start, a if a >= 0 else len(data))
    if b >= 0:
        return b, b + 2
    if a >= 0:
        return a, a + 3
    return -1, len(data)


class _Block:
    """The decoded header block and how to map its character offsets back to bytes."""

    __slots__ = ("start", "text", "wide")

    def __init__(self, data: bytes, start: int, end: int) -> None:
        raw = data[start:end]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")  # one char per byte; never surrogates in output
        self.start = start
        self.text = text
        self.wide = len(text) != len(raw)

    def offset(self, ci: int) -> int:
        """Byte offset in the payload of character `ci` of the block."""
        if self.wide:
            return self.start + len(self.text[:ci].encode("utf-8"))
        return self.start + ci

    def value_offset(self, logical: int) -> int:
        """Byte offset of the value of logical header line `logical` (folding undone)."""
        text = self.text
        pos = 0
        line = 0
        n = len(text)
        while pos < n:
            nl = text.find("\n", pos)
            nxt = n if nl < 0 else nl + 1
            if line == logical:
                colon = text.find(":", pos, nxt)
                if colon < 0:
                    return self.offset(pos)
                i = colon + 1
                while i < nxt and text[i] in " \t":
                    i += 1
                return self.offset(i)
            if nxt >= n or text[nxt] not in " \t":
                line += 1
            pos = nxt
        return self.offset(n)


def _parse(data: bytes) -> SipMessage | ParseError:
    start, probe_reason = probe(data)
    if probe_reason is not None:
        return ParseError(probe_reason, start, probe=True)
    hdr_end, body_start = _end_of_headers(data, start)
    complete = hdr_end >= 0
    block = _Block(data, start, hdr_end if complete else len(data))
    text = block.text
    if "\n " in text or "\n\t" in text:
        text = _FOLD.sub(" ", text)
    lines = text.split("\n")
    first = _start_line(lines[0], block)
    if isinstance(first, ParseError):
        return first
    eoh_offset = hdr_end + 1 if complete else len(data)  # where the blank line is (or is not)

    headers: dict[str, list[str]] = {}
    single: dict[str, tuple[int, str]] = {}
    vias: list[str] = []
    contacts: list[str] = []
    pais: list[str] = []
    auths: list[tuple[str, str]] = []
    reasons: list[str] = []
    bad = 0
    for idx in range(1, len(lines)):
        name, sep, value = lines[idx].partition(":")
        if not sep:
            if lines[idx].strip():
                bad += 1
            continue
        key = CANON.get(name)
        if key is None:
            key = name.rstrip(" \t").lower()
            if not key or " " in key or "\t" in key:
                bad += 1
                continue
            key = COMPACT.get(key, key)
        value = value.strip()
        kind = _KIND.get(key)
        if kind is None:
            if key in ADDRESS_LISTS:
                vals = split_values(value)
            elif key in CHALLENGES:
                red = redact_challenge(value)
                if red is None:
                    continue
                vals = [red]
            else:
                vals = [value]
            lst = headers.get(key)
            if lst is None:
                headers[key] = vals
            else:
                lst.extend(vals)
        elif kind == _SINGLE:
            if key in single:
                headers.setdefault(key, []).append(value)
                bad += 1
            else:
                single[key] = (idx, value)
        elif kind == _VIA:
            vias.append(value)
        elif kind == _CONTACT:
            contacts.append(value)
        elif kind == _PAI:
            pais.append(value)
        elif kind == _AUTH:
            auths.append((key, value))
        else:
            reasons.append(value)

    mandatory = _mandatory(single, block, eoh_offset)
    if isinstance(mandatory, ParseError):
        return mandatory
    from_, to, call_id, cseq, cseq_method = mandatory
    is_request, method, ruri, status, reason = first

    via_list, nbad = _vias(vias, headers)
    bad += nbad
    contact_list, star, nbad = _addresses(contacts, "contact", headers, allow_star=True)
    bad += nbad
    pai_list, _, nbad = _addresses(pais, "p-asserted-identity", headers, allow_star=False)
    bad += nbad
    creds, nbad = _credentials(auths)
    bad += nbad
    expires, nbad = _optional_int(single, "expires", headers, 10)
    bad += nbad
    clen, nbad = _optional_int(single, "content-length", headers, 10)
    bad += nbad
    if len(reasons) > 1:
        headers.setdefault("reason", []).extend(reasons[1:])

    truncated = not complete
    if not complete:
        body = b""
    elif clen is None:
        body = data[body_start:]
    else:
        body = data[body_start : body_start + clen]
        truncated = len(body) < clen
    ua = single.get("user-agent")
    srv = single.get("server")
    return SipMessage(
        is_request,
        method,
        ruri,
        status,
        reason,
        call_id,
        from_,
        to,
        cseq,
        cseq_method,
        via_list,
        contact_list,
        star,
        expires,
        ua[1] if ua is not None else None,
        srv[1] if srv is not None else None,
        reasons[0] if reasons else None,
        pai_list,
        creds,
        clen,
        body,
        headers,
        bad,
        len(data),
        None,
        truncated,
    )


_StartLine = tuple[bool, str | None, Uri | None, int | None, str | None]


def _start_line(line: str, block: _Block) -> _StartLine | ParseError:
    """Request-Line or Status-Line (RFC 3261 7.1, 7.2)."""
    line = line.rstrip("\r")
    if line[:4].upper() == "SIP/":
        parts = line.split(None, 2)
        if parts[0].upper() != "SIP/2.0":
            return ParseError("bad_version", block.offset(0))
        if len(parts) < 2:
            return ParseError("bad_start_line", block.offset(len(line)))
        code = _small_int(parts[1], 3)
        if code is None or not 100 <= code <= 699 or len(parts[1]) != 3:
            return ParseError("bad_status", block.offset(line.find(parts[1], 7)))
        return False, None, None, code, parts[2].strip() if len(parts) == 3 else ""
    parts = line.split()
    if len(parts) != 3:
        return ParseError("bad_start_line", block.offset(0))
    method, uri_text, version = parts
    if not _TOKEN.fullmatch(method):
        return ParseError("bad_method", block.offset(0))
    if version.upper() != "SIP/2.0":
        return ParseError("bad_version", block.offset(line.rfind(version)))
    uri = parse_uri(uri_text)
    if uri is None:
        return ParseError("bad_request_uri", block.offset(line.find(uri_text, len(method))))
    return True, method.upper(), uri, None, None


def _mandatory(
    single: dict[str, tuple[int, str]], block: _Block, eoh: int
) -> tuple[NameAddr, NameAddr, str, int, str] | ParseError:
    """From, To, Call-ID and CSeq, checked in that order."""
    got = []
    for key, what in (("from", "from"), ("to", "to"), ("call-id", "call_id"), ("cseq", "cseq")):
        item = single.get(key)
        if item is None:
            return ParseError("missing_" + what, eoh)
        got.append(item)
    (fi, fv), (ti, tv), (ci, cv), (si, sv) = got
    from_ = parse_name_addr(fv)
    if from_ is None:
        return ParseError("bad_from", block.value_offset(fi))
    to = parse_name_addr(tv)
    if to is None:
        return ParseError("bad_to", block.value_offset(ti))
    if not cv:
        return ParseError("bad_call_id", block.value_offset(ci))
    parts = sv.split()
    num = _small_int(parts[0], 10) if len(parts) == 2 else None
    if num is None or num > _MAX_CSEQ or not _TOKEN.fullmatch(parts[1]):
        return ParseError("bad_cseq", block.value_offset(si))
    return from_, to, cv, num, parts[1].upper()


def _vias(raw: list[str], headers: dict[str, list[str]]) -> tuple[list[Via], int]:
    out: list[Via] = []
    bad = 0
    for value in raw:
        for piece in split_values(value) if "," in value else (value,):
            via = parse_via(piece)
            if via is None:
                headers.setdefault("via", []).append(piece)
                bad += 1
            else:
                out.append(via)
    return out, bad


def _addresses(
    raw: list[str], key: str, headers: dict[str, list[str]], allow_star: bool
) -> tuple[list[NameAddr], bool, int]:
    out: list[NameAddr] = []
    star = False
    bad = 0
    for value in raw:
        if allow_star and value == "*":
            star = True
            continue
        for piece in split_values(value) if "," in value else (value,):
            na = parse_name_addr(piece)
            if na is None:
                headers.setdefault(key, []).append(piece)
                bad += 1
            else:
                out.append(na)
    return out, star, bad


def _credentials(raw: list[tuple[str, str]]) -> tuple[Credentials | None, int]:
    """First Authorization wins over the first Proxy-Authorization; raw text is never kept."""
    found: Credentials | None = None
    bad = 0
    for key, value in sorted(raw, key=lambda kv: kv[0] != "authorization"):
        cred = parse_credentials(value, proxy=key == "proxy-authorization")
        if cred is None:
            bad += 1
        elif found is None:
            found = cred
    return found, bad


def _optional_int(
    single: dict[str, tuple[int, str]], key: str, headers: dict[str, list[str]], digits: int
) -> tuple[int | None, int]:
    item = single.get(key)
    if item is None:
        return None, 0
    num = _small_int(item[1], digits)
    if num is None:
        headers.setdefault(key, []).append(item[1])
        return None, 1
    return num, 0
