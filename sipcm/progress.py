"""Progress of a replay: share of the input bytes read, read rate and time left.

`ReplayProgress` is told the input files up front (their sizes give the total when every one
is a regular file; a pipe leaves the total unknown, so no percentage or ETA) and how many
bytes each batch covered. On a terminal it redraws one carriage-return line on stderr a few
times a second and erases it at the end; otherwise it logs a line at a longer interval, so a
long replay under a service manager or in CI still shows that it advances. Nothing is shown
for a replay shorter than the first interval.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Sequence
from typing import TextIO

log = logging.getLogger("sipcm.replay")

TTY_INTERVAL_S = 0.5  # terminal redraw interval (and the delay before the first one)
LOG_INTERVAL_S = 30.0  # log line interval when stderr is not a terminal
_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(n: float) -> str:
    """1536 -> "1.5 KiB"; below 1 KiB the exact count."""
    unit = 0
    while n >= 1024 and unit < len(_BYTE_UNITS) - 1:
        n /= 1024
        unit += 1
    return f"{int(n)} B" if unit == 0 else f"{n:.1f} {_BYTE_UNITS[unit]}"


def human_eta(seconds: float) -> str:
    """Seconds left as M:SS, or H:MM:SS from one hour."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def input_size(path: str) -> int | None:
    """The byte size of a regular file; None for a pipe, device or unreadable path."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def format_progress(done: int, total: int | None, elapsed: float, packets: int, events: int) -> str:
    """One progress line: "42.0% of 1.2 GiB, 35.2 MiB/s, ETA 0:21, 1234 packets, 56 events"."""
    rate = done / elapsed if elapsed > 0 else 0.0
    if total:
        parts = [f"{min(100.0, 100.0 * done / total):.1f}% of {human_bytes(total)}"]
    else:
        parts = [f"{human_bytes(done)} read"]
    parts.append(f"{human_bytes(rate)}/s")
    if total and rate > 0:
        parts.append(f"ETA {human_eta(max(0, total - done) / rate)}")
    parts += [f"{packets} packets", f"{events} events"]
    return ", ".join(parts)


class ReplayProgress:
    """Reports the progress of one replay over `paths` (see the module docstring)."""

    def __init__(
        self,
        paths: Sequence[str],
        *,
        tty: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        sizes = [input_size(p) for p in paths]
        self.total: int | None = None if None in sizes else sum(s or 0 for s in sizes)
        self._ends = [sum(s or 0 for s in sizes[: i + 1]) for i in range(len(sizes))]
        self._file = 0  # index of the file being read
        self.tty = tty  # a terminal: redraw one line there; None: log lines
        self.interval = TTY_INTERVAL_S if tty is not None else LOG_INTERVAL_S
        self.clock = clock
        self.start = clock()
        self.next = self.start + self.interval
        self.done = 0
        self.packets = 0
        self.events = 0
        self._events_before = 0  # events of the files already read
        self._width = 0  # length of the line on the terminal, to erase it

    def advance(self, nbytes: int, packets: int, events: int) -> None:
        """`nbytes` more input read, covering `packets` packets; `events` so far in this file."""
        self.done += nbytes
        self.packets += packets
        self.events = self._events_before + events
        now = self.clock()
        if now < self.next:
            return
        self.next = now + self.interval
        line = format_progress(self.done, self.total, now - self.start, self.packets, self.events)
        if self.tty is None:
            log.info("replay: %s", line)
            return
        self.tty.write("\r" + line.ljust(self._width))
        self.tty.flush()
        self._width = len(line)

    def file_done(self) -> None:
        """The current file is read to its end: count the bytes outside packet batches too
        (file and section headers), so a finished input shows as all of its size."""
        if self.total is not None and self._file < len(self._ends):
            self.done = max(self.done, self._ends[self._file])
        self._file += 1
        self._events_before = self.events

    def finish(self) -> None:
        """Erase the terminal line (the summary follows on a clean line)."""
        if self.tty is not None and self._width:
            self.tty.write("\r" + " " * self._width + "\r")
            self.tty.flush()
            self._width = 0
