"""Multi-valued address headers and credentials, as the parser stores them.

Input: the raw values the header loop collected. Output: parsed values, plus the raw text of
the ones that did not parse (URI passwords cut out) and a count of them. Never raises; never
keeps Authorization text.
"""

from __future__ import annotations

from sipcm.sip.auth import parse_credentials
from sipcm.sip.message import Credentials, NameAddr
from sipcm.sip.nameaddr import cached_name_addr, scrub_passwords, split_values


def addresses(
    raw: list[str], key: str, headers: dict[str, list[str]], allow_star: bool
) -> tuple[list[NameAddr], bool, int]:
    """Name-addrs of comma lists; bad pieces go raw to `headers[key]`. (values, star, bad)"""
    out: list[NameAddr] = []
    star = False
    bad = 0
    for value in raw:
        if allow_star and value == "*":
            star = True
            continue
        if "," not in value:  # the usual single value: no iteration over a made-up tuple
            na = cached_name_addr(value)
            if na is None:
                headers.setdefault(key, []).append(scrub_passwords(value))
                bad += 1
            else:
                out.append(na)
            continue
        for piece in split_values(value):
            na = cached_name_addr(piece)
            if na is None:
                headers.setdefault(key, []).append(scrub_passwords(piece))
                bad += 1
            else:
                out.append(na)
    return out, star, bad


def credentials(raw: list[tuple[str, str]]) -> tuple[Credentials | None, int]:
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
