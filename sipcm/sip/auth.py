"""Authorization / Proxy-Authorization credentials and challenge redaction (RFC 3261 22.4).

Input: the header value text. Output: `Credentials` with the scheme, and for Digest only the
`username` and `realm`; or the scheme and realm of a challenge. Nonces, cnonces, opaque values
and digest responses are skipped over and never returned or stored. Never raises.
"""

from __future__ import annotations

import re

from sipcm.sip.message import Credentials

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z\-]+"
_SCHEME = re.compile(rf"[ \t]*({_TOKEN})(?=[ \t]|$)")
# One auth-param; the quoted form is possessive so a bad string cannot cause backtracking.
_PARAM = re.compile(rf'[ \t,]*+({_TOKEN})[ \t]*+=[ \t]*+("[^"\\]*+(?:\\.[^"\\]*+)*+"?|[^, \t]*+)')
_UNESCAPE = re.compile(r"\\(.)", re.S)
_WANTED = ("username", "realm", "response")


def _unquote(v: str) -> str:
    if v[:1] == '"':
        v = v[1:-1] if len(v) >= 2 and v[-1] == '"' else v[1:]
        if "\\" in v:
            v = _UNESCAPE.sub(r"\1", v)
    return v


def _wanted_params(rest: str) -> dict[str, str]:
    """username/realm/response from a comma list of auth-params; stops at the first malformed
    one. The caller keeps only whether the response is empty, never its value."""
    found: dict[str, str] = {}
    pos = 0
    match = _PARAM.match
    while True:
        m = match(rest, pos)
        if m is None:
            return found
        pos = m.end()
        name = m.group(1).lower()
        if name in _WANTED and name not in found:
            found[name] = _unquote(m.group(2))
            if len(found) == 3:
                return found  # the rest (nonce, cnonce, ...) is never even looked at


def parse_credentials(value: str, proxy: bool = False) -> Credentials | None:
    """Scheme, and Digest username and realm; None when there is no scheme token."""
    m = _SCHEME.match(value)
    if m is None:
        return None
    scheme = m.group(1)
    if scheme.lower() != "digest":
        # Basic carries the password itself (base64); other schemes carry tokens.
        return Credentials(scheme, None, None, proxy)
    found = _wanted_params(value[m.end() :])
    answered = found.get("response") != ""  # only an explicit empty response says "not yet"
    return Credentials(scheme, found.get("username"), found.get("realm"), proxy, answered)


def redact_challenge(value: str) -> str | None:
    """`Scheme realm="..."` for a WWW-/Proxy-Authenticate value; None when there is no scheme
    (Authentication-Info is only parameters, nothing of it is kept)."""
    m = _SCHEME.match(value)
    if m is None:
        return None
    scheme = m.group(1)
    realm = _wanted_params(value[m.end() :]).get("realm")
    if realm is None:
        return scheme
    return scheme + ' realm="' + realm.replace("\\", "\\\\").replace('"', '\\"') + '"'
