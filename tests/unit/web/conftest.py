"""Fixtures: a web server on 127.0.0.1 (ephemeral port) over a fake pipeline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sipcm.web.server import WebServer
from tests.unit.web.client import Client
from tests.unit.web.fakestate import FakePipeline


@pytest.fixture
def fake() -> FakePipeline:
    return FakePipeline()


@pytest.fixture
def server(fake: FakePipeline) -> Iterator[WebServer]:
    srv = WebServer("127.0.0.1", 0, token=None, state=fake.state())
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: WebServer) -> Client:
    return Client(server.url)
