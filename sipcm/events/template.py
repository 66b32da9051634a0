"""The composable Elasticsearch index template for sipcm's data stream, built from `schema.FIELDS`.

Input: the schema, and the data stream lifecycle retention. Output: the JSON body of
`PUT _index_template/<TEMPLATE_NAME>`, following Elastic's integration conventions: composed of
`logs@settings`, `ecs@mappings` and `<name>@custom` (the user's own changes, which may be
missing), a data stream lifecycle, and `_meta` naming the sipcm and ECS versions it was built
for plus a hash of its content (`content_hash`), so `sipcm setup` can tell an unchanged sipcm
template from one a user edited. It never talks to Elasticsearch.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from sipcm import __version__
from sipcm.events.schema import ECS_VERSION, FIELDS, Field

TEMPLATE_NAME = "logs-sipcm.sip"
INDEX_PATTERN = "logs-sipcm.sip-*"
DATASET = "sipcm.sip"

# constant_keyword values fixed by the data stream name; namespace is whatever the stream says.
_CONSTANT = {"data_stream.type": "logs", "data_stream.dataset": DATASET}
# Stack component templates every logs-*-* integration builds on.
BASE_COMPONENTS = ("logs@settings", "ecs@mappings")


def template_version(version: str = __version__) -> int:
    """The index template's integer `version`: sipcm X.Y.Z gives X*1000000 + Y*1000 + Z."""
    nums = [int(m.group()) if (m := re.match(r"\d+", p)) else 0 for p in version.split(".")[:3]]
    major, minor, patch = [*nums, 0, 0][:3]
    return major * 1_000_000 + minor * 1000 + patch


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


def index_template(
    index_pattern: str = INDEX_PATTERN,
    priority: int = 200,
    *,
    name: str = TEMPLATE_NAME,
    retention: str | None = None,
) -> dict[str, Any]:
    """Body of the composable index template for the data stream `index_pattern`.

    Priority 200 puts it above the built-in `logs-*-*` template (priority 100). `retention`
    (an Elasticsearch time unit, e.g. "30d"; None keeps data forever) is the data stream
    lifecycle's; `index.lifecycle.prefer_ilm: false` lets it win over the ILM policy that
    `logs@settings` names.
    """
    custom = f"{name}@custom"
    lifecycle: dict[str, Any] = {"enabled": True}
    if retention:
        lifecycle["data_retention"] = retention
    body: dict[str, Any] = {
        "index_patterns": [index_pattern],
        "data_stream": {},
        "priority": priority,
        "composed_of": [*BASE_COMPONENTS, custom],
        "ignore_missing_component_templates": [custom],
        "template": {
            "settings": {"index": {"lifecycle": {"prefer_ilm": False}}},
            "mappings": mappings(),
            "lifecycle": lifecycle,
        },
        "version": template_version(),
        "_meta": {
            "managed_by": "sipcm",
            "sipcm_version": __version__,
            "ecs_version": ECS_VERSION,
        },
    }
    body["_meta"]["content_hash"] = content_hash(body)
    return body


def content_hash(body: dict[str, Any]) -> str:
    """SHA-256 (16 hex digits) of the template in a normal form that survives Elasticsearch's
    storage: `_meta.content_hash` left out, settings flattened to dotted keys with string
    values, `enabled: true` in the lifecycle and false/empty top-level and data_stream options
    (which Elasticsearch adds) dropped, every scalar written as a string, keys sorted."""
    norm = {k: v for k, v in body.items() if v is not False and v is not None}
    norm["_meta"] = {k: v for k, v in (body.get("_meta") or {}).items() if k != "content_hash"}
    norm["data_stream"] = {k: v for k, v in (body.get("data_stream") or {}).items() if v}
    tpl = dict(body.get("template") or {})
    if "settings" in tpl:
        tpl["settings"] = _flat_settings(tpl["settings"])
    if "lifecycle" in tpl:
        tpl["lifecycle"] = {k: v for k, v in tpl["lifecycle"].items() if k != "enabled" or not v}
    norm["template"] = tpl
    data = json.dumps(_as_strings(norm), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def _as_strings(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _as_strings(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_as_strings(v) for v in node]
    return str(node).lower() if isinstance(node, bool) else str(node)


def _flat_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in settings.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_settings(v, key + "."))
        else:
            out[key] = str(v).lower() if isinstance(v, bool) else str(v)
    if not prefix:  # index.x and x name the same setting
        out = {k if k.startswith("index.") else f"index.{k}": v for k, v in out.items()}
    return out
