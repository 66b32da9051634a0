"""Replay progress: the line's numbers, terminal redraws, log lines, and the run.py hook."""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path

import pytest

from sipcm import run
from sipcm.config import load_config
from sipcm.progress import (
    LOG_INTERVAL_S,
    TTY_INTERVAL_S,
    ReplayProgress,
    format_progress,
    human_bytes,
    human_eta,
)
from tests.sipgen import MS, T0, Capture, Leg, basic_call


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
     (5 * 1024**2, "5.0 MiB"), (3 * 1024**4, "3.0 TiB"), (2048 * 1024**4, "2048.0 TiB")],
)  # fmt: skip
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


@pytest.mark.parametrize(
    ("s", "text"), [(0, "0:00"), (59.6, "1:00"), (61, "1:01"), (3599, "59:59"), (3600, "1:00:00"),
                    (86399, "23:59:59"), (-3, "0:00")]
)  # fmt: skip
def test_human_eta(s: float, text: str) -> None:
    assert human_eta(s) == text


def test_line_with_a_known_total() -> None:
    line = format_progress(256 * 1024**2, 1024**3, 4.0, 1234, 56)
    assert line == "25.0% of 1.0 GiB, 64.0 MiB/s, ETA 0:12, 1234 packets, 56 events"


def test_line_without_a_total_has_no_percent_or_eta() -> None:
    line = format_progress(3 * 1024**2, None, 2.0, 10, 0)
    assert line == "3.0 MiB read, 1.5 MiB/s, 10 packets, 0 events"


def test_line_at_time_zero_has_no_eta() -> None:
    assert format_progress(0, 100, 0.0, 0, 0) == "0.0% of 100 B, 0 B/s, 0 packets, 0 events"


def files(tmp_path: Path, *sizes: int) -> list[str]:
    out = []
    for i, size in enumerate(sizes):
        p = tmp_path / f"f{i}.pcap"
        p.write_bytes(b"\0" * size)
        out.append(str(p))
    return out


def test_terminal_line_is_redrawn_then_erased(tmp_path: Path) -> None:
    clock, tty = Clock(), io.StringIO()
    prog = ReplayProgress(files(tmp_path, 1024, 1024), tty=tty, clock=clock)
    assert prog.total == 2048
    prog.advance(512, 10, 1)
    assert tty.getvalue() == ""  # nothing before the first interval: short replays stay quiet
    clock.now += TTY_INTERVAL_S
    prog.advance(512, 10, 2)
    first = "50.0% of 2.0 KiB, 2.0 KiB/s, ETA 0:00, 20 packets, 2 events"
    assert tty.getvalue() == "\r" + first
    clock.now += 0.1
    prog.advance(512, 5, 3)  # within the interval: no redraw
    assert tty.getvalue() == "\r" + first
    clock.now += TTY_INTERVAL_S
    prog.advance(0, 0, 3)
    second = "75.0% of 2.0 KiB, 1.4 KiB/s, ETA 0:00, 25 packets, 3 events"
    assert tty.getvalue() == "\r" + first + "\r" + second
    prog.finish()
    assert tty.getvalue().endswith("\r" + " " * len(second) + "\r")


def test_shorter_line_pads_over_the_longer_one(tmp_path: Path) -> None:
    clock, tty = Clock(), io.StringIO()
    prog = ReplayProgress(files(tmp_path, 100), tty=tty, clock=clock)
    clock.now += TTY_INTERVAL_S
    prog.advance(50, 1, 0)
    long = "50.0% of 100 B, 100 B/s, ETA 0:00, 1 packets, 0 events"
    assert tty.getvalue() == "\r" + long
    clock.now += 4.5
    prog.advance(0, 0, 0)
    short = "50.0% of 100 B, 10 B/s, ETA 0:05, 1 packets, 0 events"
    assert tty.getvalue() == "\r" + long + "\r" + short + " "


def test_no_terminal_logs_a_line_per_interval(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="sipcm.replay")
    clock = Clock()
    prog = ReplayProgress(files(tmp_path, 4096), clock=clock)
    clock.now += TTY_INTERVAL_S
    prog.advance(1024, 1, 0)
    assert caplog.messages == []
    clock.now += LOG_INTERVAL_S
    prog.advance(1024, 1, 0)
    assert caplog.messages == ["replay: 50.0% of 4.0 KiB, 67 B/s, ETA 0:30, 2 packets, 0 events"]
    prog.finish()  # nothing to erase
    assert len(caplog.messages) == 1


def test_a_pipe_has_no_total(tmp_path: Path) -> None:
    r, w = os.pipe()
    try:
        prog = ReplayProgress([files(tmp_path, 10)[0], f"/dev/fd/{r}"], tty=io.StringIO())
        assert prog.total is None
        assert ReplayProgress([str(tmp_path / "missing.pcap")]).total is None
    finally:
        os.close(r)
        os.close(w)


def test_replay_reports_every_byte(tmp_path: Path, monkeypatch) -> None:
    """The run.py hook: every batch is counted (a classic pcap is a 24-byte header plus the
    records: the batches cover all but those 24 bytes), then the end of the file."""
    cap = Capture()
    for i in range(300):
        basic_call(cap, Leg(f"c{i}@example.com"), T0 + i * 10 * MS, talk_s=1)
    path = cap.write(tmp_path / "calls.pcap")
    clock, tty = Clock(), io.StringIO()
    prog = ReplayProgress([str(path)], tty=tty, clock=clock)
    seen = []
    real_done = prog.file_done
    monkeypatch.setattr(prog, "file_done", lambda: (seen.append(prog.done), real_done()))
    cfg = load_config(None, ["stats_interval=0"])
    (totals,) = run.replay(cfg, [str(path)], lambda c: [], end="conclude", progress=prog)
    assert seen == [path.stat().st_size - 24]
    assert prog.done == prog.total == path.stat().st_size
    assert prog.packets == totals.packets == 300 * 7  # INVITE 100 180 200 ACK BYE 200


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stdout_tty", [False, True])
def test_cli_draws_the_line_only_on_a_terminal_without_events(
    tmp_path: Path, monkeypatch, stdout_tty: bool
) -> None:
    from sipcm import cli, progress

    cap = Capture()
    basic_call(cap, Leg("c@example.com"), T0)
    path = cap.write(tmp_path / "call.pcap")
    monkeypatch.setattr(progress, "TTY_INTERVAL_S", 0.0)  # draw at every batch
    out, err = (FakeTTY() if stdout_tty else io.StringIO()), FakeTTY()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    cli.main(["-E", "stats_interval=0", "replay", "--summary", "none", str(path)])
    assert len(out.getvalue().splitlines()) == 2  # call-start, call-end
    if stdout_tty:
        assert err.getvalue() == ""
    else:
        line = rf"\r\d+\.\d% of {human_bytes(path.stat().st_size)}, .* 7 packets, 2 events"
        assert re.match(line, err.getvalue())
        assert err.getvalue().endswith("\r")  # erased at the end


def test_file_done_counts_each_file_to_its_end(tmp_path: Path) -> None:
    clock = Clock()
    prog = ReplayProgress(files(tmp_path, 100, 300), tty=io.StringIO(), clock=clock)
    prog.advance(90, 1, 5)
    prog.file_done()
    assert (prog.done, prog.packets, prog.events) == (100, 1, 5)
    prog.advance(250, 2, 3)  # the second file's own event count
    assert (prog.done, prog.packets, prog.events) == (350, 3, 8)
    prog.file_done()
    assert prog.done == prog.total == 400


def test_file_done_without_a_total_keeps_the_count(tmp_path: Path) -> None:
    r, w = os.pipe()
    try:
        prog = ReplayProgress([f"/dev/fd/{r}"], tty=io.StringIO())
        prog.advance(90, 1, 0)
        prog.file_done()
        assert prog.done == 90
    finally:
        os.close(r)
        os.close(w)
