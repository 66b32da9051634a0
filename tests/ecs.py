"""ECS validator for sipcm documents, shared by every test in the project.

`validate(doc)` returns a list of problems (empty when valid); `assert_valid(doc)` fails the test
with all of them. Checks, after flattening the nested document to dotted names:
- every field is declared in `sipcm.events.schema` with a matching value type;
- every field outside `sip.*` and `sipcm.*` exists in ECS with the same type (ECS definitions
  come from `tests/ecs_subset.yml`, generated from the full `ecs_flat.yml` by
  `python -m tests.gen_ecs_subset` and checked against it when `../shared` is present);
- values have the Python type their field type needs (keyword -> str, long -> int not bool,
  float -> int or float, boolean -> bool, ip -> IPv4/IPv6 text, date -> RFC 3339 text,
  object -> dict); lists only where ECS or the schema says array, and array fields are lists;
- `allowed_values` (event.kind/category/type/outcome) and `expected_values`
  (network.direction) are respected, and each event.type is expected for one of the categories;
- no empty values (None, "", [], {}) and the required fields are present.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cache
from typing import Any

import yaml

from sipcm.events.schema import BY_NAME
from tests.gen_ecs_subset import SUBSET

PRODUCT = ("sip.", "sipcm.")
REQUIRED = ("@timestamp", "ecs.version", "event.kind", "event.action", "event.dataset")
STRINGS = frozenset({"keyword", "constant_keyword", "wildcard", "match_only_text", "text"})
INTEGERS = frozenset({"long", "integer", "short", "byte", "unsigned_long"})
FLOATS = frozenset({"float", "double", "scaled_float", "half_float"})
_RFC3339 = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)"
    r"(\.\d{1,9})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)


@cache
def ecs_subset() -> dict[str, Any]:
    """tests/ecs_subset.yml (`ecs_version`, `fields`), loaded once per test session."""
    with SUBSET.open("rb") as fh:
        return yaml.safe_load(fh)


def ecs_fields() -> dict[str, dict[str, Any]]:
    """ECS definitions by dotted name of the ECS fields sipcm emits."""
    return ecs_subset()["fields"]


@cache
def _maps() -> frozenset[str]:
    """Fields whose value is a whole dict: schema objects, ECS flattened fields and ECS objects
    without sub-fields (`labels`); ECS objects with sub-fields (`observer.ingress`) are paths."""
    ecs = ecs_fields()
    parents = {k.rsplit(".", 1)[0] for k in ecs if "." in k}
    names = {f.name for f in BY_NAME.values() if f.type == "object"}
    for k, v in ecs.items():
        if v["type"] == "flattened" or (v["type"] == "object" and k not in parents):
            names.add(k)
    return frozenset(names)


def flatten(doc: dict[str, Any], prefix: str = "", errors: list[str] | None = None) -> dict:
    """Dotted name -> value; stops at map-valued fields and at lists. Keys containing a dot
    are reported in `errors` (documents must be nested)."""
    out: dict[str, Any] = {}
    maps = _maps()
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if errors is not None and "." in key:
            errors.append(f"{name}: dotted key in a nested document")
        if isinstance(value, dict) and value and name not in maps:
            out.update(flatten(value, name + ".", errors))
        else:
            out[name] = value
    return out


def _type_error(ftype: str, value: Any, leaf: str | None = None) -> str | None:
    """Why `value` cannot be a value of type `ftype`, or None."""
    if ftype in STRINGS:
        ok = isinstance(value, str)
    elif ftype in INTEGERS:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif ftype in FLOATS:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif ftype == "boolean":
        ok = isinstance(value, bool)
    elif ftype == "ip":
        if not isinstance(value, str):
            return f"ip must be a string, got {value!r}"
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return f"not an IP address: {value!r}"
        return None
    elif ftype in ("date", "date_nanos"):
        ok = isinstance(value, str) and _RFC3339.match(value) is not None
    elif ftype in ("object", "flattened"):
        if not isinstance(value, dict):
            return f"{ftype} must be a dict, got {value!r}"
        if leaf:
            for k, v in _leaves(value):
                err = _type_error(leaf, v)
                if err:
                    return f"{k}: {err}"
        return None
    else:
        return f"validator does not know type {ftype}"
    return None if ok else f"{ftype} cannot hold {type(value).__name__} {value!r}"


def _leaves(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.extend(_leaves(v, f"{prefix}{k}."))
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and not value)


def _check_field(name: str, value: Any) -> list[str]:
    errors = []
    ecs = ecs_fields().get(name)
    decl = BY_NAME.get(name)
    in_product = name.startswith(PRODUCT)
    if _is_empty(value):
        return [f"{name}: empty value {value!r} (omit the field instead)"]
    if not in_product and ecs is None:
        errors.append(f"{name}: not an ECS field")
    if decl is None:
        errors.append(f"{name}: not declared in sipcm.events.schema")
    elif ecs is not None and decl.type != ecs["type"]:
        errors.append(f"{name}: schema type {decl.type}, ECS type {ecs['type']}")
    ftype = decl.type if decl is not None else ecs["type"] if ecs is not None else None
    if ftype is None:
        return errors
    is_array = (decl.array if decl is not None else False) or (
        ecs is not None and "array" in ecs.get("normalize", ())
    )
    if isinstance(value, list):
        if not is_array:
            errors.append(f"{name}: list value but the field is not an array")
        values = value
    else:
        if is_array:
            errors.append(f"{name}: array field needs a list, got {value!r}")
        values = [value]
    leaf = decl.leaf if decl is not None else None
    for v in values:
        err = _type_error(ftype, v, leaf)
        if err:
            errors.append(f"{name}: {err}")
            continue
        if ecs is not None and isinstance(v, str):
            allowed = ecs.get("allowed_values")
            if allowed and v not in {a["name"] for a in allowed}:
                errors.append(f"{name}: {v!r} is not an ECS allowed value")
            expected = ecs.get("expected_values")
            if expected and v not in expected:
                errors.append(f"{name}: {v!r} is not an ECS expected value")
    return errors


def _check_event_types(flat: dict[str, Any]) -> list[str]:
    cats = flat.get("event.category")
    types = flat.get("event.type")
    if not isinstance(cats, list) or not isinstance(types, list):
        return []
    expected: set[str] = set()
    by_name = {a["name"]: a for a in ecs_fields()["event.category"]["allowed_values"]}
    for c in cats:
        expected.update(by_name.get(c, {}).get("expected_event_types") or ())
    return [
        f"event.type: {t!r} is not expected for categories {cats}"
        for t in types
        if expected and t not in expected
    ]


def validate(doc: dict[str, Any]) -> list[str]:
    """Every problem with `doc` as a sipcm ECS document (empty list when valid)."""
    if not isinstance(doc, dict):
        return [f"document must be a dict, got {type(doc).__name__}"]
    errors: list[str] = []
    flat = flatten(doc, "", errors)
    for name, value in flat.items():
        errors.extend(_check_field(name, value))
    errors.extend(f"{r}: required field missing" for r in REQUIRED if r not in flat)
    errors.extend(_check_event_types(flat))
    return errors


def assert_valid(doc: dict[str, Any]) -> None:
    """Fail with every problem found by `validate`."""
    errors = validate(doc)
    assert not errors, "invalid ECS document:\n  " + "\n  ".join(errors)
