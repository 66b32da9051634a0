"""Load the configuration: YAML file under `sipcm:`, then `-E key=value` overrides, then checks.

Input: an optional file path and a list of override strings. Output: a validated, frozen
`Config`. Every problem raises ConfigError naming the key (full dotted path), the bad value and
what is expected; unknown keys get the closest valid spelling. Secret values are never put in
an error message (shown as "***"), and YAML errors carry only PyYAML's line/column and problem
text, never a snippet of the file.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import TYPE_CHECKING, Any

from sipcm.config import kinds as k
from sipcm.config.rules import check_rules
from sipcm.config.schema import MASK, Config, key_docs
from sipcm.errors import ConfigError, redact_url_passwords

if TYPE_CHECKING:
    import yaml

ROOT = "sipcm"
_OVERRIDE = "-E override"
_LIST_HINT = "run 'sipcm config-keys' to list the valid keys"


@functools.cache
def _unique_key_loader() -> type:
    """SafeLoader that refuses a key repeated in one mapping (PyYAML keeps the last silently).
    PyYAML is imported on first use: a run without a config file or with only plain -E values
    never needs it (its import is a tenth of a short replay's start-up)."""
    import yaml

    class _UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden
                    continue
                name = self.construct_object(key_node, deep=True)
                if name in seen and isinstance(name, str):
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key '{name}'", key_node.start_mark
                    )
                seen.add(name)
            return super().construct_mapping(node, deep)

    return _UniqueKeyLoader


def _yaml_error(exc: yaml.YAMLError) -> str:
    """PyYAML's problem and position, without the source snippet (it may hold a secret)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    return f"{where}: {problem}" + (f" ({context})" if context else "")


def _show(value: Any, secret: bool) -> str:
    """A short rendering of a bad value for a message; secrets become ***."""
    if secret:
        return MASK
    text = redact_url_passwords(json.dumps(value, default=str, ensure_ascii=False))
    return text if len(text) <= 80 else text[:77] + "..."


def _read_file(path: str) -> dict:
    """The mapping under `sipcm:` in the YAML file at `path`."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}", "check the -c path") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"cannot read config file {path}: {reason}",
            "make it a readable UTF-8 file",
        ) from None
    import yaml

    try:
        doc = yaml.load(text, Loader=_unique_key_loader())
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"invalid YAML in {path} at {_yaml_error(exc)}", "fix the YAML syntax there"
        ) from None
    if not isinstance(doc, dict) or ROOT not in doc:
        raise ConfigError(
            f"{path}: no top-level '{ROOT}:' key", f"put every setting under '{ROOT}:'"
        )
    others = [str(name) for name in doc if name != ROOT]
    if others:
        names = ", ".join(f"'{n}'" for n in others)
        known = {d.path.split(".")[0] for d in key_docs()}
        hint = (
            f"did you mean to put {names} under '{ROOT}:'?"
            if all(n in known for n in others)
            else f"only '{ROOT}:' is allowed at the top level"
        )
        raise ConfigError(f"{path}: unexpected top-level key(s) {names}", hint)
    body = doc[ROOT]
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ConfigError(
            f"{path}: '{ROOT}' must be a mapping of keys, got {_show(body, True)}",
            f"write 'key: value' lines indented under '{ROOT}:'",
        )
    return body


def _suggest(cls: type, prefix: str, name: str) -> str:
    """A hint with the closest valid spelling of `prefix + name`."""
    siblings = [f.name for f in dataclasses.fields(cls)]
    import difflib  # errors only: not imported at every start-up

    close = difflib.get_close_matches(name, siblings, n=1)
    if close:
        return f"did you mean '{prefix}{close[0]}'?"
    by_leaf = {d.path.rsplit(".", 1)[-1]: d.path for d in key_docs()}
    import difflib  # errors only: not imported at every start-up

    close = difflib.get_close_matches(name, list(by_leaf), n=1)
    if close:
        return f"did you mean '{by_leaf[close[0]]}'?"
    return _LIST_HINT


def _field(cls: type, prefix: str, name: Any, source: str) -> dataclasses.Field:
    """The schema field `name` of section `cls`, or a ConfigError naming the unknown key."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise ConfigError(
        f"{source}: unknown config key '{prefix}{name}'", _suggest(cls, prefix, str(name))
    )


def _check_keys(cls: type, tree: dict, prefix: str, source: str) -> None:
    """Fail on any key in `tree` (at any depth) that the schema does not have."""
    for name, value in tree.items():
        f = _field(cls, prefix, name, source)
        if "section" in f.metadata:
            _check_keys(f.metadata["section"], _as_section(value, prefix + name, source),
                        prefix + name + ".", source)  # fmt: skip


def _as_section(value: Any, path: str, source: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            f"{source}: '{path}' must be a mapping of keys, got {_show(value, False)}",
            f"write its keys indented under '{path}:' or set them as -E {path}.KEY=VALUE",
        )
    return value


def _apply_override(tree: dict, text: str, origins: dict[str, str]) -> None:
    """Set one `key=value` override (dotted key, YAML value) into the raw tree."""
    name, eq, raw = text.partition("=")
    name = name.strip()
    if not eq or not name:
        raise ConfigError(
            f"bad -E override {text.split('=')[0]!r}: expected key=value",
            "e.g. -E http_port=9090 or -E outputs.console.pretty=true",
        )
    parts = name.split(".")
    if parts[0] == ROOT and len(parts) > 1:
        parts = parts[1:]
    cls, node, prefix = Config, tree, ""
    for i, part in enumerate(parts):
        f = _field(cls, prefix, part, _OVERRIDE)
        path = prefix + part
        last = i == len(parts) - 1
        if "section" in f.metadata:
            if last:
                node[part] = _parse_value(raw, path, None, False)
                _check_keys(f.metadata["section"], _as_section(node[part], path, _OVERRIDE),
                            path + ".", _OVERRIDE)  # fmt: skip
                origins[path] = _OVERRIDE
                return
            node[part] = node_next = dict(_as_section(node.get(part), path, _OVERRIDE))
            cls, node, prefix = f.metadata["section"], node_next, path + "."
            continue
        kind: k.Kind = f.metadata["kind"]
        if last:
            node[part] = _parse_value(raw, path, kind, f.metadata["secret"])
        elif kind.is_map and i == len(parts) - 2:
            current = node.get(part)
            entries = dict(current) if isinstance(current, dict) else {}
            entries[parts[-1]] = _parse_value(raw, path, None, False)
            node[part] = entries
            path = f"{path}.{parts[-1]}"
        else:
            raise ConfigError(
                f"{_OVERRIDE}: '{path}' is a value, not a section: cannot set '{name}'",
                f"use -E {path}=VALUE",
            )
        origins[path] = _OVERRIDE
        return


_NOT_PLAIN = object()


def _plain_int(text: str) -> int | None:
    """A decimal integer written the one way YAML and Python agree on (no sign but "-", no
    leading zero: YAML 1.1 reads 010 as octal, 1_000 as 1000), else None."""
    digits = text[1:] if text.startswith("-") else text
    if digits.isascii() and digits.isdigit() and (digits == "0" or digits[0] != "0"):
        return int(text)
    return None


def _plain_value(text: str) -> Any:
    """What `yaml.safe_load` makes of `text` (spaces stripped) when that is a decimal integer,
    a flow list of them ("[0, 0, 0]"), true or false; `_NOT_PLAIN` for anything else. Spares
    the PyYAML import for the common -E values (workers=2, evr_limits=[0,0,0])."""
    if text in ("true", "false"):
        return text == "true"
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip(" ")
        items = [_plain_int(x.strip(" ")) for x in inner.split(",")] if inner else []
        return _NOT_PLAIN if None in items else items
    value = _plain_int(text)
    return _NOT_PLAIN if value is None else value


def _parse_value(raw: str, path: str, kind: k.Kind | None, secret: bool) -> Any:
    """An override value parsed as YAML; string keys keep the raw text unless YAML gives text."""
    value = _plain_value(raw.strip(" "))
    if value is _NOT_PLAIN:
        value = _parse_yaml(raw, path, kind)
    if kind is not None and kind.is_str and value is not None and not isinstance(value, str):
        return raw.strip()
    return value


def _parse_yaml(raw: str, path: str, kind: k.Kind | None) -> Any:
    if not raw.strip():
        return None
    import yaml

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        if kind is not None and kind.is_str:
            return raw.strip()
        raise ConfigError(
            f"{_OVERRIDE}: value of '{path}' is not valid YAML ({_yaml_error(exc)})",
            "quote strings and write lists as [a, b]",
        ) from None


def _origin(path: str, origins: dict[str, str], default: str) -> str:
    path = path.partition("[")[0]
    while path:
        if path in origins:
            return origins[path]
        path = path.rpartition(".")[0]
    return default


def _build(cls: type, tree: dict, prefix: str, origins: dict[str, str], source: str) -> Any:
    """Convert the raw tree of section `cls` into its dataclass, validating every value."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in tree:
            continue
        path = prefix + f.name
        value = tree[f.name]
        if "section" in f.metadata:
            sub = _as_section(value, path, _origin(path, origins, source))
            values[f.name] = _build(f.metadata["section"], sub, path + ".", origins, source)
            continue
        try:
            values[f.name] = f.metadata["kind"].convert(value)
        except k.UnknownName as exc:
            where = path + exc.sub
            raise ConfigError(
                f"{_origin(where, origins, source)}: unknown config key '{where}'",
                exc.hint.format(path=path),
            ) from None
        except k.Invalid as exc:
            where = path + exc.sub
            bad = exc.value if exc.has_value else value
            raise ConfigError(
                f"{_origin(where, origins, source)}: invalid value for '{where}': "
                f"{_show(bad, f.metadata['secret'])}",
                f"expected {exc.expected}",
            ) from None
    return cls(**values)


def load_config(path: str | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The effective configuration: defaults, then the file at `path`, then `overrides`."""
    tree: dict = {}
    source = "config"
    if path is not None:
        tree = _read_file(path)
        source = str(path)
        _check_keys(Config, tree, "", source)
    origins: dict[str, str] = {}
    for text in overrides:
        _apply_override(tree, text, origins)
    cfg = _build(Config, tree, "", origins, source)
    check_rules(cfg)
    return cfg


def describe() -> str:
    """Every key with its expected form, default and help, for `sipcm config-keys`."""
    lines = []
    for doc in key_docs():
        lines.append(f"{doc.path} (default: {doc.default})")
        lines.append(f"    {doc.help}; {doc.expected}{' [secret]' if doc.secret else ''}")
    return "\n".join(lines)
