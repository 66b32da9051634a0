"""The HTTP server for the web API, `/metrics` and the dashboard (SPEC 11).

Standard library only: a `ThreadingHTTPServer` in a daemon thread (an async server would not
help by itself: uvicorn, for one, has no deadline for receiving a request, its keep-alive
timeout restarts with every byte, which is what a slow client abuses). Every request has a
deadline for its request line and headers (`HEADER_TIMEOUT_S`, however slowly the bytes
trickle in) and one for its body; each client
address holds at most `MAX_PER_CLIENT` connections (a new one replaces the one of its own that
has waited longest for a request) and the server `MAX_CONNECTIONS`, past which new connections
are closed at once, so slow or greedy clients cannot starve the others, nor a quick request
from the same address.

Before anything else, the Host header must name this server when there is no access token
(a DNS-rebinding page sends its own host name), and a state-changing request from a browser
must come from the dashboard's own origin (Origin, or Referer when there is no Origin). Then
each request is authenticated (bearer token or `?token=`, compared in constant time) except the
dashboard shell, which carries no data. Bodies are bounded, every error is JSON, and tracebacks
go to the log, never to the client. Reads pipeline state only through `WebState`.
"""

from __future__ import annotations

import errno
import hmac
import io
import ipaddress
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sipcm.errors import SipcmError
from sipcm.web import api, dashboard
from sipcm.web.state import PipelineBusy, WebState

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
MAX_CONNECTIONS = 256
MAX_PER_CLIENT = 16  # a browser opens at most 6 per host; the dashboard needs 6
LISTEN_BACKLOG = 128
HEADER_TIMEOUT_S = 5.0  # request line and headers, from the first wait for them (keep-alive too)
BODY_TIMEOUT_S = 10.0  # the whole body (at most MAX_BODY)
SEND_TIMEOUT_S = 10.0  # each answer
POLL_S = 0.1  # how quickly stop() is noticed by the accept loop
LINGER_S = 2.0
LINGER_BYTES = 4 << 20
PUBLIC_PATHS = frozenset({"/", "/call"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_COMMON_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_TOKEN_IN_PATH = re.compile(r"([?&]token=)[^&\s]*")


def is_loopback(addr: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"; "" (all addresses) is not loopback."""
    if addr.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(addr.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The host name of a Host header (or URL authority) without port, brackets or final dot."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _hang_up(sock: socket.socket) -> None:
    """End a connection whose thread may be blocked reading it (the read returns at once)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Conn:
    """One open connection: its client address and whether it waits for a request."""

    __slots__ = ("evicted", "ip", "sock", "waiting_since")

    def __init__(self, sock: socket.socket, ip: str) -> None:
        self.sock = sock
        self.ip = ip
        self.waiting_since: float | None = time.monotonic()
        self.evicted = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple, family: int, handler: type, app: _App) -> None:
        self.address_family = family
        self.app = app
        self._open: dict[socket.socket, _Conn] = {}
        self._per_client: dict[str, list[_Conn]] = {}
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # A client at its cap gets a new connection only in exchange for the one of its own
        # that has waited longest for a request (slow, or idle between keep-alive requests):
        # a slowloris client evicts itself, while a quick request from the same address
        # still gets through. With none to evict, or past the server cap, the new
        # connection is closed at once instead of spawning another thread.
        ip = client_address[0] if client_address else ""
        evict = None
        with self._open_lock:
            mine = self._per_client.setdefault(ip, [])
            live = [c for c in mine if not c.evicted]
            admit = len(self._open) < MAX_CONNECTIONS
            if admit and len(live) >= MAX_PER_CLIENT:
                waiting = [c for c in live if c.waiting_since is not None]
                evict = min(waiting, key=lambda c: c.waiting_since or 0.0, default=None)
                admit = evict is not None
                if evict is not None:
                    evict.evicted = True
            if admit:
                conn = _Conn(request, ip)
                self._open[request] = conn
                mine.append(conn)
            elif not mine:
                del self._per_client[ip]
        if evict is not None:
            self.app.evicted += 1
            _hang_up(evict.sock)
        if not admit:
            self.app.refused += 1
            super().shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.shutdown_request(request)
            raise

    def waiting(self, request: Any, since: float | None) -> None:
        """Record that a connection waits for a request (since `since`) or serves one (None)."""
        conn = self._open.get(request)
        if conn is not None:
            conn.waiting_since = since

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            conn = self._open.pop(request, None)
            if conn is not None:
                mine = self._per_client[conn.ip]
                mine.remove(conn)
                if not mine:
                    del self._per_client[conn.ip]
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open (keep-alive) connection so no handler outlives the server."""
        with self._open_lock:
            socks = list(self._open)
        for sock in socks:
            _hang_up(sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("web: error serving %s", client_address[0] if client_address else "?")


class _App:
    """Per-server settings the handler reads."""

    def __init__(self, token: str | None, state: WebState | None, hosts: frozenset[str]) -> None:
        self.token = token.encode() if token else None
        self.state: WebState = state  # type: ignore[assignment] - set before serving
        # Host names accepted without a token; with a token, any (the token is the guard).
        self.hosts = hosts
        self.refused = 0  # connections closed at once by a cap (read by tests)
        self.evicted = 0  # connections ended to make room for their client's new one

    def host_allowed(self, header: str | None) -> bool:
        """Without a token, the Host header must name this server (HTTP/1.0 may omit it)."""
        if self.token is not None or header is None:
            return True
        return host_name(header) in self.hosts

    @staticmethod
    def same_origin(origin: str | None, referer: str | None, host: str | None) -> bool:
        """A browser's Origin (or Referer) names the host the request was sent to.

        Requests without either (curl, scripts) are not cross-site requests and pass."""
        source = origin if origin is not None else referer
        if source is None:
            return True
        try:
            parts = urlsplit(source.strip())
        except ValueError:
            return False
        return (
            parts.scheme in ("http", "https")
            and host is not None
            and parts.netloc.lower() == host.strip().lower()
        )

    def authorized(self, header: str | None, query_token: str | None) -> bool:
        if self.token is None:
            return True
        given = None
        if header:
            scheme, _, value = header.strip().partition(" ")
            if scheme.lower() == "bearer":
                given = value.strip()
        if given is None:
            given = query_token
        return given is not None and hmac.compare_digest(given.encode(), self.token)


class _DeadlineSocket(io.RawIOBase):
    """Reads from a socket until the handler's deadline, however the bytes trickle in."""

    def __init__(self, sock: socket.socket, handler: _Handler) -> None:
        self._sock = sock
        self._handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        left = self._handler.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        self._sock.settimeout(left)
        return self._sock.recv_into(buf)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = SEND_TIMEOUT_S
    deadline = 0.0
    _unread = False

    def setup(self) -> None:
        super().setup()
        self.rfile = io.BufferedReader(_DeadlineSocket(self.connection, self), 65536)

    def handle_one_request(self) -> None:
        # Request line and headers (and, on a kept-alive connection, the wait for them)
        # must arrive within HEADER_TIMEOUT_S; the body gets its own deadline (_read_body).
        now = time.monotonic()
        self.deadline = now + HEADER_TIMEOUT_S
        self.server.waiting(self.request, now)
        super().handle_one_request()

    def version_string(self) -> str:
        return "sipcm"

    def log_message(self, format: str, *args: Any) -> None:
        text = format % args
        log.debug("web: %s %s", self.client_address[0], _TOKEN_IN_PATH.sub(r"\1***", text))

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors from http.server (bad request line, 501, ...) as JSON."""
        self.close_connection = True
        # A request line that failed to parse leaves the HTTP/0.9 default, which would
        # suppress the status line and headers; nobody speaks 0.9 any more.
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        text = message or self.responses.get(code, ("error",))[0]
        self._send(api.error(code, text))

    def _dispatch(self, method: str) -> None:
        self.server.waiting(self.request, None)
        self._unread = False
        try:
            resp = self._route(method)
        except api.ApiError as exc:
            resp = api.error(exc.status, exc.message, **exc.extra)
        except PipelineBusy as exc:
            resp = api.error(503, str(exc))
            resp.headers["Retry-After"] = "1"
        except Exception:
            log.exception("web: %s %s failed", method, _TOKEN_IN_PATH.sub(r"\1***", self.path))
            resp = api.error(500, "internal error (see the sensor log)")
        self._send(resp, head=method == "HEAD")
        if self._unread:
            self._linger()

    def _route(self, method: str) -> api.Response:
        try:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query, keep_blank_values=True, max_num_fields=64)
        except ValueError as exc:
            raise api.ApiError(400, f"bad request target: {exc}") from None
        path = parts.path
        token = query.pop("token", [None])[-1]
        app = self.server.app
        host = self.headers.get("Host")
        if not app.host_allowed(host):
            self._discard_body()
            name = host_name(host or "")
            raise api.ApiError(
                421,
                f"unknown host name {name!r}; "
                "use 127.0.0.1 or localhost, or add it to http_allowed_hosts",
            )
        if method not in SAFE_METHODS and not app.same_origin(
            self.headers.get("Origin"), self.headers.get("Referer"), host
        ):
            self._discard_body()
            raise api.ApiError(
                403, "cross-origin request refused: send it from the dashboard's own page"
            )
        if path not in PUBLIC_PATHS and not app.authorized(
            self.headers.get("Authorization"), token
        ):
            resp = api.error(401, "missing or wrong access token")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="sipcm"'
            self._discard_body()
            return resp
        handlers = api.route(path)
        if handlers is None:
            self._discard_body()
            raise api.ApiError(404, f"no such path: {path}")
        if method == "HEAD" and "GET" in handlers:
            method = "GET"
        handler = handlers.get(method)
        if handler is None:
            allowed = sorted({*handlers, "HEAD"} if "GET" in handlers else handlers)
            self._discard_body()
            resp = api.error(405, f"method {method} not allowed on {path}", allowed=allowed)
            resp.headers["Allow"] = ", ".join(allowed)
            return resp
        body = self._read_body(required=method == "PUT")
        return handler(app.state, query, body)

    def _content_length(self) -> int | None:
        if self.headers.get("Transfer-Encoding"):
            self._abandon_body()
            raise api.ApiError(411, "chunked bodies are not supported; send Content-Length")
        raw = self.headers.get("Content-Length")
        if raw is None:
            return None
        if not raw.strip().isdigit():
            self._abandon_body()
            raise api.ApiError(400, "bad Content-Length")
        return int(raw)

    def _read_body(self, *, required: bool) -> bytes:
        length = self._content_length()
        if length is None:
            if required:
                self.close_connection = True
                raise api.ApiError(411, "a body with Content-Length is required")
            return b""
        if length > MAX_BODY:
            self._abandon_body()
            raise api.ApiError(413, f"body larger than {MAX_BODY} bytes")
        self.deadline = time.monotonic() + BODY_TIMEOUT_S
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            raise api.ApiError(408, "timed out reading the request body") from None
        if len(body) < length:
            self.close_connection = True
            raise api.ApiError(400, "body shorter than its Content-Length")
        return body

    def _discard_body(self) -> None:
        """Skip the body of a request answered early, keeping the connection if it is small."""
        try:
            length = self._content_length()
        except api.ApiError:
            return
        if length is None or length == 0:
            return
        if length > MAX_BODY:
            self._abandon_body()
            return
        self.deadline = time.monotonic() + BODY_TIMEOUT_S
        try:
            self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True

    def _abandon_body(self) -> None:
        # The body stays unread: answer, then close gracefully (see _linger).
        self.close_connection = True
        self._unread = True

    def _linger(self) -> None:
        """Half-close and discard what the client still sends, for a bounded time and size.

        Closing a socket with unread input makes the kernel send a reset, which can destroy
        our answer (413, 411, 401) before the client has read it."""
        deadline = time.monotonic() + LINGER_S
        budget = LINGER_BYTES
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            while budget > 0:
                if deadline <= time.monotonic():
                    break
                self.deadline = deadline
                chunk = self.rfile.read1(65536)
                if not chunk:
                    break
                budget -= len(chunk)
        except OSError:
            pass

    def _send(self, resp: api.Response, *, head: bool = False) -> None:
        try:
            self.connection.settimeout(SEND_TIMEOUT_S)
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(resp.body)))
            for name, value in (_COMMON_HEADERS | resp.headers).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if not head:
                self.wfile.write(resp.body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True


class WebServer:
    """The web interface on `addr:port` (port 0 picks a free port; used by tests)."""

    def __init__(
        self,
        addr: str,
        port: int,
        *,
        token: str | None,
        state: WebState | None = None,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        self.addr = addr
        self.port = port
        self.token = token or None
        self.state = state
        # Without a token, the Host names a request may carry: loopback, http_addr, extras.
        names = (*LOOPBACK_NAMES, addr, *allowed_hosts)
        self.hosts = frozenset(host_name(n) for n in names if n)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, state: WebState | None = None) -> None:
        """Bind (unless `bind()` did) and serve `state` (or the one given at construction) in
        a daemon thread; SipcmError if the address cannot be used."""
        if self._thread is not None:
            return
        server = self.bind()
        if state is not None:
            self.state = server.app.state = state
        if server.app.state is None:
            raise RuntimeError("WebServer.start() needs a state")
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": POLL_S}, name="sipcm-web"
        )
        self._thread.daemon = True
        self._thread.start()
        log.info("web interface on %s", self.url)

    def bind(self) -> _Server:
        """Listen without serving yet (a sensor binds before dropping privileges, then starts
        threads); SipcmError if the address cannot be used."""
        if self._server is not None:
            return self._server
        if self.token is None and not is_loopback(self.addr):
            raise SipcmError(
                f"web interface on {self.addr or 'all addresses'} needs an access token",
                "set access_token, or set http_addr to 127.0.0.1",
            )
        dashboard.page()  # fail now, not on the first request, if the static files are missing
        family, host = self._family()
        try:
            app = _App(self.token, self.state, self.hosts)
            server = _Server((host, self.port), family, _Handler, app)
        except OSError as exc:
            raise self._bind_error(exc) from None
        self._server = server
        return server

    def _family(self) -> tuple[int, str]:
        host = self.addr.strip("[]") or "0.0.0.0"
        try:
            return (
                socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
            ), host
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise SipcmError(
                f"web interface address {host!r} does not resolve: {exc.strerror}",
                "set http_addr to an IP address of this host",
            ) from None
        fam, *_, sockaddr = infos[0]
        return fam, sockaddr[0]

    def _bind_error(self, exc: OSError) -> SipcmError:
        where = f"{self.addr or '0.0.0.0'}:{self.port}"
        if exc.errno == errno.EADDRINUSE:
            return SipcmError(
                f"web interface cannot listen on {where}: address already in use",
                "stop the program using that port or set http_port to a free port "
                "(http_port: 0 disables the web interface)",
            )
        if exc.errno in (errno.EACCES, errno.EPERM):
            return SipcmError(
                f"web interface cannot listen on {where}: permission denied",
                "use an http_port above 1023 or run as root",
            )
        if exc.errno == errno.EADDRNOTAVAIL:
            return SipcmError(
                f"web interface cannot listen on {where}: no such address on this host",
                "set http_addr to an address of this host, e.g. 127.0.0.1",
            )
        return SipcmError(f"web interface cannot listen on {where}: {exc.strerror or exc}", None)

    def stop(self) -> None:
        """Stop serving and close the listening socket; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._thread is None:  # bound, never served
            server.server_close()
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def url(self) -> str:
        """The base URL of the running server (with the bound port)."""
        if self._server is None:
            raise RuntimeError("web server not started")
        host, port = self._server.server_address[:2]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/"
