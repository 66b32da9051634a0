"""A correlation worker's main: `python -m sipcm.workers.worker SOCK_FD IN_FD OUT_FD`.

Started by the pool with a socket to the dispatcher and two shared regions. The first
message is the pickled start-up tuple (configuration, index, shard table, host name,
interface names): the only pickle of the run. Then it serves notices until told to stop or
until the dispatcher goes away (end of file on the socket). SIGINT and SIGTERM are ignored:
Ctrl-C reaches the whole process group, and the dispatcher, not the terminal, decides when
a worker's state is flushed.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import traceback
from typing import Any

from sipcm.compose import build_shard, tune_gc
from sipcm.counters import Counters
from sipcm.shard import Shard
from sipcm.workers.channel import Link, Ring, get_block, map_region, put_block, recv, send
from sipcm.workers.wire import unpack_items


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


def serve(conn: Link, in_fd: int, out_fd: int) -> None:
    """Build the shard from the start-up message, then answer notices until stopped."""
    cfg, index, table, hostname, ifnames = pickle.loads(conn.recv_bytes())
    tune_gc()
    counters = Counters()
    share = (table.count(index), len(table))
    shard = build_shard(cfg, counters, hostname=hostname, ifnames=ifnames, share=share)
    in_mem = map_region(in_fd)
    out_ring = Ring(map_region(out_fd))
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
        elif kind == "ctl":
            send(conn, ("ctl", control(shard, counters, msg[1], msg[2], session)))
        elif kind == "stop":
            return


def main(argv: list[str] | None = None) -> int:
    """Process entry point; the exit status tells the pool how it ended."""
    sock_fd, in_fd, out_fd = (int(a) for a in (argv or sys.argv[1:]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Link(sock_fd)
    try:
        serve(conn, in_fd, out_fd)
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


if __name__ == "__main__":
    sys.exit(main())
