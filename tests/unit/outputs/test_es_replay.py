"""Config to Elasticsearch, end to end: `sipcm replay` with the Elasticsearch output enabled
delivers every event once to a server speaking the bulk API, with the index template; its
summary counts what was delivered, queued on disk or dropped, and the exit status says when
events remain undelivered; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sipcm.outputs.elasticsearch import doc_id, encode_event
from tests.conftest import CORPUS, REPO
from tests.fakees import FakeES

PCAP = CORPUS / "zeek" / "sip-wireshark.pcap"
pytestmark = pytest.mark.needs_shared("corpus")
BASE = [sys.executable, "-m", "sipcm", "-E", "stats_interval=0"]


def es_args(es: FakeES, spool: Path, *more: str) -> list[str]:
    return [
        *BASE,
        "-E", "outputs.console.enabled=false",
        "-E", "outputs.elasticsearch.enabled=true",
        "-E", f"outputs.elasticsearch.hosts=[{es.url}]",
        "-E", "outputs.elasticsearch.flush_interval=50ms",
        "-E", f"outputs.elasticsearch.spool_dir={spool}",
        *more,
    ]  # fmt: skip


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=120, check=False)


@pytest.fixture(scope="module")
def expected() -> list[dict]:
    console = run([*BASE, "replay", "--summary", "none", str(PCAP)])
    assert console.returncode == 0, console.stderr
    return [json.loads(line) for line in console.stdout.splitlines()]


def summary(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("output ")]


def test_replay_ships_every_event_to_elasticsearch(tmp_path: Path, expected: list[dict]) -> None:
    with FakeES() as es:
        res = run([*es_args(es, tmp_path / "spool"), "replay", str(PCAP)])
        assert res.returncode == 0, res.stderr
        assert es.sources == expected
        assert es.ids == [doc_id(encode_event(d)).decode() for d in expected]
        assert list(es.templates) == ["logs-sipcm.sip"]
        assert {index for index, _ in es.docs} == {"logs-sipcm.sip-default"}
    assert len(expected) == 12  # the hand-derived list of tests/events/test_wireshark.py
    assert summary(res.stderr) == [
        "output elasticsearch: 12 delivered, 0 queued on disk, 0 dropped, 0 dead-lettered"
    ]


def test_undelivered_events_give_a_non_zero_exit_then_the_next_run_sends_them(
    tmp_path: Path, expected: list[dict]
) -> None:
    spool = tmp_path / "spool"
    with FakeES() as es:
        es.stop()
        args = es_args(es, spool, "-E", "outputs.elasticsearch.max_retries=0")
        res = run([*args, "replay", "--summary", "json", str(PCAP)])
        assert res.returncode == 3, res.stderr
        rows = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
        assert rows[1] == {
            "output": "elasticsearch",
            "delivered": 0,
            "queued": 12,
            "dropped": 0,
            "dead_lettered": 0,
            "already_indexed": 0,
        }
        assert res.stderr.splitlines()[-1] == (
            "sipcm: error: events not delivered: elasticsearch: 12 queued (queued events are "
            "sent by the next run with the same spool_dir; see the dead-letter file for "
            "rejected ones)"
        )
        es.start()
        # The same capture again: the 12 queued go out, the 12 new ones are the same events
        # (same bytes, same _id) and Elasticsearch already has them.
        res = run([*args, "replay", str(PCAP)])
        assert res.returncode == 0, res.stderr
        assert es.sources == expected
        assert summary(res.stderr) == [
            "output elasticsearch: 24 delivered (12 already indexed), 0 queued on disk, "
            "0 dropped, 0 dead-lettered"
        ]


def test_rejected_documents_are_dead_lettered_and_reported(
    tmp_path: Path, expected: list[dict]
) -> None:
    with FakeES(reject=lambda d: 400 if d["event"]["action"] == "reg-new" else None) as es:
        res = run([*es_args(es, tmp_path / "spool"), "replay", str(PCAP)])
    assert res.returncode == 3
    assert summary(res.stderr) == [
        "output elasticsearch: 10 delivered, 0 queued on disk, 0 dropped, 2 dead-lettered"
    ]
    rows = (tmp_path / "spool" / "dead-letter.ndjson").read_text().splitlines()
    assert [json.loads(r)["document"] for r in rows] == [
        d for d in expected if d["event"]["action"] == "reg-new"
    ]


def test_sigterm_stops_replay_between_batches_and_closes_outputs(tmp_path: Path) -> None:
    with FakeES() as es:
        # Paced at 10x, the capture would take about 2.5 minutes.
        args = [*es_args(es, tmp_path / "spool"), "replay", "--speed", "10", str(PCAP)]
        proc = subprocess.Popen(args, cwd=REPO, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not es.docs and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert es.docs, "no event reached Elasticsearch"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert time.monotonic() - t0 < 10
        assert proc.returncode == 128 + signal.SIGTERM, err
        n = len(es.docs)
    assert 0 < n < 12
    assert summary(err) == [
        f"output elasticsearch: {n} delivered, 0 queued on disk, 0 dropped, 0 dead-lettered"
    ]
    assert err.splitlines()[-1] == "sipcm: stopped by SIGTERM; outputs flushed and closed"
    assert "Traceback" not in err
