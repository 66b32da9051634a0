"""URIs, name-addr / addr-spec values, parameters and comma lists (RFC 3261 sections 19, 20, 25).

Input: header value text (already unfolded and stripped by the parser). Output: `Uri` and
`NameAddr` objects, or None when the text is not a usable URI / address. Never raises, never
keeps a URI password (it is cut from `Uri.original` too), and every scan is linear: each loop
step advances past at least one character and the regexes have no nested ambiguity.
"""

from __future__ import annotations

import re
from typing import Final, cast

from sipcm.sip.message import NameAddr, Uri
from sipcm.sip.textcache import MISS, TextCache

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_HOST = re.compile(r"[A-Za-z0-9._~%!$&'()*+=\-]+")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+(?:%[A-Za-z0-9._~\-]+)?")
_UNESCAPE = re.compile(r"\\(.)", re.S)
# Next character that matters when splitting on `sep` outside quotes and <...>.
_SPECIAL = {",": re.compile(r'[,"<\\]'), ";": re.compile(r'[;"<\\]')}
_QEND = re.compile(r'["\\]')

# Fast paths for the common shapes: lower-case sip/sips, no password, plain host name or IPv4.
# Every repetition is possessive, so a failed match never backtracks into a run (linear time);
# whatever they reject takes the general path below.
_SIP_RE = (
    r"(sips?):(?:([^:@?<>\s]*+)@)?+([A-Za-z0-9._\-]++)(?::([0-9]{1,5}+))?+"
    r"(?:;([^?<>\s]*+))?+(?:\?[^<>\s]*+)?+"
)
_SIP_URI = re.compile(_SIP_RE)
_NAME_ADDR = re.compile(
    r'(?:"([^"\\]*+)"[ \t]*+|([^"<;\\]*+))<(' + _SIP_RE + r")>(?:;tag=([^;\"\s]*+))?+(?:;(.*+))?+"
)


# `scheme:user:password@` in text kept raw; the possessive runs keep the search linear.
_PASSWORD = re.compile(r"([Ss][Ii][Pp][Ss]?:[^:@\s<>;,\"?]*+):[^@\s<>;,\"?]*+@")


def scrub_passwords(text: str) -> str:
    """Raw header text with any `sip:user:password@` reduced to `sip:user@`."""
    return _PASSWORD.sub(r"\1@", text) if "@" in text else text


def quote_end(s: str, i: int) -> int:
    """Index of the quote closing a quoted-string whose body starts at `i`, or -1."""
    search = _QEND.search
    while True:
        m = search(s, i)
        if m is None:
            return -1
        k = m.start()
        if s[k] == '"':
            return k
        i = k + 2  # backslash escapes the next character (RFC 3261 section 25.1 quoted-pair)


def split_outside(s: str, sep: str) -> list[str]:
    """Split `s` on `sep` (',' or ';') except inside quoted strings and <...> brackets.

    A backslash escapes the next character inside and outside quotes (some UAs write
    `\\"name\\"` unquoted). An unterminated quote or bracket keeps the rest as one piece.
    """
    if '"' not in s and "<" not in s and "\\" not in s:
        return s.split(sep)
    out: list[str] = []
    search = _SPECIAL[sep].search
    start = pos = 0
    while True:
        m = search(s, pos)
        if m is None:
            break
        j = m.start()
        c = s[j]
        if c == sep:
            out.append(s[start:j])
            start = pos = j + 1
        elif c == "<":
            k = s.find(">", j + 1)
            if k < 0:
                break
            pos = k + 1
        elif c == "\\":
            pos = j + 2
        else:
            k = quote_end(s, j + 1)
            if k < 0:
                break
            pos = k + 1
    out.append(s[start:])
    return out


def split_values(s: str) -> list[str]:
    """Comma-separated header values, stripped, empty elements dropped."""
    return [v for v in (p.strip(" \t") for p in split_outside(s, ",")) if v]


def parse_params(s: str) -> dict[str, str]:
    """`name=value;flag;...` -> {lower-case name: value}; flags get "", quotes are removed.

    The first occurrence of a name wins.
    """
    # One plain `name=value` or flag, the usual case: no ';', '"', space or tab
    # (`in` tests are native calls, a regex search is a generic method call).
    if ";" not in s and '"' not in s and " " not in s and "\t" not in s:
        if "=" not in s:  # a flag (`rport`, `lr`)
            return {s.lower(): ""} if s else {}
        name, _, value = s.partition("=")
        return {name.lower(): value} if name else {}
    params: dict[str, str] = {}
    for piece in split_outside(s, ";") if '"' in s else s.split(";"):
        name, _, value = piece.partition("=")
        if " " in piece or "\t" in piece:
            name = name.strip(" \t")
            value = value.strip(" \t")
        name = name.lower()
        if not name or name in params:
            continue
        if value[:1] == '"' and len(value) >= 2 and value[-1] == '"':
            value = value[1:-1]
        params[name] = value
    return params


def parse_hostport(s: str) -> tuple[str, int | None] | None:
    """`host[:port]` or `[v6]:port` -> (host without brackets, lower case; port), None if bad."""
    if s.startswith("["):
        k = s.find("]")
        if k < 0 or not _IPV6.fullmatch(s, 1, k):
            return None
        host = s[1:k].lower()
        rest = s[k + 1 :]
        if not rest:
            return host, None
        if rest[0] != ":":
            return None
        port_s = rest[1:]
    else:
        host, colon, port_s = s.partition(":")
        if colon and ":" in port_s:
            # Unbracketed IPv6 literal (invalid, but seen): the whole text is the host.
            if not _IPV6.fullmatch(s):
                return None
            return s.lower(), None
        if not _HOST.fullmatch(host):
            return None
        host = host.lower()
        if not colon:
            return host, None
    if not port_s:
        return host, None
    if len(port_s) > 5 or not (port_s.isascii() and port_s.isdigit()):
        return None
    port = int(port_s)
    return (host, port) if port <= 65535 else None


def parse_uri(text: str) -> Uri | None:
    """Parse a sip/sips/tel or other absolute URI; None if it has no scheme or a bad host."""
    t = text.strip(" \t")
    m = _SIP_URI.fullmatch(t)
    if m is not None:
        scheme, user, host, port, params = m.groups()
        port_n = None if port is None else int(port)
        if port_n is None or port_n <= 65535:
            return Uri(
                t,
                scheme,
                user or None,
                host.lower(),
                port_n,
                parse_params(params) if params else {},
            )
    return uri_general(t)


def uri_general(t: str) -> Uri | None:
    """parse_uri without the fast path (also the reference the fast path is tested against)."""
    scheme, colon, rest = t.partition(":")
    if not colon or not rest or not _SCHEME.fullmatch(scheme) or " " in t or "\t" in t:
        return None
    scheme = scheme.lower()
    if scheme == "sip" or scheme == "sips":
        return _sip_uri(t, scheme, rest)
    if scheme == "tel":
        number, _, ptext = rest.partition(";")
        if not number:
            return None
        return Uri(t, "tel", number, "", None, parse_params(ptext) if ptext else {})
    return Uri(t, scheme)


def _sip_uri(t: str, scheme: str, rest: str) -> Uri | None:
    q = rest.find("?")
    main = rest if q < 0 else rest[:q]
    at = main.find("@")
    user: str | None = None
    if at >= 0:
        user, colon, _password = main[:at].partition(":")
        if colon:  # drop the password, also from the original text
            p0 = len(scheme) + 1 + len(user)
            t = t[:p0] + t[len(scheme) + 1 + at :]
        user = user or None
        main = main[at + 1 :]
    hostport, semi, ptext = main.partition(";")
    hp = parse_hostport(hostport)
    if hp is None:
        return None
    return Uri(t, scheme, user, hp[0], hp[1], parse_params(ptext) if semi else {})


def parse_name_addr(text: str) -> NameAddr | None:
    """Parse `"Display" <uri>;params`, `Display <uri>;params` or `uri;params`.

    `tag` goes to `NameAddr.tag` (not `params`); None when the address is unusable.
    """
    m = _NAME_ADDR.fullmatch(text)
    if m is not None:
        groups = m.groups()
        port: str | None = groups[6]
        port_n = None if port is None else int(port)
        if port_n is None or port_n <= 65535:
            host: str = groups[5]
            uparams: str | None = groups[7]
            user: str | None = groups[4]
            uri = Uri(
                groups[2],
                groups[3],
                user or None,
                host.lower(),
                port_n,
                parse_params(uparams) if uparams else {},
            )
            display: str | None = groups[0]
            tag: str | None = groups[8]
            hparams: str | None = groups[9]
            if display is None:
                bare: str = groups[1]
                display = bare.strip(" \t") or None
            elif not display:
                display = None  # "" <sip:...>: no display name, like <sip:...>
            if hparams is None:
                return NameAddr(uri, display, tag or None, {})
            params = parse_params(hparams)
            if "tag" in params:
                first = params.pop("tag")
                if tag is None:
                    tag = first
            return NameAddr(uri, display, tag or None, params)
    return name_addr_general(text)


def name_addr_general(text: str) -> NameAddr | None:
    """parse_name_addr without the fast path (also the reference it is tested against)."""
    s = text.strip(" \t")
    if not s:
        return None
    display: str | None = None
    if s[0] == '"':
        end = quote_end(s, 1)
        if end < 0:
            return None
        display = s[1:end]
        if "\\" in display:
            display = _UNESCAPE.sub(r"\1", display)
        display = display or None
        rest = s[end + 1 :].lstrip(" \t")
        if not rest.startswith("<"):
            return None
    else:
        lt = s.find("<")
        semi = s.find(";")
        if lt < 0 or 0 <= semi < lt:
            return _addr_spec(s)
        display = s[:lt].strip(" \t") or None
        rest = s[lt:]
    gt = rest.find(">", 1)
    if gt < 0:
        return None
    uri = parse_uri(rest[1:gt])
    if uri is None:
        return None
    tail = rest[gt + 1 :].strip(" \t")
    if not tail:
        return NameAddr(uri, display)
    if tail[0] != ";":
        return None
    params = parse_params(tail[1:])
    tag = params.pop("tag", None)
    return NameAddr(uri, display, tag or None, params)


def _addr_spec(s: str) -> NameAddr | None:
    # Without <...> everything after the first ';' is a header parameter (RFC 3261 20.10).
    utext, semi, ptext = s.partition(";")
    uri = parse_uri(utext)
    if uri is None:
        return None
    if not semi:
        return NameAddr(uri)
    params = parse_params(ptext)
    tag = params.pop("tag", None)
    return NameAddr(uri, None, tag or None, params)


# The parser's hot path parses each distinct header text once: a dialog repeats its From in
# every request and reply, its To after the first reply, and a transaction's Via and URIs
# come back in every reply. A cache hit returns the same object as before, so parsed values
# are shared between messages and must never be mutated (nothing does: `track/` keeps slim
# copies of messages, `events/` only reads them). Bounded in entries (sip/textcache.py: the
# least recently used go first) and in key size: longer texts (rare, or crafted) are parsed
# every time.
CACHE_SIZE: Final = 2048
CACHE_MAX_TEXT: Final = 256
# Whole name-addr texts: each dialog keeps about three in use for its whole life (its From,
# its tagged To, a Contact), so this one holds more: with 2 x CACHE_SIZE entries, ~1,000
# concurrent dialogs (3,000 generated calls, 21,000 messages) already evicted a quarter of
# the From/To texts before their dialog's last message, and each came back as a full parse.
NAME_ADDR_CACHE_SIZE: Final = 2 * CACHE_SIZE
_uris: Final = TextCache(CACHE_SIZE)
_untagged_cache: Final = TextCache(CACHE_SIZE)
_name_addrs: Final = TextCache(NAME_ADDR_CACHE_SIZE)


def plain_end(s: str, i: int) -> int:
    """Index of the first ';', '"' or white space (regex \\s) at or after `i`, else len(s):
    where a tag or branch value ends. A loop of native character reads in the compiled build
    (a regex call costs more than the scan)."""
    n = len(s)
    while i < n:
        c = ord(s[i])
        if c == 59 or c == 34 or c == 32 or 9 <= c <= 13 or 28 <= c <= 31:
            return i
        if c > 127 and s[i].isspace():
            return i
        i += 1
    return n


def plain_tail(s: str, i: int) -> str | None:
    """s[i:] when plain_end(s, i) == len(s) (no ';', '"' or white space in it), else None.
    An alphanumeric tail (the usual tag) is known plain without a character loop."""
    tail = s[i:]
    if tail.isalnum() or plain_end(s, i) == len(s):
        return tail
    return None


def _untagged(text: str) -> NameAddr | None:
    """`text` (ending in '>') parsed, when the fast shape takes it with no tag and no header
    parameters; None otherwise (cached)."""
    got = _untagged_cache.get(text)
    if got is MISS:
        got = _parse_untagged(text)
        _untagged_cache.put(text, got)
    return cast("NameAddr | None", got)


def _parse_untagged(text: str) -> NameAddr | None:
    m = _NAME_ADDR.fullmatch(text)
    if m is None or m.group(9) is not None or m.group(10) is not None:
        return None
    return parse_name_addr(text)


_USER_MARKS: Final = frozenset({46, 45, 95})  # . - _


def host_port_end(s: str, i: int, n: int) -> int:
    """Where a plain `host[:port]` starting at s[i] ends (before n): host [A-Za-z0-9._-]+,
    port 1 to 5 digits; -1 if s[i:] starts otherwise or the port is over 65535 (as the fast
    shapes read them: the callers fall back on their regex for anything else)."""
    j = i
    while j < n:
        c = ord(s[j])  # [A-Za-z0-9._-], written out (a call per character costs more)
        if not (97 <= c <= 122 or 48 <= c <= 57 or c == 46 or 65 <= c <= 90 or c == 45 or c == 95):
            break
        j += 1
    if j == i:
        return -1
    if j < n and ord(s[j]) == 58:  # ":" port
        k = j + 1
        port = 0
        while k < n and 48 <= ord(s[k]) <= 57:
            port = port * 10 + ord(s[k]) - 48
            k += 1
            if k - j > 6:
                return -1
        if k == j + 1 or port > 65535:
            return -1
        return k
    return j


def _plain_contact(text: str) -> NameAddr | None:
    """`<sip:user@host:port>` (user [A-Za-z0-9._-]*, plain host, optional port, nothing
    else) parsed without the regex; None for any other text. Equal to parse_name_addr(text)
    for the texts it takes (tested against it): a new UA's Contact is always new text."""
    n = len(text)
    if n < 7 or ord(text[n - 1]) != 62 or not text.startswith("<sip:"):  # ">"
        return None
    at = text.find("@", 5, n - 1)
    user: str | None = None
    i = 5
    if at >= 0:
        for k in range(5, at):
            c = ord(text[k])  # [A-Za-z0-9._-]
            if not (97 <= c <= 122 or 48 <= c <= 57 or 65 <= c <= 90 or c in _USER_MARKS):
                return None
        user = text[5:at] or None
        i = at + 1
    end = host_port_end(text, i, n - 1)
    if end != n - 1:
        return None
    colon = text.find(":", i, end)
    if colon < 0:
        host = text[i:end]
        port: int | None = None
    else:
        host = text[i:colon]
        port = int(text[colon + 1 : end])
    uri = Uri(text[1 : n - 1], "sip", user, host.lower(), port, {})
    return NameAddr(uri, None, None, {})


def _shared_name_addr(text: str) -> NameAddr | None:
    """parse_name_addr, sharing the work between the values that differ only by their tag:
    `<sip:bob@example.com>;tag=X` is the cached `<sip:bob@example.com>` plus X (every dialog
    of a party repeats the address with a new tag). Equal to parse_name_addr(text): the fast
    shape takes `address;tag=X` exactly when it takes the bare address and X is a plain tag
    value (no ';', '"' or white space), and then gives the address's fields with tag X."""
    i = text.rfind(";tag=")
    if i > 0 and text[i - 1] == ">":
        tag = plain_tail(text, i + 5)
        if tag is not None:
            base = _untagged(text[:i])
            if base is not None:
                return NameAddr(base.uri, base.display, tag or None, {})
    plain = _plain_contact(text)
    return plain if plain is not None else parse_name_addr(text)


def cached_name_addr(text: str) -> NameAddr | None:
    """parse_name_addr through the shared cache (the result must not be mutated)."""
    if len(text) > CACHE_MAX_TEXT:
        return parse_name_addr(text)
    got = _name_addrs.get(text)
    if got is MISS:
        got = _shared_name_addr(text)
        _name_addrs.put(text, got)
    return cast("NameAddr | None", got)


def cached_uri(text: str) -> Uri | None:
    """parse_uri through the shared cache (the result must not be mutated)."""
    if len(text) > CACHE_MAX_TEXT:
        return parse_uri(text)
    got = _uris.get(text)
    if got is MISS:
        got = parse_uri(text)
        _uris.put(text, got)
    return cast("Uri | None", got)


def aor_of(uri: Uri) -> str:
    """Address-of-record: scheme:user@host[:port] with the host lower-cased (parameters
    dropped); what registrations are keyed by."""
    user = f"{uri.user}@" if uri.user is not None else ""
    port = f":{uri.port}" if uri.port is not None else ""
    host = uri.host.lower()
    if ":" in host:  # the parser stores IPv6 hosts without their brackets
        host = f"[{host}]"
    return f"{uri.scheme or 'sip'}:{user}{host}{port}"
