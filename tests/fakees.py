"""A fake Elasticsearch HTTP server for tests: the part of the REST API sipcm's output uses.

It serves `GET /` (info, with the `X-Elastic-Product` header the client checks),
`PUT|GET /_index_template/<name>` (stored the way Elasticsearch returns it: settings nested
with string values, lifecycle `enabled`, data_stream options filled in; `composed_of` must name
existing component templates unless listed in `ignore_missing_component_templates`),
`PUT|GET /_component_template/<name>` (`logs@settings` and `ecs@mappings` exist, as in a stack),
`PUT|GET /_data_stream/<name>`, `POST|PUT /_bulk`, `/<index>/_bulk` (NDJSON action and source
lines, per-item results; a `create` whose `_id` the index already holds is a 409), and, with
`security=True`, authentication (basic `users`, `api_keys`; 401 otherwise),
`GET /_security/_authenticate` and `POST /_security/user/_has_privileges` (answered from the
`granted` privilege names). Without security, `_security` endpoints fail as on a cluster whose
security is off. It listens on 127.0.0.1 with an ephemeral port, one thread per connection.
Every accepted document is recorded in `docs` (and its `_id` in `ids`) in arrival order, so a
test can assert exactly what arrived.

Failures are programmable: `script_bulk()` queues whole-request statuses, per-item statuses,
connection drops or late answers (`Slow`) for the next bulk requests; `reject` is a
per-document hook (a mapping error that never goes away); `stop()`/`start()` take the port down
(refused connections) and back up. It never persists anything and accepts only loopback
connections.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ERRORS = {
    400: ("document_parsing_exception", "failed to parse field [x] of type [long]"),
    401: ("security_exception", "missing authentication credentials"),
    403: ("security_exception", "action is unauthorized"),
    429: ("es_rejected_execution_exception", "rejected execution of coordinating operation"),
    500: ("internal_server_error", "simulated failure"),
    409: ("version_conflict_engine_exception", "document already exists"),
    503: ("unavailable_shards_exception", "primary shard is not active"),
}
DROP = "drop"  # a scripted bulk step: close the connection without answering
STACK_COMPONENTS = ("logs@settings", "ecs@mappings")


@dataclass(frozen=True)
class Slow:
    """A scripted bulk step: index the documents, then answer only after `seconds`."""

    seconds: float


@dataclass
class Request:
    """One received request (headers lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeES:
    """The server. Use as a context manager or call `start()`/`stop()`."""

    version: str = "9.1.0"
    product_header: bool = True
    template_status: int = 200  # answer to PUT _index_template (403: no privilege)
    tls: ssl.SSLContext | None = None  # serve https with this server-side context
    reject: Callable[[dict[str, Any]], int | None] | None = None
    security: bool = False
    users: dict[str, str] = field(default_factory=dict)  # basic auth user -> password
    api_keys: set[str] = field(default_factory=set)  # accepted `ApiKey` values
    granted: set[str] = field(default_factory=set)  # privileges _has_privileges reports held
    docs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    bulk_sizes: list[int] = field(default_factory=list)
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    components: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {n: {"template": {}} for n in STACK_COMPONENTS}
    )
    data_streams: set[str] = field(default_factory=set)
    port: int = 0

    def __post_init__(self) -> None:
        self._script: deque[int | str | list[int] | Slow] = deque()
        self._stored_ids: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()

    # -- control --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> FakeES:
        """Listen (again, on the same port after a `stop()`) and serve in a daemon thread."""
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        if self.tls is not None:
            # Handshake in the connection's thread (on first read), not in the accept loop.
            server.socket = self.tls.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket and every open connection: clients see refusals."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        assert self._thread is not None
        self._thread.join(5)
        self._server = None

    def __enter__(self) -> FakeES:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script_bulk(self, *steps: int | str | list[int] | Slow) -> None:
        """Queue the answers of the next bulk requests, one step per request.

        An int is a whole-request HTTP status (429, 500, ...); a list gives per-item statuses
        in item order (missing ones are 201; a failed item is not recorded); `DROP` closes the
        connection without an answer; `Slow(s)` indexes normally and answers after s seconds.
        Requests beyond the script succeed.
        """
        with self._lock:
            self._script.extend(steps)

    def clear_script(self) -> None:
        """Forget the scripted steps not used yet."""
        with self._lock:
            self._script.clear()

    @property
    def sources(self) -> list[dict[str, Any]]:
        """The recorded documents without their index, in arrival order."""
        with self._lock:
            return [d for _, d in self.docs]

    def headers_of(self, path_prefix: str) -> list[dict[str, str]]:
        """Headers of every request whose path starts with `path_prefix`."""
        with self._lock:
            return [r.headers for r in self.requests if r.path.startswith(path_prefix)]

    # -- request handling (called from handler threads) ---------------------------------------

    def _next_step(self) -> int | str | list[int] | Slow | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _record(self, req: Request) -> None:
        with self._lock:
            self.requests.append(req)

    def _bulk(self, index: str | None, body: bytes, step: list[int] | None) -> dict[str, Any]:
        lines = [ln for ln in body.split(b"\n") if ln.strip()]
        items = []
        took: list[tuple[str, dict[str, Any]]] = []
        for i in range(0, len(lines) - 1, 2):
            action = json.loads(lines[i])
            (op, meta) = next(iter(action.items()))
            target = meta.get("_index", index) or ""
            doc_id = meta.get("_id")
            doc = json.loads(lines[i + 1])
            status = 201
            if step is not None and i // 2 < len(step):
                status = step[i // 2]
            elif self.reject is not None:
                status = self.reject(doc) or 201
            if op != "create" and target in self.data_streams:
                status = 400
            with self._lock:
                have = self._stored_ids.setdefault(target, set())
                if status < 300 and doc_id is not None and op == "create" and doc_id in have:
                    status = 409
                if status < 300:
                    if doc_id is not None:
                        have.add(doc_id)
                    self.docs.append((target, doc))
                    self.ids.append(doc_id)
                    took.append((target, doc))
            if status < 300:
                items.append({op: {"_index": target, "status": status, "result": "created"}})
            else:
                items.append({op: {"_index": target, "status": status, "error": _error(status)}})
        with self._lock:
            self.bulk_sizes.append(len(items))
            self.data_streams.update(t for t, _ in took)
        errors = any("error" in next(iter(it.values())) for it in items)
        return {"took": 1, "errors": errors, "items": items}

    def _template(self, method: str, name: str, body: bytes) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if method == "PUT" and self.template_status != 200:
                st = self.template_status
                return st, {"error": _error(st, "security_exception"), "status": st}
            if method == "PUT":
                tpl = json.loads(body)
                optional = set(tpl.get("ignore_missing_component_templates") or ())
                missing = [
                    c
                    for c in tpl.get("composed_of") or ()
                    if c not in self.components and c not in optional
                ]
                if missing:
                    reason = f"index template [{name}] specifies component templates {missing}"
                    err = {"type": "invalid_index_template_exception", "reason": reason}
                    return 400, {"error": err, "status": 400}
                self.templates[name] = _as_stored(tpl)
                return 200, {"acknowledged": True}
            if name not in self.templates:
                return 404, {"error": _error(404, "resource_not_found_exception"), "status": 404}
            tpl = {"name": name, "index_template": self.templates[name]}
            return 200, {"index_templates": [tpl]}

    def _component(self, method: str, name: str, body: bytes) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if method == "PUT":
                self.components[name] = json.loads(body)
                return 200, {"acknowledged": True}
            if name not in self.components:
                return 404, {"error": _error(404, "resource_not_found_exception"), "status": 404}
            tpl = {"name": name, "component_template": self.components[name]}
            return 200, {"component_templates": [tpl]}

    def _user(self, headers: dict[str, str]) -> str | None:
        """The authenticated principal, or None when the credentials are missing or wrong."""
        auth = headers.get("authorization", "")
        scheme, _, cred = auth.partition(" ")
        if scheme == "ApiKey" and cred in self.api_keys:
            return f"api_key:{cred[:4]}"
        if scheme == "Basic":
            user, _, pw = base64.b64decode(cred).decode().partition(":")
            if self.users.get(user) == pw:
                return user
        return None

    def _security_api(self, path: list[str], user: str, body: bytes) -> tuple[int, Any]:
        if not self.security:
            reason = "Security must be explicitly enabled when using a [basic] license"
            return 500, {"error": {"type": "exception", "reason": reason}, "status": 500}
        if path == ["_security", "_authenticate"]:
            return 200, {"username": user, "authentication_realm": {"name": "default_native"}}
        if path == ["_security", "user", "_has_privileges"]:
            asked = json.loads(body)
            cluster = {p: p in self.granted for p in asked.get("cluster", ())}
            index = {
                n: {p: p in self.granted for p in spec.get("privileges", ())}
                for spec in asked.get("index", ())
                for n in spec.get("names", ())
            }
            every = all(cluster.values()) and all(all(v.values()) for v in index.values())
            return 200, {
                "username": user,
                "has_all_requested": every,
                "cluster": cluster,
                "index": index,
            }
        return 404, {"error": _error(404, "no_handler_found"), "status": 404}

    def _data_stream(self, method: str, name: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if method == "PUT":
                self.data_streams.add(name)
                return 200, {"acknowledged": True}
            if name not in self.data_streams:
                return 404, {"error": _error(404, "index_not_found_exception"), "status": 404}
            return 200, {"data_streams": [{"name": name}]}

    def _media_type_error(self, headers: dict[str, str]) -> dict[str, str] | None:
        """Elasticsearch's REST compatibility rule: a requested `compatible-with` must be this
        major or the previous one, and Accept and Content-Type must agree."""
        major = int(self.version.split(".")[0])
        asked = {
            h: int(m.group(1))
            for h in ("accept", "content-type")
            if (m := re.search(r"compatible-with=(\d+)", headers.get(h, "")))
        }
        if any(v not in (major, major - 1) for v in asked.values()) or len(set(asked.values())) > 1:
            return {"reason": f"Invalid media-type value on headers {sorted(asked)}: {asked}"}
        return None

    def _info(self) -> dict[str, Any]:
        return {
            "name": "fake-node",
            "cluster_name": "fake",
            "cluster_uuid": "fakeuuid",
            "version": {"number": self.version, "build_flavor": "default"},
            "tagline": "You Know, for Search",
        }


def _as_stored(tpl: dict[str, Any]) -> dict[str, Any]:
    """An index template as Elasticsearch returns it: settings nested with string values,
    `enabled` in the lifecycle, data_stream options filled in."""
    out = json.loads(json.dumps(tpl))
    if "data_stream" in out:
        out["data_stream"] = {"hidden": False, "allow_custom_routing": False, **out["data_stream"]}
    inner = out.get("template") or {}
    if "settings" in inner:
        inner["settings"] = _nested_strings(inner["settings"])
    if "lifecycle" in inner:
        inner["lifecycle"] = {"enabled": True, **inner["lifecycle"]}
    return out


def _nested_strings(settings: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in settings.items():
        node = out
        *parents, last = k.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        if isinstance(v, dict):
            node.setdefault(last, {}).update(_nested_strings(v))
        else:
            node[last] = str(v).lower() if isinstance(v, bool) else str(v)
    return out


def _error(status: int, etype: str | None = None) -> dict[str, Any]:
    t, reason = _ERRORS.get(status, ("error", f"status {status}"))
    return {"type": etype or t, "reason": reason}


def _handler(es: FakeES) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            with es._lock:
                es._conns.add(self.connection)

        def finish(self) -> None:
            with es._lock:
                es._conns.discard(self.connection)
            try:
                super().finish()
            except OSError:
                pass

        def do_GET(self) -> None:
            self._route()

        def do_HEAD(self) -> None:
            self._route()

        def do_PUT(self) -> None:
            self._route()

        def do_POST(self) -> None:
            self._route()

        def _route(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            path = self.path.split("?", 1)[0]
            headers = {k.lower(): v for k, v in self.headers.items()}
            es._record(Request(self.command, self.path, headers, body))
            parts = [p for p in path.split("/") if p]
            bad = es._media_type_error(headers)
            user = es._user(headers) if es.security else "anonymous"
            if bad:
                self._send(400, {"error": _error(400, "media_type_header_exception") | bad})
            elif user is None:
                self._send(401, {"error": _error(401), "status": 401})
            elif parts and parts[0] == "_security":
                self._send(*es._security_api(parts, user, body))
            elif parts and parts[-1] == "_bulk" and len(parts) <= 2:
                self._do_bulk(parts[0] if len(parts) == 2 else None, body)
            elif not parts:
                self._send(200, es._info())
            elif parts[0] == "_index_template" and len(parts) == 2:
                self._send(*es._template(self.command, parts[1], body))
            elif parts[0] == "_component_template" and len(parts) == 2:
                self._send(*es._component(self.command, parts[1], body))
            elif parts[0] == "_data_stream" and len(parts) == 2:
                self._send(*es._data_stream(self.command, parts[1]))
            else:
                self._send(404, {"error": _error(404, "no_handler_found"), "status": 404})

        def _do_bulk(self, index: str | None, body: bytes) -> None:
            step = es._next_step()
            if step == DROP:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if isinstance(step, int):
                self._send(step, {"error": _error(step), "status": step})
                return
            answer = es._bulk(index, body, step if isinstance(step, list) else None)
            if isinstance(step, Slow):
                time.sleep(step.seconds)
            self._send(200, answer)

        def _send(self, status: int, obj: Any) -> None:
            data = json.dumps(obj).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if es.product_header:
                    self.send_header("X-Elastic-Product", "Elasticsearch")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            except OSError:  # the client gave up (timeout) before a Slow answer
                self.close_connection = True

    return Handler
