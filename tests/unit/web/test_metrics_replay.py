"""`/metrics` after real replays: exact values of the labelled families and histograms, the
same families and values for one and two workers, and every metric the Grafana dashboard
queries exported."""

from __future__ import annotations

import json
import re
from pathlib import Path

import promql_parser
import pytest

from tests.conftest import CORPUS, REPO
from tests.metricsutil import families, samples, scrape_replay
from tests.sipgen import MS, T0, Capture, Leg, basic_call

DASHBOARD = REPO / "contrib" / "grafana" / "sipcm.json"


def _nonzero(text: str, name: str) -> dict[tuple, float]:
    return {
        labels: v for (n, labels), v in samples(text).items() if n == name and v
    }  # fmt: skip


@pytest.mark.needs_shared("corpus")
def test_requests_responses_and_events_of_a_corpus_capture() -> None:
    """sngrep/aaa.pcap (tshark: INVITE x11 and CANCEL x11 on the wire, of which 4 and 10
    are retransmissions; the duplicate filter leaves one of each)."""
    text = scrape_replay([CORPUS / "sngrep/aaa.pcap"])
    assert _nonzero(text, "sipcm_sip_requests_total") == {
        (("method", "ACK"),): 7,
        (("method", "CANCEL"),): 1,
        (("method", "INVITE"),): 7,
        (("method", "REGISTER"),): 18,
    }
    assert _nonzero(text, "sipcm_sip_responses_total") == {
        (("code_class", "4xx"), ("method", "CANCEL")): 1,
        (("code_class", "1xx"), ("method", "INVITE")): 4,  # 3 x 100, one 183
        (("code_class", "4xx"), ("method", "INVITE")): 7,  # 403 x2, 407 x3, 408, 480
        (("code_class", "1xx"), ("method", "REGISTER")): 4,
        (("code_class", "2xx"), ("method", "REGISTER")): 3,
        (("code_class", "4xx"), ("method", "REGISTER")): 15,  # 401 x14, 403
    }
    assert _nonzero(text, "sipcm_track_retransmissions_total") == {(): 14}
    assert _nonzero(text, "sipcm_sip_messages_total") == {(): 81}
    assert _nonzero(text, "sipcm_events_total") == {
        (("action", "auth-failed"),): 8,
        (("action", "call-attempt"),): 2,
        (("action", "reg-new"),): 2,
    }
    # every action is there from the start, counted or not
    assert len([k for (n, k) in samples(text) if n == "sipcm_events_total"]) == 13


def _calls(tmp_path: Path) -> Path:
    """Three answered calls (PDD 0.2 s, setup 2 s, 10, 30 and 100 s of talk) and a 486 after
    1.2 s."""
    cap = Capture()
    for i, talk in enumerate((10, 30, 100)):
        leg = Leg(f"ok-{i}@x", a_ip=f"10.0.0.{i + 1}", from_tag=f"f{i}")
        basic_call(cap, leg, T0 + i * MS, talk_s=talk)
    leg = Leg("busy@x", a_ip="10.0.0.9", from_tag="fb")
    inv = leg.req("INVITE")
    cap.a2b(leg, T0, inv.raw)
    leg.to_tag = "tb"
    cap.b2a(leg, T0 + 1200 * MS, leg.resp(inv, 486, "Busy Here"))
    return cap.write(tmp_path / "calls.pcap")


def test_call_time_histograms(tmp_path: Path) -> None:
    text = scrape_replay([_calls(tmp_path)])
    got = samples(text)

    def hist(metric: str) -> dict[str, float]:
        out = {dict(k)["le"]: v for (n, k), v in got.items() if n == f"{metric}_bucket"}
        out["count"] = got[(f"{metric}_count", ())]
        out["sum"] = got[(f"{metric}_sum", ())]
        return out

    pdd = hist("sipcm_call_pdd_seconds")
    assert (pdd["0.1"], pdd["0.25"], pdd["1.0"], pdd["2.0"], pdd["+Inf"]) == (0, 3, 3, 4, 4)
    assert (pdd["count"], pdd["sum"]) == (4, 1.8)
    setup = hist("sipcm_call_setup_seconds")
    assert (setup["1.0"], setup["2.0"], setup["count"], setup["sum"]) == (0, 3, 3, 6.0)
    dur = hist("sipcm_call_duration_seconds")
    assert (dur["5.0"], dur["10.0"], dur["30.0"], dur["60.0"], dur["120.0"]) == (0, 1, 2, 2, 3)
    assert (dur["count"], dur["sum"]) == (3, 140.0)
    assert _nonzero(text, "sipcm_events_total") == {
        (("action", "call-attempt"),): 1,
        (("action", "call-end"),): 3,
        (("action", "call-start"),): 3,
    }


# Families that describe the processes themselves, not what was observed; and the
# fingerprint table, which each worker keeps for its own shard (so its size depends on the
# number of workers, as the memory of their tables does).
_PER_PROCESS = re.compile(r"^(process_|python_|sipcm_worker_|sipcm_workers_)")
_PER_WORKER_TABLE = {"sipcm_track_active_fingerprints"}


@pytest.mark.needs_shared("corpus")
def test_one_and_two_workers_scrape_the_same(tmp_path: Path) -> None:
    files = [_calls(tmp_path), CORPUS / "sngrep/aaa.pcap", CORPUS / "zeek/sip-wireshark.pcap"]
    one = scrape_replay(files, workers=1)
    two = scrape_replay(files, workers=2)
    f1, f2 = families(one), families(two)
    assert set(f1) == set(f2)

    def comparable(text: str) -> dict:
        return {
            k: v
            for k, v in samples(text).items()
            if not _PER_PROCESS.match(k[0]) and k[0] not in _PER_WORKER_TABLE
        }

    assert comparable(one) == comparable(two)
    assert samples(two)[("sipcm_workers_workers", ())] == 2
    assert samples(one)[("sipcm_workers_workers", ())] == 0
    cpu = {k: v for k, v in samples(two).items() if k[0] == "sipcm_worker_cpu_seconds_total"}
    # Two workers: one worker process (the second shard runs in the main process).
    assert sorted(dict(labels)["worker"] for _, labels in cpu) == ["0"]
    rss = {k: v for k, v in samples(two).items() if k[0] == "sipcm_worker_resident_memory_bytes"}
    assert sorted(dict(labels)["worker"] for _, labels in rss) == ["0"]
    # A forked worker that correlated a few calls may not have used one clock tick of CPU
    # yet (/proc counts in 10 ms ticks), but it is a live process with memory of its own.
    assert all(v >= 0 for v in cpu.values())
    assert all(v > 1_000_000 for v in rss.values())


# -- the Grafana dashboard ---------------------------------------------------------------------


def _dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 20
    return exprs


def _metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana's variables given values)."""
    text = expr.replace("$__rate_interval", "5m").replace("$job", ".*")
    names: set[str] = set()

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(text), visit)
    return names


def test_metric_names_are_found_in_expressions() -> None:
    assert _metric_names(
        'histogram_quantile(0.9, sum by (le) (rate(a_bucket{job=~"$job"}[$__rate_interval])))'
        " / on() group_left b"
    ) == {"a_bucket", "b"}


def test_every_panel_of_the_grafana_dashboard_queries_exported_metrics(tmp_path: Path) -> None:
    text = scrape_replay([_calls(tmp_path)], workers=2)  # worker families need workers
    # a family with no sample yet (frames per interface: a replay has no interface) is
    # exported all the same, with its HELP and TYPE
    exported = {name for name, _ in samples(text)}
    exported |= {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    dash = json.loads(DASHBOARD.read_text())
    queried: set[str] = set()
    for expr in _dashboard_queries():
        queried |= _metric_names(expr)
    for var in dash["templating"]["list"]:
        m = re.fullmatch(r"label_values\((\w+), *\w+\)", var.get("query", ""))
        if var["type"] == "query":
            assert m, var
            queried.add(m.group(1))
    assert queried - exported == set()
    # the panels the dashboard promises
    titles = {p["title"] for p in dash["panels"]}
    assert {"Events by action", "Responses by status class", "Capture loss", "Workers"} <= titles
    assert {"sipcm_call_pdd_seconds_bucket", "sipcm_kernel_ring_full_lost_total"} <= queried
