"""Console output: NDJSON (one compact JSON document per line) or, with `pretty=True`, one
human-readable line per event, to a text stream (stdout by default).

It never reorders, filters or modifies events.
"""

from __future__ import annotations

import codecs
import io
import sys
from collections import Counter
from typing import Any, BinaryIO, TextIO

import orjson

from sipcm.outputs.base import CONTROLS, ndjson_bytes, terminal_safe

_ACTION_WIDTH = 13  # len("other-timeout")

# Pretty lines show the characters a terminal acts on as \xNN / \uNNNN.
_ESCAPES = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in CONTROLS}


def escape_controls(text: str) -> str:
    r"""`text` with every terminal control character shown as an escape (\x1b, \u202e)."""
    return text.translate(_ESCAPES)


def _endpoint(party: dict[str, Any] | None) -> str:
    """`user@host` of a sip.from/sip.to object, or its URI text."""
    if not party:
        return "?"
    uri = party.get("uri", {})
    user, host = uri.get("username"), uri.get("host")
    if user and host:
        return f"{user}@{host}"
    return uri.get("original") or host or "?"


def _addr(obj: dict[str, Any] | None) -> str:
    if not obj:
        return "?"
    ip = obj.get("ip", "?")
    if ":" in ip:
        ip = f"[{ip}]"
    return f"{ip}:{obj['port']}" if "port" in obj else ip


def _ms(v: float) -> str:
    return f"{v:.0f}ms"


def _metric(doc: dict[str, Any]) -> str:
    """The few numbers that matter for this event type, as `key=value` words."""
    action = doc.get("event", {}).get("action")
    sip = doc.get("sip", {})
    call = sip.get("call", {})
    words = []
    if action in ("call-start", "call-attempt"):
        for key, label in (("pdd", "pdd"), ("ring_time", "ring"), ("setup_time", "setup")):
            if key in call:
                words.append(f"{label}={_ms(call[key])}")
    duration = doc.get("event", {}).get("duration")
    if duration is not None:
        words.append(f"duration={duration / 1e9:.3f}s")
    if "originator" in call:
        words.append(f"by={call['originator']}")
    if call.get("reconstructed"):
        words.append(f"reconstructed={call.get('reconstructed_from', 'yes')}")
    reg = sip.get("reg", {})
    if "expires" in reg:
        words.append(f"expires={reg['expires']}s")
    user = doc.get("user", {}).get("name")
    if user and action == "auth-failed":
        words.append(f"user={user}")
    err = doc.get("error")
    if err:
        words.append(err.get("code", ""))
        parse = doc.get("sipcm", {}).get("parse")
        if parse:
            words.append(f"offset={parse['offset']}")
        size = doc.get("sipcm", {}).get("payload", {}).get("size")
        if size is not None:
            words.append(f"size={size}")
    return " ".join(words)


def pretty_line(doc: dict[str, Any]) -> str:
    """`<date time.ms> <action> <call-id> <from> -> <to> <code> <reason> <metrics>` (+newline).

    Events without From/To (parse-error, msg-probe) show source -> destination addresses;
    stats events show their counter total. An event of a rate-limited key ends with
    `[limited N]`, N its `sipcm.rate.exceeded` (events over the limit so far). Control
    characters from the SIP text are escaped.
    """
    ts = doc.get("@timestamp", "")
    when = ts[:23].replace("T", " ") if len(ts) >= 23 else ts
    event = doc.get("event", {})
    action = event.get("action", "?")
    parts = [when, f"{action:<{_ACTION_WIDTH}}"]
    if action == "stats":
        counters = doc.get("sipcm", {}).get("counters", {})
        total = sum(sum(g.values()) for g in counters.values())
        parts.append(f"groups={len(counters)} total={total}")
        return " ".join(parts) + "\n"
    sip = doc.get("sip", {})
    if "call_id" in sip:
        parts.append(sip["call_id"])
    if "from" in sip or "to" in sip:
        parts.append(f"{_endpoint(sip.get('from'))} -> {_endpoint(sip.get('to'))}")
    else:
        parts.append(f"{_addr(doc.get('source'))} -> {_addr(doc.get('destination'))}")
    if "code" in sip:
        parts.append(str(sip["code"]))
    reason = sip.get("status") or (event.get("reason") if "error" not in doc else None)
    if reason:
        parts.append(reason)
    metric = _metric(doc)
    if metric:
        parts.append(metric)
    rate = doc.get("sipcm", {}).get("rate")
    if rate:
        # A rate-limited key: this event is reported, most of its others are not.
        parts.append(f"[limited {rate.get('exceeded', '?')}]")
    return escape_controls(" ".join(parts)) + "\n"


class ConsoleOutput:
    """Writes events to a text stream, NDJSON or pretty lines; flushes after every batch."""

    name = "console"

    def __init__(
        self,
        stream: TextIO | None = None,
        pretty: bool = False,
        counters: Counter[str] | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.pretty = pretty
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self._bytes = _utf8_buffer(self.stream)

    def write(self, events: list[dict[str, Any]]) -> None:
        """Write a batch as one string (one syscall when the stream is unbuffered); NDJSON
        goes through `write_lines`, like the documents the collector hands over encoded."""
        if not events:
            return
        if not self.pretty:
            self.write_lines([ndjson_bytes(e) for e in events])
            return
        text = "".join([pretty_line(e) for e in events])
        try:
            self.stream.write(text)
            self.stream.flush()
        except OSError:
            # A closed pipe (`sipcm replay x | head`) or a full disk: count, let the caller stop.
            self.counters["write_errors"] += 1
            self.counters["dropped"] += len(events)
            raise
        self.counters["published"] += len(events)

    def write_lines(self, lines: list[bytes]) -> None:
        """Write a batch of encoded documents (NDJSON lines) without decoding them again."""
        if self.pretty:
            self.write([orjson.loads(line) for line in lines])
            return
        if not lines:
            return
        try:
            data = terminal_safe(b"".join(lines))
            if self._bytes is not None:
                self.stream.flush()  # anything written as text goes first
                self._bytes.write(data)
                self._bytes.flush()
            else:
                self.stream.write(data.decode())
                self.stream.flush()
        except OSError:
            self.counters["write_errors"] += 1
            self.counters["dropped"] += len(lines)
            raise
        self.counters["published"] += len(lines)

    def flush(self) -> None:
        """Flush the stream."""
        self.stream.flush()

    def close(self) -> None:
        """Flush. The stream belongs to the caller (stdout by default) and stays open."""
        self.stream.flush()


def _utf8_buffer(stream: TextIO) -> BinaryIO | None:
    """The byte stream under `stream` when writing encoded lines there gives the bytes the
    text layer would (a UTF-8 `TextIOWrapper`: stdout, a file opened in text mode); None
    otherwise (StringIO, another encoding). It saves decoding and re-encoding every line."""
    if not isinstance(stream, io.TextIOWrapper):
        return None
    try:
        if codecs.lookup(stream.encoding).name != "utf-8":
            return None
    except LookupError:
        return None
    return stream.buffer
