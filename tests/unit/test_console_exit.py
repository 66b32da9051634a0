"""The `sipcm` command ends the process without freeing the heap (cli.console): the same exit
status, atexit handlers and flushed output as Python's own exit, and Python's exit when a
non-daemon thread still runs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import REPO
from tests.ecs import assert_valid
from tests.sipgen import MS, T0, Capture, Leg, basic_call


def run_console(body: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`body` (Python, may patch `cli`), then `cli.console()` with `args` as the command line."""
    script = "import sys\nfrom sipcm import cli\n" + textwrap.dedent(body)
    script += "sys.argv = ['sipcm', *sys.argv[1:]]\ncli.console()\nprint('not reached')\n"
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def test_replay_output_is_complete_and_atexit_handlers_run(tmp_path: Path) -> None:
    cap = Capture()
    for i in range(50):
        basic_call(cap, Leg(f"exit-{i}@example.com", from_tag=f"x{i}"), T0 + i * 10 * MS)
    pcap = tmp_path / "calls.pcap"
    cap.write(pcap)
    body = "import atexit\natexit.register(lambda: print('atexit ran', flush=True))\n"
    res = run_console(body, "-E", "stats_interval=0", "replay", "--summary", "none", str(pcap))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[-1] == "atexit ran"
    events = [json.loads(line) for line in lines[:-1]]
    for doc in events:
        assert_valid(doc)
    assert [e["event"]["action"] for e in events].count("call-start") == 50
    assert len(events) == 100  # a call-start and a call-end per call, nothing cut off


def test_exit_statuses_are_pythons() -> None:
    for code, status, err in ((None, 0, ""), (3, 3, ""), ("'boom'", 1, "boom\n")):
        res = run_console(f"cli.main = lambda: sys.exit({code})\n")
        assert (res.returncode, res.stdout, res.stderr) == (status, "", err)


def test_a_user_error_keeps_its_status_and_one_line() -> None:
    res = run_console("", "replay", "/nonexistent/x.pcap")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1
    assert "no such file" in res.stderr


def test_a_running_non_daemon_thread_is_waited_for() -> None:
    body = """
        import threading, time
        def late():
            time.sleep(0.3)
            print('thread done', flush=True)
        cli.main = lambda: threading.Thread(target=late).start()
    """
    res = run_console(body)
    assert (res.returncode, res.stdout) == (0, "thread done\n")
