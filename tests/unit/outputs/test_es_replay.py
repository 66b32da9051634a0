"""Config to Elasticsearch, end to end: `sipcm replay` with the Elasticsearch output enabled
delivers every event once to a server speaking the bulk API, with the index template."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import CORPUS, REPO
from tests.fakees import FakeES


def test_replay_ships_every_event_to_elasticsearch(tmp_path: Path) -> None:
    pcap = str(CORPUS / "zeek" / "sip-wireshark.pcap")
    base = [sys.executable, "-m", "sipcm", "-E", "stats_interval=0"]
    console = subprocess.run(
        [*base, "replay", "--summary", "none", pcap],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=True,
    )  # fmt: skip
    expected = [json.loads(line) for line in console.stdout.splitlines()]
    with FakeES() as es:
        res = subprocess.run(
            [
                *base,
                "-E", "outputs.console.enabled=false",
                "-E", "outputs.elasticsearch.enabled=true",
                "-E", f"outputs.elasticsearch.hosts=[{es.url}]",
                "-E", "outputs.elasticsearch.flush_interval=50ms",
                "-E", f"outputs.elasticsearch.spool_dir={tmp_path / 'spool'}",
                "replay", "--summary", "none", pcap,
            ],
            capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert es.sources == expected
        assert list(es.templates) == ["logs-sipcm.sip"]
        assert {index for index, _ in es.docs} == {"logs-sipcm.sip-default"}
    assert len(expected) == 12  # the hand-derived list of tests/events/test_wireshark.py
