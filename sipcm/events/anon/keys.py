"""The anonymization key: derivation, sub-keys and the short check value.

Input: exactly one of a passphrase (with a salt), a hex key, or a key file path. Output: an
`AnonKey` holding the 128-bit master key K. It never logs, and never puts key material or a
passphrase into repr/str or error messages (only file paths and the check value appear there).

Derivation (a contract: `sipcm decrypt` must find the same key):
- passphrase: K = PBKDF2-HMAC-SHA1(passphrase, "ipcipheripcipher" + salt, 50 000 iterations,
  16 bytes). This is ipcipher's key derivation with the salt appended; with an empty salt it is
  exactly ipcipher's, so the published ipcipher test vectors apply to passphrase keys too.
- hex key: K = the 16 bytes written as 32 hex digits.
- key file: 32 hex digits (white space around them ignored), or exactly 16 raw bytes. As ssh
  does with private keys, a key file that other users may read, or that anyone but its owner
  may change (world-readable, world- or group-writable), is refused: its key is not secret.
  Group read is allowed, for a service group.
Sub-keys: HKDF-SHA256(K, no salt, info = "sipcm-anon-v1 " + purpose), one per purpose, so no
two constructions share AES key material except ipcipher, which by its definition uses K.
Check value: the first 8 hex digits of HMAC-SHA256(K, "sipcm-key-check"); it identifies the key
in each document without revealing it (32 bits: it tells keys apart, it does not verify them).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import string

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sipcm.errors import ConfigError

IPCIPHER_SALT = b"ipcipheripcipher"
PBKDF2_ITERATIONS = 50_000
_HEX = frozenset(string.hexdigits)
_KEY_HINT = "give exactly one of encryption_passphrase (with encryption_salt), encryption_key or "
_KEY_HINT += "encryption_key_file"


def ipcipher_key(passphrase: str, salt: str = "") -> bytes:
    """ipcipher's PBKDF2-SHA1 derivation, with `salt` appended to its fixed salt."""
    return hashlib.pbkdf2_hmac(
        "sha1",
        passphrase.encode("utf-8", "surrogatepass"),
        IPCIPHER_SALT + salt.encode("utf-8", "surrogatepass"),
        PBKDF2_ITERATIONS,
        16,
    )


def _hex_key(text: str) -> bytes | None:
    t = text.strip()
    if len(t) != 32 or not _HEX.issuperset(t):
        return None
    return bytes.fromhex(t)


# Permission bits that make a key file's key not secret: readable by others, writable by
# anyone but its owner.
_UNSAFE_MODE = stat.S_IROTH | stat.S_IWOTH | stat.S_IWGRP
_MAX_KEY_FILE = 4096


def _file_key(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(
                    f"encryption_key_file {path} is not a regular file",
                    "write the key as 32 hex digits into a file",
                )
            if st.st_mode & _UNSAFE_MODE:
                raise ConfigError(
                    f"encryption_key_file {path} is accessible by other users "
                    f"(mode {stat.S_IMODE(st.st_mode):04o}); its key is not secret",
                    f"chmod 600 {path} (or 640 for a service group), then consider the key "
                    "exposed and replace it if others may have read it",
                )
            data = os.read(fd, _MAX_KEY_FILE)
        finally:
            os.close(fd)
    except OSError as e:
        raise ConfigError(
            f"cannot read encryption_key_file {path}: {e.strerror or type(e).__name__}",
            "check the path and that this user may read it",
        ) from None
    if len(data) == 16:
        return data
    try:
        key = _hex_key(data.decode("ascii"))
    except UnicodeDecodeError:
        key = None
    if key is None:
        raise ConfigError(
            f"encryption_key_file {path} does not hold a 128-bit key",
            "write the key as 32 hex digits (e.g. `openssl rand -hex 16 > FILE`)",
        )
    return key


class AnonKey:
    """The master key K and what is derived from it; repr/str show only the check value."""

    __slots__ = ("_k", "_sub", "check")

    def __init__(self, master: bytes) -> None:
        if len(master) != 16:
            raise ConfigError("the encryption key must be 128 bits", _KEY_HINT)
        self._k = bytes(master)
        self._sub: dict[str, bytes] = {}
        self.check = hmac.new(self._k, b"sipcm-key-check", hashlib.sha256).hexdigest()[:8]

    @classmethod
    def from_settings(
        cls,
        *,
        passphrase: str | None = None,
        key_hex: str | None = None,
        key_file: str | None = None,
        salt: str = "",
    ) -> AnonKey:
        """The key from exactly one source; ConfigError (never echoing a secret) otherwise."""
        given = [n for n, v in (("encryption_passphrase", passphrase), ("encryption_key", key_hex),
                                ("encryption_key_file", key_file)) if v]  # fmt: skip
        if len(given) != 1:
            what = "no encryption key is set" if not given else " and ".join(given) + " are set"
            raise ConfigError(what, _KEY_HINT)
        if salt and not passphrase:
            raise ConfigError(
                f"encryption_salt is set with {given[0]}",
                "the salt only applies to encryption_passphrase: remove encryption_salt",
            )
        if passphrase:
            return cls(ipcipher_key(passphrase, salt))
        if key_hex:
            k = _hex_key(key_hex)
            if k is None:
                raise ConfigError("encryption_key is not 32 hex digits", "give a 128-bit key")
            return cls(k)
        assert key_file is not None
        return cls(_file_key(key_file))

    @property
    def ipcipher(self) -> bytes:
        """K itself: ipcipher is defined on the 128-bit key."""
        return self._k

    def subkey(self, purpose: str, size: int) -> bytes:
        """HKDF-SHA256 output for one purpose (memoized)."""
        name = f"{purpose}/{size}"
        k = self._sub.get(name)
        if k is None:
            info = b"sipcm-anon-v1 " + purpose.encode()
            k = HKDF(algorithm=hashes.SHA256(), length=size, salt=None, info=info).derive(self._k)
            self._sub[name] = k
        return k

    def __repr__(self) -> str:
        return f"AnonKey(check={self.check})"

    __str__ = __repr__

    def __reduce__(self) -> object:
        raise TypeError("AnonKey is not picklable (it holds key material)")
