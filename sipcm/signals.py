"""Setting a threading.Event from a signal handler without deadlocking.

A Python signal handler runs in the main thread between bytecodes, possibly while that thread
is inside `Event.wait()` holding the event's internal (non-reentrant) lock; `Event.set()` in
the handler would then wait for that lock forever. The sensor's loops wait on the very events
their handlers set, so a stop signal could hang the process. `set_soon` hands the `set()` to a
short-lived thread, which takes the lock once the main thread lets it go.
"""

from __future__ import annotations

import threading


def set_soon(event: threading.Event) -> None:
    """Set `event` from a signal handler (returns at once; the event is set moments later)."""
    threading.Thread(target=event.set, name="sipcm-signal", daemon=True).start()
