"""Anonymization primitives: published vectors, prefix preservation, round trips, key handling."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipcm.errors import ConfigError
from sipcm.events.anon.ipcipher import IpCipher, ipcrypt_decrypt, ipcrypt_encrypt
from sipcm.events.anon.keys import AnonKey, ipcipher_key
from sipcm.events.anon.prefix import PrefixCipher4
from sipcm.events.anon.text import TextCipher

V4, V6 = socket.AF_INET, socket.AF_INET6
SOME_KEY = b"some 16-byte key"
COIN = "crypto is not a coin"


def enc(c: IpCipher, addr: str) -> str:
    fam = V6 if ":" in addr else V4
    return socket.inet_ntop(fam, c.encrypt(socket.inet_pton(fam, addr)))


# --- ipcipher: https://powerdns.org/ipcipher test vectors -----------------------------------


@pytest.mark.parametrize(
    ("passphrase", "key_hex"),
    [
        ("", "bb8dcd7be9a6f43b3304c640d7d7103c"),
        ("3.141592653589793", "3705bd6c0e26a1a839898f1fa016a374"),
        (COIN, "06c4bad23a38b9e0ad9d0590b0a3d93a"),
    ],
)
def test_ipcipher_key_derivation_vectors(passphrase: str, key_hex: str) -> None:
    assert ipcipher_key(passphrase).hex() == key_hex
    if passphrase:  # sipcm's key from a passphrase and an empty salt is exactly ipcipher's key
        assert AnonKey.from_settings(passphrase=passphrase).ipcipher.hex() == key_hex


@pytest.mark.parametrize(
    ("key", "clear", "encrypted"),
    [
        (SOME_KEY, "127.0.0.1", "114.62.227.59"),
        (SOME_KEY, "8.8.8.8", "46.48.51.50"),
        (SOME_KEY, "1.2.3.4", "171.238.15.199"),
        (ipcipher_key(COIN), "198.41.0.4", "139.111.117.167"),
        (ipcipher_key(COIN), "130.161.180.1", "66.235.221.231"),
        (ipcipher_key(COIN), "0.0.0.0", "203.253.152.187"),
        (SOME_KEY, "::1", "3718:8853:1723:6c88:7e5f:2e60:c79a:2bf"),
        (SOME_KEY, "2001:503:ba3e::2:30", "64d2:883d:ffb5:dd79:24b:943c:22aa:4ae7"),
        (SOME_KEY, "2001:DB8::", "ce7e:7e39:d282:e7b1:1d6d:5ca1:d4de:246f"),
        (ipcipher_key(COIN), "::1", "a551:9cb0:c9b:f6e1:6112:58a:af29:3a6c"),
        (ipcipher_key(COIN), "2001:503:ba3e::2:30", "6e60:2674:2fac:d383:f9d5:dcfe:fc53:328e"),
        (ipcipher_key(COIN), "2001:DB8::", "a8f5:16c8:e2ea:23b9:748d:67a2:4107:9d2e"),
    ],
)
def test_ipcipher_published_vectors(key: bytes, clear: str, encrypted: str) -> None:
    c = IpCipher(key)
    assert enc(c, clear) == encrypted
    fam = V6 if ":" in clear else V4
    back = c.decrypt(socket.inet_pton(fam, encrypted))
    assert back == socket.inet_pton(fam, clear)


def test_ipcipher_vectors_through_anon_key_from_passphrase() -> None:
    key = AnonKey.from_settings(passphrase=COIN)
    assert key.ipcipher == ipcipher_key(COIN)
    assert enc(IpCipher(key.ipcipher), "198.41.0.4") == "139.111.117.167"


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=4, max_size=4))
def test_ipcrypt_round_trip(key: bytes, addr: bytes) -> None:
    e = ipcrypt_encrypt(key, addr)
    assert len(e) == 4
    assert ipcrypt_decrypt(key, e) == addr


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16))
def test_ipcipher_v6_round_trip(key: bytes, addr: bytes) -> None:
    c = IpCipher(key)
    assert c.decrypt(c.encrypt(addr)) == addr


# --- Crypto-PAn ----------------------------------------------------------------------------

# Key and trace of the Crypto-PAn reference distribution (sample_trace_raw / _sanitized).
PAN_KEY = bytes.fromhex("1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202")
PAN_VECTORS = [
    ("128.11.68.132", "135.242.180.132"),
    ("129.118.74.4", "134.136.186.123"),
    ("130.132.252.244", "133.68.164.234"),
    ("141.223.7.43", "141.167.8.160"),
    ("141.233.145.108", "141.129.237.235"),
    ("152.163.225.39", "151.140.114.167"),
    ("156.29.3.236", "147.225.12.42"),
    ("165.247.96.84", "162.9.99.234"),
    ("166.107.77.190", "160.132.178.185"),
    ("192.102.249.13", "252.138.62.131"),
]


def _n(a: str) -> int:
    return int.from_bytes(socket.inet_aton(a), "big")


@pytest.mark.parametrize(("clear", "encrypted"), PAN_VECTORS)
def test_crypto_pan_reference_vectors(clear: str, encrypted: str) -> None:
    c = PrefixCipher4(PAN_KEY)
    assert c.encrypt(_n(clear)) == _n(encrypted)
    assert c.decrypt(_n(encrypted)) == _n(clear)


def test_crypto_pan_second_reference_key() -> None:
    # The 32-character sample key from the original Crypto-PAn distribution's README.
    c = PrefixCipher4(b"boojahyoo3vaeToong0Eijee7Ahz3yee")
    assert c.encrypt(_n("192.0.2.1")) == _n("206.2.124.120")


PAN = PrefixCipher4(bytes(range(32)))
u32 = st.integers(0, 2**32 - 1)


def _common_prefix(a: int, b: int) -> int:
    return 32 - (a ^ b).bit_length()


@given(u32, u32)
def test_crypto_pan_preserves_exactly_the_shared_prefix(a: int, b: int) -> None:
    assert _common_prefix(PAN.encrypt(a), PAN.encrypt(b)) == _common_prefix(a, b)


@given(u32, st.integers(0, 31))
def test_crypto_pan_prefix_of_every_length(a: int, n: int) -> None:
    # Flip the bit just after an n-bit prefix: exactly n bits stay shared.
    b = a ^ (1 << (31 - n))
    assert _common_prefix(PAN.encrypt(a), PAN.encrypt(b)) == n


@given(u32)
def test_crypto_pan_round_trip(a: int) -> None:
    e = PAN.encrypt(a)
    assert 0 <= e < 2**32
    assert PAN.decrypt(e) == a


def test_crypto_pan_is_a_permutation_of_a_subnet() -> None:
    # Prefix preservation maps 10.1.2.0/24 onto one /24; bijectivity makes it all of it.
    out = {PAN.encrypt(_n("10.1.2.0") + i) for i in range(256)}
    assert len(out) == 256
    assert len({e >> 8 for e in out}) == 1


def test_crypto_pan_key_size() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        PrefixCipher4(bytes(16))


# --- AES-SIV text tokens -------------------------------------------------------------------

TXT = TextCipher(bytes(range(32)))
B32 = frozenset("abcdefghijklmnopqrstuvwxyz234567")


@given(st.text())
def test_text_round_trip_and_alphabet(s: str) -> None:
    tok = TXT.encrypt(b"user", s)
    assert set(tok) <= B32
    assert TXT.decrypt(b"user", tok) == s
    assert TXT.encrypt(b"user", s) == tok  # deterministic


def test_text_length_shows_only_in_8_byte_steps() -> None:
    # 16-byte SIV + padded text (at least one padding byte): 24 bytes -> 39 base32 characters.
    assert {len(TXT.encrypt(b"user", "x" * n)) for n in range(8)} == {39}
    assert len(TXT.encrypt(b"user", "x" * 8)) == 52  # 32 bytes
    assert len(TXT.encrypt(b"user", "é" * 4)) == 52  # 8 UTF-8 bytes + 0x80 -> 16 -> 32 bytes


def test_text_kinds_and_keys_are_separate() -> None:
    tok = TXT.encrypt(b"user", "alice")
    assert tok != TXT.encrypt(b"host", "alice")
    with pytest.raises(ValueError, match="not an encrypted token"):
        TXT.decrypt(b"host", tok)
    with pytest.raises(ValueError, match="not an encrypted token"):
        TextCipher(bytes(32)).decrypt(b"user", tok)
    altered = tok[:-2] + ("a" if tok[-2] != "a" else "b") + tok[-1]
    with pytest.raises(ValueError, match="not an encrypted token"):
        TXT.decrypt(b"user", altered)


@pytest.mark.parametrize("bad", ["", "abc", "a" * 40, "A" * 39 + "é", "0" * 39, "a" * 38 + "!"])
def test_text_rejects_non_tokens(bad: str) -> None:
    with pytest.raises(ValueError, match="not an encrypted token"):
        TXT.decrypt(b"user", bad)


# --- keys ----------------------------------------------------------------------------------


def test_key_sources(tmp_path) -> None:
    hexkey = "000102030405060708090a0b0c0d0e0f"
    k1 = AnonKey.from_settings(key_hex=hexkey)
    assert k1.ipcipher == bytes(range(16))
    f = tmp_path / "k"
    f.write_text(hexkey.upper() + "\n")
    f.chmod(0o600)
    assert AnonKey.from_settings(key_file=str(f)).check == k1.check
    f.write_bytes(bytes(range(16)))
    assert AnonKey.from_settings(key_file=str(f)).check == k1.check
    # Salt is appended to ipcipher's fixed salt.
    salted = AnonKey.from_settings(passphrase=COIN, salt="site-a")
    assert salted.ipcipher == ipcipher_key(COIN, "site-a") != ipcipher_key(COIN)
    assert salted.check != AnonKey.from_settings(passphrase=COIN, salt="site-b").check


def test_key_check_value_is_8_hex_of_hmac() -> None:
    import hashlib
    import hmac

    k = AnonKey(bytes(range(16)))
    want = hmac.new(bytes(range(16)), b"sipcm-key-check", hashlib.sha256).hexdigest()[:8]
    assert k.check == want
    assert len(want) == 8


def test_subkeys_are_distinct_and_memoized() -> None:
    k = AnonKey(bytes(range(16)))
    a, b = k.subkey("pan4", 32), k.subkey("siv", 32)
    assert a != b
    assert len(a) == 32
    assert k.subkey("pan4", 32) is a
    assert bytes(range(16)) not in (a, b)


SECRET = "correct horse battery staple"
SECRET_HEX = "00112233445566778899aabbccddeeff"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no encryption key is set"),
        ({"passphrase": SECRET, "key_hex": SECRET_HEX}, "encryption_passphrase and encryption_key"),
        ({"key_hex": SECRET_HEX[:-1] + "g"}, "encryption_key is not 32 hex digits"),
        ({"key_hex": SECRET_HEX + "00"}, "encryption_key is not 32 hex digits"),
        ({"key_hex": SECRET_HEX, "salt": "s"}, "encryption_salt is set with encryption_key"),
    ],
)
def test_key_errors_never_show_secrets(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as ei:
        AnonKey.from_settings(**kwargs)
    text = str(ei.value)
    assert message in text
    assert SECRET not in text
    assert SECRET_HEX[:8] not in text


def test_key_file_errors(tmp_path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=f"cannot read encryption_key_file {missing}"):
        AnonKey.from_settings(key_file=str(missing))
    f = tmp_path / "k"
    f.write_text(SECRET + "\n")
    f.chmod(0o600)
    with pytest.raises(ConfigError) as ei:
        AnonKey.from_settings(key_file=str(f))
    assert "does not hold a 128-bit key" in str(ei.value)
    assert SECRET not in str(ei.value)


def test_key_repr_hides_material() -> None:
    k = AnonKey.from_settings(key_hex=SECRET_HEX)
    for text in (repr(k), str(k)):
        assert text == f"AnonKey(check={k.check})"
    for obj in (IpCipher(bytes(16)), PAN, TXT):
        assert "<key hidden>" in repr(obj)
    import pickle

    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(k)


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o620, 0o602, 0o666])
def test_key_file_others_may_access_is_refused(tmp_path, mode: int) -> None:
    f = tmp_path / "k"
    f.write_text(SECRET_HEX + "\n")
    f.chmod(mode)
    with pytest.raises(ConfigError) as ei:
        AnonKey.from_settings(key_file=str(f))
    assert ei.value.message == (
        f"encryption_key_file {f} is accessible by other users (mode {mode:04o}); "
        "its key is not secret"
    )
    assert ei.value.hint is not None
    assert ei.value.hint.startswith(f"chmod 600 {f} ")
    assert SECRET_HEX[:8] not in str(ei.value)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640])
def test_key_file_private_or_group_readable_is_accepted(tmp_path, mode: int) -> None:
    f = tmp_path / "k"
    f.write_text(SECRET_HEX + "\n")
    f.chmod(mode)
    assert (
        AnonKey.from_settings(key_file=str(f)).check
        == AnonKey.from_settings(key_hex=SECRET_HEX).check
    )


def test_key_file_must_be_a_regular_file(tmp_path) -> None:
    with pytest.raises(ConfigError) as ei:
        AnonKey.from_settings(key_file=str(tmp_path))
    assert ei.value.message == f"encryption_key_file {tmp_path} is not a regular file"
