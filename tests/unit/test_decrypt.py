"""`sipcm decrypt` logic: NDJSON in, restored NDJSON out; key errors; single values."""

from __future__ import annotations

import copy
import io

import pytest

from sipcm.decrypt import KINDS, decrypt_stream, decrypt_value, load_key
from sipcm.errors import ConfigError, SipcmError
from sipcm.events.anon.codec import Codec
from sipcm.events.anonymize import Anonymizer
from sipcm.events.build import EventBuilder
from sipcm.outputs.base import ndjson_line
from tests.unit.events.factories import T0, Outcome, invite, register

HEX = "000102030405060708090a0b0c0d0e0f"
PASS, SALT = "correct horse battery staple", "site-a"
BUILDER = EventBuilder("sensor1")
ALL = {"ip": True, "ipcipher": False, "uris": True, "call_ids": True, "ua": True}


def clear_events() -> list[dict]:
    inv = invite()
    reg = register()
    return [
        BUILDER.build(Outcome("call-attempt", T0, msg=inv, request=inv, status=486, reason="Busy")),
        BUILDER.build(Outcome("other-ok", T0, msg=reg, request=reg, status=200, reason="OK")),
        BUILDER.build_stats(T0, {"sip": {"parsed": 2}}),
    ]


def ndjson(docs: list[dict]) -> str:
    return "".join(ndjson_line(d) for d in docs)


def anonymized(**key: str) -> tuple[str, str]:
    clear = clear_events()
    a = Anonymizer(**ALL, **key)
    return ndjson(clear), ndjson([a.apply(copy.deepcopy(d)) for d in clear])


def test_stream_round_trip_with_passphrase_and_salt() -> None:
    clear, anon = anonymized(passphrase=PASS, salt=SALT)
    assert anon != clear
    out = io.StringIO()
    n = decrypt_stream(io.StringIO(anon + "\n"), out, passphrase=PASS, salt=SALT)
    assert n == 3
    assert out.getvalue() == clear  # byte for byte, markers gone, blank line skipped


def test_stream_with_key_file(tmp_path) -> None:
    clear, anon = anonymized(key_hex=HEX)
    f = tmp_path / "key"
    f.write_text(HEX + "\n")
    f.chmod(0o600)
    out = io.StringIO()
    assert decrypt_stream(io.StringIO(anon), out, key_file=str(f)) == 3
    assert out.getvalue() == clear


def test_wrong_key_names_the_line_and_both_checks() -> None:
    _, anon = anonymized(passphrase=PASS, salt=SALT)
    good = load_key(passphrase=PASS, salt=SALT).check
    bad = load_key(passphrase=PASS, salt="site-b").check
    out = io.StringIO()
    with pytest.raises(SipcmError) as ei:
        decrypt_stream(io.StringIO(anon), out, passphrase=PASS, salt="site-b")
    assert ei.value.message == (
        f"line 1: wrong key: the events were encrypted with key check {good}, "
        f"this key's check is {bad}"
    )
    assert "\n" not in str(ei.value)
    assert PASS not in str(ei.value)
    assert out.getvalue() == ""  # nothing written for an event that did not decrypt


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1}\nnot json\n', "line 2 is not a JSON event (Expecting value at column 1)"),
        ("[1, 2]\n", "line 1 is not a JSON object"),
        (
            '{"sipcm": {"anon": {"fields": ["sip.call_id"], "key_check": "x"}}}\n',
            "line 1: wrong key",
        ),
    ],
)
def test_input_errors(text: str, message: str) -> None:
    with pytest.raises(SipcmError) as ei:
        decrypt_stream(io.StringIO(text), io.StringIO(), key_hex=HEX)
    assert ei.value.message.startswith(message)


def test_key_setting_errors_name_no_secret() -> None:
    with pytest.raises(ConfigError) as ei:
        decrypt_stream(io.StringIO(""), io.StringIO(), passphrase=PASS, key_hex=HEX)
    assert "encryption_passphrase and encryption_key are set" in str(ei.value)
    assert PASS not in str(ei.value)
    assert HEX not in str(ei.value)


def test_events_without_markers_pass_through() -> None:
    clear = ndjson(clear_events())
    out = io.StringIO()
    assert decrypt_stream(io.StringIO(clear), out, key_hex=HEX) == 3
    assert out.getvalue() == clear


def test_decrypt_value_every_kind() -> None:
    key = load_key(key_hex=HEX)
    pan, ipc = Codec(key, False), Codec(key, True)
    cases = {
        "ip": pan.ip("192.0.2.10"),
        "uri": pan.uri("sip:alice@192.0.2.10:5060;transport=tcp"),
        "host": pan.host("atlanta.example.com"),
        "call_id": pan.text("call_id", "a84b@pc33"),
        "ua": pan.text("ua", "Softphone/1.0"),
        "user": pan.text("user", "alice"),
        "display": pan.text("display", "Alice"),
    }
    assert set(cases) == set(KINDS)
    clear = {
        "ip": "192.0.2.10",
        "uri": "sip:alice@192.0.2.10:5060;transport=tcp",
        "host": "atlanta.example.com",
        "call_id": "a84b@pc33",
        "ua": "Softphone/1.0",
        "user": "alice",
        "display": "Alice",
    }
    for kind, value in cases.items():
        assert decrypt_value(kind, value, key) == clear[kind]
    assert decrypt_value("ip", ipc.ip("192.0.2.10"), key, ipcipher=True) == "192.0.2.10"
    assert decrypt_value("ip", ipc.ip("2001:db8::1"), key) == "2001:db8::1"  # v6: same method


def test_decrypt_value_errors() -> None:
    key = load_key(key_hex=HEX)
    with pytest.raises(SipcmError, match="unknown value kind 'mac'"):
        decrypt_value("mac", "x", key)
    token = Codec(key, False).text("ua", "Softphone/1.0")
    with pytest.raises(SipcmError, match="cannot decrypt this call_id value"):
        decrypt_value("call_id", token, key)
    with pytest.raises(SipcmError, match="cannot decrypt this ip value"):
        decrypt_value("ip", "not-an-ip", key)
    other = load_key(key_hex="f" * 32)
    with pytest.raises(SipcmError, match="not encrypted with this key"):
        decrypt_value("ua", token, other)
