"""`/metrics`: Prometheus text format 0.0.4 parsed back with a strict little parser."""

from __future__ import annotations

import re

import pytest

from sipcm.web.metrics import CONTENT_TYPE, render, sanitize
from sipcm.web.state import MetricsView
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
            assert kind in ("counter", "gauge"), line
            fams[name]["type"] = kind
        else:
            m = _SAMPLE.match(line)
            assert m, f"bad sample line {line!r}"
            name, labels_text, value = m.groups()
            assert name == current, f"sample {name} outside its family"
            labels: list[tuple[str, str]] = []
            if labels_text:
                pos = 0
                while pos < len(labels_text):
                    lm = _LABEL.match(labels_text, pos)
                    assert lm, f"bad labels in {line!r}"
                    labels.append((lm.group(1), _unescape(lm.group(2))))
                    pos = lm.end()
            key = tuple(labels)
            assert key not in fams[name]["samples"], f"duplicate sample {line!r}"
            fams[name]["samples"][key] = float(value)
    return fams


def test_metrics_endpoint_exact(client: Client) -> None:
    r = client.get("/metrics")
    assert r.status == 200
    assert r.headers["content-type"] == CONTENT_TYPE
    fams = parse(r.body.decode())
    assert list(fams) == sorted(fams)
    values = {name: (f["type"], dict(f["samples"])) for name, f in fams.items()}
    assert values == {
        "sipcm_active_calls": ("gauge", {(): 1}),
        "sipcm_blacklisted_event_types": ("gauge", {(): 1}),
        "sipcm_capture_ring_batches_total": ("counter", {(): 7}),
        "sipcm_capture_ring_records_total": ("counter", {(): 4321}),
        "sipcm_events_blacklisted_msg_probe_total": ("counter", {(): 3}),
        "sipcm_events_generated_total": ("counter", {(): 9}),
        "sipcm_events_published_total": ("counter", {(): 6}),
        "sipcm_interface_frames_total": (
            "counter",
            {
                (("interface", "eth0"), ("direction", "egress")): 1200,
                (("interface", "eth0"), ("direction", "ingress")): 3100,
                (("interface", "lo"), ("direction", "ingress")): 21,
            },
        ),
        "sipcm_kernel_ring_full_lost_total": ("counter", {(): 2}),
        "sipcm_kernel_seen_total": ("counter", {(): 99001}),
        "sipcm_recent_events": ("gauge", {(): 6}),
        "sipcm_registrations": ("gauge", {(): 2}),
        "sipcm_sip_messages_total": ("counter", {(): 4242}),
        "sipcm_sip_parse_errors_total": ("counter", {(): 5}),
        "sipcm_track_active_calls": ("gauge", {(): 1}),
        "sipcm_track_active_registrations": ("gauge", {(): 2}),
    }
    assert fams["sipcm_events_blacklisted_msg_probe_total"]["help"] == (
        "sipcm counter events.blacklisted_msg-probe"
    )
    assert fams["sipcm_registrations"]["help"] == "registration bindings cached"


def test_metrics_follow_the_pipeline(client: Client, fake) -> None:
    fake.counters["sip"]["messages"] += 58
    fake.calls.clear()
    fams = parse(client.get("/metrics").body.decode())
    assert fams["sipcm_sip_messages_total"]["samples"] == {(): 4300}
    assert fams["sipcm_active_calls"]["samples"] == {(): 0}


def _view(counters: dict) -> MetricsView:
    return MetricsView(counters, 0, 0, 0, 0)


def test_sanitizing_and_collisions_sum() -> None:
    text = render(_view({"output.es": {"bulk-errors": 2, "bulk_errors": 3, "päck/s": 1}}))
    fams = parse(text)
    assert fams["sipcm_output_es_bulk_errors_total"]["samples"] == {(): 5}
    assert fams["sipcm_output_es_bulk_errors_total"]["help"] == (
        "sipcm counter output.es.bulk-errors, output.es.bulk_errors"
    )
    assert fams["sipcm_output_es_p_ck_s_total"]["samples"] == {(): 1}
    assert sanitize("") == "_"
    assert sanitize("a-b.c d") == "a_b_c_d"


def test_label_and_help_escaping() -> None:
    weird = 'we"ird\\if\nname'
    text = render(_view({"interfaces": {f"{weird}/ingress": 4, "noslash": 1}, "g": {"x\ny": 1}}))
    fams = parse(text)
    assert fams["sipcm_interface_frames_total"]["samples"] == {
        (("interface", weird), ("direction", "ingress")): 4,
        (("interface", "noslash"), ("direction", "")): 1,
    }
    assert fams["sipcm_g_x_y_total"]["help"] == "sipcm counter g.x\ny"
    assert "\\n" in text
    assert 'we\\"ird\\\\if\\nname' in text


def test_gauge_groups_are_gauges_without_total() -> None:
    fams = parse(
        render(_view({"track_active": {"calls": 3}, "sip": {"messages": 1}}), ["track_active"])
    )
    assert fams["sipcm_track_active_calls"]["type"] == "gauge"
    assert fams["sipcm_track_active_calls"]["samples"] == {(): 3}
    assert fams["sipcm_sip_messages_total"]["type"] == "counter"
    fams = parse(render(_view({"track_active": {"calls": 3}})))
    assert fams["sipcm_track_active_calls_total"]["type"] == "counter"


def test_order_is_stable_regardless_of_input_order() -> None:
    a = render(
        _view({"b": {"y": 1, "x": 2}, "a": {"z": 3}, "interfaces": {"q/egress": 1, "p/x": 2}})
    )
    b = render(
        _view({"interfaces": {"p/x": 2, "q/egress": 1}, "a": {"z": 3}, "b": {"x": 2, "y": 1}})
    )
    assert a == b
    names = [line.split()[2] for line in a.splitlines() if line.startswith("# TYPE")]
    assert names == sorted(names)


@pytest.mark.parametrize("value", [0, 1, 2**63 + 5])
def test_integer_values_exact(value: int) -> None:
    text = render(_view({"g": {"n": value}}))
    assert f"sipcm_g_n_total {value}\n" in text
