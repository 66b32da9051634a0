"""Header names: canonical lower-case names, compact forms, and header classes.

Input: a header name as written on the wire. Output: its canonical lower-case long name. Never
raises; unknown names are only lower-cased.
"""

from __future__ import annotations

# RFC 3261 section 7.3.3 plus the later compact forms in the IANA "Header Fields" registry
# (sip-parameters-2): a/d/j Accept-Contact, Request-Disposition, Reject-Contact (RFC 3841),
# b Referred-By (RFC 3892), o Event and u Allow-Events (RFC 3265, now RFC 6665),
# r Refer-To (RFC 3515), x Session-Expires (RFC 4028), y Identity (RFC 4474, now RFC 8224).
COMPACT: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

# Headers whose values are lists of name-addrs, split on commas outside quotes and <...> and
# stored one value per entry in `SipMessage.headers` (RFC 3261 section 7.3.1 allows combining
# them on one line). Token lists such as Allow or Supported stay as written.
ADDRESS_LISTS: frozenset[str] = frozenset(
    {
        "route",
        "record-route",
        "path",
        "service-route",
        "p-associated-uri",
        "p-preferred-identity",
        "history-info",
        "diversion",
    }
)

# Single name-addr headers kept raw: any URI password is cut out of the stored text.
URI_HEADERS: frozenset[str] = frozenset({"refer-to", "referred-by", "reply-to"})

# Challenge and authentication-info headers carry nonces, opaque values and response
# digests: only their scheme and realm are kept (see auth.redact_challenge).
CHALLENGES: frozenset[str] = frozenset(
    {
        "www-authenticate",
        "proxy-authenticate",
        "authentication-info",
        "proxy-authentication-info",
    }
)


def _build_canon() -> dict[str, str]:
    """Exact spellings seen on the wire -> canonical name; saves lower() on the hot path."""
    canon: dict[str, str] = {}
    for short, long_ in COMPACT.items():
        canon[short] = long_
        canon[short.upper()] = long_
    common = (
        "Via",
        "From",
        "To",
        "Call-ID",
        "Call-Id",
        "CSeq",
        "Cseq",
        "Contact",
        "Content-Length",
        "Content-Type",
        "Max-Forwards",
        "Expires",
        "User-Agent",
        "Server",
        "Reason",
        "P-Asserted-Identity",
        "Authorization",
        "Proxy-Authorization",
        "Allow",
        "Supported",
        "Accept",
        "Route",
        "Record-Route",
        "Subject",
        "Event",
        "Allow-Events",
        "Require",
        "Date",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Min-Expires",
        "Organization",
        "Warning",
        "Refer-To",
        "Referred-By",
        "Session-Expires",
        "Privacy",
        "Path",
        "Content-Disposition",
    )
    for name in common:
        canon.setdefault(name, name.lower())
    return canon


CANON = _build_canon()


def canonical(name: str) -> str:
    """Canonical lower-case header name: compact forms expanded, others lower-cased."""
    c = CANON.get(name)
    if c is not None:
        return c
    low = name.lower()
    return COMPACT.get(low, low)
