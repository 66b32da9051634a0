"""kill -9 of a process shipping to Elasticsearch, then a restart: every event the output had
accepted (write() returned) before the kill arrives exactly once, checked by `_id`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sipcm.outputs.elasticsearch import ElasticsearchOutput, doc_id, encode_event
from tests.conftest import REPO
from tests.fakees import FakeES, Slow

STEP = 25
# Writes batches of STEP events {"n": i} forever, printing the running total once write()
# has returned for the batch: what a line says was accepted.
CHILD = f"""
import sys, time
from collections import Counter
from sipcm.outputs.elasticsearch import ElasticsearchOutput
out = ElasticsearchOutput(
    [sys.argv[1]], counters=Counter(), spool_dir=sys.argv[2], batch_size=40,
    flush_interval_s=0.01, retry_backoff_s=0.005, retry_backoff_max_s=0.02,
    request_timeout_s=2.0, max_retries=2,
)
i = 0
while True:
    out.write([{{"n": n}} for n in range(i, i + {STEP})])
    i += {STEP}
    print(i, flush=True)
    time.sleep(0.002)
"""


def _kill_after(url: str, spool: Path, accepted_at_least: int) -> int:
    """Run the writer, kill -9 it once it reports `accepted_at_least`; return what it had
    reported accepted by then."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(spool)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    accepted = 0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            accepted = int(line)
            if accepted >= accepted_at_least:
                os.kill(proc.pid, signal.SIGKILL)
                break
        rest = proc.stdout.read()  # lines printed before the signal landed
        accepted = max([accepted, *(int(x) for x in rest.split())])
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    return accepted


@pytest.mark.parametrize("scenario", ["outage", "mid-delivery"])
def test_kill_9_then_restart_delivers_every_accepted_event_once(
    tmp_path: Path, scenario: str
) -> None:
    spool = tmp_path / "spool"
    with FakeES() as es:
        if scenario == "outage":
            es.stop()  # refused connections for the whole life of the first process
        else:
            es.script_bulk(*[Slow(0.03)] * 10_000)  # bulks in flight when the kill lands
        accepted = _kill_after(es.url, spool, 600)
        if scenario == "outage":
            assert es.docs == []
            es.start()
        es.clear_script()
        before = len(es.docs)
        c: Counter[str] = Counter()
        out = ElasticsearchOutput(
            [es.url], counters=c, spool_dir=str(spool), batch_size=100, flush_interval_s=0.01,
            flush_timeout_s=20.0,
        )  # fmt: skip
        out.close()
        assert out.pending == 0
        # The batch being written at the kill may have landed too; nothing else.
        total = len(es.docs)
        assert total in (accepted, accepted + STEP)
        assert sorted(d["n"] for d in es.sources) == list(range(total))
        assert es.ids == [doc_id(encode_event(d)).decode() for d in es.sources]
        assert len(set(es.ids)) == total
        assert c["published"] == total - before + c["already_indexed"]
        if scenario == "mid-delivery":
            assert before > 0  # some were delivered before the kill
