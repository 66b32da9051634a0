"""Diagnostic logging on standard error, through the standard `logging` module.

`setup()` installs one stderr handler on the root logger: text lines (UTC time, level,
component, message) or ECS JSON lines (`json=True`); sipcm's loggers at INFO (-v: DEBUG,
-q: WARNING, -qq: ERROR), other libraries' at WARNING (a few at ERROR unless -v).
`RepeatFilter` lets every warning through once, then at most once per `repeat_interval` with
the number suppressed meanwhile.
Events never go through logging: they are the outputs' business (stdout, files, ES).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections import OrderedDict
from typing import TextIO

from sipcm.events.schema import ECS_VERSION

ROOT = "sipcm"
# -q/-v count -> level of sipcm's loggers (clamped at both ends)
LEVELS = (logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)
DEFAULT_VERBOSITY = 2
DEFAULT_REPEAT_S = 60.0
MAX_KEYS = 1024  # distinct warnings remembered by RepeatFilter; the oldest is forgotten
_NUMBER = re.compile(r"\d+")
# Libraries whose warnings repeat what sipcm itself reports (the ES output and commands name
# an unreachable node in their own words): shown only with -v.
QUIET_LIBRARIES = {"elastic_transport": logging.ERROR, "urllib3": logging.ERROR}


def utc_iso(created: float) -> str:
    """A record time as ISO 8601 UTC with milliseconds (2026-12-06T12:00:00.123Z)."""
    millis = int(created % 1 * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


class TextFormatter(logging.Formatter):
    """`2026-12-06T12:00:00.123Z WARNING sipcm.outputs.elasticsearch: message`."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{utc_iso(record.created)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class EcsFormatter(logging.Formatter):
    """One ECS JSON object per line: @timestamp, log.level, log.logger, message, ecs.version,
    process.pid, process.thread.name, and error.* when an exception is attached."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "@timestamp": utc_iso(record.created),
            "log.level": record.levelname.lower(),
            "message": record.getMessage(),
            "ecs.version": ECS_VERSION,
            "log.logger": record.name,
            "log.origin.function": record.funcName,
            "process.pid": record.process,
            "process.thread.name": record.threadName,
        }
        if record.exc_info and record.exc_info[0] is not None:
            doc["error.type"] = record.exc_info[0].__name__
            doc["error.message"] = str(record.exc_info[1])
            doc["error.stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class RepeatFilter(logging.Filter):
    """Warnings and errors: each distinct one passes once, repeats at most once per
    `interval_s` (the one that passes says how many were suppressed). Two messages are the
    same warning when they differ only in numbers (counts, ports, sizes)."""

    def __init__(self, interval_s: float = DEFAULT_REPEAT_S, clock=time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.clock = clock
        self._seen: OrderedDict[tuple[str, int, str], list[float | int]] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or self.interval_s <= 0:
            return True
        key = (record.name, record.levelno, _NUMBER.sub("#", record.getMessage()))
        now = self.clock()
        entry = self._seen.get(key)
        if entry is None:
            self._seen[key] = [now, 0]
            if len(self._seen) > MAX_KEYS:
                self._seen.popitem(last=False)
            return True
        self._seen.move_to_end(key)
        last, suppressed = entry
        if now - last < self.interval_s:
            entry[1] = suppressed + 1
            return False
        entry[0], entry[1] = now, 0
        if suppressed:
            record.msg = f"{record.getMessage()} ({suppressed} more like this suppressed)"
            record.args = None
        return True


def level_for(verbosity: int) -> int:
    """The level of sipcm's loggers for a verbosity (2 = default INFO, +1 per -v, -1 per -q)."""
    return LEVELS[max(0, min(len(LEVELS) - 1, verbosity))]


def setup(
    verbosity: int = DEFAULT_VERBOSITY,
    *,
    json_lines: bool = False,
    repeat_interval_s: float = DEFAULT_REPEAT_S,
    stream: TextIO | None = None,
) -> logging.Handler:
    """(Re)configure logging: replaces the handler a previous call installed; returns it."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "sipcm", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.sipcm = True  # type: ignore[attr-defined]
    handler.setFormatter(EcsFormatter() if json_lines else TextFormatter())
    handler.addFilter(RepeatFilter(repeat_interval_s))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # other libraries: warnings and errors only
    logging.getLogger(ROOT).setLevel(level_for(verbosity))
    for name, level in QUIET_LIBRARIES.items():
        logging.getLogger(name).setLevel(
            level if verbosity <= DEFAULT_VERBOSITY else logging.NOTSET
        )
    return handler
