"""Prefix-preserving IPv4 encryption: the Crypto-PAn construction (Xu, Fan, Ammar, Moon 2002).

Key: 32 bytes; the first 16 are an AES-128 key E, the last 16 are encrypted once with E to give
a 128-bit `pad`. For an address a = a_0 a_1 ... a_31 (bit 0 the most significant), output bit i
is a_i XOR f_i, where f_i is the most significant bit of E(a_0 ... a_{i-1} || pad bits i..127):
the first i address bits followed by the rest of the pad. f_i depends only on the first i bits,
so two addresses sharing exactly an n-bit prefix give outputs sharing exactly an n-bit prefix,
and the mapping is a bijection of the 2^32 addresses.
Decryption recovers the bits in order: with a_0..a_{i-1} known, f_i is known and a_i follows.
Encryption needs 32 AES blocks that are all known in advance (one ECB call); decryption needs
them one at a time. Input/output: addresses as 32-bit integers.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_M128 = (1 << 128) - 1


class PrefixCipher4:
    """Crypto-PAn on IPv4 addresses (ints) with a 32-byte key."""

    __slots__ = ("_aes", "_low")

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("PrefixCipher4 needs a 32-byte key")
        self._aes = Cipher(algorithms.AES(key[:16]), modes.ECB()).encryptor().update
        pad = int.from_bytes(self._aes(key[16:]), "big")
        # _low[i]: the pad bits that follow an i-bit address prefix in block i.
        self._low = [pad & (_M128 >> i) for i in range(32)]

    def encrypt(self, a: int) -> int:
        """The encrypted address."""
        low = self._low
        blocks = b"".join(
            (((a >> (32 - i)) << (128 - i) if i else 0) | low[i]).to_bytes(16, "big")
            for i in range(32)
        )
        out = self._aes(blocks)
        flips = 0
        for i in range(32):
            flips = (flips << 1) | (out[16 * i] >> 7)
        return a ^ flips

    def decrypt(self, e: int) -> int:
        """The address `encrypt` mapped to `e`."""
        aes, low = self._aes, self._low
        a = 0  # the clear bits recovered so far (i of them)
        for i in range(32):
            block = ((a << (128 - i)) if i else 0) | low[i]
            f = aes(block.to_bytes(16, "big"))[0] >> 7
            a = (a << 1) | (((e >> (31 - i)) & 1) ^ f)
        return a

    def __repr__(self) -> str:
        return "PrefixCipher4(<key hidden>)"
