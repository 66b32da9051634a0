"""Access control and server start-up: tokens, loopback rule, bind errors."""

from __future__ import annotations

import errno
import logging
import os
import socket
import socketserver
from collections.abc import Iterator

import pytest

from sipcm.errors import SipcmError
from sipcm.web.server import WebServer, is_loopback
from tests.unit.web.client import Client
from tests.unit.web.fakestate import FakePipeline

TOKEN = "s3cr3t-T0ken_value"


@pytest.fixture
def secured(fake: FakePipeline) -> Iterator[Client]:
    srv = WebServer("127.0.0.1", 0, token=TOKEN, state=fake.state())
    srv.start()
    yield Client(srv.url)
    srv.stop()


PATHS = (
    "/api/counters",
    "/api/events",
    "/api/calls",
    "/api/registrations",
    "/api/blacklist",
    "/api/rates",
    "/api/config",
    "/metrics",
)


@pytest.mark.parametrize("path", PATHS)
def test_token_required(secured: Client, path: str) -> None:
    r = secured.get(path)
    assert (r.status, r.json()) == (401, {"error": "missing or wrong access token"})
    assert r.headers["www-authenticate"] == 'Bearer realm="sipcm"'


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": f"Bearer {TOKEN.upper()}"},
    ],
)
def test_wrong_token_401(secured: Client, headers: dict[str, str]) -> None:
    assert secured.get("/api/counters", headers=headers).status == 401


@pytest.mark.parametrize("path", PATHS)
def test_right_token_200(secured: Client, path: str) -> None:
    assert secured.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status == 200
    assert secured.get(path, headers={"authorization": f"bearer   {TOKEN} "}).status == 200
    sep = "&" if "?" in path else "?"
    assert secured.get(f"{path}{sep}token={TOKEN}").status == 200


def test_query_token_with_filters(secured: Client) -> None:
    body = secured.get(f"/api/events?call_id=cid-B@h&token={TOKEN}&limit=5").json()
    assert [e["sip"]["call_id"] for e in body["events"]] == ["cid-B@h"]
    assert secured.get("/api/events?call_id=cid-B@h&token=wrong").status == 401
    # When both are given the header decides: a wrong header is not rescued by the query.
    bad = {"Authorization": "Bearer wrong"}
    assert secured.get(f"/api/counters?token={TOKEN}", headers=bad).status == 401


def test_unauthorized_large_body_gets_401(secured: Client, fake: FakePipeline) -> None:
    r = secured.request("PUT", "/api/blacklist", body=b"[" + b" " * (1 << 20) + b"]")
    assert r.status == 401
    assert fake.set_calls == []


def test_unknown_path_needs_token_before_404(secured: Client) -> None:
    assert secured.get("/api/nope").status == 401
    assert secured.get(f"/api/nope?token={TOKEN}").status == 404


def test_put_blacklist_needs_token(secured: Client, fake: FakePipeline) -> None:
    assert secured.put_json("/api/blacklist", ["stats"]).status == 401
    assert fake.blacklist == ["msg-probe"]
    r = secured.put_json("/api/blacklist", ["stats"], {"Authorization": f"Bearer {TOKEN}"})
    assert r.status == 200
    assert fake.blacklist == ["stats"]


def test_dashboard_shell_is_public_and_carries_no_data(secured: Client) -> None:
    r = secured.get("/")
    assert r.status == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    for secret in (b"cid-B@h", b"4242", b"alice", TOKEN.encode()):
        assert secret not in r.body
    assert secured.get(f"/?token={TOKEN}").status == 200


def test_token_never_logged(fake: FakePipeline, caplog: pytest.LogCaptureFixture) -> None:
    srv = WebServer("127.0.0.1", 0, token=TOKEN, state=fake.state())
    srv.start()
    try:
        with caplog.at_level(logging.DEBUG, logger="sipcm.web"):
            assert Client(srv.url).get(f"/api/calls?token={TOKEN}").status == 200
            assert Client(srv.url).get("/api/calls?token=guess").status == 401
    finally:
        srv.stop()
    assert "/api/calls?token=***" in caplog.text
    assert TOKEN not in caplog.text
    assert "guess" not in caplog.text


@pytest.mark.parametrize("addr", ["0.0.0.0", "", "192.0.2.1", "::", "sensor.example.com"])
def test_non_loopback_without_token_refuses_to_start(fake: FakePipeline, addr: str) -> None:
    srv = WebServer(addr, 0, token=None, state=fake.state())
    with pytest.raises(SipcmError, match="needs an access token") as info:
        srv.start()
    assert info.value.hint == "set access_token, or set http_addr to 127.0.0.1"
    with pytest.raises(RuntimeError):
        _ = srv.url


def test_empty_token_counts_as_none(fake: FakePipeline) -> None:
    with pytest.raises(SipcmError, match="needs an access token"):
        WebServer("0.0.0.0", 0, token="", state=fake.state()).start()


def test_non_loopback_with_token_starts(fake: FakePipeline) -> None:
    srv = WebServer("0.0.0.0", 0, token=TOKEN, state=fake.state())
    srv.start()
    try:
        port = int(srv.url.rstrip("/").rsplit(":", 1)[1])
        assert srv.url == f"http://0.0.0.0:{port}/"
        c = Client(f"http://127.0.0.1:{port}/")
        assert c.get("/api/calls").status == 401
        assert c.get("/api/calls", headers={"Authorization": f"Bearer {TOKEN}"}).status == 200
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("addr", "want"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("", False),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback(addr: str, want: bool) -> None:
    assert is_loopback(addr) is want


def test_ipv6_loopback(fake: FakePipeline) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    srv = WebServer("::1", 0, token=None, state=fake.state())
    try:
        srv.start()
    except SipcmError as exc:
        pytest.skip(f"::1 not available here: {exc}")
    try:
        assert srv.url.startswith("http://[::1]:")
        with socket.create_connection(("::1", int(srv.url.rsplit(":", 1)[1].rstrip("/")))) as s:
            s.sendall(b"GET /api/calls HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
    finally:
        srv.stop()


def test_address_in_use_is_a_clear_error(fake: FakePipeline) -> None:
    first = WebServer("127.0.0.1", 0, token=None, state=fake.state())
    first.start()
    try:
        port = int(first.url.rstrip("/").rsplit(":", 1)[1])
        second = WebServer("127.0.0.1", port, token=None, state=fake.state())
        with pytest.raises(SipcmError) as info:
            second.start()
        assert info.value.message == (
            f"web interface cannot listen on 127.0.0.1:{port}: address already in use"
        )
        assert "http_port" in (info.value.hint or "")
    finally:
        first.stop()


def test_address_not_on_this_host(fake: FakePipeline) -> None:
    srv = WebServer("192.0.2.77", 0, token=TOKEN, state=fake.state())
    with pytest.raises(SipcmError) as info:
        srv.start()
    assert info.value.message == (
        "web interface cannot listen on 192.0.2.77:0: no such address on this host"
    )


@pytest.mark.parametrize(
    ("err", "message", "hint"),
    [
        (errno.EACCES, "permission denied", "use an http_port above 1023 or run as root"),
        (errno.EPERM, "permission denied", "use an http_port above 1023 or run as root"),
        (errno.EMFILE, "Too many open files", None),
    ],
)
def test_other_bind_errors(
    fake: FakePipeline, monkeypatch: pytest.MonkeyPatch, err: int, message: str, hint: str | None
) -> None:
    # Root may bind port 80 here, so the kernel's refusal is simulated at the bind call.
    def refuse(self: socketserver.TCPServer) -> None:
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(socketserver.TCPServer, "server_bind", refuse)
    with pytest.raises(SipcmError) as info:
        WebServer("127.0.0.1", 80, token=None, state=fake.state()).start()
    assert info.value.message == f"web interface cannot listen on 127.0.0.1:80: {message}"
    assert info.value.hint == hint


def test_stop_releases_port_and_is_idempotent(fake: FakePipeline) -> None:
    srv = WebServer("127.0.0.1", 0, token=None, state=fake.state())
    srv.start()
    port = int(srv.url.rstrip("/").rsplit(":", 1)[1])
    srv.stop()
    srv.stop()
    again = WebServer("127.0.0.1", port, token=None, state=fake.state())
    again.start()
    try:
        assert Client(again.url).get("/api/rates").status == 200
    finally:
        again.stop()
