"""`/metrics`: Prometheus text format 0.0.4 parsed back with a strict little parser and with
prometheus_client's; families, HELP and zeros from sipcm.counterdefs."""

from __future__ import annotations

import os
import re

import pytest

from sipcm.counterdefs import COUNTERS, HISTOGRAMS, PLAIN, WEB_GAUGES
from sipcm.web.metrics import CONTENT_TYPE, render
from sipcm.web.state import MetricsView
from tests.metricsutil import families
from tests.unit.web.client import Client

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def parse(text: str) -> dict[str, dict]:
    """Families by name: {"help", "type", "samples": {labels tuple: value}}, in text order.

    Strict: every sample belongs to the family declared just before it, each family is
    declared once with HELP then TYPE, label syntax and escapes are checked."""
    assert text.endswith("\n")
    fams: dict[str, dict] = {}
    current: str | None = None
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert re.fullmatch(_NAME, name), line
            assert name not in fams, f"family {name} declared twice"
            fams[name] = {"help": _unescape(help_text), "type": None, "samples": {}}
            current = name
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name == current, line
            assert fams[name]["type"] is None, line
            assert kind in ("counter", "gauge", "histogram"), line
            fams[name]["type"] = kind
        else:
            m = _SAMPLE.match(line)
            assert m, f"bad sample line {line!r}"
            name, labels_text, value = m.groups()
            suffixes = ("_bucket", "_sum", "_count") if fams[current]["type"] == "histogram" else ()
            assert name == current or name in {f"{current}{x}" for x in suffixes}, (
                f"sample {name} outside its family"
            )
            name = current
            labels: list[tuple[str, str]] = []
            if labels_text:
                pos = 0
                while pos < len(labels_text):
                    lm = _LABEL.match(labels_text, pos)
                    assert lm, f"bad labels in {line!r}"
                    labels.append((lm.group(1), _unescape(lm.group(2))))
                    pos = lm.end()
            key = (m.group(1), *labels) if m.group(1) != name else tuple(labels)
            assert key not in fams[name]["samples"], f"duplicate sample {line!r}"
            fams[name]["samples"][key] = float(value)
    return fams


def _sipcm(fams: dict[str, dict]) -> dict[str, tuple[str, dict]]:
    """The sipcm families with a non-zero sample: name -> (type, {labels: value})."""
    return {
        name: (f["type"], {k: v for k, v in f["samples"].items() if v})
        for name, f in fams.items()
        if name.startswith("sipcm_") and any(f["samples"].values())
    }


def test_metrics_endpoint_exact(client: Client) -> None:
    r = client.get("/metrics")
    assert r.status == 200
    assert r.headers["content-type"] == CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    text = r.body.decode()
    fams = parse(text)
    assert list(fams) == sorted(fams)
    families(text)  # and prometheus_client's own parser reads it
    assert _sipcm(fams) == {
        "sipcm_blacklisted_event_types": ("gauge", {(): 1}),
        "sipcm_build_info": ("gauge", {(("version", "0.1.0"),): 1}),
        "sipcm_capture_ring_batches_total": ("counter", {(): 7}),
        "sipcm_capture_ring_records_total": ("counter", {(): 4321}),
        "sipcm_events_blacklisted_total": ("counter", {(("action", "msg-probe"),): 3}),
        "sipcm_events_generated_total": ("counter", {(): 9}),
        "sipcm_events_published_total": ("counter", {(): 6}),
        "sipcm_interface_frames_total": (
            "counter",
            {
                (("direction", "egress"), ("interface", "eth0")): 1200,
                (("direction", "ingress"), ("interface", "eth0")): 3100,
                (("direction", "ingress"), ("interface", "lo")): 21,
            },
        ),
        "sipcm_kernel_ring_full_lost_total": ("counter", {(): 2}),
        "sipcm_kernel_seen_total": ("counter", {(): 99001}),
        "sipcm_recent_events": ("gauge", {(): 6}),
        "sipcm_sip_messages_total": ("counter", {(): 4242}),
        "sipcm_sip_parse_errors_total": ("counter", {(): 5}),
        "sipcm_track_active_calls": ("gauge", {(): 1}),
        "sipcm_track_active_registrations": ("gauge", {(): 2}),
    }
    # HELP is the declared meaning, not the counter's name
    assert fams["sipcm_events_blacklisted_total"]["help"] == (
        "Events not published because their type is blacklisted (event_types_blst)."
    )
    assert fams["sipcm_kernel_ring_full_lost_total"]["help"] == (
        "Packets lost because the ring buffer was full."
    )
    # zeros: counters never raised, every known label value, empty histograms
    assert fams["sipcm_decode_frag_timeout_total"]["samples"] == {(): 0}
    assert fams["sipcm_events_blacklisted_total"]["samples"][(("action", "call-start"),)] == 0
    responses = fams["sipcm_sip_responses_total"]["samples"]
    assert len(responses) == 15 * 6
    assert set(responses.values()) == {0}
    assert responses[(("code_class", "6xx"), ("method", "other"))] == 0
    assert fams["sipcm_call_pdd_seconds"]["samples"][("sipcm_call_pdd_seconds_count",)] == 0
    # the table sizes are exported once (sipcm_track_active_*), not also as sipcm_active_calls
    assert "sipcm_active_calls" not in fams
    assert "sipcm_registrations" not in fams
    # the main process
    assert fams["process_cpu_seconds_total"]["type"] == "counter"
    assert fams["process_resident_memory_bytes"]["samples"][()] > 0


def test_every_declared_family_is_present_from_the_start() -> None:
    fams = parse(render(MetricsView({}, 0, 0)))
    declared = {d.family for d in COUNTERS if d.group != "call_times"}
    declared |= {h.metric for h in HISTOGRAMS}
    assert declared <= set(fams)
    assert {d.family for d in COUNTERS if not d.labels and d.group != "call_times"} | {
        name for name, _ in WEB_GAUGES
    } == {n for n, f in fams.items() if n.startswith("sipcm_") and f["samples"] == {(): 0}}
    assert len(PLAIN) > 150


def test_metrics_follow_the_pipeline(client: Client, fake) -> None:
    fake.counters["sip"]["messages"] += 58
    fake.counters["track_active"]["dialogs"] = 0
    fams = parse(client.get("/metrics").body.decode())
    assert fams["sipcm_sip_messages_total"]["samples"] == {(): 4300}
    assert fams["sipcm_track_active_dialogs"]["samples"] == {(): 0}


def _view(counters: dict) -> MetricsView:
    return MetricsView(counters, 0, 0)


def test_labelled_groups_become_one_family() -> None:
    text = render(
        _view(
            {
                "sip_requests": {"INVITE": 4, "other": 2},
                "sip_responses": {"INVITE/4xx": 3, "other/2xx": 1},
                "events_published": {"call-start": 2, "stats": 1},
                "rates_limited": {"reg-new": 7},
                "output_elasticsearch": {"dropped": 3, "dropped_spool_full": 3, "template_kept": 1},
            }
        )
    )
    fams = parse(text)
    req = fams["sipcm_sip_requests_total"]["samples"]
    assert req[(("method", "INVITE"),)] == 4
    assert req[(("method", "other"),)] == 2
    assert req[(("method", "BYE"),)] == 0
    resp = fams["sipcm_sip_responses_total"]["samples"]
    assert resp[(("code_class", "4xx"), ("method", "INVITE"))] == 3
    assert resp[(("code_class", "2xx"), ("method", "other"))] == 1
    ev = fams["sipcm_events_total"]["samples"]
    assert ev[(("action", "call-start"),)] == 2
    assert ev[(("action", "stats"),)] == 1
    assert ev[(("action", "reg-del"),)] == 0
    assert fams["sipcm_rates_limited_total"]["samples"][(("action", "reg-new"),)] == 7
    assert fams["sipcm_output_elasticsearch_dropped_total"]["samples"] == {(): 3}
    by_reason = fams["sipcm_output_elasticsearch_dropped_by_reason_total"]["samples"]
    assert by_reason[(("reason", "spool_full"),)] == 3
    assert by_reason[(("reason", "torn"),)] == 0
    tmpl = fams["sipcm_output_elasticsearch_template_total"]["samples"]
    assert tmpl[(("result", "kept"),)] == 1


def test_histograms_are_cumulative_in_seconds() -> None:
    # per-bucket counts in the snapshot (one increment per observation), cumulative at export
    view = _view({"call_times": {"pdd_b0": 2, "pdd_b3": 1, "pdd_b12": 1, "pdd_sum_ms": 61700}})
    fam = parse(render(view))["sipcm_call_pdd_seconds"]
    assert fam["type"] == "histogram"
    buckets = {
        k[1][1]: v for k, v in fam["samples"].items() if k[0] == "sipcm_call_pdd_seconds_bucket"
    }
    assert buckets == {
        "0.1": 2, "0.25": 2, "0.5": 2, "1.0": 3, "2.0": 3, "3.0": 3, "5.0": 3, "8.0": 3,
        "13.0": 3, "20.0": 3, "30.0": 3, "60.0": 3, "+Inf": 4,
    }  # fmt: skip
    assert fam["samples"][("sipcm_call_pdd_seconds_count",)] == 4
    assert fam["samples"][("sipcm_call_pdd_seconds_sum",)] == 61.7
    setup = parse(render(view))["sipcm_call_setup_seconds"]["samples"]
    assert setup[("sipcm_call_setup_seconds_count",)] == 0


def test_label_and_help_escaping() -> None:
    weird = 'we"ird\\if\nname'
    text = render(_view({"interfaces": {f"{weird}/ingress": 4, "lo/unknown": 1}}))
    fams = parse(text)
    assert fams["sipcm_interface_frames_total"]["samples"] == {
        (("direction", "ingress"), ("interface", weird)): 4,
        (("direction", "unknown"), ("interface", "lo")): 1,
    }
    assert 'we\\"ird\\\\if\\nname' in text


def test_gauge_groups_are_gauges_without_total() -> None:
    fams = parse(render(_view({"track_active": {"calls": 3}, "sip": {"messages": 1}})))
    assert fams["sipcm_track_active_calls"]["type"] == "gauge"
    assert fams["sipcm_track_active_calls"]["samples"] == {(): 3}
    assert fams["sipcm_rates_active_rate_entries"]["type"] == "gauge"
    assert fams["sipcm_workers_workers"]["type"] == "gauge"
    assert fams["sipcm_sip_messages_total"]["type"] == "counter"
    assert "sipcm_track_active_calls_total" not in fams


def test_order_is_stable_regardless_of_input_order() -> None:
    a = render(
        _view({"sip": {"probes": 1, "messages": 2}, "interfaces": {"q/egress": 1, "p/x": 2}})
    )
    b = render(
        _view({"interfaces": {"p/x": 2, "q/egress": 1}, "sip": {"messages": 2, "probes": 1}})
    )
    strip = re.compile(r"^(process_|python_).*\n", re.M)  # the process's own figures move
    assert strip.sub("", a) == strip.sub("", b)
    names = [line.split()[2] for line in a.splitlines() if line.startswith("# TYPE")]
    assert names == sorted(names)


@pytest.mark.parametrize("value", [0, 1, 2**53])
def test_integer_values_exact(value: int) -> None:
    fams = families(render(_view({"sip": {"messages": value}})))
    assert fams["sipcm_sip_messages"].samples[0].value == value


def test_worker_processes_cpu_and_memory() -> None:
    gone = os.fork()
    if gone == 0:
        os._exit(0)
    os.waitpid(gone, 0)
    fams = parse(render(MetricsView({}, 0, 0, worker_pids=((0, os.getpid()), (1, gone)))))
    cpu = fams["sipcm_worker_cpu_seconds_total"]["samples"]
    rss = fams["sipcm_worker_resident_memory_bytes"]["samples"]
    assert list(cpu) == list(rss) == [(("worker", "0"),)]  # a process gone has no sample
    assert cpu[(("worker", "0"),)] > 0
    assert rss[(("worker", "0"),)] > 10_000_000
    none = parse(render(MetricsView({}, 0, 0)))
    assert none["sipcm_worker_cpu_seconds_total"]["samples"] == {}
