"""ipcipher (https://powerdns.org/ipcipher): format-preserving encryption of IP addresses.

IPv4: "ipcrypt" (J.-P. Aumasson), a 4-byte ARX permutation keyed by the 128-bit key split into
four 4-byte round keys: XOR k0, permute, XOR k1, permute, XOR k2, permute, XOR k3. IPv6: one
AES-128 block encryption of the 16 address bytes (ECB, no chaining). Input/output: packed
address bytes (4 or 16). Keys come from `keys.AnonKey.ipcipher`; nothing here formats text.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def _rotl(b: int, r: int) -> int:
    return ((b << r) | (b >> (8 - r))) & 0xFF


def _fwd(b0: int, b1: int, b2: int, b3: int) -> tuple[int, int, int, int]:
    b0 = (b0 + b1) & 0xFF
    b2 = (b2 + b3) & 0xFF
    b1 = _rotl(b1, 2) ^ b0
    b3 = _rotl(b3, 5) ^ b2
    b0 = _rotl(b0, 4)
    b0 = (b0 + b3) & 0xFF
    b2 = (b2 + b1) & 0xFF
    b1 = _rotl(b1, 3) ^ b2
    b3 = _rotl(b3, 7) ^ b0
    b2 = _rotl(b2, 4)
    return b0, b1, b2, b3


def _bwd(b0: int, b1: int, b2: int, b3: int) -> tuple[int, int, int, int]:
    # _fwd's steps undone in reverse order; a right rotation by r is a left one by 8 - r.
    b2 = _rotl(b2, 4)
    b1 = _rotl(b1 ^ b2, 5)
    b3 = _rotl(b3 ^ b0, 1)
    b2 = (b2 - b1) & 0xFF
    b0 = (b0 - b3) & 0xFF
    b0 = _rotl(b0, 4)
    b1 = _rotl(b1 ^ b0, 6)
    b3 = _rotl(b3 ^ b2, 3)
    b0 = (b0 - b1) & 0xFF
    b2 = (b2 - b3) & 0xFF
    return b0, b1, b2, b3


def _xor(s: tuple[int, int, int, int], k: bytes) -> tuple[int, int, int, int]:
    return s[0] ^ k[0], s[1] ^ k[1], s[2] ^ k[2], s[3] ^ k[3]


def ipcrypt_encrypt(key: bytes, addr: bytes) -> bytes:
    """ipcrypt of 4 address bytes with a 16-byte key."""
    s = _xor((addr[0], addr[1], addr[2], addr[3]), key[0:4])
    s = _xor(_fwd(*s), key[4:8])
    s = _xor(_fwd(*s), key[8:12])
    s = _xor(_fwd(*s), key[12:16])
    return bytes(s)


def ipcrypt_decrypt(key: bytes, addr: bytes) -> bytes:
    """Inverse of ipcrypt_encrypt."""
    s = _xor((addr[0], addr[1], addr[2], addr[3]), key[12:16])
    s = _xor(_bwd(*s), key[8:12])
    s = _xor(_bwd(*s), key[4:8])
    s = _xor(_bwd(*s), key[0:4])
    return bytes(s)


class IpCipher:
    """ipcipher with one key: `encrypt`/`decrypt` take and return 4 or 16 packed bytes."""

    __slots__ = ("_dec6", "_enc6", "_key")

    def __init__(self, key: bytes) -> None:
        self._key = key
        aes = Cipher(algorithms.AES(key), modes.ECB())
        # ECB contexts are stateless between blocks, so one context serves every address.
        self._enc6 = aes.encryptor().update
        self._dec6 = aes.decryptor().update

    def encrypt(self, addr: bytes) -> bytes:
        """Encrypt a packed IPv4 (ipcrypt) or IPv6 (AES-128 block) address."""
        return ipcrypt_encrypt(self._key, addr) if len(addr) == 4 else self._enc6(addr)

    def decrypt(self, addr: bytes) -> bytes:
        """Inverse of encrypt."""
        return ipcrypt_decrypt(self._key, addr) if len(addr) == 4 else self._dec6(addr)

    def __repr__(self) -> str:
        return "IpCipher(<key hidden>)"
