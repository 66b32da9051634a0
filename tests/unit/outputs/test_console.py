"""Console output: NDJSON bytes and the one-line human format."""

from __future__ import annotations

import io
import json

import pytest

from sipcm.events.build import EventBuilder
from sipcm.outputs.base import Output, ndjson_line
from sipcm.outputs.console import ConsoleOutput, pretty_line
from sipcm.sip.message import ParseError
from tests.unit.events.factories import (
    BOB,
    T0,
    CallMetrics,
    Credentials,
    Outcome,
    RegInfo,
    invite,
    payload,
    register,
    response,
)

S = 1_000_000_000
B = EventBuilder("sensor1")


def call_start() -> dict:
    inv = invite()
    ok = response(inv, 200, "OK")
    return B.build(
        Outcome(
            "call-start",
            T0 + 2 * S,
            msg=ok,
            request=inv,
            response=ok,
            status=200,
            reason="OK",
            call=CallMetrics(pdd_ms=120.4, ring_time_ms=1879.6, setup_time_ms=2000.0),
        )
    )


def test_ndjson_compact_unicode_one_line_per_event() -> None:
    out = io.StringIO()
    con = ConsoleOutput(out)
    assert isinstance(con, Output)
    docs = [{"a": "é\nx", "b": [1, 2]}, {"z": 1, "a": 2}]
    con.write(docs)
    con.write([])
    assert out.getvalue() == '{"a":"é\\nx","b":[1,2]}\n{"z":1,"a":2}\n'
    assert con.counters == {"published": 2}
    assert [json.loads(line) for line in out.getvalue().splitlines()] == docs


def test_ndjson_of_a_built_event_is_stable() -> None:
    doc = call_start()
    line = ndjson_line(doc)
    assert line.startswith('{"@timestamp":"2023-11-14T22:13:22.123456789Z","ecs":{"version":')
    assert line == ndjson_line(call_start())


def test_pretty_call_start() -> None:
    assert pretty_line(call_start()) == (
        "2023-11-14 22:13:22.123 call-start    a84b4c76e66710@pc33.atlanta.example.com "
        "alice@atlanta.example.com -> bob@biloxi.example.com 200 OK "
        "pdd=120ms ring=1880ms setup=2000ms\n"
    )


def test_pretty_call_end_auth_reg_parse_stats() -> None:
    inv = invite()
    end = B.build(
        Outcome(
            "call-end",
            T0 + 62 * S,
            request=inv,
            status=200,
            reason="OK",
            call=CallMetrics(originator="callee", duration_ns=60_500_000_000),
        )
    )
    assert pretty_line(end).endswith(" 200 OK duration=60.500s by=callee\n")
    creds = invite(credentials=Credentials("Digest", "1001", "pbx"))
    af = B.build(Outcome("auth-failed", T0, request=creds, status=403, reason="Forbidden"))
    assert pretty_line(af).endswith(" 403 Forbidden user=1001\n")
    req = register()
    reg = B.build(
        Outcome(
            "reg-new",
            T0,
            request=req,
            status=200,
            reason="OK",
            reg=RegInfo("sip:bob@biloxi.example.com", req.contacts[0], 1800),
        )
    )
    assert pretty_line(reg) == (
        "2023-11-14 22:13:20.123 reg-new       843817637684230@998sdasdh09 "
        "bob@biloxi.example.com -> bob@biloxi.example.com 200 OK expires=1800s\n"
    )
    pl = payload(("2001:db8::5", 5070), BOB, data=b"\x80\x00" * 10, ip_version=6)
    probe = B.build(
        Outcome("msg-probe", T0, error=ParseError("not_text", 0, probe=True, payload=pl))
    )
    assert pretty_line(probe) == (
        "2023-11-14 22:13:20.123 msg-probe     [2001:db8::5]:5070 -> 192.0.2.20:5062 "
        "not_text size=20\n"
    )
    pe = B.build(Outcome("parse-error", T0, error=ParseError("bad_cseq", 40), payload=payload()))
    assert pretty_line(pe).endswith(
        " 192.0.2.10:5060 -> 192.0.2.20:5062 bad_cseq offset=40 size=100\n"
    )
    stats = B.build_stats(T0, {"decode": {"a": 2, "b": 3}, "sip": {"c": 1}})
    assert pretty_line(stats) == "2023-11-14 22:13:20.123 stats         groups=2 total=6\n"


def test_pretty_mode_writes_pretty_lines() -> None:
    out = io.StringIO()
    con = ConsoleOutput(out, pretty=True)
    con.write([call_start(), call_start()])
    con.flush()
    con.close()
    assert out.getvalue() == pretty_line(call_start()) * 2
    assert con.counters["published"] == 2
    assert not out.closed  # the caller's stream stays open


class Broken(io.StringIO):
    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_broken_pipe_is_counted_and_raised() -> None:
    con = ConsoleOutput(Broken())
    with pytest.raises(BrokenPipeError):
        con.write([{"a": 1}, {"b": 2}])
    assert con.counters == {"write_errors": 1, "dropped": 2}


def test_pretty_escapes_terminal_controls() -> None:
    """SIP text is attacker-chosen: ESC sequences, BEL, C1 CSI and bidi overrides are shown,
    never sent to the terminal raw."""
    doc = call_start()
    doc["sip"]["call_id"] = "x\x1b]0;owned\x07y"
    doc["sip"]["from"]["uri"]["username"] = "al\x1b[2Jice"
    doc["sip"]["status"] = "OK\u202eevil\x9b31m\x7f\r"
    line = pretty_line(doc)
    assert line == (
        "2023-11-14 22:13:22.123 call-start    x\\x1b]0;owned\\x07y "
        "al\\x1b[2Jice@atlanta.example.com -> bob@biloxi.example.com 200 "
        "OK\\u202eevil\\x9b31m\\x7f\\x0d pdd=120ms ring=1880ms setup=2000ms\n"
    )
    assert line[:-1].isprintable()


def test_lines_go_to_the_byte_stream_of_a_utf8_text_stream_in_order() -> None:
    """On a UTF-8 text stream (stdout, a file) encoded lines are written as bytes, after any
    text written before them: the same bytes as through the text layer."""
    raw = io.BytesIO()
    text = io.TextIOWrapper(raw, encoding="utf-8")
    con = ConsoleOutput(text)
    first = [b'{"a":"\xc3\xa9\xe2\x80\xa8"}\n', b'{"b":1}\n']
    con.write_lines(first)
    con.write([{"c": "\u00fc"}])
    con.write_lines([b'{"d":2}\n'])
    assert raw.getvalue() == b"".join(first) + '{"c":"ü"}\n'.encode() + b'{"d":2}\n'
    assert con.counters == {"published": 4}


def test_lines_to_a_text_stream_of_another_encoding_go_through_the_text_layer() -> None:
    raw = io.BytesIO()
    con = ConsoleOutput(io.TextIOWrapper(raw, encoding="utf-16-le"))
    con.write_lines([b'{"a":"x"}\n'])
    assert raw.getvalue() == '{"a":"x"}\n'.encode("utf-16-le")


def test_ndjson_escapes_what_terminals_act_on_and_keeps_the_documents() -> None:
    """NDJSON on the console (`sipcm attach` with no output configured, a `tail -f` of the
    event file) carries attacker-chosen SIP text: JSON escapes C0 controls, but a C1 CSI or a
    bidi override is valid raw inside a JSON string. They are written as escapes; the
    documents decode to the same values, and other non-ASCII text stays as it is."""
    doc = call_start()
    doc["sip"]["call_id"] = "x\x9b2Jy"  # C1 CSI: "clear the screen" to a terminal taking it
    doc["sip"]["from"]["uri"]["username"] = "al\u202eecila"  # shown reversed
    doc["sip"]["status"] = "OK \u2066\u061c\u200f\u2069 caf\u00e9 \u2019\u20ac\u4e2d\U0001f600\x7f"
    raw = io.BytesIO()
    con = ConsoleOutput(io.TextIOWrapper(raw, encoding="utf-8"))
    con.write_lines([ndjson_line(doc).encode(), b'{"plain":1}\n'])
    con.write([doc])  # the same, from documents
    lines = raw.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [doc, {"plain": 1}, doc]
    assert lines[0] == lines[2]
    assert b"x\\u009b2Jy" in lines[0]
    assert b"al\\u202eecila" in lines[0]
    assert b"OK \\u2066\\u061c\\u200f\\u2069 caf\xc3\xa9 \xe2\x80\x99\xe2\x82\xac" in lines[0]
    assert b"\\u007f" in lines[0]
    for line in lines:
        text = line.decode()
        assert not [c for c in text if not c.isprintable() or 0x2066 <= ord(c) <= 0x2069]
