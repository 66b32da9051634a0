"""The logic of `sipcm decrypt`: restore anonymized events for whoever holds the key.

Input: NDJSON events as the console and file outputs write them (one JSON object a line), and
the key settings (passphrase + salt, hex key, or key file; see `sipcm.events.anon.keys`).
Output: the same events, one a line in the same compact encoding, with every field listed in
`sipcm.anon.fields` decrypted and the `sipcm.anon` markers removed; events without markers pass
through unchanged. Errors are one-line SipcmErrors naming the input line; no key material ever
appears in them. It never writes a partial line for an event it cannot decrypt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import BinaryIO, TextIO

from sipcm.errors import SipcmError
from sipcm.events.anon.codec import Codec
from sipcm.events.anon.keys import AnonKey
from sipcm.events.anonymize import Decryptor, decrypt_doc
from sipcm.outputs.base import ndjson_line

KINDS = ("ip", "uri", "call_id", "ua", "user", "host", "display")
MAX_LINE = 16 << 20  # an event is a few KiB; a longer "line" is not NDJSON (e.g. /dev/zero)
_HINT = "give the NDJSON written by the console or file output"


def _lines(stream: TextIO | BinaryIO, limit: int = MAX_LINE) -> Iterator[str | bytes]:
    """The lines of `stream`, refusing one longer than `limit` instead of reading it whole."""
    n = 0
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        n += 1
        if len(line) > limit:
            raise SipcmError(f"line {n} is longer than {limit} bytes", _HINT)
        yield line


def load_key(
    *,
    passphrase: str | None = None,
    key_hex: str | None = None,
    key_file: str | None = None,
    salt: str = "",
) -> AnonKey:
    """The key from exactly one source (ConfigError otherwise); see `AnonKey.from_settings`."""
    return AnonKey.from_settings(
        passphrase=passphrase, key_hex=key_hex, key_file=key_file, salt=salt
    )


def decrypt_lines(lines: Iterable[str | bytes], key: AnonKey) -> Iterable[str]:
    """Decrypted NDJSON lines (with newline) for NDJSON input lines (text, or bytes that must
    be UTF-8); blank lines are skipped."""
    dec = Decryptor(key)
    for n, raw in enumerate(lines, 1):
        if isinstance(raw, bytes):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = f"byte 0x{raw[e.start]:02x} at column {e.start + 1}"
                raise SipcmError(
                    f"line {n} is not UTF-8 text ({bad})",
                    _HINT,
                ) from None
        else:
            line = raw
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except RecursionError:
            raise SipcmError(
                f"line {n} is nested too deeply to be an event",
                _HINT,
            ) from None
        except ValueError as e:
            raise SipcmError(
                f"line {n} is not a JSON event ({e.msg} at column {e.colno})"
                if isinstance(e, json.JSONDecodeError)
                else f"line {n} is not a JSON event",
                _HINT,
            ) from None
        if not isinstance(doc, dict):
            raise SipcmError(
                f"line {n} is not a JSON object", "give the NDJSON written by sipcm's outputs"
            )
        try:
            decrypt_doc(doc, dec)
        except SipcmError as e:
            raise SipcmError(f"line {n}: {e.message}", e.hint) from None
        yield ndjson_line(doc)


def decrypt_stream(
    in_stream: TextIO | BinaryIO,
    out_stream: TextIO,
    *,
    passphrase: str | None = None,
    key_hex: str | None = None,
    key_file: str | None = None,
    salt: str = "",
) -> int:
    """Decrypt NDJSON events from `in_stream` to `out_stream`; returns the events written."""
    key = load_key(passphrase=passphrase, key_hex=key_hex, key_file=key_file, salt=salt)
    count = 0
    for out in decrypt_lines(_lines(in_stream), key):
        out_stream.write(out)
        count += 1
    out_stream.flush()
    return count


def decrypt_value(kind: str, value: str, key: AnonKey, *, ipcipher: bool = False) -> str:
    """Decrypt one value of a kind in KINDS.

    `ipcipher` says how IPv4 addresses were encrypted (an event's `sipcm.anon.ipv4` is
    "ipcipher"); it matters for kinds ip, host and uri.
    """
    if kind not in KINDS:
        raise SipcmError(f"unknown value kind {kind!r}", "use one of " + ", ".join(KINDS))
    c = Codec(key, ipcipher4=ipcipher)
    fn = {"ip": c.ip_decrypt, "uri": c.uri_decrypt, "host": c.host_decrypt}.get(kind)
    try:
        return fn(value) if fn is not None else c.text_decrypt(kind, value)
    except ValueError:
        raise SipcmError(
            f"cannot decrypt this {kind} value: not encrypted with this key",
            "check the key, the kind and (for IPv4) whether ipcipher was on",
        ) from None
