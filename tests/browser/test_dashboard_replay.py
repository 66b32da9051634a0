"""The dashboard over `sipcm replay FILE --serve` of a known capture (tests/events/
test_dashboard_data.py's scenario), in a driven headless Chromium: the ASR and NER tiles,
the failures by response code, the auth-failure sources, the history of the replay (capture
clock) and the calls left open, each with exact values written from the generated traffic."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.cdp import CHROMIUM
from tests.browser.test_callpage import serve  # noqa: F401 - the fixture
from tests.browser.test_dashboard import browser  # noqa: F401 - the fixture
from tests.events.test_dashboard_data import scenario

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)


@pytest.mark.parametrize("workers", [1, 2])
def test_replayed_capture_on_the_dashboard(tmp_path: Path, serve, browser, workers) -> None:  # noqa: F811
    path = scenario().write(tmp_path / "dash.pcap")
    served = serve(path, f"workers={workers}", "outputs.console.enabled=false")
    b = browser(1280)
    b.goto(served.url + "/")
    b.wait("document.getElementById('tile-asr').textContent !== '\u2013'")
    # 9 calls: 4 answered; 486 and 487 are the users' decisions too.
    assert b.text("tile-asr") == "44.4%"
    assert b.text("tile-asr-rate") == "4 of 9 calls answered"
    assert b.text("tile-ner") == "66.7%"
    assert b.text("tile-ner-rate") == "6 of 9 effective"
    assert b.rows("failures") == [
        ["403", "Forbidden", "1", "11.1%", "network"],
        ["486", "Busy Here", "1", "11.1%", "user"],
        ["487", "Request Terminated", "1", "11.1%", "user"],
        ["503", "Service Unavailable", "1", "11.1%", "network"],
        ["timeout", "no final reply (timeout)", "1", "11.1%", "network"],
    ]
    # T0 is 2023-11-14 22:13:20Z.
    assert b.rows("auth") == [
        ["198.51.100.7", "3", "2023-11-14 22:13:29Z", "2023-11-14 22:13:30Z"],
        ["203.0.113.9", "1", "2023-11-14 22:13:31Z", "2023-11-14 22:13:31Z"],
    ]
    assert b.text("auth-count") == "(4 failures from 2 sources)"
    assert b.text("history-info") == (
        "History: 4 samples from 2023-11-14 22:13:25Z to 2023-11-14 22:13:37Z (capture "
        "clock; kept by the sensor, at most 720)"
    )
    assert "call-start" in b.text("legend-events")
    # G stays open at the end of the replay: answered at 8 s, the clock stopped at 17.03 s.
    b.wait("document.querySelectorAll('#calls tbody tr td.dur').length === 1")
    (row,) = b.rows("calls")
    assert (row[0], row[1], row[8]) == ("G@x", "answered", "0:09")
    # The calls link to their call page.
    href = b.eval("document.querySelector('#calls a.flow').getAttribute('href')")
    assert href == "/call?id=G%40x"
