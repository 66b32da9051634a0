"""Deterministic, authenticated encryption of text into URI-safe tokens.

Construction: AES-SIV (RFC 5297, AES-128-SIV with a 32-byte key) of the UTF-8 text, padded with
0x80 then zero bytes to a multiple of 8 bytes (ISO/IEC 7816-4), so only the length rounded up to
8 bytes shows. The associated data is the value's kind (b"user", b"host", ...), so equal text of
different kinds gives unrelated tokens. SIV is deterministic by design (the IV is a CMAC of the
input): the same text and key always give the same token, which keeps correlation working.
Token: the 16-byte SIV followed by the ciphertext, base32 (RFC 4648) in lower case without
padding: letters a-z and digits 2-7 only, valid in URI user and host parts and in URLs.
Decryption authenticates the token: a wrong key or an altered token raises ValueError.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

_B32_PAD = {0: "", 2: "======", 4: "====", 5: "===", 7: "="}  # by unpadded length % 8


class TextCipher:
    """AES-SIV tokens for one 32-byte key."""

    __slots__ = ("_siv",)

    def __init__(self, key: bytes) -> None:
        self._siv = AESSIV(key)

    def encrypt(self, kind: bytes, text: str) -> str:
        """The token for `text` (any string, also empty)."""
        raw = text.encode("utf-8", "surrogatepass") + b"\x80"
        raw += bytes(-len(raw) % 8)
        ct = self._siv.encrypt(raw, [kind])
        return base64.b32encode(ct).decode("ascii").rstrip("=").lower()

    def decrypt(self, kind: bytes, token: str) -> str:
        """The text of a token made by `encrypt` with the same key and kind; ValueError if not."""
        n = len(token)
        pad = _B32_PAD.get(n % 8)
        if n < 39 or pad is None or not token.isascii():
            raise ValueError("not an encrypted token")
        try:
            ct = base64.b32decode(token.upper() + pad)
            raw = self._siv.decrypt(ct, [kind])
        except (binascii.Error, InvalidTag, ValueError):
            raise ValueError("not an encrypted token for this key") from None
        end = raw.rstrip(b"\x00")
        if not end.endswith(b"\x80"):
            raise ValueError("bad padding in encrypted token")
        return end[:-1].decode("utf-8", "surrogatepass")

    def __repr__(self) -> str:
        return "TextCipher(<key hidden>)"
