"""Value-level encryption and decryption for each kind of event value.

Input: one string value and its kind; output: its encrypted (or decrypted) text. Kinds:
- ip: an IPv4 or IPv6 address -> an address of the same family (text as `socket.inet_ntop`).
  IPv4 is prefix-preserving (`prefix.PrefixCipher4`, sub-key "pan4") unless `ipcipher4` is set,
  then ipcrypt; IPv6 is always ipcipher (one AES block with K).
- host: a URI host. An IP literal in canonical text form (as inet_ntop writes it; IPv6 inside
  brackets or bare) goes through `ip` and keeps its brackets; anything else becomes a token.
- user / display / call_id / ua: text -> a token (`text.TextCipher`, sub-key "siv", the kind as
  associated data).
- uri: the scheme stays; user part, host and the rest (";params?headers") are encrypted
  separately; the port stays. `sip:alice@example.com:5060;transport=tcp` becomes
  `sip:<user token>@<host token>:5060;sipcm=<rest token>`; `tel:+123;x=y` becomes
  `tel:<user token>;sipcm=<rest token>`; other schemes `scheme:<opaque token>`; text without a
  scheme becomes one token. Decryption gives back exactly the original text.
Encryption results are cached (bounded) since the same values recur in every event of a call.
Decryption raises ValueError for text that this key did not produce. Nothing here logs.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from sipcm.events.anon.ipcipher import IpCipher
from sipcm.events.anon.keys import AnonKey
from sipcm.events.anon.prefix import PrefixCipher4
from sipcm.events.anon.text import TextCipher
from sipcm.events.anon.uri import UriParts, split_uri

REST_PARAM = ";sipcm="  # carries the encrypted ";params?headers" of an anonymized URI
TEXT_KINDS = frozenset({"user", "host", "display", "call_id", "ua", "rest", "opaque"})
_CACHE_MAX = 50_000  # entries per kind; a full cache is dropped (cheap, rare)


def pack_ip(s: str) -> bytes | None:
    """Packed address for IP text, or None if `s` is not an address."""
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in s else socket.AF_INET, s)
    except (OSError, ValueError):
        return None


def unpack_ip(b: bytes) -> str:
    """Canonical text of a packed 4- or 16-byte address."""
    return socket.inet_ntop(socket.AF_INET if len(b) == 4 else socket.AF_INET6, b)


def canonical_ip(s: str) -> bytes | None:
    """Packed address if `s` is an address written exactly as inet_ntop writes it."""
    b = pack_ip(s)
    return b if b is not None and unpack_ip(b) == s else None


class Codec:
    """Encrypt/decrypt values of every kind with one key and one IPv4 method."""

    __slots__ = ("_cache", "_ipc", "_pan", "_txt", "ipcipher4")

    def __init__(self, key: AnonKey, ipcipher4: bool) -> None:
        self.ipcipher4 = ipcipher4
        self._ipc = IpCipher(key.ipcipher)
        self._pan = None if ipcipher4 else PrefixCipher4(key.subkey("pan4", 32))
        self._txt = TextCipher(key.subkey("siv", 32))
        self._cache: dict[str, dict[str, str]] = {}

    def cache_for(self, kind: str) -> dict[str, str]:
        """The encryption cache of a kind (clear -> encrypted); callers may only read it."""
        c = self._cache.get(kind)
        if c is None:
            c = self._cache[kind] = {}
        return c

    def _cached(self, kind: str, value: str, fn: Callable[[str], str]) -> str:
        c = self.cache_for(kind)
        out = c.get(value)
        if out is None:
            out = fn(value)
            if len(c) >= _CACHE_MAX:
                c.clear()
            c[value] = out
        return out

    # -- addresses ---------------------------------------------------------------------------

    def _ip_packed(self, b: bytes, decrypt: bool) -> bytes:
        if len(b) == 4 and self._pan is not None:
            n = int.from_bytes(b, "big")
            n = self._pan.decrypt(n) if decrypt else self._pan.encrypt(n)
            return n.to_bytes(4, "big")
        return self._ipc.decrypt(b) if decrypt else self._ipc.encrypt(b)

    def _ip_enc(self, s: str) -> str:
        b = pack_ip(s)
        if b is None:
            raise ValueError("not an IP address")
        return unpack_ip(self._ip_packed(b, False))

    def ip(self, s: str) -> str:
        """Encrypted address (same family); ValueError if `s` is not an address."""
        return self._cached("ip", s, self._ip_enc)

    def ip_decrypt(self, s: str) -> str:
        """Clear address for an encrypted one."""
        b = pack_ip(s)
        if b is None:
            raise ValueError("not an IP address")
        return unpack_ip(self._ip_packed(b, True))

    # -- text ----------------------------------------------------------------------------------

    def text(self, kind: str, s: str) -> str:
        """Token for text of a kind in TEXT_KINDS."""
        return self._cached(kind, s, lambda v: self._txt.encrypt(kind.encode(), v))

    def text_decrypt(self, kind: str, token: str) -> str:
        """Clear text of a token."""
        return self._txt.decrypt(kind.encode(), token)

    # -- hosts and URIs ------------------------------------------------------------------------

    def _host_enc(self, h: str) -> str:
        bracket = h.startswith("[") and h.endswith("]")
        b = canonical_ip(h[1:-1] if bracket else h)
        if b is None:
            return self._txt.encrypt(b"host", h)
        e = unpack_ip(self._ip_packed(b, False))
        return f"[{e}]" if bracket else e

    def host(self, h: str) -> str:
        """Encrypted URI host: an IP literal stays an IP literal, a name becomes a token."""
        return self._cached("host", h, self._host_enc)

    def host_decrypt(self, h: str) -> str:
        """Clear URI host."""
        bracket = h.startswith("[") and h.endswith("]")
        b = pack_ip(h[1:-1] if bracket else h)
        if b is None:
            return self._txt.decrypt(b"host", h)
        d = unpack_ip(self._ip_packed(b, True))
        return f"[{d}]" if bracket else d

    def _uri_enc(self, text: str) -> str:
        p = split_uri(text)
        t = self.text
        if p.opaque is not None:
            return UriParts(p.scheme, opaque=t("opaque", p.opaque)).join()
        rest = REST_PARAM + t("rest", p.rest) if p.rest else ""
        user = None if p.user is None else t("user", p.user)
        host = None if p.host is None else self.host(p.host)
        return UriParts(p.scheme, user, host, p.port, rest).join()

    def uri(self, text: str) -> str:
        """Encrypted URI text (see the module docstring); "*" (Contact: *) is kept."""
        if text == "*":
            return text
        return self._cached("uri", text, self._uri_enc)

    def uri_decrypt(self, text: str) -> str:
        """Clear URI text."""
        if text == "*":
            return text
        p = split_uri(text)
        d = self._txt.decrypt
        if p.opaque is not None:
            return UriParts(p.scheme, opaque=d(b"opaque", p.opaque)).join()
        rest = ""
        if p.rest:
            if not p.rest.startswith(REST_PARAM):
                raise ValueError("not an anonymized URI")
            rest = d(b"rest", p.rest[len(REST_PARAM) :])
        user = None if p.user is None else d(b"user", p.user)
        host = None if p.host is None else self.host_decrypt(p.host)
        return UriParts(p.scheme, user, host, p.port, rest).join()

    def __repr__(self) -> str:
        return f"Codec(ipcipher4={self.ipcipher4}, <key hidden>)"
