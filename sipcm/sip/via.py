"""Via header values (RFC 3261 section 20.42): `SIP/2.0/UDP host:port;branch=..;received=..`.

Input: one Via value (the parser splits comma lists first). Output: a `Via`, or None when the
sent-protocol or sent-by is unusable. Never raises.
"""

from __future__ import annotations

import re
from typing import Any, Final, cast

from sipcm.sip.message import Via
from sipcm.sip.nameaddr import (
    CACHE_MAX_TEXT,
    CACHE_SIZE,
    host_port_end,
    parse_hostport,
    parse_params,
    plain_end,
)
from sipcm.sip.textcache import MISS, TextCache

_SEP_LWS = re.compile(r"[ \t]*([/:])[ \t]*")
# Common shape; possessive runs keep a failed match linear. Anything else: general path.
_FAST = re.compile(
    r"SIP/2\.0/([A-Za-z]++)[ \t]++([A-Za-z0-9._\-]++)(?::([0-9]{1,5}+))?+[ \t]*+"
    r"(?:;branch=([^;\"\s]*+))?+(?:;(.*+))?+"
)


def parse_via(value: str) -> Via | None:
    """Parse one Via value; `branch` is taken out of `params`, other params stay."""
    m = _FAST.fullmatch(value)
    if m is not None:
        via = _fast_via(m.groups())
        if via is not None:
            return via
    return _general_via(value)


def _fast_via(groups: tuple[str | Any, ...]) -> Via | None:
    """The Via of the groups of a match of _FAST; None when its port is out of range."""
    port: str | None = groups[2]
    port_n = None if port is None else int(port)
    if port_n is not None and port_n > 65535:
        return None
    transport: str = groups[0]
    host: str = groups[1]
    branch: str | None = groups[3]
    ptext: str | None = groups[4]
    params = parse_params(ptext) if ptext else {}
    if "branch" in params:  # a second branch: the first one wins
        first = params.pop("branch")
        if branch is None:
            branch = first
    return Via(
        transport.upper(),
        host.lower(),
        port_n,
        branch or None,
        params,
    )


def _general_via(value: str) -> Via | None:
    """parse_via for the values the fast shape does not take."""
    head, semi, ptext = value.partition(";")
    parts = head.split()
    if len(parts) != 2 or parts[0].count("/") != 2:
        # LWS is allowed around the slashes of sent-protocol and the colon of sent-by:
        # "SIP / 2.0 / UDP first.example.com: 4000" (RFC 3261 20.42 example).
        parts = _SEP_LWS.sub(r"\1", head).split()
        if len(parts) != 2:
            return None
    proto = parts[0].split("/")
    if len(proto) != 3 or proto[0].upper() != "SIP" or not proto[2]:
        return None
    hp = parse_hostport(parts[1])
    if hp is None:
        return None
    if not semi:
        return Via(proto[2].upper(), hp[0], hp[1])
    params = parse_params(ptext)
    branch = params.pop("branch", None)
    return Via(proto[2].upper(), hp[0], hp[1], branch or None, params)


_BRANCH: Final = ";branch="


_vias: Final = TextCache(CACHE_SIZE)
_branchless: Final = TextCache(CACHE_SIZE)


def _without_branch(text: str) -> Via | None:
    """`text` (with an empty first branch) parsed, when the fast shape takes it; else None
    (cached)."""
    got = _branchless.get(text)
    if got is MISS:
        got = _parse_without_branch(text)
        _branchless.put(text, got)
    return cast("Via | None", got)


_PLAIN_HEAD: Final = "SIP/2.0/"


def _plain_without_branch(text: str) -> Via | None:
    """`SIP/2.0/T host[:port];branch=[;params]` (T letters, one space, a plain host, an empty
    branch) read without the regex, as _FAST reads it; None for any other text (then the
    regex decides). A new host's Via is always new text."""
    n = len(text)
    if not text.startswith(_PLAIN_HEAD):
        return None
    i = len(_PLAIN_HEAD)
    t = i
    while t < n and (65 <= ord(text[t]) <= 90 or 97 <= ord(text[t]) <= 122):
        t += 1
    if t == i or t >= n or ord(text[t]) != 32:
        return None
    h = t + 1
    end = host_port_end(text, h, n)
    if end < 0 or text[end : end + len(_BRANCH)] != _BRANCH:
        return None
    rest = end + len(_BRANCH)
    params: dict[str, str] = {}
    if rest < n:
        if ord(text[rest]) != 59:  # ";": the branch is not empty
            return None
        if rest + 1 < n:
            ptext = text[rest + 1 :]
            if "\n" in ptext:  # _FAST's `.` stops there
                return None
            params = parse_params(ptext)
            if "branch" in params:  # a second branch: the first (empty) one wins
                del params["branch"]
    colon = text.find(":", h, end)
    port = None if colon < 0 else int(text[colon + 1 : end])
    host = text[h:end] if colon < 0 else text[h:colon]
    return Via(text[i:t].upper(), host.lower(), port, None, params)


def _parse_without_branch(text: str) -> Via | None:
    plain = _plain_without_branch(text)
    if plain is not None:
        return plain
    m = _FAST.fullmatch(text)
    if m is None:
        return None
    groups = m.groups()
    if groups[3] != "":
        return None
    via = _fast_via(groups)  # what parse_via(text) gives, without matching again
    return via if via is not None else _general_via(text)


def _shared_via(value: str) -> Via | None:
    """parse_via, sharing the work between the values that differ only by their branch (each
    transaction of a host repeats its Via with a new branch): the cached value with an empty
    branch, plus the branch. Equal to parse_via(value): the fast shape reads the text around
    the first `;branch=` the same way whatever plain value (no ';', '"', white space) it has."""
    j = value.find(_BRANCH)
    if j > 0:
        b = j + len(_BRANCH)
        # The branch ends at the next ';' when it is alphanumeric (the usual branch): no
        # character loop needed to know that plain_end(value, b) is there.
        k = value.find(";", b)
        if k < 0:
            k = len(value)
        branch = value[b:k]
        if not branch.isalnum():
            k = plain_end(value, b)
            branch = value[b:k]
        base = _without_branch(value[:b] + value[k:])
        if base is not None:
            return Via(base.transport, base.host, base.port, branch or None, base.params)
    return parse_via(value)


def cached_via(value: str) -> Via | None:
    """parse_via through a cache like nameaddr.cached_name_addr's: a transaction's Via comes
    back in every reply (shared result: never mutate it)."""
    if len(value) > CACHE_MAX_TEXT:
        return parse_via(value)
    got = _vias.get(value)
    if got is MISS:
        got = _shared_via(value)
        _vias.put(value, got)
    return cast("Via | None", got)
