"""Elasticsearch output: bulk `create` into a data stream, with retries and an on-disk spool.

Input: lists of ECS event dicts from the pipeline (`write`). Output: `_bulk` requests through
the official client, sent by one background thread in batches of `batch_size` at least every
`flush_interval_s`. Events are JSON-encoded in `write()` (so later changes by the caller do not
matter) and kept in a bounded queue; the oldest spill to the spool (`spool.py`) when it is full
and everything is spooled when Elasticsearch stays down beyond the retry budget or at `close()`.
Delivery order is kept: spooled events are always older than queued ones and are sent first.
Whole-request 429/5xx/connection errors and per-item 429/5xx are retried with capped
exponential backoff; items rejected with other 4xx (mapping errors) are counted as dropped and
logged, never retried. On the first successful connection it checks the server (`info()`, the
client verifies the X-Elastic-Product header) and installs the index template.
It never blocks `write()` on the network and never loses an accepted event silently: each one
ends up published, spooled or counted under `dropped`.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter, deque
from typing import Any
from urllib.parse import quote

from elasticsearch import ApiError, TransportError, UnsupportedProductError

from sipcm.outputs.es_settings import check_settings, host_url, make_client, template_for
from sipcm.outputs.spool import Spool, SpoolBatch

log = logging.getLogger(__name__)

_ACTION = b'{"create":{}}\n'
# The v9 client asks for REST compatibility with 9, which Elasticsearch 8 refuses (400
# media_type_header_exception); 8 is understood by both 8.x and 9.x, so requests pin it.
_ACCEPT = {"accept": "application/vnd.elasticsearch+json; compatible-with=8"}
_JSON_HEADERS = {
    **_ACCEPT,
    "content-type": "application/vnd.elasticsearch+json; compatible-with=8",
}
_NDJSON_HEADERS = {
    **_ACCEPT,
    "content-type": "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
}
# ASCII-only output: lone surrogates from odd SIP bytes stay valid JSON escapes.
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False).encode
# Whole-request statuses worth retrying: throttling, server trouble, and auth/routing problems
# an operator fixes while we keep the events (401/403/404 would otherwise drop everything).
_RETRY_STATUS = frozenset({401, 403, 404, 408, 429})


def _retryable(status: int) -> bool:
    return status >= 500 or status in _RETRY_STATUS


class ElasticsearchOutput:
    """Ships events to an Elasticsearch data stream; see the module docstring."""

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
        queue_size: int = 10000,
        spool_dir: str = "/var/lib/sipcm/spool",
        spool_max_bytes: int = 1 << 30,
        max_retries: int = 5,
        template: dict[str, Any] | None = None,
        retry_backoff_s: float = 0.5,
        retry_backoff_max_s: float = 30.0,
        request_timeout_s: float = 10.0,
        flush_timeout_s: float = 10.0,
    ) -> None:
        hosts = [host_url(h) for h in hosts or ()]
        check_settings(
            hosts, data_stream, api_key, username, ca_file, fingerprint,
            batch_size=batch_size, queue_size=queue_size, flush_interval_s=flush_interval_s,
            max_retries=max_retries,
        )  # fmt: skip
        self.counters = counters
        self.data_stream = data_stream
        self._bulk_path = f"/{quote(data_stream, safe='')}/_bulk"
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.queue_size = queue_size
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.retry_backoff_max_s = retry_backoff_max_s
        self.request_timeout_s = request_timeout_s
        self.flush_timeout_s = flush_timeout_s
        self.template_name, self.template = template_for(data_stream, template)
        self._client = make_client(
            hosts, api_key, username, password, ca_file, fingerprint, verify_certs,
            request_timeout_s,
        )  # fmt: skip
        self._spool = Spool(spool_dir, max_bytes=spool_max_bytes, counters=counters)
        self._queue: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._inflight = 0  # events taken by the sender and not yet settled
        self._stopping = False
        self._flushing = False
        self._closed = False
        self._ready = False  # server verified and template handled
        self._down = False  # the last batch exhausted its retries; cleared by any success
        self._streak = 0  # consecutive failed attempts, drives the backoff
        self._logged: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._run, name="sipcm-es-output", daemon=True)
        self._thread.start()

    # -- Output protocol ----------------------------------------------------------------------

    def write(self, events: list[dict[str, Any]]) -> None:
        """Queue `events` (encoded now); the oldest spill to the spool when the queue is full."""
        lines = []
        for ev in events:
            try:
                lines.append(_encode(ev).encode())
            except (TypeError, ValueError, RecursionError) as e:
                self._drop(1, "unserializable", str(e))
        with self._cond:
            if self._closed:
                self._drop(len(lines), "closed", "write() after close()")
                return
            self._queue.extend(lines)
            over = len(self._queue) - self.queue_size
            if over > 0:
                # Spill the oldest, at least a batch, so the spool stays older than the queue.
                n = min(len(self._queue), max(over, self.batch_size))
                self._spool.append([self._queue.popleft() for _ in range(n)])
            if len(self._queue) >= self.batch_size:
                self._cond.notify_all()

    def flush(self) -> None:
        """Send what can be sent; return when done, when ES is down, or after flush_timeout_s."""
        deadline = time.monotonic() + self.flush_timeout_s
        with self._cond:
            self._flushing = True
            self._cond.notify_all()
            while (self._queue or self._spool or self._inflight) and self._thread.is_alive():
                left = deadline - time.monotonic()
                if self._down or left <= 0:
                    break
                self._cond.wait(min(left, 0.1))
            self._flushing = False

    def close(self) -> None:
        """Flush, stop the sender and spool whatever is unsent; the next start resends it."""
        if self._closed:
            return
        self.flush()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(self.request_timeout_s + 5)
        with self._cond:
            self._closed = True
            self._spool.append(list(self._queue))
            self._queue.clear()
            self._spool.close()
        self._client.close()

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
                with self._cond:
                    self._inflight = 0
                self._streak += 1
                self._backoff()

    def _step(self) -> None:
        if not self._ready and not self._connect():
            self._streak += 1
            if self._streak > self.max_retries:
                self._give_up([])
            self._backoff()
            return
        self._drain()

    def _due(self) -> bool:
        if len(self._queue) >= self.batch_size:
            return True
        return self._flushing and bool(self._queue or self._spool) and not self._down

    def _drain(self) -> None:
        """Send spool then queue, batch by batch, until empty or a batch cannot be delivered."""
        while not self._stopping:
            lines, token = self._take()
            if not lines:
                return
            try:
                rest = self._send(lines)
            except Exception:  # keep the batch: it is spooled like any undeliverable one
                log.exception("Elasticsearch output: unexpected error while sending")
                self.counters["sender_errors"] += 1
                rest = lines
            with self._cond:
                if token is not None and len(rest) == len(lines):
                    self._spool.release(token)
                else:
                    self._spool.prepend(rest)  # older than anything spooled or queued
                    if token is not None:
                        self._spool.ack(token)
                self._inflight = 0
                self._cond.notify_all()
            if rest:
                self._give_up(rest)
                return

    def _take(self) -> tuple[list[bytes], SpoolBatch | None]:
        with self._cond:
            while self._spool:
                batch = self._spool.peek(self.batch_size)
                if batch is None:
                    break
                if batch.lines:
                    self._inflight = len(batch.lines)
                    return batch.lines, batch
                self._spool.ack(batch)  # only blank lines
            n = min(self.batch_size, len(self._queue))
            self._inflight = n
            return [self._queue.popleft() for _ in range(n)], None

    def _send(self, lines: list[bytes]) -> list[bytes]:
        """Bulk `lines` with retries; return those still failing when the budget is spent."""
        attempt = 0
        while True:
            retry = self._bulk_once(lines)
            if not retry:
                self._streak = 0
                self._down = False
                return []
            self._streak += 1
            attempt += 1
            if attempt > self.max_retries or self._stopping or not self._backoff():
                return retry
            self.counters["retried"] += len(retry)
            lines = retry

    def _bulk_once(self, lines: list[bytes]) -> list[bytes]:
        """One `_bulk` request; return the lines to retry (others published or dropped)."""
        body = b"".join(_ACTION + line + b"\n" for line in lines)
        self.counters["bulk_requests"] += 1
        try:
            resp = self._client.perform_request(
                "POST", self._bulk_path, headers=_NDJSON_HEADERS, body=body
            )
        except ApiError as e:
            self.counters["bulk_errors"] += 1
            if _retryable(e.meta.status):
                self._note("bulk", f"bulk request failed: HTTP {e.meta.status} {e.message}")
                return lines
            self._drop(len(lines), "rejected", f"bulk request HTTP {e.meta.status}: {e.message}")
            return []
        except TransportError as e:
            self.counters["bulk_errors"] += 1
            self._note("bulk", f"bulk request failed: {e}")
            return lines
        return self._items(lines, resp.body)

    def _items(self, lines: list[bytes], body: Any) -> list[bytes]:
        items = (body.get("items") or []) if isinstance(body, dict) else []
        if len(items) == len(lines) and not body.get("errors"):
            self.counters["published"] += len(lines)
            return []
        self.counters["bulk_errors"] += 1
        retry: list[bytes] = []
        ok = 0
        for line, item in zip(lines, items, strict=False):
            res = next(iter(item.values()), {}) if isinstance(item, dict) else {}
            status = int(res.get("status", 500))
            if status < 300:
                ok += 1
            elif status == 429 or status >= 500:
                retry.append(line)
            else:
                err = res.get("error") or {}
                reason = f"{err.get('type', status)}: {err.get('reason', '')}"
                self._drop(1, "rejected", f"document rejected with HTTP {status}: {reason}")
        if len(items) < len(lines):  # malformed answer: resend what it did not cover
            self._note("items", f"bulk answer covers {len(items)} of {len(lines)} items")
            retry.extend(lines[len(items) :])
        self.counters["published"] += ok
        return retry

    def _connect(self) -> bool:
        """Verify the server and install the template; False on a failure worth retrying."""
        try:
            info = self._client.perform_request("GET", "/", headers=_ACCEPT)
            version = info.body.get("version", {}).get("number", "?")
            log.info("connected to Elasticsearch %s", version)
            self._install_template()
        except UnsupportedProductError as e:
            self.counters["connect_errors"] += 1
            self._note("connect", f"server is not Elasticsearch: {e.message}")
            return False
        except (ApiError, TransportError) as e:
            self.counters["connect_errors"] += 1
            self._note("connect", f"cannot reach Elasticsearch: {e}")
            return False
        self._ready = True
        self._streak = 0
        return True

    def _install_template(self) -> None:
        try:
            self._client.perform_request(
                "PUT",
                f"/_index_template/{quote(self.template_name, safe='')}",
                headers=_JSON_HEADERS,
                body=self.template,
            )
        except ApiError as e:
            if _retryable(e.meta.status) and e.meta.status not in (401, 403):
                raise
            # Keep shipping: the data stream still gets the built-in logs-*-* template.
            self.counters["template_errors"] += 1
            log.warning(
                "cannot install index template %s (HTTP %s: %s); "
                "the API key or user needs the manage_index_templates privilege",
                self.template_name, e.meta.status, e.message,
            )  # fmt: skip
            return
        self.counters["template_installed"] += 1
        log.info("installed index template %s", self.template_name)

    def _give_up(self, rest: list[bytes]) -> None:
        """Elasticsearch stays down: move the queue to disk so a crash or close loses nothing."""
        with self._cond:
            self._down = True
            if self._queue:
                self._spool.append(list(self._queue))
                self._queue.clear()
            self._spool.sync()
            self._cond.notify_all()
        if rest:
            self._note("down", f"Elasticsearch unavailable; {len(rest)} event(s) spooled")

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
        with self._cond:  # the spool counts drops too, under this lock, from both threads
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
