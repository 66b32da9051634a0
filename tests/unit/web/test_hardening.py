"""Hostile HTTP clients: DNS rebinding (Host), cross-site writes (Origin), slow clients."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

import sipcm.web.server as web_server
from sipcm.web.server import WebServer, host_name
from tests.unit.web.client import Client
from tests.unit.web.fakestate import FakePipeline

HOST_ERROR = "unknown host name {!r}; use 127.0.0.1 or localhost, or add it to http_allowed_hosts"
ORIGIN_ERROR = "cross-origin request refused: send it from the dashboard's own page"


def _port(srv: WebServer) -> int:
    return int(srv.url.rstrip("/").rsplit(":", 1)[1])


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8080", "127.0.0.1"),
        ("LocalHost.", "localhost"),
        ("[::1]:80", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("evil.example:8080", "evil.example"),
    ],
)
def test_host_name(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "localhost:1", "[::1]:8080", "LOCALHOST.", "sensor.lan"]
)
def test_loopback_and_configured_hosts_accepted(fake: FakePipeline, host: str) -> None:
    srv = WebServer("127.0.0.1", 0, token=None, state=fake.state(), allowed_hosts=("sensor.lan",))
    srv.start()
    try:
        client = Client(srv.url)
        assert client.get("/api/blacklist", headers={"Host": host}).status == 200
        r = client.put_json("/api/blacklist", ["stats"], headers={"Host": host})
        assert (r.status, r.json()["blacklist"]) == (200, ["stats"])
    finally:
        srv.stop()


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example"])
def test_foreign_host_refused_without_token(client: Client, fake: FakePipeline, host: str) -> None:
    before = fake.blacklist
    r = client.put_json("/api/blacklist", ["call-start"], headers={"Host": host})
    assert (r.status, r.json()) == (421, {"error": HOST_ERROR.format(host_name(host))})
    assert fake.blacklist == before
    r = client.get("/api/events", headers={"Host": host})
    assert (r.status, r.json()) == (421, {"error": HOST_ERROR.format(host_name(host))})


def test_foreign_host_accepted_with_token(fake: FakePipeline) -> None:
    """With an access token the token is the guard: a rebinding page cannot know it."""
    srv = WebServer("127.0.0.1", 0, token="tok", state=fake.state())
    srv.start()
    try:
        hdrs = {"Host": "sensor.example.net", "Authorization": "Bearer tok"}
        assert Client(srv.url).get("/api/calls", headers=hdrs).status == 200
        assert Client(srv.url).get("/api/calls", headers={"Host": "x.example"}).status == 401
    finally:
        srv.stop()


def test_http_addr_is_an_accepted_host(fake: FakePipeline) -> None:
    srv = WebServer("127.0.0.5", 0, token=None, state=fake.state())
    srv.start()
    try:
        r = Client(srv.url).get("/api/calls", headers={"Host": f"127.0.0.5:{_port(srv)}"})
        assert r.status == 200
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # another port is another origin
        {"Referer": "http://evil.example/page.html"},
        {"Origin": "http://evil.example", "Referer": "http://127.0.0.1/"},
    ],
)
def test_foreign_origin_write_refused(
    server: WebServer, client: Client, fake: FakePipeline, headers: dict[str, str]
) -> None:
    before = fake.blacklist
    own = f"127.0.0.1:{_port(server)}"
    r = client.put_json("/api/blacklist", ["call-start"], headers={"Host": own, **headers})
    assert (r.status, r.json()) == (403, {"error": ORIGIN_ERROR})
    assert fake.blacklist == before
    # Reads are not state-changing: a page's own origin does not matter to them.
    assert client.get("/api/blacklist", headers={"Host": own, **headers}).status == 200


def test_dashboard_origin_and_scripts_may_write(server: WebServer, client: Client) -> None:
    own = f"127.0.0.1:{_port(server)}"
    for extra in (
        {"Origin": f"http://{own}"},
        {"Referer": f"http://{own}/"},
        {},  # curl and scripts send neither
    ):
        r = client.put_json("/api/blacklist", ["stats"], headers={"Host": own, **extra})
        assert (r.status, r.json()["blacklist"]) == (200, ["stats"])


# -- slow clients -------------------------------------------------------------------------

SLOW_CLIENTS = 80
LEGIT_REQUESTS = 60


def _slow_connect(port: int, source: str) -> socket.socket | None:
    s = socket.socket()
    s.settimeout(2)
    try:
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /api/counters HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    except OSError:
        s.close()
        return None
    return s


def _attack(fake: FakePipeline, monkeypatch, source: str):
    monkeypatch.setattr(web_server, "HEADER_TIMEOUT_S", 2.0)
    srv = WebServer("127.0.0.1", 0, token=None, state=fake.state())
    srv.start()
    socks = [s for s in (_slow_connect(_port(srv), source) for _ in range(SLOW_CLIENTS)) if s]
    return srv, socks


@pytest.fixture(params=["127.0.0.2", "127.0.0.1"], ids=["other-address", "same-address"])
def attacked(request, fake: FakePipeline, monkeypatch) -> Iterator[tuple[WebServer, list]]:
    """80 slow connections, from another loopback address than the legitimate client or
    from the same one."""
    srv, socks = _attack(fake, monkeypatch, request.param)
    yield srv, socks
    for s in socks:
        s.close()
    srv.stop()


def _trickle(socks: list[socket.socket], stop: threading.Event) -> None:
    """One byte per connection every 0.5 s, as a slowloris client does, for 3 s at most."""
    end = time.monotonic() + 3
    while not stop.is_set() and time.monotonic() < end:
        for s in socks:
            try:
                s.send(b"a")
            except OSError:
                pass
        stop.wait(0.5)


def test_slow_clients_do_not_block_others(attacked) -> None:
    srv, socks = attacked
    assert len(socks) == SLOW_CLIENTS  # the kernel accepted them all (the backlog is large)
    stop = threading.Event()
    t = threading.Thread(target=_trickle, args=(socks, stop))
    t.start()
    try:
        client = Client(srv.url)
        started = time.monotonic()
        statuses = [client.get("/api/counters").status for _ in range(LEGIT_REQUESTS)]
        took = time.monotonic() - started
    finally:
        stop.set()
        t.join()
    assert statuses == [200] * LEGIT_REQUESTS
    assert took < 10  # not one of them waited for a slow client's deadline
    assert srv._server is not None
    app = srv._server.app
    # Past its 16 connections each new one of the slow client replaced its own oldest; none
    # was refused, and the server never held more than 16 of them.
    assert app.refused == 0
    assert app.evicted >= SLOW_CLIENTS - web_server.MAX_PER_CLIENT
    held = srv._server._per_client.get(socks[0].getsockname()[0], [])
    assert len([c for c in held if not c.evicted]) <= web_server.MAX_PER_CLIENT


def test_slow_headers_hit_the_request_deadline(fake: FakePipeline, monkeypatch) -> None:
    """A client trickling its headers is cut off at HEADER_TIMEOUT_S, not per byte."""
    srv, socks = _attack(fake, monkeypatch, "127.0.0.2")
    s = socks[-1]  # one that was not evicted
    started = time.monotonic()
    closed_after = None
    try:
        while time.monotonic() - started < 8:
            try:
                s.send(b"a")
                s.settimeout(0.3)
                if s.recv(4096) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
    finally:
        for x in socks:
            x.close()
        srv.stop()
    assert closed_after is not None
    assert 1 < closed_after < 4


def test_busy_connections_are_not_evicted(fake: FakePipeline) -> None:
    """A client whose 16 connections are all being served gets no 17th: it is closed."""
    srv = WebServer("127.0.0.1", 0, token=None, state=fake.state())
    srv.start()
    port = _port(srv)
    fake.lock.acquire()  # every API request now waits in its handler (busy, not waiting)
    socks = []
    try:
        for _ in range(web_server.MAX_PER_CLIENT):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /api/counters HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            socks.append(s)
        assert srv._server is not None
        app = srv._server.app
        deadline = time.monotonic() + 5
        while (
            time.monotonic() < deadline
            and sum(c.waiting_since is None for c in list(srv._server._open.values()))
            < web_server.MAX_PER_CLIENT
        ):
            time.sleep(0.01)
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert extra.recv(100) == b""  # closed at once
        extra.close()
        assert (app.refused, app.evicted) == (1, 0)
    finally:
        fake.lock.release()
    for s in socks:
        assert s.recv(12) == b"HTTP/1.1 200"
        s.close()
    srv.stop()
