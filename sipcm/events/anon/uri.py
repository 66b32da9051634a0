"""Splitting URI text into the parts that are encrypted separately, and joining them back.

Input: URI text as it appears in events (`Uri.original`, P-Asserted-Identity, AOR). Output: a
`UriParts` tuple whose `join()` gives back exactly the input text, for any input (the split is
lossless, whatever the shape). Shapes (RFC 3261 section 19.1.1, RFC 3966):
- `sip:`/`sips:` (any case): [user "@"] host [":" port] [";" params] ["?" headers]; the user
  part is everything before the first "@" (a password, if the text still has one, stays in it);
  an IPv6 host keeps its brackets; `rest` is the params and headers text.
- `tel:`: the number is the user part, `rest` is ";" params.
- any other `scheme:`: everything after the colon is opaque.
- text without a scheme: all of it is opaque (scheme None).
It never parses parameter values and never raises.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")


class UriParts(NamedTuple):
    """Parts of a URI; None means absent (distinct from empty)."""

    scheme: str | None
    user: str | None = None
    host: str | None = None
    port: str | None = None  # digits, without the colon
    rest: str = ""  # ";params?headers" (sip) or ";params" (tel), separators included
    opaque: str | None = None  # the whole text after "scheme:" for other schemes

    def join(self) -> str:
        """The URI text these parts describe."""
        if self.scheme is None:
            return self.opaque or ""
        head = self.scheme + ":"
        if self.opaque is not None:
            return head + self.opaque
        if self.host is None:  # tel
            return head + (self.user or "") + self.rest
        user = "" if self.user is None else self.user + "@"
        port = "" if self.port is None else ":" + self.port
        return head + user + self.host + port + self.rest


def split_uri(text: str) -> UriParts:
    """Split URI text; `split_uri(t).join() == t` for every string t."""
    scheme, colon, body = text.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme):
        return UriParts(None, opaque=text)
    low = scheme.lower()
    if low == "tel":
        semi = body.find(";")
        if semi < 0:
            return UriParts(scheme, user=body)
        return UriParts(scheme, user=body[:semi], rest=body[semi:])
    if low != "sip" and low != "sips":
        return UriParts(scheme, opaque=body)
    q = body.find("?")
    main, headers = (body, "") if q < 0 else (body[:q], body[q:])
    at = main.find("@")  # the user part may hold ";" (user-unreserved), never "@" or "?"
    user = main[:at] if at >= 0 else None
    hostport, semi, params = main[at + 1 :].partition(";")
    rest = semi + params + headers
    host, port = _host_port(hostport)
    return UriParts(scheme, user=user, host=host, port=port, rest=rest)


def _host_port(hp: str) -> tuple[str, str | None]:
    """`host[:digits]`; anything else (bad port, bare IPv6) is all host."""
    if hp.startswith("["):
        k = hp.find("]")
        if k > 0 and hp[k + 1 : k + 2] == ":" and hp[k + 2 :].isdigit() and hp[k + 2 :].isascii():
            return hp[: k + 1], hp[k + 2 :]
        return hp, None
    host, colon, port = hp.rpartition(":")
    if colon and host and ":" not in host and port.isdigit() and port.isascii():
        return host, port
    return hp, None
