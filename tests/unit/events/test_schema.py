"""Schema against ECS, the index template built from it, and the module's command line."""

from __future__ import annotations

import json

import pytest

from sipcm.events import schema
from sipcm.events.template import index_template
from tests.conftest import ECS_FLAT
from tests.ecs import ecs_fields, ecs_subset


def test_schema_agrees_with_ecs() -> None:
    assert schema.check_ecs(ecs_fields()) == []


def test_check_reports_disagreements() -> None:
    fake = {"source.ip": {"type": "keyword", "normalize": []}}
    errors = schema.check_ecs(fake)
    assert "source.ip: type ip, ECS says keyword" in errors
    assert "ecs.version: not an ECS field" in errors


def test_field_names_are_unique() -> None:
    assert len(schema.BY_NAME) == len(schema.FIELDS)


def test_ecs_version_is_the_one_of_the_ecs_definitions() -> None:
    assert ecs_subset()["ecs_version"] == schema.ECS_VERSION


@pytest.mark.needs_shared("ecs/ecs_flat.yml")
def test_schema_agrees_with_the_full_ecs_file() -> None:
    """Against every ECS field: also catches a product field that shadows an ECS name."""
    import yaml

    with ECS_FLAT.open("rb") as fh:
        full = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert schema.check_ecs(full) == []


def test_template_maps_every_field() -> None:
    t = index_template()
    assert t["index_patterns"] == ["logs-sipcm.sip-*"]
    assert t["data_stream"] == {}
    assert t["priority"] == 200
    m = t["template"]["mappings"]
    assert m["date_detection"] is False
    assert m["dynamic"] is False
    props = m["properties"]
    for f in schema.FIELDS:
        node = {"properties": props}
        for part in f.name.split("."):
            node = node["properties"][part]
        assert node["type"] == f.type, f.name
    assert props["sip"]["properties"]["code"] == {"type": "long"}
    assert props["user_agent"]["properties"]["original"] == {
        "type": "keyword",
        "ignore_above": 1024,
        "fields": {"text": {"type": "match_only_text"}},
    }
    assert props["data_stream"]["properties"]["dataset"] == {
        "type": "constant_keyword",
        "value": "sipcm.sip",
    }
    assert m["dynamic_templates"] == [
        {"sipcm_counters": {"path_match": "sipcm.counters.*", "mapping": {"type": "long"}}}
    ]
    json.dumps(t)  # plain JSON


@pytest.mark.needs_shared("ecs/ecs_flat.yml")
def test_cli_check_markdown_template(capsys) -> None:
    assert schema.main(["--check", str(ECS_FLAT), "--markdown", "--template"]) == 0
    out = capsys.readouterr().out
    assert f"{len(schema.FIELDS)} fields, 0 problems" in out
    assert "| `sip.call.pdd` | float | Post-dial delay" in out
    assert "| `sip.call_id` | keyword | Call-ID. | a Call-ID (encrypt_call_ids) |" in out
    assert '"index_patterns": [' in out


def test_config_event_names_are_the_builder_actions_plus_stats() -> None:
    """`event_types_blst` validation (config) and the builder agree on the event names."""
    from sipcm.config.schema import EVENT_NAMES
    from sipcm.events.build import ACTIONS

    assert set(EVENT_NAMES) == ACTIONS | {"stats"}
    assert len(EVENT_NAMES) == len(set(EVENT_NAMES))
