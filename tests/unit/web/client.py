"""A tiny HTTP client for the web tests (http.client, so headers and bodies are exact)."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        assert self.headers["content-type"] == "application/json; charset=utf-8"
        return json.loads(self.body)


class Client:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname
        self.port = parts.port

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            return Reply(resp.status, hdrs, data)
        finally:
            conn.close()

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return self.request("GET", path, headers=headers)

    def put_json(self, path: str, obj: object, headers: dict[str, str] | None = None) -> Reply:
        body = json.dumps(obj).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        return self.request("PUT", path, body=body, headers=hdrs)
