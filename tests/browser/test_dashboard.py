"""The dashboard in a real headless browser (Debian's chromium) against a fake pipeline.

Chromium loads the page from a server on 127.0.0.1, runs its script under a virtual-time budget
(several 2 s polls of the API) and dumps the rendered DOM or a screenshot; the tests check that
the live counters, a recent event's Call-ID, an active call and a registration from the fake
state appear, that the token flow works, and that the screenshot is a real picture.
"""

from __future__ import annotations

import copy
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sipcm.web.server import WebServer
from tests.unit.web.fakestate import ENDED_CALL, OUTCOMES, FakePipeline

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)
TOKEN = "browser-Token-123"
DASH = "\u2013"  # what the page shows for "no value yet"
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"})


def chromium(tmp_path: Path, url: str, *mode: str, budget_ms: int = 5000) -> str:
    """Run headless chromium on `url` with a fresh profile; returns stdout."""
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = [
        CHROMIUM or "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        *mode,
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


class Dom(HTMLParser):
    """Text content, classes and `hidden` per element id, from chromium's --dump-dom output."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.attrs: dict[str, dict[str, str | None]] = {}
        self._stack: list[tuple[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        ident = a.get("id")
        if ident:
            self.text[ident] = ""
            self.attrs[ident] = a
        if tag not in VOID:
            self._stack.append((tag, ident))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            open_tag, _ = self._stack.pop()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, ident in self._stack:
            if ident:
                self.text[ident] += data

    def rows(self, table_id: str, html: str) -> list[list[str]]:
        """The body rows of a table as lists of cell texts."""
        start = html.index(f'id="{table_id}"')
        segment = html[start : html.index("</table>", start)]
        body = segment[segment.index("<tbody>") :]
        return [
            [_strip_tags(c) for c in row.split("</td>")[:-1]] for row in body.split("</tr>")[:-1]
        ]


def _strip_tags(fragment: str) -> str:
    out, depth = [], 0
    for ch in fragment:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out).strip().replace("&amp;", "&")


@pytest.fixture
def served() -> Iterator[tuple[FakePipeline, WebServer]]:
    fake = FakePipeline()
    fake.calls.append(copy.deepcopy(ENDED_CALL))
    fake.counters["call_outcomes"] = dict(OUTCOMES)
    srv = WebServer("127.0.0.1", 0, token=None, state=fake.state())
    srv.start()
    yield fake, srv
    srv.stop()


def test_dashboard_renders_live_state(tmp_path: Path, served) -> None:
    _, srv = served
    html = chromium(tmp_path, srv.url, "--dump-dom")
    dom = Dom(html)
    assert dom.text["status"] == "live"
    # Live counters (tiles and the counter table).
    assert dom.text["tile-messages"] == "4,242"
    assert dom.text["tile-events"] == "6"
    assert dom.text["tile-errors"] == "5"
    assert dom.text["tile-lost"] == "2"
    assert dom.text["tile-calls"] == "1"  # the other call has ended
    assert dom.text["tile-regs"] == "2"
    # Call outcomes: 12 calls, 6 answered, 3 more the users decided (486 x2, 487).
    assert dom.text["tile-asr"] == "50.0%"
    assert dom.text["tile-asr-rate"] == "6 of 12 calls answered"
    assert dom.text["tile-ner"] == "75.0%"
    assert dom.text["tile-ner-rate"] == "9 of 12 effective"
    assert dom.rows("failures", html) == [
        ["486", "Busy Here", "2", "16.7%", "user"],
        ["timeout", "no final reply (timeout)", "2", "16.7%", "network"],
        ["487", "Request Terminated", "1", "8.3%", "user"],
        ["503", "Service Unavailable", "1", "8.3%", "network"],
    ]
    assert dom.text["failures-count"] == "(6 of 12 calls)"
    assert dom.rows("auth", html) == [
        ["192.0.2.66", "251", "2024-05-01 09:59:58Z", "2024-05-01 10:00:05Z"],
        ["198.51.100.7", "2", "2024-05-01 10:00:01Z", "2024-05-01 10:00:02Z"],
    ]
    assert dom.text["auth-count"] == "(260 failures from 2 sources)"
    assert dom.text["auth-note"] == (
        "7 failures came from sources beyond the table's 10,000 addresses and are counted in "
        "the total only"
    )
    # Charts from the sensor's history (13 samples, 5 s apart, on the capture clock).
    assert dom.text["history-info"] == (
        "History: 13 samples from 2024-05-01 09:59:10Z to 2024-05-01 10:00:10Z (capture "
        "clock; kept by the sensor, at most 720)"
    )
    assert "SIP messages12.0/s" in dom.text["legend-traffic"]
    assert "eth0 ingress frames3.00/s" in dom.text["legend-traffic"]
    assert dom.text["legend-events"] == "call-start2.00/sreg-new1.00/s"
    assert dom.text["tile-messages-rate"] == "12.0/s"
    counters = dom.rows("counters", html)
    assert ["ring_records", "4,321", "0/s"] in counters
    assert ["eth0 / ingress", "3,100", "0/s"] in counters
    # Recent events, newest first, with their Call-IDs.
    events = dom.rows("events", html)
    assert [(r[1], r[2]) for r in events] == [
        ("auth-failed", "cid-C@h"),
        ("call-end", "cid-A@h"),
        ("call-start", "cid-B@h"),
        ("parse-error", ""),
        ("call-start", "cid-A@h"),
        ("reg-new", "reg-1@h"),
    ]
    assert events[0][0] == "2024-05-01 10:00:05.000Z"
    assert events[0][7:9] == ["192.0.2.66:5060", "10.0.0.2:5060"]
    # The active call and the ended one: readable states, durations (the fake is not live:
    # they stay as the sensor measured them).
    assert dom.rows("calls", html) == [
        [
            "cid-B@h",
            "answered",
            "sip:carol@example.com",
            "sip:dave@example.com",
            "10.0.0.3:5060",
            "10.0.0.2:5060",
            "2024-05-01 10:00:03Z",
            "2024-05-01 10:00:04Z",
            "0:05",
            "2024-05-01 10:00:04Z",
        ],
        [
            "cid-A@h",
            "ended: BYE by caller",
            "sip:alice@example.com",
            "sip:bob@example.com",
            "10.0.0.1:5060",
            "10.0.0.2:5060",
            "2024-05-01 10:00:00Z",
            "2024-05-01 10:00:01Z",
            "0:03",
            "2024-05-01 10:00:04Z",
        ],
    ]
    regs = dom.rows("regs", html)
    assert [r[:3] for r in regs] == [
        ["sip:alice@example.com", "sip:alice@10.0.0.1:5062", "3600 s"],
        ["sip:bob@example.com", "sip:bob@10.0.0.5", "600 s"],
    ]
    assert dom.text["calls-count"] == "(1 active, 1 ended)"
    assert dom.text["regs-count"] == "(2)"
    assert dom.rows("rates", html) == [
        [
            "auth-failed",
            "192.0.2.66",
            "blacklisted",
            "251",
            "140",
            "1s: 31/20  1min: 251/240  1h: 251/3600",
            "2024-05-01 10:00:05.000Z",
            "2024-05-01 09:59:58.250Z",
        ],
        [
            "reg-new",
            "10.0.0.1",
            "ok",
            "1",
            "0",
            "1s: 1 (not limited)  1min: 1 (not limited)  1h: 1 (not limited)",
            "2024-05-01 10:00:00.000Z",
            "",
        ],
    ]
    assert dom.text["rates-count"] == "(2)"
    # The blacklist editor shows the valid names; the filter offers them too.
    assert "msg-probe" in dom.text["blacklist"]
    assert "call-start" in dom.text["f-action"]
    assert dom.attrs["login"].get("hidden") is not None


def test_token_taken_from_url_once(tmp_path: Path) -> None:
    fake = FakePipeline()
    srv = WebServer("127.0.0.1", 0, token=TOKEN, state=fake.state())
    srv.start()
    try:
        html = chromium(tmp_path, f"{srv.url}?token={TOKEN}", "--dump-dom")
        dom = Dom(html)
        assert dom.text["status"] == "live"
        assert dom.text["tile-messages"] == "4,242"
        assert dom.rows("calls", html)[0][0] == "cid-B@h"
        # Without a token (fresh profile, empty sessionStorage) the page asks for one.
        html = chromium(tmp_path, srv.url, "--dump-dom")
        dom = Dom(html)
        assert dom.text["status"] == "access token required"
        assert dom.attrs["login"].get("hidden") is None
        assert dom.attrs["main"].get("hidden") is not None
        assert dom.text["tile-messages"] == DASH
        assert "cid-B@h" not in html
        # A wrong token is refused the same way.
        dom = Dom(chromium(tmp_path, f"{srv.url}?token=nope", "--dump-dom"))
        assert dom.text["status"] == "access token required"
        assert "was refused" in dom.text["login-msg"]
    finally:
        srv.stop()


def _growing(fake: FakePipeline):
    """A counters() that advances the fake traffic on every read, with matching events."""
    state = {"n": 0}
    actions = ("call-start", "reg-new", "call-end", "auth-failed")

    def counters() -> dict:
        state["n"] += 1
        n = state["n"]
        c = fake.counters
        c["sip"]["messages"] += 40 + 10 * (n % 5)
        c["interfaces"]["eth0/ingress"] += 30 + 5 * (n % 3)
        c["interfaces"]["eth0/egress"] += 12
        for i in range(1 + n % 3):
            doc = copy.deepcopy(fake.recent[1])
            doc["event"]["action"] = actions[(n + i) % len(actions)]
            fake.recent.append(doc)
            c["events"]["published"] += 1
        return copy.deepcopy(c)

    return counters


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR"
    assert length == 13
    return struct.unpack(">II", data[16:24])


def _png_rows(data: bytes) -> int:
    """Decompress the image data (all IDAT chunks) and return its length."""
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return len(zlib.decompress(idat))


def test_screenshot_with_charts(tmp_path: Path) -> None:
    fake = FakePipeline()
    srv = WebServer("127.0.0.1", 0, token=None, state=fake.state(counters=_growing(fake)))
    srv.start()
    try:
        shot = tmp_path / "dashboard.png"
        chromium(
            tmp_path,
            srv.url,
            f"--screenshot={shot}",
            "--window-size=1400,1600",
            budget_ms=12000,
        )
        html = chromium(tmp_path, srv.url, "--dump-dom", budget_ms=9000)
    finally:
        srv.stop()
    data = shot.read_bytes()
    width, height = _png_size(data)
    assert (width, height) == (1400, 1600)
    assert _png_rows(data) >= height * width * 3
    # A blank page of this size compresses to a few kB; the dashboard is far richer.
    assert len(data) > 60_000
    dom = Dom(html)
    # The charts' legends show current per-second rates once two samples exist.
    traffic = dom.text["legend-traffic"]
    assert "eth0 ingress frames" in traffic
    assert "SIP messages" in traffic
    assert DASH not in traffic
    legend_events = dom.text["legend-events"]
    assert "call-start" in legend_events
    assert "reg-new" in legend_events
    # The table is kept from incremental fetches (after=): no event lost or shown twice.
    shown, published = map(
        int, re.fullmatch(r"\((\d+) shown, (\d+) published\)", dom.text["events-count"]).groups()
    )
    assert shown == published > 6
    assert len(dom.rows("events", html)) == shown


# -- in a driven browser (DevTools protocol): layout, the time toggle, reloads --------------


@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    from tests.browser.cdp import Browser

    opened: list[Browser] = []

    def open_browser(width: int = 1280, tz: str = "UTC") -> Browser:
        b = Browser(tmp_path, width, 900, tz=tz)
        opened.append(b)
        return b

    yield open_browser
    for b in opened:
        b.close()


LIVE = "document.getElementById('status').textContent === 'live'"
FILLED = LIVE + " && document.querySelectorAll('#calls tbody tr').length === 2"
OVERFLOW = """[document.documentElement.scrollWidth - window.innerWidth,
  ...[...document.querySelectorAll('table')]
     .map((t) => t.scrollWidth - t.parentElement.clientWidth),
  ...[...document.querySelectorAll('td, th')].filter((c) => getComputedStyle(c).display !== 'none')
     .map((c) => c.getBoundingClientRect().right - window.innerWidth)]"""


@pytest.mark.parametrize(
    ("width", "calls_columns"),
    [(1280, 10), (800, 6)],  # at 800 px Client, Server, Answered, Last activity give way
)
def test_tables_fit_the_window(served, browser, width: int, calls_columns: int) -> None:
    _, srv = served
    b = browser(width)
    b.goto(srv.url)
    b.wait(FILLED)
    assert b.eval("window.innerWidth") == width
    overflow = b.eval(OVERFLOW)
    assert max(overflow) <= 0, overflow  # no horizontal scrolling: page, tables, cells
    calls = b.rows("calls")
    assert [len(r) for r in calls] == [calls_columns, calls_columns]
    assert calls[0][:2] == ["cid-B@h", "answered"]
    # A cut value keeps its full text as the cell's title.
    title = b.eval("document.querySelector('#calls tbody td:nth-child(3)').title")
    assert title == "sip:carol@example.com"


def test_time_toggle_changes_every_time_and_is_remembered(served, browser) -> None:
    _, srv = served
    b = browser(1280, tz="Asia/Kolkata")  # UTC+05:30, no daylight saving
    b.goto(srv.url)
    b.wait(FILLED)
    assert b.text("tz") == "UTC"
    assert b.rows("events")[0][0] == "2024-05-01 10:00:05.000Z"
    assert b.rows("calls")[0][6] == "2024-05-01 10:00:03Z"
    assert b.rows("auth")[0][2:] == ["2024-05-01 09:59:58Z", "2024-05-01 10:00:05Z"]
    assert b.rows("rates")[0][6] == "2024-05-01 10:00:05.000Z"
    assert b.text("history-info").startswith("History: 13 samples from 2024-05-01 09:59:10Z")
    b.eval("document.getElementById('tz').click()")
    assert b.text("tz") == "local time"
    assert b.rows("events")[0][0] == "2024-05-01 15:30:05.000"
    assert b.rows("calls")[0][6] == "2024-05-01 15:30:03"
    assert b.rows("regs")[0][3] == "2024-05-01 15:30:00"
    assert b.rows("auth")[0][2:] == ["2024-05-01 15:29:58", "2024-05-01 15:30:05"]
    assert b.rows("rates")[0][6] == "2024-05-01 15:30:05.000"
    assert b.text("history-info").startswith("History: 13 samples from 2024-05-01 15:29:10 ")
    # Remembered (localStorage) across a reload.
    b.reload()
    b.wait(FILLED + " && document.getElementById('tz').textContent === 'local time'")
    assert b.rows("calls")[0][6] == "2024-05-01 15:30:03"
    b.eval("document.getElementById('tz').click()")
    assert b.rows("calls")[0][6] == "2024-05-01 10:00:03Z"


def test_history_survives_a_reload(served, browser) -> None:
    fake, srv = served
    b = browser(1280)
    b.goto(srv.url)
    b.wait(FILLED)
    first = b.text("history-info")
    assert first.startswith("History: 13 samples from 2024-05-01 09:59:10Z to ")
    legends = [b.text(f"legend-{c}") for c in ("traffic", "events")]
    assert "SIP messages12.0/s" in legends[0]
    # The sensor samples on; a reloaded page shows every sample from the first, at once.
    last = fake.history[-1]
    for i in (1, 2):
        c = {k: v + i * 60 for k, v in last["c"].items()}  # 12/s everywhere
        fake.history.append({"t": last["t"] + i * 5_000_000_000, "c": c, "calls": last["calls"]})
    b.reload()
    b.wait(LIVE + " && document.getElementById('history-info').textContent.includes('15 samples')")
    assert b.text("history-info") == (
        "History: 15 samples from 2024-05-01 09:59:10Z to 2024-05-01 10:00:20Z (capture "
        "clock; kept by the sensor, at most 720)"
    )
    assert "SIP messages12.0/s" in b.text("legend-traffic")
    assert "call-start12.0/s" in b.text("legend-events")
    # The chart is drawn from those samples: its canvas is not blank.
    painted = b.eval(
        "(() => { const c = document.getElementById('chart-traffic');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; })()"
    )
    assert painted > 2000
