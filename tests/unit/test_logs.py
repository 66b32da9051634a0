"""Diagnostic logging: text and ECS JSON lines on stderr, -v/-q levels, repeated warnings
rate-limited, and the command line wiring (-v/-q, logging.json, --version, config --check)."""

from __future__ import annotations

import io
import json
import logging
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from sipcm import __version__, accel, logs
from sipcm.events.schema import ECS_VERSION
from tests.conftest import REPO

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\w+) ([\w.]+): (.*)$")


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Logging set up on a StringIO; the previous root configuration restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("sipcm").level)
    buf = io.StringIO()
    yield buf
    for h in [h for h in root.handlers if getattr(h, "sipcm", False)]:
        root.removeHandler(h)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.getLogger("sipcm").setLevel(saved[2])


def lines(buf: io.StringIO) -> list[str]:
    return buf.getvalue().splitlines()


def test_text_lines_carry_time_level_and_component(stream):
    logs.setup(stream=stream)
    logging.getLogger("sipcm.outputs.elasticsearch").info("connected to Elasticsearch %s", "9.1")
    logging.getLogger("sipcm.run").warning("reload failed")
    logging.getLogger("sipcm.run").debug("not shown at the default level")
    got = [TEXT_LINE.match(line).groups() for line in lines(stream)]
    assert got == [
        ("INFO", "sipcm.outputs.elasticsearch", "connected to Elasticsearch 9.1"),
        ("WARNING", "sipcm.run", "reload failed"),
    ]


@pytest.mark.parametrize(
    ("verbosity", "shown"),
    [
        (0, ["ERROR"]),  # -qq
        (1, ["WARNING", "ERROR"]),  # -q
        (2, ["INFO", "WARNING", "ERROR"]),  # default
        (3, ["DEBUG", "INFO", "WARNING", "ERROR"]),  # -v
        (5, ["DEBUG", "INFO", "WARNING", "ERROR"]),  # -vvv: no lower level exists
    ],
)
def test_verbosity_levels(stream, verbosity, shown):
    logs.setup(verbosity, stream=stream)
    log = logging.getLogger("sipcm.x")
    for level in ("debug", "info", "warning", "error"):
        getattr(log, level)("a %s line", level)
    assert [TEXT_LINE.match(x).group(1) for x in lines(stream)] == shown


def test_other_libraries_log_warnings_only(stream):
    logs.setup(3, stream=stream)
    logging.getLogger("elastic_transport.transport").info("POST /_bulk 200")
    logging.getLogger("elastic_transport.transport").warning("node down")
    assert [TEXT_LINE.match(x).groups()[1:] for x in lines(stream)] == [
        ("elastic_transport.transport", "node down")
    ]


def test_transport_warnings_only_with_verbose(stream):
    """elastic_transport's node warnings repeat what sipcm reports itself: -v shows them."""
    logs.setup(stream=stream)
    logging.getLogger("elastic_transport.node_pool").warning("Node <http://h:9200> has failed")
    logging.getLogger("elastic_transport.node_pool").error("all nodes failed")
    assert [TEXT_LINE.match(x).group(3) for x in lines(stream)] == ["all nodes failed"]


def test_ecs_json_lines(stream):
    logs.setup(json_lines=True, stream=stream)
    log = logging.getLogger("sipcm.outputs.spool")
    log.warning("spool %s full: dropped the %d oldest event(s)", "/var/lib/sipcm/spool", 3)
    try:
        raise ValueError("bad segment")
    except ValueError:
        log.exception("cannot read")
    first, second = (json.loads(x) for x in lines(stream))  # a traceback stays on its line
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first.pop("@timestamp"))
    assert first == {
        "log.level": "warning",
        "message": "spool /var/lib/sipcm/spool full: dropped the 3 oldest event(s)",
        "ecs.version": ECS_VERSION,
        "log.logger": "sipcm.outputs.spool",
        "log.origin.function": "test_ecs_json_lines",
        "process.pid": os.getpid(),
        "process.thread.name": "MainThread",
    }
    assert (second["log.level"], second["message"]) == ("error", "cannot read")
    assert (second["error.type"], second["error.message"]) == ("ValueError", "bad segment")
    assert second["error.stack_trace"].startswith("Traceback (most recent call last):")
    assert second["error.stack_trace"].endswith("ValueError: bad segment")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str, *args: object, level: int = logging.WARNING, name: str = "sipcm.x"):
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_repeat_filter_passes_each_warning_once_then_once_per_interval():
    clock = FakeClock()
    f = logs.RepeatFilter(60, clock=clock)
    spool_full = "spool full: dropped the %d oldest event(s)"
    assert f.filter(_record(spool_full, 3))
    assert f.filter(_record("bulk request failed: HTTP %d", 503))  # another warning: passes
    clock.now += 10
    assert not f.filter(_record(spool_full, 7))  # same warning, other number: a repeat
    assert not f.filter(_record(spool_full, 9))
    clock.now += 50  # 60 s after the first
    rec = _record(spool_full, 11)
    assert f.filter(rec)
    assert rec.getMessage() == (
        "spool full: dropped the 11 oldest event(s) (2 more like this suppressed)"
    )
    clock.now += 1
    assert not f.filter(_record(spool_full, 12))
    clock.now += 60
    rec = _record(spool_full, 13)
    assert f.filter(rec)
    assert rec.getMessage() == (
        "spool full: dropped the 13 oldest event(s) (1 more like this suppressed)"
    )


def test_repeat_filter_leaves_info_alone_and_keys_by_logger_and_level():
    f = logs.RepeatFilter(60, clock=FakeClock())
    assert all(f.filter(_record("reloaded", level=logging.INFO)) for _ in range(3))
    assert f.filter(_record("x failed"))
    assert f.filter(_record("x failed", name="sipcm.y"))
    assert f.filter(_record("x failed", level=logging.ERROR))
    assert not f.filter(_record("x failed"))


def test_repeat_filter_off_with_zero_interval():
    f = logs.RepeatFilter(0, clock=FakeClock())
    assert all(f.filter(_record("same")) for _ in range(5))


def test_repeat_filter_forgets_the_oldest_beyond_its_table(monkeypatch):
    monkeypatch.setattr(logs, "MAX_KEYS", 2)
    f = logs.RepeatFilter(60, clock=FakeClock())
    assert f.filter(_record("a"))
    assert f.filter(_record("b"))
    assert f.filter(_record("c"))  # "a" forgotten
    assert f.filter(_record("a"))
    assert not f.filter(_record("c"))


def test_setup_through_handler_suppresses_repeats(stream):
    logs.setup(stream=stream, repeat_interval_s=3600)
    log = logging.getLogger("sipcm.outputs.elasticsearch")
    for n in range(5):
        log.warning("cannot reach Elasticsearch: attempt %d", n)
    assert [TEXT_LINE.match(x).group(3) for x in lines(stream)] == [
        "cannot reach Elasticsearch: attempt 0"
    ]


def test_setup_twice_keeps_one_handler(stream):
    logs.setup(stream=stream)
    logs.setup(json_lines=True, stream=stream)
    ours = [h for h in logging.getLogger().handlers if getattr(h, "sipcm", False)]
    assert len(ours) == 1
    assert isinstance(ours[0].formatter, logs.EcsFormatter)


# -- command line ------------------------------------------------------------------------------


def sipcm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sipcm", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_version_names_sipcm_python_bcc_kernel_and_build():
    res = sipcm("--version")
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    assert out[0] == f"sipcm {__version__}"
    assert out[1] == f"Python {platform.python_version()} ({sys.executable})"
    try:
        from bcc.version import __version__ as bcc_version

        assert out[2] == f"BCC {bcc_version}"
    except ImportError:
        assert out[2].startswith("BCC not importable")
    u = platform.uname()
    assert out[3] == f"kernel {u.system} {u.release} {u.machine}"
    assert out[4] == f"hot modules: {accel.status()}"
    assert len(out) == 5


def test_config_check_exit_status(tmp_path):
    good = tmp_path / "good.yml"
    good.write_text("sipcm:\n  sip_ports: [5060, 5080]\n  logging: {json: true}\n")
    res = sipcm("-c", str(good), "config", "--check")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", f"configuration OK ({good})\n")
    bad = tmp_path / "bad.yml"
    bad.write_text("sipcm:\n  sip_ports: [70000]\n")
    res = sipcm("config", "--check", "-c", str(bad))
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1
    assert res.stderr.startswith("sipcm: error: ")
    assert "sip_ports" in res.stderr
    res = sipcm("config", "--check", "-c", str(tmp_path / "missing.yml"))
    assert res.returncode == 1
    assert "missing.yml" in res.stderr


def _cli_logging(*argv: str) -> tuple[int, type]:
    """sipcm's logger level and the stderr formatter type after running `argv` in-process."""
    from sipcm.cli import cli

    cli.main(args=list(argv), prog_name="sipcm", standalone_mode=False)
    ours = [h for h in logging.getLogger().handlers if getattr(h, "sipcm", False)]
    return logging.getLogger("sipcm").level, type(ours[0].formatter)


def test_cli_verbosity_and_json_switch(stream, capsys):
    assert _cli_logging("config-keys") == (logging.INFO, logs.TextFormatter)
    assert _cli_logging("-q", "config-keys") == (logging.WARNING, logs.TextFormatter)
    assert _cli_logging("-qq", "config-keys") == (logging.ERROR, logs.TextFormatter)
    assert _cli_logging("-v", "config-keys") == (logging.DEBUG, logs.TextFormatter)
    assert _cli_logging("-q", "-E", "logging.json=true", "config") == (
        logging.WARNING,
        logs.EcsFormatter,
    )
    capsys.readouterr()
