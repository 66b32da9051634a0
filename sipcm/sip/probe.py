"""The msg-probe rule: is a payload SIP text at all?

Input: raw payload bytes. Output: where the SIP text would start (after leading CR/LF
keep-alives, RFC 3261 section 7.5) and a probe reason, or None when it looks like text.
Same rule as sipcmbeat: 12 bytes or fewer, or a first byte that is not an ASCII letter, is a
probe (keep-alives, STUN, RTP, binary junk), not a parse error.
"""

from __future__ import annotations

from typing import Final

MIN_SIZE: Final = 13  # sipcmbeat: payloads of <= 12 bytes are probes
_CR: Final = 13
_LF: Final = 10

# ASCII letters, compared as ints (native in the compiled build; a set lookup boxes the byte).
_UPPER_A: Final = 65  # ord("A")
_UPPER_Z: Final = 90
_LOWER_A: Final = 97
_LOWER_Z: Final = 122


def probe(data: bytes) -> tuple[int, str | None]:
    """Return (start, reason): reason is "too_short", "not_text" or None for SIP-like text."""
    start = 0
    if data and (data[0] == _CR or data[0] == _LF):
        start = len(data) - len(data.lstrip(b"\r\n"))
    if len(data) - start < MIN_SIZE:
        return start, "too_short"
    c = data[start]
    if not (_UPPER_A <= c <= _UPPER_Z or _LOWER_A <= c <= _LOWER_Z):
        return start, "not_text"
    return start, None
