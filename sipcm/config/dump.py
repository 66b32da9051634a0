"""The effective configuration as YAML that loads back (`sipcm config`).

Durations and sizes are written in the units users write ("5m", "16MiB"), each in a form that
parses back to exactly the stored value. A secret that is set is never printed, not even
masked: its line reads `name: null  # set, not shown`, so the output loads back with the secret
unset (give it again with -E or in the file) instead of as the literal mask text. Likewise the
password of a URL (`https://user:pw@host`) is removed, with a comment saying so.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from sipcm.config import kinds as k
from sipcm.config.loader import ROOT
from sipcm.errors import strip_url_passwords

HIDDEN = "null  # set, not shown"
URL_PASSWORD_HIDDEN = "  # URL password set, not shown"
_INDENT = "  "


def written(kind: k.Kind, value: Any) -> Any:
    """`value` as a user writes it in YAML: units for durations/sizes, recursively."""
    if kind.has_unit:
        text = kind.format(value)
        return int(text) if text.isdigit() else text
    if kind.item is not None and isinstance(value, tuple):
        return [written(kind.item, v) for v in value]
    if kind.item is not None and isinstance(value, dict):
        return {name: written(kind.item, v) for name, v in value.items()}
    return value


def _without_url_passwords(value: Any) -> Any:
    """`value` (text, or a list or map of it) with URL passwords removed."""
    if isinstance(value, str):
        return strip_url_passwords(value)
    if isinstance(value, list):
        return [_without_url_passwords(v) for v in value]
    if isinstance(value, dict):
        return {n: _without_url_passwords(v) for n, v in value.items()}
    return value


def _scalar(value: Any) -> str:
    """One YAML value on one line (flow style for lists)."""
    text = yaml.safe_dump([value], default_flow_style=True, width=1 << 30, allow_unicode=True)
    return text.strip()[1:-1]


def _lines(section: Any, depth: int) -> list[str]:
    pad = _INDENT * depth
    out: list[str] = []
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if "section" in f.metadata:
            out.append(f"{pad}{f.name}:")
            out.extend(_lines(value, depth + 1))
            continue
        shown = written(f.metadata["kind"], value)
        stripped = _without_url_passwords(shown)
        note = URL_PASSWORD_HIDDEN if stripped != shown else ""
        shown = stripped
        if f.metadata["secret"] and value:
            out.append(f"{pad}{f.name}: {HIDDEN}")
        elif isinstance(shown, dict) and shown:
            out.append(f"{pad}{f.name}:{note}")
            out.extend(f"{pad}{_INDENT}{_scalar(n)}: {_scalar(v)}" for n, v in shown.items())
        else:
            out.append(f"{pad}{f.name}: {_scalar(shown)}{note}")
    return out


def dump_yaml(cfg: Any) -> str:
    """The YAML text of `cfg` (a Config) under the `sipcm:` root."""
    return "\n".join([f"{ROOT}:", *_lines(cfg, 1)]) + "\n"
