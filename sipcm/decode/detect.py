"""Heuristic SIP detection: does a payload start with a SIP request or status line?

Input: bytes and a start offset (no copy). Output: bool. The check reads only the first line
and runs in time linear in its length; it never raises.
"""

from __future__ import annotations

import re

# Request-Line = Method SP Request-URI SP SIP-Version CRLF (RFC 3261 section 25.1); the method
# is any token, so extension methods on unusual ports are found too. The end of the data also
# ends the line, for a TCP segment cut inside the start line.
_START = re.compile(
    rb"SIP/2\.0 [1-6][0-9][0-9](?:[ \r\n]|\Z)"
    rb"|[A-Za-z0-9.!%*_+`'~\-]+ [^ \r\n]+ SIP/2\.0(?:\r?\n|\r?\Z)",
    re.IGNORECASE,
)


def looks_sip(data: bytes, off: int = 0) -> bool:
    """True when `data[off:]` starts with a SIP request line or status line."""
    return _START.match(data, off) is not None
