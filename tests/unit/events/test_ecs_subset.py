"""tests/ecs_subset.yml: the ECS definitions the validator uses, generated from ecs_flat.yml."""

from __future__ import annotations

import pytest

from sipcm.events.schema import FIELDS
from tests import gen_ecs_subset
from tests.conftest import ECS_FLAT
from tests.ecs import ecs_fields


@pytest.mark.needs_shared("ecs/ecs_flat.yml", "ecs/README.md")
def test_subset_is_what_the_generator_makes_from_the_full_ecs_file() -> None:
    assert gen_ecs_subset.SUBSET.read_text() == gen_ecs_subset.render(ECS_FLAT), (
        "tests/ecs_subset.yml is stale: run python -m tests.gen_ecs_subset"
    )


def test_subset_holds_exactly_the_emitted_ecs_fields() -> None:
    emitted = {f.name for f in FIELDS if not f.name.startswith(("sip.", "sipcm."))}
    assert set(ecs_fields()) == emitted


def test_subset_keeps_the_categorization_values() -> None:
    fields = ecs_fields()
    kinds = [a["name"] for a in fields["event.kind"]["allowed_values"]]
    assert {"event", "metric", "alert"} <= set(kinds)
    outcomes = [a["name"] for a in fields["event.outcome"]["allowed_values"]]
    assert outcomes == ["failure", "success", "unknown"]
    network = next(a for a in fields["event.category"]["allowed_values"] if a["name"] == "network")
    assert {"start", "end", "info", "connection"} <= set(network["expected_event_types"])
    assert fields["event.type"]["normalize"] == ["array"]


def test_generator_refuses_a_field_missing_from_ecs() -> None:
    with pytest.raises(ValueError, match=r"not ECS fields: @timestamp, client\.ip,"):
        gen_ecs_subset.subset({}, "0")
