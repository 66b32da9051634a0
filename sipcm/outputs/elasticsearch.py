"""Elasticsearch output: bulk `create` into a data stream through a write-ahead disk queue.

Input: lists of ECS event dicts from the pipeline (`write`), or already encoded NDJSON lines
(`write_lines`). Output: `_bulk` requests through the official client, sent by one background
thread in batches of `batch_size` at least every `flush_interval_s`.

Delivery: `write()` encodes the events and appends them to the disk queue (`spool.py`) with one
write before it returns (fsync: every batch, or at most `spool_fsync_interval_s` later); the
sender reads batches from the queue and acknowledges them only once Elasticsearch has settled
every document, so an outage,
a kill -9 or a restart loses no accepted event (the next start resends what is left). Each
document carries a deterministic `_id` (`doc_id`, a hash of its encoded bytes) and is sent with
`create`: a resend of a document Elasticsearch already has (a bulk answered after the client
timeout, a restart before the ack pointer moved) is answered 409 and counted as published and
`already_indexed`, never indexed twice. Whole-request 429/5xx/401/403/404/connection errors
and per-item 429/5xx are retried with capped exponential backoff, forever (`max_retries` only
decides when `flush()` stops waiting and the output reports Elasticsearch as down); items
rejected with another 4xx (mapping errors) go to the dead-letter file with the error
(`deadletter.py`). On the first successful connection it checks the server (`info()`, the client
verifies the X-Elastic-Product header) and installs the index template unless a newer or
user-changed one is there (`es_setup.install_template`). `write()` never waits for the network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import quote

import orjson
from elasticsearch import ApiError, TransportError, UnsupportedProductError

from sipcm.outputs.deadletter import DeadLetter
from sipcm.outputs.es_settings import (
    ACCEPT,
    NDJSON_HEADERS,
    check_settings,
    host_url,
    make_client,
    template_for,
)
from sipcm.outputs.es_setup import install_template
from sipcm.outputs.spool import Spool

log = logging.getLogger(__name__)

# The slow path for what orjson refuses (lone surrogates from odd SIP bytes): ASCII-only
# output, where they stay valid JSON escapes.
_encode_ascii = json.JSONEncoder(
    separators=(",", ":"), allow_nan=False, check_circular=False
).encode
# Whole-request statuses worth retrying: throttling, server trouble, and auth/routing problems
# an operator fixes while we keep the events (401/403/404 would otherwise drop everything).
_RETRY_STATUS = frozenset({401, 403, 404, 408, 429})
_CONFLICT = 409  # `create` of an `_id` the index already has: delivered before


def _retryable(status: int) -> bool:
    return status >= 500 or status in _RETRY_STATUS


def encode_event(doc: dict[str, Any]) -> bytes:
    """The document as one compact JSON line (no newline): what is queued, sent and hashed.
    orjson (about 1.5 us for an event) unless the document holds a lone surrogate, which only
    the standard library's ASCII-escaping encoder can write (about 12 us). Raises TypeError or
    ValueError for what is not JSON (orjson writes NaN as null)."""
    try:
        return orjson.dumps(doc)
    except TypeError:
        return _encode_ascii(doc).encode()


def doc_id(line: bytes) -> bytes:
    """The document's `_id`: 20 URL-safe base64 characters of a BLAKE2b-120 digest of its encoded
    bytes. Two documents share an id only when they are byte-identical, i.e. the same event
    (same @timestamp to the nanosecond, action, Call-ID, addresses, ...); the same event resent
    after a timeout or a restart, or the same capture replayed again, keeps its id."""
    return base64.urlsafe_b64encode(hashlib.blake2b(line, digest_size=15).digest())


def bulk_body(lines: list[bytes]) -> bytes:
    """`_bulk` NDJSON: a `create` action with the document's `_id` before each document."""
    return b"".join(
        b'{"create":{"_id":"' + doc_id(line) + b'"}}\n' + line + b"\n" for line in lines
    )


class ElasticsearchOutput:
    """Ships events to an Elasticsearch data stream; see the module docstring."""

    name = "elasticsearch"

    def __init__(
        self,
        hosts: list[str],
        *,
        counters: Counter[str],
        data_stream: str = "logs-sipcm.sip-default",
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        fingerprint: str | None = None,
        verify_certs: bool = True,
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        spool_dir: str = "/var/lib/sipcm/spool",
        spool_max_bytes: int = 1 << 30,
        spool_fsync_interval_s: float = 1.0,
        dead_letter_file: str | None = None,
        dead_letter_max_bytes: int = 100 << 20,
        max_retries: int = 5,
        template: dict[str, Any] | None = None,
        retention: str | None = None,
        retry_backoff_s: float = 0.5,
        retry_backoff_max_s: float = 30.0,
        request_timeout_s: float = 10.0,
        flush_timeout_s: float = 10.0,
    ) -> None:
        hosts = [host_url(h) for h in hosts or ()]
        check_settings(
            hosts, data_stream, api_key, username, ca_file, fingerprint,
            batch_size=batch_size, flush_interval_s=flush_interval_s, max_retries=max_retries,
        )  # fmt: skip
        self.counters = counters
        self.data_stream = data_stream
        self._bulk_path = f"/{quote(data_stream, safe='')}/_bulk"
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.retry_backoff_max_s = retry_backoff_max_s
        self.request_timeout_s = request_timeout_s
        self.flush_timeout_s = flush_timeout_s
        self.template_name, self.template = template_for(data_stream, template, retention)
        self._client = make_client(
            hosts, api_key, username, password, ca_file, fingerprint, verify_certs,
            request_timeout_s,
        )  # fmt: skip
        self._spool = Spool(
            spool_dir,
            max_bytes=spool_max_bytes,
            counters=counters,
            fsync_interval_s=spool_fsync_interval_s,
        )
        self._dead = DeadLetter(
            dead_letter_file or f"{spool_dir}/dead-letter.ndjson",
            max_bytes=dead_letter_max_bytes,
            counters=counters,
        )
        self._cond = threading.Condition()
        self._stopping = False
        self._flushing = False
        self._closed = False
        self._ready = False  # server verified and template handled
        self._down = False  # the head batch exhausted its retries; cleared by any success
        self._streak = 0  # consecutive failed attempts, drives the backoff
        # Head batch bookkeeping, so a retried batch resends only its unsettled documents.
        self._head: tuple[int, int] | None = None
        self._head_done: set[int] = set()
        self._logged: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._run, name="sipcm-es-output", daemon=True)
        self._thread.start()

    # -- Output protocol ----------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Accepted events on disk that Elasticsearch has not acknowledged yet."""
        return self._spool.pending

    def write(self, events: list[dict[str, Any]]) -> None:
        """Encode `events` and queue them on disk (returns once they are written)."""
        lines = []
        for ev in events:
            try:
                lines.append(encode_event(ev))
            except (TypeError, ValueError, RecursionError) as e:
                self._drop(1, "unserializable", str(e))
        self.write_lines(lines)

    def write_lines(self, lines: list[bytes]) -> None:
        """Queue already encoded documents (one compact JSON object each, as the collector
        hands them over: NDJSON lines; the newline is not part of the document or its _id)."""
        if not lines:
            return
        lines = [line[:-1] if line[-1:] == b"\n" else line for line in lines]
        with self._cond:
            if self._closed:
                self._drop(len(lines), "closed", "write() after close()")
                return
            self._spool.append(lines)
            if self._spool.pending >= self.batch_size:
                self._cond.notify_all()

    def flush(self) -> None:
        """Send what can be sent; return when done, when ES is down, or after flush_timeout_s."""
        deadline = time.monotonic() + self.flush_timeout_s
        with self._cond:
            self._flushing = True
            self._cond.notify_all()
            while self._spool.pending and self._thread.is_alive():
                left = deadline - time.monotonic()
                if self._down or left <= 0:
                    break
                self._cond.wait(min(left, 0.1))
            self._flushing = False

    def close(self) -> None:
        """Flush and stop the sender; what is unsent stays on disk for the next start."""
        if self._closed:
            return
        self.flush()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(self.request_timeout_s + 5)
        with self._cond:
            self._closed = True
            self._spool.close()
            self._dead.close()
        self._client.close()
        if self._spool.pending:
            log.warning(
                "Elasticsearch output: %d event(s) not yet delivered stay queued in %s; "
                "the next start sends them",
                self._spool.pending, self._spool.dir,
            )  # fmt: skip

    # -- sender thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._stopping and not self._due():
                    self._cond.wait(self.flush_interval_s)
                if self._stopping:
                    return
            try:
                self._step()
            except Exception:  # the sender must outlive any surprise (disk, odd answers)
                log.exception("Elasticsearch output: unexpected error; retrying")
                self.counters["sender_errors"] += 1
                self._streak += 1
                self._backoff()

    def _step(self) -> None:
        if self._down and not self._backoff():
            return
        if not self._ready and not self._connect():
            self._streak += 1
            if self._streak > self.max_retries:
                self._set_down()
            self._backoff()
            return
        self._drain()

    def _due(self) -> bool:
        if self._spool.pending >= self.batch_size:
            return True
        return self._flushing and bool(self._spool.pending) and not self._down

    def _drain(self) -> None:
        """Send the queue head batch by batch until empty or a batch cannot be delivered."""
        while not self._stopping:
            batch = self._spool.peek(self.batch_size)
            if batch is None:
                return
            if (batch.seg_id, batch.start) != self._head:
                self._head, self._head_done = (batch.seg_id, batch.start), set()
            todo = [i for i in range(len(batch.lines)) if i not in self._head_done]
            try:
                settled = self._send(batch.lines, todo)
            except Exception:  # keep the batch on disk: it is retried like any failure
                log.exception("Elasticsearch output: unexpected error while sending")
                self.counters["sender_errors"] += 1
                settled = False
            if not settled:
                self._spool.release(batch)
                self._set_down()
                return
            self._spool.ack(batch)
            self._head = None
            with self._cond:
                self._cond.notify_all()

    def _send(self, lines: list[bytes], todo: list[int]) -> bool:
        """Bulk the `todo` documents of `lines` with retries; True once all are settled."""
        attempt = 0
        while todo:
            retry = self._bulk_once(lines, todo)
            if not retry:
                break
            self._streak += 1
            attempt += 1
            if attempt > self.max_retries or self._stopping or not self._backoff():
                n = self._spool.pending
                self._note("down", f"Elasticsearch unavailable; {n} event(s) wait on disk")
                return False
            self.counters["retried"] += len(retry)
            todo = retry
        self._streak = 0
        self._down = False
        return True

    def _bulk_once(self, lines: list[bytes], todo: list[int]) -> list[int]:
        """One `_bulk` request for `todo`; return the indices to retry. The others are settled
        (published, already indexed or dead-lettered) and recorded in `_head_done`."""
        self.counters["bulk_requests"] += 1
        try:
            resp = self._client.perform_request(
                "POST", self._bulk_path, headers=NDJSON_HEADERS,
                body=bulk_body([lines[i] for i in todo]),
            )  # fmt: skip
        except ApiError as e:
            self.counters["bulk_errors"] += 1
            if _retryable(e.meta.status):
                self._note("bulk", f"bulk request failed: HTTP {e.meta.status} {e.message}")
                return todo
            error = {"type": "bulk_request_rejected", "reason": str(e.message)}
            for i in todo:
                self._reject(lines[i], e.meta.status, error)
            return []
        except TransportError as e:
            self.counters["bulk_errors"] += 1
            self._note("bulk", f"bulk request failed: {e}")
            return todo
        return self._items(lines, todo, resp.body)

    def _items(self, lines: list[bytes], todo: list[int], body: Any) -> list[int]:
        items = (body.get("items") or []) if isinstance(body, dict) else []
        if body.get("errors") if isinstance(body, dict) else True:
            self.counters["bulk_errors"] += 1
        retry: list[int] = []
        ok = dup = 0
        for i, item in zip(todo, items, strict=False):
            res = next(iter(item.values()), {}) if isinstance(item, dict) else {}
            status = int(res.get("status", 500))
            if status < 300:
                ok += 1
            elif status == _CONFLICT:
                dup += 1
            elif status == 429 or status >= 500:
                retry.append(i)
                continue
            else:
                self._reject(lines[i], status, res.get("error") or {})
            self._head_done.add(i)
        if len(items) < len(todo):  # malformed answer: resend what it did not cover
            self._note("items", f"bulk answer covers {len(items)} of {len(todo)} items")
            retry.extend(todo[len(items) :])
        self.counters["published"] += ok + dup
        self.counters["already_indexed"] += dup
        return retry

    def _reject(self, line: bytes, status: int, error: Any) -> None:
        """A document Elasticsearch refuses for good: to the dead-letter file."""
        err = error if isinstance(error, dict) else {"reason": str(error)}
        self._dead.write(line, doc_id(line).decode(), self.data_stream, status, err)
        reason = f"{err.get('type', status)}: {err.get('reason', '')}"
        self._note("rejected", f"document rejected with HTTP {status} ({reason}); dead-lettered")

    def _connect(self) -> bool:
        """Verify the server and install the template; False on a failure worth retrying."""
        try:
            info = self._client.perform_request("GET", "/", headers=ACCEPT)
            version = info.body.get("version", {}).get("number", "?")
            log.info("connected to Elasticsearch %s", version)
            result = install_template(self._client, self.template_name, self.template)
        except UnsupportedProductError as e:
            self.counters["connect_errors"] += 1
            self._note("connect", f"server is not Elasticsearch: {e.message}")
            return False
        except ApiError as e:
            if _retryable(e.meta.status) and e.meta.status not in (401, 403):
                self.counters["connect_errors"] += 1
                self._note("connect", f"cannot reach Elasticsearch: {e}")
                return False
            # Keep shipping: the data stream still gets the built-in logs-*-* template.
            self.counters["template_errors"] += 1
            log.warning(
                "cannot install index template %s (HTTP %s: %s); the API key or user needs "
                "the manage_index_templates privilege, or run `sipcm setup` as a user who has it",
                self.template_name, e.meta.status, e.message,
            )  # fmt: skip
        except TransportError as e:
            self.counters["connect_errors"] += 1
            self._note("connect", f"cannot reach Elasticsearch: {e}")
            return False
        else:
            self.counters[f"template_{result.action}"] += 1
            log.log(
                logging.WARNING if result.action == "kept" else logging.INFO,
                "index template %s: %s", self.template_name, result.reason,
            )  # fmt: skip
        self._ready = True
        self._streak = 0
        return True

    def _set_down(self) -> None:
        with self._cond:
            self._down = True
            self._cond.notify_all()

    def _backoff(self) -> bool:
        """Sleep the capped exponential backoff; False if stopping interrupted it."""
        delay = min(self.retry_backoff_max_s, self.retry_backoff_s * 2 ** min(self._streak, 30))
        delay *= random.uniform(0.5, 1.0)  # jitter: sensors restarted together do not sync up
        end = time.monotonic() + delay
        with self._cond:
            while not self._stopping and (left := end - time.monotonic()) > 0:
                self._cond.wait(left)
            return not self._stopping

    def _drop(self, n: int, kind: str, reason: str) -> None:
        if n <= 0:
            return
        with self._cond:
            self.counters["dropped"] += n
            self.counters["write_errors"] += n
            self.counters[f"dropped_{kind}"] += n
        self._note(kind, reason)

    def _note(self, kind: str, msg: str, level: int = logging.WARNING) -> None:
        """Log the first few messages of a kind, then every 1000th, so floods stay readable."""
        self._logged[kind] += 1
        n = self._logged[kind]
        if n <= 5 or n % 1000 == 0:
            log.log(level, "%s (occurrence %d)", msg, n)
