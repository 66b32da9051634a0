"""The JSON API over a real server on 127.0.0.1: exact bodies, filters, blacklist, errors."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from sipcm.web.server import MAX_BODY, WebServer
from tests.unit.web.client import Client
from tests.unit.web.fakestate import (
    CALLS,
    CLOCK_NS,
    CONFIG,
    OUTCOMES,
    RATES,
    RECENT,
    REGISTRATIONS,
    FakePipeline,
)

VALID_SORTED = [
    "auth-failed",
    "call-attempt",
    "call-end",
    "call-start",
    "msg-probe",
    "other-failed",
    "other-ok",
    "other-timeout",
    "parse-error",
    "reg-del",
    "reg-expired",
    "reg-new",
    "stats",
]


def test_counters_grouped_with_interfaces_nested_by_direction(client: Client) -> None:
    r = client.get("/api/counters")
    assert r.status == 200
    assert r.json() == {
        "capture": {"ring_batches": 7, "ring_records": 4321},
        "events": {"blacklisted_msg-probe": 3, "generated": 9, "published": 6},
        "interfaces": {"eth0": {"egress": 1200, "ingress": 3100}, "lo": {"ingress": 21}},
        "kernel": {"ring_full_lost": 2, "seen": 99001},
        "sip": {"messages": 4242, "parse_errors": 5},
        "track_active": {"calls": 1, "registrations": 2},
    }
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_events_newest_first_with_published_total(client: Client) -> None:
    body = client.get("/api/events").json()
    assert body == {"published": 6, "count": 6, "events": RECENT[::-1]}
    assert [e["event"]["action"] for e in body["events"]] == [
        "auth-failed",
        "call-end",
        "call-start",
        "parse-error",
        "call-start",
        "reg-new",
    ]


@pytest.mark.parametrize(
    ("query", "indexes"),
    [
        ("action=call-start", [3, 1]),
        ("call_id=cid-A@h", [4, 1]),
        ("call_id=cid-A", []),  # exact match, not substring
        ("user=bob", [4, 1]),
        ("user=alice", [4, 1, 0]),
        ("ip=10.0.0.2", [5, 4, 3, 2, 1]),
        ("ip=10.0.0.9", [0]),
        ("ip=10.0.0", []),
        ("action=call-start&user=carol", [3]),
        ("action=call-end&ip=192.0.2.66", []),
        ("limit=2", [5, 4]),
        ("ip=10.0.0.2&limit=3", [5, 4, 3]),
        ("action=", []),  # an empty value still filters (no event has an empty action)
    ],
)
def test_event_filters_exact(client: Client, query: str, indexes: list[int]) -> None:
    body = client.get("/api/events?" + query).json()
    assert body == {"published": 6, "count": len(indexes), "events": [RECENT[i] for i in indexes]}


@pytest.mark.parametrize(
    ("query", "indexes"),
    [
        ("after=6", []),
        ("after=4", [5, 4]),
        ("after=0", [5, 4, 3, 2, 1, 0]),
        ("after=100", []),  # a total from before a restart: nothing is newer
        ("after=3&action=call-start", [3]),
        ("after=3&limit=1", [5]),
    ],
)
def test_events_after_published_total(client: Client, query: str, indexes: list[int]) -> None:
    body = client.get("/api/events?" + query).json()
    assert body == {"published": 6, "count": len(indexes), "events": [RECENT[i] for i in indexes]}


def test_events_after_when_older_events_left_the_buffer(client: Client, fake: FakePipeline) -> None:
    fake.counters["events"]["published"] = 1006  # 1000 earlier events were evicted
    body = client.get("/api/events?after=1003").json()
    assert body["events"] == [RECENT[5], RECENT[4], RECENT[3]]
    assert len(client.get("/api/events?after=10").json()["events"]) == 6


def test_events_use_the_published_reader_when_given(fake: FakePipeline) -> None:
    reads: list[str] = []

    def published() -> int:
        reads.append("published")
        return 5

    def counters() -> dict:
        reads.append("counters")
        return {}

    state = fake.state(published=published, counters=counters)
    srv = WebServer("127.0.0.1", 0, token=None, state=state)
    srv.start()
    try:
        body = Client(srv.url).get("/api/events?after=4").json()
    finally:
        srv.stop()
    assert body == {"published": 5, "count": 1, "events": [RECENT[5]]}
    assert reads == ["published"]


def test_event_filter_value_is_url_decoded(client: Client, fake: FakePipeline) -> None:
    fake.recent.append({"event": {"action": "call-start"}, "sip": {"call_id": "a b&c=d@x"}})
    body = client.get("/api/events?call_id=a%20b%26c%3Dd%40x").json()
    assert body["events"] == [{"event": {"action": "call-start"}, "sip": {"call_id": "a b&c=d@x"}}]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit must be an integer from 1 to 10000, got '0'"),
        ("limit=10001", "limit must be an integer from 1 to 10000, got '10001'"),
        ("limit=-1", "limit must be an integer from 1 to 10000, got '-1'"),
        ("limit=abc", "limit must be an integer from 1 to 10000, got 'abc'"),
        ("after=-3", "after must be an integer from 0 to 9223372036854775808, got '-3'"),
        (
            "callid=x",
            "unknown query parameter 'callid' (expected: action, call_id, user, ip, limit, after)",
        ),
    ],
)
def test_event_query_errors(client: Client, query: str, message: str) -> None:
    r = client.get("/api/events?" + query)
    assert (r.status, r.json()) == (400, {"error": message})


def test_calls_registrations_rates_config(client: Client) -> None:
    assert client.get("/api/calls").json() == {
        "count": 1,
        "clock_ns": CLOCK_NS,
        "live": False,
        "calls": CALLS,
    }
    assert client.get("/api/calls").json()["calls"][0]["call_id"] == "cid-B@h"
    regs = client.get("/api/registrations").json()
    assert regs == {"count": 2, "registrations": REGISTRATIONS}
    assert [r["aor"] for r in regs["registrations"]] == [
        "sip:alice@example.com",
        "sip:bob@example.com",
    ]
    assert client.get("/api/rates").json() == {"count": 2, "rates": RATES}
    assert client.get("/api/config").json() == CONFIG
    assert client.get("/api/config").json()["access_token"] == "***"


def test_unknown_parameter_on_other_endpoints(client: Client) -> None:
    r = client.get("/api/calls?x=1")
    assert (r.status, r.json()) == (400, {"error": "unknown query parameter 'x' (expected: none)"})


def test_blacklist_get_put_round_trip(client: Client, fake: FakePipeline) -> None:
    assert client.get("/api/blacklist").json() == {
        "blacklist": ["msg-probe"],
        "valid": VALID_SORTED,
    }
    r = client.put_json("/api/blacklist", ["stats", "Parse-Error", "stats", " msg-probe "])
    assert r.status == 200
    assert r.json() == {"blacklist": ["msg-probe", "parse-error", "stats"], "valid": VALID_SORTED}
    assert fake.set_calls == [["msg-probe", "parse-error", "stats"]]
    assert client.get("/api/blacklist").json()["blacklist"] == ["msg-probe", "parse-error", "stats"]
    # The object form and the empty list both work.
    assert client.put_json("/api/blacklist", {"blacklist": ["reg-new"]}).json()["blacklist"] == [
        "reg-new"
    ]
    assert client.put_json("/api/blacklist", []).json()["blacklist"] == []
    assert fake.blacklist == []
    assert fake.lock_held_in_callbacks


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'["call-start", "bogus"]', "unknown event type 'bogus'"),
        (b'["zzz", "aaa"]', "unknown event type 'aaa'"),
    ],
)
def test_blacklist_unknown_names_400_with_valid_names(
    client: Client, fake: FakePipeline, body: bytes, message: str
) -> None:
    r = client.request("PUT", "/api/blacklist", body=body)
    assert r.status == 400
    assert r.json() == {"error": message, "valid": VALID_SORTED}
    assert fake.set_calls == []
    assert fake.blacklist == ["msg-probe"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'"msg-probe"', 'body must be a JSON list of event names, e.g. ["msg-probe"]'),
        (b"[1, 2]", 'body must be a JSON list of event names, e.g. ["msg-probe"]'),
        (b'{"names": []}', 'body must be a JSON list of event names, e.g. ["msg-probe"]'),
        (b"", "body is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
        (b"[", "body is not valid JSON: Expecting value: line 1 column 2 (char 1)"),
        (
            b"\xff[]",
            "body is not valid JSON: 'utf-8' codec can't decode byte 0xff in position 0: "
            "invalid start byte",
        ),
    ],
)
def test_blacklist_bad_bodies(
    client: Client, fake: FakePipeline, body: bytes, message: str
) -> None:
    r = client.request("PUT", "/api/blacklist", body=body)
    assert (r.status, r.json()) == (400, {"error": message})
    assert fake.blacklist == ["msg-probe"]


def test_unknown_path_404(client: Client) -> None:
    for path in ("/api", "/api/counters/", "/api/nope", "/index.html", "/metrics/x"):
        r = client.get(path)
        assert (r.status, r.json()) == (404, {"error": f"no such path: {path}"})


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/api/counters", "GET, HEAD"),
        ("DELETE", "/api/blacklist", "GET, HEAD, PUT"),
        ("PUT", "/metrics", "GET, HEAD"),
        ("PATCH", "/api/events", "GET, HEAD"),
        ("POST", "/", "GET, HEAD"),
        ("OPTIONS", "/api/calls", "GET, HEAD"),
    ],
)
def test_wrong_method_405(client: Client, method: str, path: str, allow: str) -> None:
    r = client.request(method, path, body=b"{}")
    assert r.status == 405
    assert r.headers["allow"] == allow
    assert r.json() == {
        "error": f"method {method} not allowed on {path}",
        "allowed": allow.split(", "),
    }


def test_unsupported_http_method_is_json_501(client: Client) -> None:
    r = client.request("BREW", "/api/counters")
    assert (r.status, r.json()) == (501, {"error": "Unsupported method ('BREW')"})


def test_body_too_large_413_without_reading_it(client: Client, fake: FakePipeline) -> None:
    r = client.request("PUT", "/api/blacklist", body=b"[" + b" " * MAX_BODY + b"]")
    assert (r.status, r.json()) == (413, {"error": f"body larger than {MAX_BODY} bytes"})
    assert r.headers["connection"] == "close"
    assert fake.set_calls == []
    # Exactly at the limit is accepted.
    body = b"[" + b" " * (MAX_BODY - 2) + b"]"
    assert client.request("PUT", "/api/blacklist", body=body).json()["blacklist"] == []


@pytest.mark.parametrize("size", [MAX_BODY + 1, 1 << 20])
def test_large_body_answer_survives_the_close(client: Client, size: int) -> None:
    # The server does not read the body but must not reset the connection before the
    # client has read the 413 (it half-closes and discards what still arrives).
    for _ in range(3):
        r = client.request("PUT", "/api/blacklist", body=b"x" * size)
        assert (r.status, r.json()) == (413, {"error": f"body larger than {MAX_BODY} bytes"})


def test_stop_ends_keep_alive_connections(fake: FakePipeline) -> None:
    import http.client

    srv = WebServer("127.0.0.1", 0, token=None, state=fake.state())
    srv.start()
    c = Client(srv.url)
    conn = http.client.HTTPConnection(c.host, c.port, timeout=5)
    try:
        conn.request("GET", "/api/calls")
        assert conn.getresponse().read()
        srv.stop()

        # The kept-alive connection was closed by stop(): no further answer on it.
        def again() -> None:
            conn.request("GET", "/api/calls")
            conn.getresponse()

        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            again()
    finally:
        conn.close()
        srv.stop()


def test_put_without_length_or_chunked_411(server: WebServer) -> None:
    host, port = server.url[len("http://") :].rstrip("/").split(":")
    for extra in (b"", b"Transfer-Encoding: chunked\r\n"):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"PUT /api/blacklist HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 411 ")
        want = (
            "chunked bodies are not supported; send Content-Length"
            if extra
            else "a body with Content-Length is required"
        )
        assert json.loads(body) == {"error": want}


def _read_all(s: socket.socket) -> tuple[bytes, bytes]:
    got = b""
    while chunk := s.recv(4096):
        got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


def _raw(server: WebServer, data: bytes) -> tuple[bytes, bytes]:
    host, port = server.url[len("http://") :].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(data)
        return _read_all(s)


@pytest.mark.parametrize(
    ("request_bytes", "status", "error"),
    [
        (
            b"GET /api/calls HTTP/1.x\r\n\r\n",
            b"HTTP/1.1 400 Bad Request",
            "Bad request version ('HTTP/1.x')",
        ),
        (b"HELLO\r\n\r\n", b"HTTP/1.1 400 Bad Request", "Bad request syntax ('HELLO')"),
        (
            b"GET /api/calls HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n",
            b"HTTP/1.1 431 Request Header Fields Too Large",
            "Too many headers",
        ),
        (
            b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
            b"HTTP/1.1 414 Request-URI Too Long",
            "Request-URI Too Long",
        ),
    ],
)
def test_protocol_errors_are_json(
    server: WebServer, request_bytes: bytes, status: bytes, error: str
) -> None:
    line, body = _raw(server, request_bytes)
    assert line == status
    assert json.loads(body) == {"error": error}


def test_body_shorter_than_content_length(server: WebServer, monkeypatch) -> None:
    import sipcm.web.server as web_server

    monkeypatch.setattr(web_server, "BODY_TIMEOUT_S", 0.3)
    host, port = server.url[len("http://") :].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"PUT /api/blacklist HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n[]")
        line, body = _read_all(s)
    assert line == b"HTTP/1.1 408 Request Timeout"
    assert json.loads(body) == {"error": "timed out reading the request body"}
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"PUT /api/blacklist HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n[]")
        s.shutdown(socket.SHUT_WR)
        line, body = _read_all(s)
    assert line == b"HTTP/1.1 400 Bad Request"
    assert json.loads(body) == {"error": "body shorter than its Content-Length"}


def test_head_has_headers_and_no_body(client: Client) -> None:
    get = client.get("/api/counters")
    head = client.request("HEAD", "/api/counters")
    assert head.status == 200
    assert head.body == b""
    assert head.headers["content-length"] == str(len(get.body))


def test_keep_alive_serves_several_requests_on_one_connection(server: WebServer) -> None:
    import http.client

    c = Client(server.url)
    conn = http.client.HTTPConnection(c.host, c.port, timeout=5)
    try:
        for path, status in (("/api/calls", 200), ("/nope", 404), ("/api/rates", 200)):
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == status
    finally:
        conn.close()


def test_callback_exception_is_500_without_traceback(
    fake: FakePipeline, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> list[dict]:
        raise KeyError("secret internal detail")

    srv = WebServer("127.0.0.1", 0, token=None, state=fake.state(active_calls=broken))
    srv.start()
    try:
        with caplog.at_level("ERROR", logger="sipcm.web.server"):
            r = Client(srv.url).get("/api/calls")
        assert (r.status, r.json()) == (500, {"error": "internal error (see the sensor log)"})
        assert b"secret" not in r.body
        assert b"Traceback" not in r.body
        assert "secret internal detail" in caplog.text
        # The server still answers afterwards.
        assert Client(srv.url).get("/api/rates").status == 200
    finally:
        srv.stop()


def test_busy_pipeline_503(fake: FakePipeline) -> None:
    srv = WebServer("127.0.0.1", 0, token=None, state=fake.state(lock_timeout_s=0.05))
    srv.start()
    try:
        with fake.lock:  # the pipeline is in the middle of a long batch
            r = Client(srv.url).get("/api/counters")
        assert (r.status, r.json()) == (503, {"error": "the pipeline is busy; try again"})
        assert r.headers["retry-after"] == "1"
        assert Client(srv.url).get("/api/counters").status == 200
    finally:
        srv.stop()


def test_callables_run_under_the_pipeline_lock(client: Client, fake: FakePipeline) -> None:
    for path in ("/api/counters", "/api/events", "/api/calls", "/api/registrations"):
        assert client.get(path).status == 200
    for path in ("/api/blacklist", "/api/rates", "/api/config", "/metrics"):
        assert client.get(path).status == 200
    assert fake.lock_held_in_callbacks


def test_concurrent_requests(client: Client) -> None:
    results: list[int] = []

    def worker() -> None:
        for _ in range(5):
            results.append(client.get("/api/events?limit=3").status)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [200] * 30


def test_call_outcomes_asr_ner_and_failures_by_code(client: Client, fake: FakePipeline) -> None:
    fake.counters["call_outcomes"] = dict(OUTCOMES)
    # 12 calls: 6 answered; effective also 486 x2 and 487 (user side): 9
    assert client.get("/api/call-outcomes").json() == {
        "attempted": 12,
        "answered": 6,
        "effective": 9,
        "asr": 0.5,
        "ner": 0.75,
        "ner_user_codes": [480, 486, 487, 600, 603],
        "failures": [
            {
                "outcome": "486",
                "meaning": "Busy Here",
                "calls": 2,
                "share": 0.1667,
                "user_side": True,
            },
            {
                "outcome": "timeout",
                "meaning": "no final reply (timeout)",
                "calls": 2,
                "share": 0.1667,
                "user_side": False,
            },
            {
                "outcome": "487",
                "meaning": "Request Terminated",
                "calls": 1,
                "share": 0.0833,
                "user_side": True,
            },
            {
                "outcome": "503",
                "meaning": "Service Unavailable",
                "calls": 1,
                "share": 0.0833,
                "user_side": False,
            },
        ],
    }


def test_auth_sources_limit_and_totals(client: Client) -> None:
    body = client.get("/api/auth-sources?limit=1").json()
    assert body == {
        "total": 260,
        "sources": 2,
        "capacity": 10000,
        "untracked": 7,
        "top": [
            {
                "source_ip": "192.0.2.66",
                "failures": 251,
                "first_ns": 1714557598250000000,
                "last_ns": 1714557605000000000,
            }
        ],
    }
    assert len(client.get("/api/auth-sources").json()["top"]) == 2
    r = client.get("/api/auth-sources?limit=0")
    assert (r.status, r.json()) == (
        400,
        {"error": "limit must be an integer from 1 to 1000, got '0'"},
    )


def test_history_all_and_after(client: Client, fake: FakePipeline) -> None:
    body = client.get("/api/history").json()
    assert (body["interval_s"], body["capacity"], body["window_s"]) == (5.0, 720, 60.0)
    assert body["samples"] == fake.history
    last_two = fake.history[-3]["t"]
    assert client.get(f"/api/history?after={last_two}").json()["samples"] == fake.history[-2:]
    r = client.get("/api/history?after=x")
    assert r.status == 400
