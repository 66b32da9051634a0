"""`sipcm replay FILE --serve` and the call page in headless Chromium: after the replay the
dashboard and API stay up over the replayed state; the call page draws one SVG arrow per
message of the flow JSON, between the right host columns, marking retransmissions and copies;
Ctrl-C ends the serving with exit status 0."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.browser.test_dashboard import CHROMIUM, chromium
from tests.conftest import CORPUS, REPO
from tests.events.scen import SDP
from tests.events.test_flow import CALL, proxied_call
from tests.unit.web.client import Client

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, proc: subprocess.Popen, url: str) -> None:
        self.proc, self.url = proc, url


@pytest.fixture
def serve() -> Iterator:
    procs: list[subprocess.Popen] = []

    def start(path: Path, *overrides: str) -> Served:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "sipcm", "replay", str(path), "--serve",
             "-E", f"http_port={port}", *(a for o in overrides for a in ("-E", o))],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        procs.append(proc)
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while line and not line.startswith("sipcm:"):  # log lines (time, level, component)
            line = proc.stderr.readline()
        assert line == (
            f"sipcm: replay done; serving the replayed state at http://127.0.0.1:{port}/ "
            "(Ctrl-C stops)\n"
        )
        return Served(proc, f"http://127.0.0.1:{port}")

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


class Ladder(HTMLParser):
    """Host labels and message arrows (`g.msg`) of the call page's SVG."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.hosts: list[str] = []
        self.arrows: list[dict[str, str | None]] = []
        self.labels: list[str] = []
        self._in: str | None = None
        self.text: dict[str, str] = {}
        self._id: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "g" and "msg" in cls:
            self.arrows.append(a)
        elif tag == "text" and "host" in cls:
            self._in = "host"
        elif tag == "text" and "label" in cls:
            self._in = "label"
        if a.get("id") in ("summary", "flow-count", "events-count", "status", "raw", "sdp"):
            self._id = a["id"]
            self.text[self._id] = ""

    def handle_data(self, data: str) -> None:
        if self._in == "host":
            self.hosts.append(data)
        elif self._in == "label":
            self.labels.append(data)
        if self._id:
            self.text[self._id] += data

    def handle_endtag(self, tag: str) -> None:
        self._in = None
        if tag in ("p", "span", "pre"):
            self._id = None


class FlowLinks(HTMLParser):
    """The targets of the dashboard's flow links (`a.flow`)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.hrefs: set[str] = set()
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and "flow" in (a.get("class") or "").split():
            self.hrefs.add(a.get("href") or "")


def check_page(tmp_path: Path, served: Served, call_id: str) -> dict:
    client = Client(served.url)
    flow = client.get(f"/api/calls/{quote(call_id, safe='')}/flow").json()
    html = chromium(tmp_path, f"{served.url}/call?id={quote(call_id, safe='')}", "--dump-dom")
    page = Ladder(html)
    assert page.text["status"] == "loaded"
    assert page.hosts == flow["hosts"]
    assert [(a["data-from"], a["data-to"], a["data-dup"]) for a in page.arrows] == [
        (str(m["from"]), str(m["to"]), m["dup"]) for m in flow["messages"]
    ]
    marks = {"new": "", "retrans": " [retransmission]", "copy": " [copy]"}
    assert page.labels == [
        (m["first_line"] if len(m["first_line"]) <= 46 else m["first_line"][:45] + "\u2026")
        + marks[m["dup"]]
        for m in flow["messages"]
    ]
    return {"flow": flow, "page": page}


def test_replay_serve_shows_the_ladder_of_a_proxied_call(tmp_path: Path, serve) -> None:
    path = proxied_call().write(tmp_path / "p.pcap")
    served = serve(path, "workers=2")
    got = check_page(tmp_path, served, CALL)
    assert len(got["flow"]["messages"]) == 12
    assert got["page"].text["events-count"] == "(2)"  # call-start, call-end beside the ladder
    assert got["page"].text["flow-count"] == "(12 messages, 3 hosts)"
    # A selected message (clicked, or named in the URL) shows its text and its SDP.
    invite = got["flow"]["messages"][0]["raw"]
    url = f"{served.url}/call?id={quote(CALL, safe='')}#msg-0"
    page = Ladder(chromium(tmp_path, url, "--dump-dom"))
    assert page.text["raw"] == invite.replace("\r\n", "\n")
    assert page.text["sdp"] == SDP.replace("\r\n", "\n")
    calls = Client(served.url).get("/api/events?call_id=" + quote(CALL)).json()
    assert calls["count"] == 2
    served.proc.send_signal(signal.SIGINT)
    _out, err = served.proc.communicate(timeout=60)
    assert served.proc.returncode == 0, err
    assert err.startswith(f"{path}: 12 packets, 12 SIP messages,")


def test_every_call_of_a_corpus_capture_has_its_ladder(tmp_path: Path, serve) -> None:
    pcap = CORPUS / "zeek" / "sip-wireshark.pcap"
    if not pcap.is_file():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    served = serve(pcap)
    events = Client(served.url).get("/api/events?limit=10000").json()["events"]
    calls = sorted({d["sip"]["call_id"] for d in events if "sip" in d})
    assert len(calls) == 6
    for call_id in calls:
        check_page(tmp_path, served, call_id)
    # The dashboard links every Call-ID it lists (registrations, recent events) to its page.
    dash = FlowLinks(chromium(tmp_path, served.url + "/", "--dump-dom"))
    assert dash.hrefs == {"/call?id=" + quote(c, safe="!~*'()") for c in calls}
    served.proc.send_signal(signal.SIGTERM)
    served.proc.communicate(timeout=60)
    assert served.proc.returncode == 0


def test_serve_needs_the_web_interface(tmp_path: Path) -> None:
    path = proxied_call().write(tmp_path / "p.pcap")
    res = subprocess.run(
        [sys.executable, "-m", "sipcm", "replay", str(path), "--serve", "-E", "http_port=0"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr.splitlines()[-1] == (
        "Error: Invalid value for --serve: needs the web interface (http_port is 0)"
    )


def test_call_page_shows_times_in_the_zone_the_dashboard_chose(tmp_path: Path, serve) -> None:
    from tests.browser.cdp import Browser

    path = proxied_call().write(tmp_path / "p.pcap")
    served = serve(path)
    flow = Client(served.url).get(f"/api/calls/{quote(CALL, safe='')}/flow").json()
    first = flow["messages"][0]["time"]  # RFC 3339 UTC with microseconds
    day, clock = first[:10], first[11:-1]
    events = Client(served.url).get("/api/events?call_id=" + quote(CALL)).json()["events"]
    stamps = sorted(d["@timestamp"] for d in events)

    def shifted(iso: str) -> str:  # the same instant in Asia/Kolkata (UTC+05:30), no suffix
        import datetime as dt

        head, frac = iso[:19], iso[19:-1]
        t = dt.datetime.fromisoformat(head) + dt.timedelta(hours=5, minutes=30)
        return t.strftime("%Y-%m-%d %H:%M:%S") + frac

    b = Browser(tmp_path, 1280, 900, tz="Asia/Kolkata")
    try:
        loaded = "document.getElementById('status').textContent === 'loaded'"
        filled = loaded + " && document.querySelectorAll('#events tbody tr').length === 2"
        b.goto(f"{served.url}/call?id={quote(CALL, safe='')}")
        b.wait(filled)
        first_label = "document.querySelector('#msg-0 text.time').textContent"
        assert b.text("tz") == "UTC"
        assert b.eval(first_label) == clock[:12] + "Z"
        assert b.text("summary") == f"first message {day} {clock}Z"
        assert sorted(r[0] for r in b.rows("events")) == [s.replace("T", " ") for s in stamps]
        b.eval("document.getElementById('tz').click()")  # as on the dashboard: remembered
        assert b.text("tz") == "local time"
        local = shifted(first)
        assert b.eval(first_label) == local[11:23]
        assert b.text("summary") == f"first message {local}"
        assert sorted(r[0] for r in b.rows("events")) == sorted(shifted(s) for s in stamps)
        b.reload()
        b.wait(filled)
        assert b.text("tz") == "local time"
        assert b.eval(first_label) == local[11:23]
    finally:
        b.close()
    served.proc.send_signal(signal.SIGINT)
    served.proc.communicate(timeout=60)
    assert served.proc.returncode == 0
