"""A stop signal that arrives while the main thread waits on the stop event ends the wait.

`Event.set()` called straight from a signal handler can deadlock: the handler runs in the main
thread, which may be holding the event's internal lock inside `Event.wait()`. The sensor's
capture loop waits on its stop event between polls, so SIGTERM could hang it (seen once in CI).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The main thread spins on `wait(0)`, inside the event's lock most of the time, while SIGUSR1
# arrives; each round must end. With `stop.set()` in the handler a round hangs within a few.
CHILD = """
import os, signal, sys, threading
from sipcm.signals import set_soon
for i in range(40):
    stop = threading.Event()
    signal.signal(signal.SIGUSR1, lambda s, f, stop=stop: SETTER(stop))
    threading.Timer(0.002 * (i % 7), os.kill, (os.getpid(), signal.SIGUSR1)).start()
    while not stop.is_set():
        stop.wait(0)
print("all stopped")
"""


def _run(setter: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """The rounds with `setter(event)` in the handler; returncode -9 and "hung" on a hang."""
    code = CHILD.replace("SETTER", setter)
    try:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess([], -9, "", "hung")


def test_set_soon_from_a_handler_never_hangs_the_waiting_main_thread() -> None:
    res = _run("set_soon", 30)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "all stopped"


def test_the_plain_set_it_replaces_does_hang() -> None:
    """The test above can fail: the same rounds with `Event.set()` in the handler hang."""
    res = _run("(lambda e: e.set())", 5)
    assert (res.returncode, res.stderr) == (-9, "hung")
