"""The composable Elasticsearch index template for sipcm's data stream, built from `schema.FIELDS`.

Input: nothing but the schema. Output: the JSON body of `PUT _index_template/<TEMPLATE_NAME>`.
It never talks to Elasticsearch; the Elasticsearch output installs it.
"""

from __future__ import annotations

from typing import Any

from sipcm import __version__
from sipcm.events.schema import ECS_VERSION, FIELDS, Field

TEMPLATE_NAME = "logs-sipcm.sip"
INDEX_PATTERN = "logs-sipcm.sip-*"
DATASET = "sipcm.sip"

# constant_keyword values fixed by the data stream name; namespace is whatever the stream says.
_CONSTANT = {"data_stream.type": "logs", "data_stream.dataset": DATASET}


def _mapping(f: Field) -> dict[str, Any]:
    m: dict[str, Any] = {"type": f.type}
    if f.type == "keyword":
        m["ignore_above"] = 1024
    elif f.type == "constant_keyword" and f.name in _CONSTANT:
        m["value"] = _CONSTANT[f.name]
    elif f.type == "object":
        # Leaves under it have dynamic names; dynamic_templates below give them their type.
        m["dynamic"] = True
    if f.text:
        m["fields"] = {"text": {"type": "match_only_text"}}
    return m


def mappings() -> dict[str, Any]:
    """Nested `properties` for every schema field, date detection off, unknown fields unindexed."""
    props: dict[str, Any] = {}
    dynamic_templates = []
    for f in FIELDS:
        *parents, last = f.name.split(".")
        node = props
        for p in parents:
            node = node.setdefault(p, {"properties": {}})["properties"]
        node[last] = _mapping(f)
        if f.leaf:
            dynamic_templates.append(
                {
                    f.name.replace(".", "_"): {
                        "path_match": f"{f.name}.*",
                        "mapping": {"type": f.leaf},
                    }
                }
            )
    return {
        "dynamic": False,
        "date_detection": False,
        "numeric_detection": False,
        "dynamic_templates": dynamic_templates,
        "properties": props,
    }


def index_template(index_pattern: str = INDEX_PATTERN, priority: int = 200) -> dict[str, Any]:
    """Body of the composable index template for the data stream `index_pattern`.

    Priority 200 puts it above the built-in `logs-*-*` template (priority 100).
    """
    return {
        "index_patterns": [index_pattern],
        "data_stream": {},
        "priority": priority,
        "template": {"mappings": mappings()},
        "_meta": {"managed_by": "sipcm", "sipcm_version": __version__, "ecs_version": ECS_VERSION},
    }
