"""A correlation worker: a child process forked by the pool (sipcm.workers.pool).

Forked, not started afresh: the child already has every module imported, so it is serving
within milliseconds instead of spending ~0.33 G instructions (~80 ms of CPU) on a new
interpreter importing sipcm. It keeps its socket to the dispatcher and its two shared
regions (already mapped) and closes every other descriptor it inherited; it leaves the
terminal's session and ignores SIGINT and SIGTERM (Ctrl-C reaches the whole process group,
and the dispatcher, not the terminal, decides when a worker's state is flushed); it freezes
the objects it inherited, so none of the dispatcher's (open files, outputs) is ever
collected or finalized here, and it ends with `os._exit`. It builds its shard and serves
notices until told to stop or until the dispatcher goes away (end of file on the socket).
"""

from __future__ import annotations

import gc
import mmap
import os
import signal
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from sipcm.compose import build_shard
from sipcm.counters import Counters
from sipcm.gcpolicy import SurvivorFreezer, tune_gc
from sipcm.shard import Shard
from sipcm.workers.channel import Link, Ring, get_block, put_block, recv, send
from sipcm.workers.wire import unpack_items

if TYPE_CHECKING:
    from sipcm.config import Config

# What a worker is started with: configuration, its index, the shard table, host name and
# interface names.
Setup = tuple["Config", int, bytes, str, Mapping[int, str]]
# Descriptors above this are closed in a new worker too (os.closerange uses close_range).
_MAX_FD = 1 << 20


def control(shard: Shard, counters: Counters | None, name: str, arg: Any, session: dict) -> Any:
    """Answer control call `name` for `shard` (`counters`: its own, reported by "snapshot";
    None when they are already the caller's)."""
    if name == "snapshot":
        snap = counters.snapshot() if counters is not None else {}
        snap["track_active"] = shard.gauges()
        return snap
    if name == "finish_start":  # the conclusion, streamed: (mode, rows per answer)
        mode, size = arg
        session["finish"] = shard.finish_chunks(mode, size)
        return None
    if name == "finish_next":  # the next rows of the conclusion, None once it is done
        return next(session["finish"], None)
    if name == "blacklist":
        shard.blacklist.replace(arg)
        return None
    if name == "calls":
        return shard.call_rows()
    if name == "registrations":
        return shard.registration_rows()
    if name == "flow":
        return shard.flows.flow(arg)
    if name == "export_state":
        return shard.tracker.export_state()
    if name == "import_state":
        records, now_ns = arg
        return shard.tracker.import_state(records, now_ns)
    raise ValueError(f"unknown control {name!r}")


def serve(conn: Link, in_mem: mmap.mmap, out_mem: mmap.mmap, setup: Setup) -> None:
    """Build the shard, then answer notices until stopped."""
    cfg, index, table, hostname, ifnames = setup
    tune_gc()
    counters = Counters()
    share = (table.count(index), len(table))
    shard = build_shard(cfg, counters, hostname=hostname, ifnames=ifnames, share=share)
    out_ring = Ring(out_mem)
    freezer = SurvivorFreezer()
    session: dict[str, Any] = {}
    send(conn, ("ready", index, os.getpid()))
    while True:
        msg = recv(conn)
        kind = msg[0]
        if kind == "chunk":
            _, no, advance_to, ack, off, n, inline = msg
            out_ring.free_through(ack)
            items = unpack_items(get_block(in_mem, off, n, inline))
            rows = shard.run(items, advance_to)
            roff, rn, rinline = put_block(out_ring, no, rows)
            send(conn, ("res", no, roff, rn, rinline))
            freezer.after_batch()
        elif kind == "ctl":
            send(conn, ("ctl", control(shard, counters, msg[1], msg[2], session)))
        elif kind == "stop":
            return


def child_main(sock_fd: int, in_mem: mmap.mmap, out_mem: mmap.mmap, setup: Setup) -> NoReturn:
    """The forked child: detach from what it inherited, serve, and exit with a status that
    tells the pool how it ended (0: stopped or the dispatcher went away; 1: it failed)."""
    code = 1
    try:
        _detach(sock_fd)
        code = run(Link(sock_fd), in_mem, out_mem, setup)
    finally:
        os._exit(code)


def _detach(keep_fd: int) -> None:
    gc.freeze()  # the dispatcher's objects: never collected (or finalized) here
    os.setsid()  # its own session: the terminal's Ctrl-C reaches the dispatcher only
    for sig in signal.valid_signals():  # the dispatcher's handlers are not this process's
        if callable(signal.getsignal(sig)):
            signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, _MAX_FD)


def run(conn: Link, in_mem: mmap.mmap, out_mem: mmap.mmap, setup: Setup) -> int:
    """Serve; the exit status (a failure is reported to the dispatcher first)."""
    try:
        serve(conn, in_mem, out_mem, setup)
    except EOFError:
        return 0  # the dispatcher is gone: nothing left to report to
    except BaseException as exc:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        where = traceback.extract_tb(exc.__traceback__)[-1:]
        if where:
            text += f" (at {where[0].filename}:{where[0].lineno})"
        try:
            send(conn, ("err", text))
        except OSError:
            pass
        traceback.print_exc()
        return 1
    return 0
