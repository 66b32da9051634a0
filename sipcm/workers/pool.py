"""The dispatcher's side of the workers: start them, shard chunks, gather rows, notice death.

The shards are the worker processes (indexes 0 to N - 2) and, when the pipeline gives one,
a shard run in this process (the last index), which owns a smaller share of the keys
(sipcm.workers.shares) because this process also reads, decodes, merges and writes.
`submit` splits a chunk of payloads by shard key and sends every worker its part (possibly
empty: each still advances its clock to the chunk's end), then runs the local part while the
workers run theirs; several chunks are in flight so decoding overlaps correlation (up to
`MAX_INFLIGHT_*`). A chunk is complete when every worker has answered it; complete chunks
come out of `results()` in order, the local shard's rows among them. Every control call
(counters, calls, state, the conclusion) includes the local shard. A worker that exits, is
killed or raises is reported at once as a `WorkerError` naming it and why: the caller
detaches and exits non-zero rather than run on with a shard missing.
"""

from __future__ import annotations

import contextlib
import heapq
import marshal
import math
import os
import select
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from sipcm.errors import WorkerError
from sipcm.flows import merge_flows
from sipcm.sip.shardkey import shard_in, shard_table
from sipcm.track import persist
from sipcm.workers import shares
from sipcm.workers.channel import Link, Ring, get_block, new_region, recv, send
from sipcm.workers.wire import route
from sipcm.workers.worker import Setup, child_main, control

if TYPE_CHECKING:
    from collections import Counter

    from sipcm.config import Config
    from sipcm.shard import Emitted, Item, Shard

# In flight before submit waits for the oldest chunk: replay sends a few large chunks, live
# capture many small ones (one per poll), so both the chunks and their payloads are bounded.
MAX_INFLIGHT_CHUNKS = 64
MAX_INFLIGHT_PAYLOADS = 65536
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0
_STOPPED = "the sensor stopped; nothing is left attached"


class _Worker:
    """One worker process (forked: sipcm.workers.worker) and its channel."""

    def __init__(self, index: int, setup: Setup) -> None:
        self.index = index
        parent, child = socket.socketpair()
        in_mem = new_region()
        self.out_mem = new_region()
        self.in_ring = Ring(in_mem)
        try:
            for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
                if stream is not None:
                    with contextlib.suppress(OSError, ValueError):  # closed: nothing to flush
                        stream.flush()
            pid = os.fork()
            if pid == 0:  # the worker; never returns
                child_main(child.fileno(), in_mem, self.out_mem, setup)
        finally:
            child.close()
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.sock = parent
        self.conn = Link(parent.fileno())
        self._readable = select.poll()
        self._readable.register(parent.fileno(), select.POLLIN)
        self.code: int | None = None  # its exit status once reaped (negative: a signal)
        self.acked = -1  # last chunk whose rows were read back
        self.ready = False
        self.replies: deque[Any] = deque()

    def wait(self, timeout: float | None) -> int | None:
        """Its exit status, once it has exited within `timeout` (None: no limit)."""
        if self.code is None and select.select([self.pidfd], [], [], timeout)[0]:
            _, status = os.waitpid(self.pid, 0)
            self.code = os.waitstatus_to_exitcode(status)
        return self.code

    def has_data(self) -> bool:
        """Whether the worker has sent something not read yet (or closed its end)."""
        return bool(self._readable.poll(0))

    def kill(self) -> None:
        if self.code is None:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def close(self) -> None:
        try:
            os.close(self.pidfd)
        except OSError:
            pass
        self.sock.close()
        self.in_ring.mem.close()
        self.out_mem.close()


class WorkerPool:
    """`processes` worker processes plus optionally a `local` shard run in this process (its
    counters are this process's), each owning the shard keys that map to it: `weights`
    buckets each (sipcm.workers.shares; by default as in replay)."""

    def __init__(
        self,
        cfg: Config,
        processes: int,
        *,
        hostname: str,
        ifnames: Mapping[int, str] | None,
        counters: Counter[str],
        local: Shard | None = None,
        weights: list[int] | None = None,
    ) -> None:
        n = processes + (local is not None)
        self.n = n
        self.c = counters
        self.local = local
        self._local_index = processes if local is not None else -1
        self.table = shard_table(weights or shares.weights(n, local=local is not None))
        self._session: dict[str, Any] = {}  # the local shard's conclusion in progress
        self._workers: list[_Worker] = []
        self._inflight: deque[int] = deque()
        self._rows: dict[int, list[Emitted]] = {}
        self._missing: dict[int, int] = {}
        self._sizes: dict[int, int] = {}
        self._inflight_payloads = 0
        self._done: deque[list[Emitted]] = deque()
        self._next = 0
        try:
            names = dict(ifnames or {})
            for i in range(processes):
                self._workers.append(_Worker(i, (cfg, i, self.table, hostname, names)))
            # One poll set, built once: what each worker sends, and its exit (pidfd).
            self._poller = select.poll()
            self._by_fd: dict[int, tuple[_Worker, bool]] = {}
            for w in self._workers:
                for fd, pidfd in ((w.conn.fd, False), (w.pidfd, True)):
                    self._poller.register(fd, select.POLLIN)
                    self._by_fd[fd] = (w, pidfd)
        except BaseException:
            self.close()
            raise
        # Workers start (import, build their shard) while this process reads and decodes the
        # first chunks: their "ready" is checked as answers come in, not waited for here.
        self._start_deadline = time.monotonic() + START_TIMEOUT_S
        self.c["workers"] = n

    # -- chunks ----------------------------------------------------------------------------

    def submit(self, items: list[Item], advance_to: int) -> None:
        """Send each worker its part of a chunk (every worker gets a notice), then run the
        local shard's part here while they run theirs."""
        parts, fallback = route(items, self.table, self.n, self._local_index)
        no = self._next
        self._next += 1
        blobs = [marshal.dumps(part) for part in parts[: len(self._workers)]]
        offsets = [w.in_ring.put(no, blob) for w, blob in zip(self._workers, blobs, strict=True)]
        if None in offsets:
            # No room, or a block too large for a ring (it then goes on the socket): let
            # every worker finish what it has first. That frees the rings, and no worker is
            # writing a large answer while a large chunk is written to it.
            while self._inflight:
                self._pump(None)
            for i, w in enumerate(self._workers):
                if offsets[i] is None:
                    offsets[i] = w.in_ring.put(no, blobs[i])
        for w, blob, off in zip(self._workers, blobs, offsets, strict=True):
            if off is None:
                self.c["inline_blocks"] += 1
                self._send(w, ("chunk", no, advance_to, w.acked, -1, len(blob), blob))
            else:
                self._send(w, ("chunk", no, advance_to, w.acked, off, len(blob), None))
        self.c["chunks"] += 1
        self.c["payloads"] += len(items)
        if fallback:
            self.c["key_by_parse"] += fallback
        self._inflight.append(no)
        self._missing[no] = len(self._workers)
        self._sizes[no] = len(items)
        self._inflight_payloads += len(items)
        if self.local is not None:
            self._rows[no] = self.local.run(parts[self._local_index], advance_to)
        else:
            self._rows[no] = []
        while (
            len(self._inflight) > MAX_INFLIGHT_CHUNKS
            or self._inflight_payloads > MAX_INFLIGHT_PAYLOADS
        ):
            self._pump(None)
        self._pump(0)

    def poll(self) -> None:
        """Read whatever the workers have sent, without waiting."""
        self._pump(0)

    def results(self) -> list[list[Emitted]]:
        """The rows of every chunk completed so far, oldest chunk first."""
        out = list(self._done)
        self._done.clear()
        return out

    def drain(self) -> list[list[Emitted]]:
        """Wait for every chunk in flight; their rows, oldest first."""
        while self._inflight:
            self._pump(None)
        return self.results()

    # -- control -------------------------------------------------------------------------------

    def call(self, name: str, arg: Any = None) -> list[Any]:
        """Ask every shard (after the chunks already sent); their answers, by index."""
        return self._call([arg] * self.n, name)

    def _call(self, args: list[Any], name: str) -> list[Any]:
        """Ask shard i with `args[i]`: the workers first, then the local shard while they
        answer; the answers by index."""
        for w, arg in zip(self._workers, args, strict=False):
            self._send(w, ("ctl", name, arg))
        mine = []
        if self.local is not None:
            mine.append(control(self.local, None, name, args[-1], self._session))
        for w in self._workers:
            while not w.replies:
                self._pump(None)
        return [w.replies.popleft() for w in self._workers] + mine

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Every worker's counters and every shard's table sizes, summed by group and name
        (the local shard's counters are this process's own)."""
        total: dict[str, dict[str, int]] = {}
        for snap in self.call("snapshot"):
            for group, values in snap.items():
                dst = total.setdefault(group, {})
                for k, v in values.items():
                    dst[k] = dst.get(k, 0) + v
        return total

    def worker_pids(self) -> list[tuple[int, int]]:
        """(index, pid) of every worker process (not the local shard's)."""
        return [(w.index, w.pid) for w in self._workers]

    def active_calls(self) -> list[dict]:
        """Every worker's dialogs."""
        return [row for part in self.call("calls") for row in part]

    def registrations(self) -> list[dict]:
        """Every worker's bindings."""
        return [row for part in self.call("registrations") for row in part]

    def flow(self, call_id: str) -> dict | None:
        """The stored messages of `call_id` from the worker that owns it (None: unknown)."""
        return merge_flows(self.call("flow", call_id))

    def export_state(self) -> list[dict]:
        """Every worker's tracker records (sipcm.track.persist), concatenated."""
        return [rec for part in self.call("export_state") for rec in part]

    def import_state(self, records: Iterable[dict], now_ns: int) -> tuple[int, int]:
        """Restore records, each in the shard its shard key maps to; (restored, discarded).
        Every record is decoded here first, so a bad one raises persist.StateError before any
        shard restores anything."""
        parts: list[list[dict]] = [[] for _ in range(self.n)]
        for rec in records:
            persist.decode(rec)
            key = str(rec["shard_key"]).encode("utf-8", "surrogateescape")
            parts[shard_in(key, self.table)].append(rec)
        done = self._call([(part, now_ns) for part in parts], "import_state")
        return sum(r for r, _ in done), sum(d for _, d in done)

    def set_blacklist(self, names: list[str]) -> None:
        """Tell every worker which event types not to build."""
        self.call("blacklist", names)

    def finish_chunks(self, mode: str, size: int) -> Iterator[list[Emitted]]:
        """The conclusion in lists of `size` rows, in merge order: each shard streams its
        own (already in order) a chunk at a time and they are merged here, so neither side
        ever holds the whole conclusion."""
        self.call("finish_start", (mode, size))
        streams = [self._finish_stream(w) for w in self._workers]
        if self.local is not None:
            streams.append(self._local_stream())
        chunk: list[Emitted] = []
        for row in heapq.merge(*streams):
            chunk.append(row)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _local_stream(self) -> Iterator[Emitted]:
        for rows in self._session.pop("finish"):
            yield from rows

    def _finish_stream(self, w: _Worker) -> Iterator[Emitted]:
        while True:
            self._send(w, ("ctl", "finish_next", None))
            while not w.replies:
                self._pump(None)
            rows = w.replies.popleft()
            if rows is None:
                return
            yield from rows

    # -- plumbing ----------------------------------------------------------------------------

    def _pump(self, timeout: float | None) -> None:
        """Read what the workers have sent (waiting up to `timeout`; None: until something)."""
        starting = [w for w in self._workers if not w.ready]
        if starting:
            left = self._start_deadline - time.monotonic()
            if left <= 0:
                raise WorkerError(
                    f"worker {starting[0].index} (pid {starting[0].pid}) did not start within "
                    f"{START_TIMEOUT_S:.0f} s",
                    _STOPPED,
                )
            timeout = left if timeout is None else min(timeout, left)
        ready = self._poller.poll(None if timeout is None else math.ceil(timeout * 1000))
        exited = []
        for fd, _ in ready:
            w, pidfd = self._by_fd[fd]
            if pidfd:
                exited.append(w)
            else:
                self._read(w)
        for w in exited:
            while w.has_data():
                self._read(w)
            raise WorkerError(self._death(w), _STOPPED)
        inflight = self._inflight
        while inflight and not self._missing[inflight[0]]:
            no = inflight.popleft()
            del self._missing[no]
            self._inflight_payloads -= self._sizes.pop(no)
            self._done.append(self._rows.pop(no))

    def _send(self, w: _Worker, msg: tuple) -> None:
        try:
            send(w.conn, msg)
        except OSError:  # the worker is gone (EPIPE, ECONNRESET)
            raise WorkerError(self._death(w), _STOPPED) from None

    def _read(self, w: _Worker) -> None:
        while True:
            try:
                msg = recv(w.conn)
            except (EOFError, OSError):
                raise WorkerError(self._death(w), _STOPPED) from None
            kind = msg[0]
            if kind == "res":
                _, no, off, size, inline = msg
                rows = get_block(w.out_mem, off, size, inline)
                w.in_ring.free_through(no)
                w.acked = no
                self._rows[no].extend(rows)
                self._missing[no] -= 1
            elif kind == "ctl":
                w.replies.append(msg[1])
            elif kind == "ready":
                w.ready = True
            elif kind == "err":
                raise WorkerError(
                    f"worker {w.index} (pid {w.pid}) failed: {msg[1]}",
                    _STOPPED,
                )
            if not w.has_data():
                return

    def _death(self, w: _Worker) -> str:
        code = w.wait(1.0)
        if code is None:
            return f"worker {w.index} (pid {w.pid}) closed its channel"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"worker {w.index} (pid {w.pid}) was killed by {name}"
        return f"worker {w.index} (pid {w.pid}) exited with status {code}"

    def pids(self) -> list[int]:
        """The worker processes' ids, by index."""
        return [w.pid for w in self._workers]

    def close(self) -> None:
        """Stop every worker (kill those that do not stop in time) and release the channels."""
        for w in self._workers:
            try:
                send(w.conn, ("stop",))
            except OSError:
                pass
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for w in self._workers:
            if w.wait(max(0.0, deadline - time.monotonic())) is None:
                w.kill()
                w.wait(None)
            w.close()
        self._workers = []
