"""tests/ecs.py: the validator must accept a good document and catch each kind of mistake."""

from __future__ import annotations

import copy

import pytest

from tests.ecs import assert_valid, flatten, validate

GOOD = {
    "@timestamp": "2023-11-14T22:13:20.123456789Z",
    "ecs": {"version": "9.5.0-dev"},
    "event": {
        "action": "call-start",
        "kind": "event",
        "category": ["network", "session"],
        "type": ["start"],
        "outcome": "success",
        "dataset": "sipcm.sip",
        "module": "sipcm",
        "duration": 5,
    },
    "source": {"ip": "192.0.2.1", "port": 5060},
    "destination": {"ip": "2001:db8::1", "port": 5060},
    "network": {"vlan": {"id": "10"}, "direction": "ingress"},
    "observer": {"ingress": {"interface": {"name": "eth0"}}},
    "related": {"ip": ["192.0.2.1"]},
    "sip": {"code": 200, "call": {"pdd": 12, "reconstructed": False}},
    "sipcm": {"counters": {"decode": {"ip4_bad_header": 3}}},
}


def changed(path: str, value: object) -> dict:
    doc = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return doc


def test_good_document_passes() -> None:
    assert validate(GOOD) == []
    assert_valid(GOOD)


def test_flatten_stops_at_free_objects_only() -> None:
    flat = flatten(GOOD)
    assert flat["observer.ingress.interface.name"] == "eth0"  # ECS object with sub-fields
    assert flat["sipcm.counters"] == {"decode": {"ip4_bad_header": 3}}  # schema object
    assert flat["event.category"] == ["network", "session"]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("source.hostname_typo", "x", "source.hostname_typo: not an ECS field"),
        ("sip.nonexistent", "x", "sip.nonexistent: not declared in sipcm.events.schema"),
        ("source.port", "5060", "source.port: long cannot hold str '5060'"),
        ("source.port", True, "source.port: long cannot hold bool True"),
        ("source.ip", "999.1.1.1", "source.ip: not an IP address: '999.1.1.1'"),
        ("network.vlan.id", 10, "network.vlan.id: keyword cannot hold int 10"),
        ("sip.call.reconstructed", 0, "sip.call.reconstructed: boolean cannot hold int 0"),
        ("sip.call.pdd", "12", "sip.call.pdd: float cannot hold str '12'"),
        ("@timestamp", "2023-11-14 22:13:20", "@timestamp: date cannot hold str"),
        ("@timestamp", 1700000000, "@timestamp: date cannot hold int"),
        ("event.kind", "happening", "event.kind: 'happening' is not an ECS allowed value"),
        ("event.outcome", "ok", "event.outcome: 'ok' is not an ECS allowed value"),
        ("event.category", ["voip"], "event.category: 'voip' is not an ECS allowed value"),
        ("event.type", ["error"], "event.type: 'error' is not expected for categories"),
        ("event.type", "start", "event.type: array field needs a list, got 'start'"),
        ("source.ip", ["192.0.2.1"], "source.ip: list value but the field is not an array"),
        ("network.direction", "sideways", "network.direction: 'sideways' is not an ECS expected"),
        ("event.reason", "", "event.reason: empty value '' (omit the field instead)"),
        ("event.reason", None, "event.reason: empty value None"),
        ("related.ip", [], "related.ip: empty value []"),
        ("sipcm.counters", {"x": {"y": "1"}}, "sipcm.counters: x.y: long cannot hold str"),
        ("sipcm.counters", 3, "sipcm.counters: object must be a dict, got 3"),
        ("related.ip", ["192.0.2.1", "nope"], "related.ip: not an IP address: 'nope'"),
    ],
)
def test_each_mistake_is_caught(path: str, value: object, expected: str) -> None:
    errors = validate(changed(path, value))
    assert any(e.startswith(expected) for e in errors), errors
    with pytest.raises(AssertionError, match="invalid ECS document"):
        assert_valid(changed(path, value))


def test_dotted_keys_and_missing_required_fields() -> None:
    doc = copy.deepcopy(GOOD)
    del doc["ecs"]
    doc["source.ip"] = "192.0.2.9"
    errors = validate(doc)
    assert "source.ip: dotted key in a nested document" in errors
    assert "ecs.version: required field missing" in errors


def test_ecs_field_declared_with_other_type_in_schema_is_reported(monkeypatch) -> None:
    from sipcm.events import schema

    monkeypatch.setitem(schema.BY_NAME, "source.port", schema.Field("source.port", "keyword", ""))
    errors = validate(changed("source.port", "5060"))
    assert "source.port: schema type keyword, ECS type long" in errors
