"""Value kinds of configuration keys: parse a YAML value, describe what is expected, format it.

Input: one value as PyYAML's safe_load produced it (or as written in the schema). Output: the
stored Python value (durations as float seconds, sizes as int bytes, lists as tuples). A bad
value raises `Invalid` with the expectation text; the loader turns that into a ConfigError.
This module never reads files and never prints values.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class Invalid(Exception):
    """A value does not fit its kind. `sub` locates the bad part (e.g. "[2]", ".inv_1st")."""

    def __init__(self, expected: str, sub: str = "", value: Any = None, *, has_value=False):
        super().__init__(expected)
        self.expected = expected
        self.sub = sub
        self.value = value
        self.has_value = has_value


_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(us|ms|s|m|h|d)")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as "250ms", "30s", "5m", "2h", "1d", "1h30m"."""
    if _is_number(value):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", text):
            seconds = float(text)
        else:
            parts = _DURATION_PART.findall(text)
            if not text or "".join(n + u for n, u in parts) != text:
                raise ValueError(value)
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    else:
        raise ValueError(value)
    if not math.isfinite(seconds):
        raise ValueError(value)
    return seconds


def parse_size(value: Any) -> int:
    """Bytes from an int or a string such as "64KiB", "16MiB", "1GiB", "100MB", "1500"."""
    if _is_number(value):
        number = float(value) if isinstance(value, float) else value
        unit = 1
    elif isinstance(value, str):
        match = _SIZE_RE.fullmatch(value.strip().lower())
        if not match or match.group(2) not in _SIZE_UNITS:
            raise ValueError(value)
        number, unit = float(match.group(1)), _SIZE_UNITS[match.group(2)]
    else:
        raise ValueError(value)
    total = number * unit
    if isinstance(total, float):
        if not math.isfinite(total) or total != int(total):
            raise ValueError(value)
        total = int(total)
    return total


def format_duration(seconds: float) -> str:
    """The shortest form that parses back to exactly `seconds`: 0.005 -> "5ms", 3600 -> "1h",
    1.25 -> "1250ms", 1e-7 -> "0.0000001s"."""
    if seconds == 0:
        return "0s"
    for unit in ("d", "h", "m", "s", "ms", "us"):
        count = round(seconds / _DURATION_UNITS[unit])
        if count >= 1 and float(count) * _DURATION_UNITS[unit] == seconds:
            return f"{count}{unit}"
    from decimal import Decimal  # here: only shown durations need it (start-up time)

    return f"{Decimal(repr(seconds)):f}s"  # positional: the parser takes no exponent


# Size units in the order `format_size` prefers them when two forms are equally short.
_SIZE_FORMS = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024),
               ("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("kB", 1000))  # fmt: skip


def format_size(size: int) -> str:
    """The shortest exact form: 16777216 -> "16MiB", 100000000 -> "100MB", 65535 -> "65535"."""
    forms = [f"{size // factor}{unit}" for unit, factor in _SIZE_FORMS
             if size and size % factor == 0]  # fmt: skip
    return min(forms, key=len, default=str(size))


@dataclass(frozen=True)
class Kind:
    """How one key's value is parsed (`convert`), explained (`expected`) and shown (`format`)."""

    expected: str
    convert: Callable[[Any], Any]
    format: Callable[[Any], str] = repr
    is_str: bool = False  # -E keeps the raw text when YAML does not yield a string
    is_map: bool = False  # dotted keys may address entries (calls_timeouts.inv_1st)
    has_unit: bool = False  # `format` gives the written form with its unit ("5m", "16MiB")
    item: Kind | None = None  # the kind of each list item or map entry
    entries: Mapping[str, tuple[Any, str]] | None = None  # fixed map names: (default, help)


class UnknownName(Invalid):
    """A map key outside the fixed names; `hint` may contain "{path}" for the map's path."""

    def __init__(self, name: str, hint: str) -> None:
        super().__init__(hint, f".{name}")
        self.name = name
        self.hint = hint


def _checked(expected: str, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        try:
            return fn(value)
        except (ValueError, TypeError, Invalid):
            raise Invalid(expected) from None

    return convert


def boolean() -> Kind:
    """true or false (YAML booleans only; 0/1 and other strings are refused)."""

    def conv(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(value)
        return value

    return Kind("true or false", _checked("true or false", conv), lambda v: str(v).lower())


def _bounds(lo: float | None, hi: float | None, fmt: Callable[[Any], str]) -> str:
    if lo is not None and hi is not None:
        return f" from {fmt(lo)} to {fmt(hi)}"
    if lo is not None:
        return " (0 or more)" if lo == 0 else f" of at least {fmt(lo)}"
    return ""


def integer(lo: int | None = None, hi: int | None = None) -> Kind:
    """A whole number within [lo, hi]."""
    expected = "an integer" + _bounds(lo, hi, str)

    def conv(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValueError(value)
        return value

    return Kind(expected, _checked(expected, conv), str)


def port(lo: int = 1) -> Kind:
    """A TCP/UDP port number."""
    expected = f"a port number from {lo} to 65535"
    return Kind(expected, _checked(expected, integer(lo, 65535).convert), str)


def duration(lo: float = 0.0, hi: float | None = None, *, above: bool = False) -> Kind:
    """Seconds as a number or "250ms"/"30s"/"5m"/"2h"/"1d"; `above` excludes `lo` itself."""
    if above:
        expected = f"a duration greater than {format_duration(lo)}"
        if hi is not None:
            expected += f" and at most {format_duration(hi)}"
    else:
        expected = "a duration" + _bounds(lo, hi, format_duration)
    expected += ' (seconds, or e.g. "250ms", "30s", "5m", "2h", "1d")'

    def conv(value: Any) -> float:
        seconds = parse_duration(value)
        if seconds < lo or (above and seconds == lo) or (hi is not None and seconds > hi):
            raise ValueError(value)
        return seconds

    return Kind(expected, _checked(expected, conv), format_duration, has_unit=True)


def size(lo: int = 0, hi: int | None = None, *, power_of_two: bool = False) -> Kind:
    """Bytes as an int or "64KiB"/"16MiB"/"1GiB"/"100MB"."""
    expected = ("a power-of-two size" if power_of_two else "a size") + _bounds(lo, hi, format_size)
    expected += ' in bytes (e.g. 65535, "64KiB", "16MiB", "1GiB", "100MB")'

    def conv(value: Any) -> int:
        n = parse_size(value)
        if n < lo or (hi is not None and n > hi) or (power_of_two and n & (n - 1)):
            raise ValueError(value)
        return n

    return Kind(expected, _checked(expected, conv), format_size, has_unit=True)


def string(
    expected: str = "a string", check: Callable[[str], bool] | None = None, *, quote_hint=True
) -> Kind:
    """Text; null means "" (unset). `check` refuses malformed non-empty text."""
    full = expected + (", quoted in YAML" if quote_hint else "")

    def conv(value: Any) -> str:
        if value is None:
            return ""
        if not isinstance(value, str) or (value and check is not None and not check(value)):
            raise ValueError(value)
        return value

    return Kind(full, _checked(full, conv), lambda v: repr(v) if v == "" else v, is_str=True)


def count_or_auto(hi: int = 1024) -> Kind:
    """A whole number from 1 to `hi`, or `auto` (also written 0; stored as 0 and decided at
    run time)."""
    expected = f"auto (or 0) or an integer from 1 to {hi}"

    def conv(value: Any) -> int:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return 0
        return integer(0, hi).convert(value)

    return Kind(expected, _checked(expected, conv), lambda v: "auto" if v == 0 else str(v))


def choice(options: Sequence[str]) -> Kind:
    """One of a fixed set of words (case-insensitive, stored lower case)."""
    expected = "one of " + ", ".join(options)

    def conv(value: Any) -> str:
        if isinstance(value, str) and value.lower() in options:
            return value.lower()
        import difflib  # errors only: not imported at every start-up

        close = difflib.get_close_matches(str(value).lower(), options, n=1)
        raise Invalid(expected + (f" (did you mean '{close[0]}'?)" if close else ""))

    return Kind(expected, conv, str, is_str=True)


def list_of(item: Kind, length: int | None = None, *, non_empty: bool = False) -> Kind:
    """A YAML list whose items are each of kind `item`; stored as a tuple."""
    expected = f"a list of {length} items" if length else "a list"
    expected += f", each {item.expected}"

    def conv(value: Any) -> tuple:
        if not isinstance(value, list) or (length is not None and len(value) != length):
            raise Invalid(expected)
        if non_empty and not value:
            raise Invalid("a non-empty list, each " + item.expected)
        out = []
        for i, elem in enumerate(value):
            try:
                out.append(item.convert(elem))
            except Invalid as exc:
                raise Invalid(exc.expected, f"[{i}]{exc.sub}", elem, has_value=True) from None
        return tuple(out)

    def fmt(value: tuple) -> str:
        return "[" + ", ".join(item.format(v) for v in value) + "]"

    return Kind(expected, conv, fmt, item=item)


def map_of(item: Kind) -> Kind:
    """A YAML mapping of name -> value of kind `item`; stored as a dict."""
    expected = f"a mapping of names to values, each {item.expected}"

    def conv(value: Any) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise Invalid(expected)
        out = {}
        for name, elem in value.items():
            if not isinstance(name, str) or not name:
                raise Invalid("names that are non-empty strings", f".{name}", name, has_value=True)
            try:
                out[name] = item.convert(elem)
            except Invalid as exc:
                raise Invalid(exc.expected, f".{name}{exc.sub}", elem, has_value=True) from None
        return out

    def fmt(value: dict) -> str:
        return "{" + ", ".join(f"{k}: {item.format(v)}" for k, v in value.items()) + "}"

    return Kind(expected, conv, fmt, is_map=True, item=item)


def fixed_map(item: Kind, table: Mapping[str, tuple[Any, str]], what: str = "name") -> Kind:
    """A mapping whose names come from `table` (name -> (default in written form, help)).
    Stored complete: names not given keep their default, and a value of 0 restores it.
    An unknown name is refused naming the closest valid one (or all of them)."""
    defaults = {name: item.convert(default) for name, (default, _) in table.items()}
    entries = {name: (defaults[name], text) for name, (_, text) in table.items()}
    expected = f"a mapping of {what}s ({', '.join(table)}) to values, each {item.expected}"
    given = map_of(item)

    def conv(value: Any) -> dict:
        if not isinstance(value, dict | None):
            raise Invalid(expected)
        for name in value or {}:
            if name not in table:
                import difflib  # errors only: not imported at every start-up

                close = difflib.get_close_matches(str(name), list(table), n=1)
                hint = f"did you mean '{{path}}.{close[0]}'?" if close else (
                    f"valid {what}s: {', '.join(table)}")  # fmt: skip
                raise UnknownName(str(name), hint)
        out = dict(defaults)
        out.update({n: v for n, v in given.convert(value).items() if v})
        return out

    return Kind(expected, conv, given.format, is_map=True, item=item, entries=entries)


def list_or_map(
    item: Kind, names: Sequence[str], defaults: dict[str, Any], list_name: str = "default"
) -> Kind:
    """Either one value of kind `item` (a list) that becomes the `list_name` entry, or a mapping
    of names (from `names`, or `list_name`) to such values; either is laid over `defaults`, so
    the stored dict always holds every default entry."""
    allowed = (list_name, *names)
    expected = f"{item.expected}, or a mapping of {', '.join(allowed)} to such lists"

    def conv(value: Any) -> dict:
        if isinstance(value, list):
            try:
                return {**defaults, list_name: item.convert(value)}
            except Invalid as exc:
                raise Invalid(exc.expected, exc.sub, exc.value, has_value=exc.has_value) from None
        if value is None:
            return dict(defaults)
        if not isinstance(value, dict):
            raise Invalid(expected)
        out = dict(defaults)
        for name, elem in value.items():
            if name not in allowed:
                import difflib  # errors only: not imported at every start-up

                close = difflib.get_close_matches(str(name), allowed, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise Invalid(f"one of {', '.join(allowed)}{hint}", f".{name}", name,
                              has_value=True)  # fmt: skip
            try:
                out[name] = item.convert(elem)
            except Invalid as exc:
                raise Invalid(exc.expected, f".{name}{exc.sub}", elem, has_value=True) from None
        return out

    def fmt(value: dict) -> str:
        return "{" + ", ".join(f"{k}: {item.format(v)}" for k, v in value.items()) + "}"

    return Kind(expected, conv, fmt, is_map=True)


def is_hostname_or_ip(text: str) -> bool:
    """True for an IPv4/IPv6 literal or an RFC 1123 host name."""
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    return len(text) <= 253 and all(
        re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", label) for label in labels
    )


def is_http_url(text: str) -> bool:
    """True for http(s)://host[:port][/path] with a valid port."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def is_ifname(text: str) -> bool:
    """Linux interface names: 1..15 bytes (IFNAMSIZ - 1), no '/', ':' or whitespace."""
    return (
        0 < len(text.encode()) <= 15 and text not in (".", "..") and not re.search(r"[/:\s]", text)
    )


def is_hex_key(text: str) -> bool:
    """A 128-bit key written as 32 hex digits."""
    return re.fullmatch(r"[0-9A-Fa-f]{32}", text) is not None


def is_user_name(text: str) -> bool:
    """A POSIX-portable user name (or a numeric uid)."""
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|[0-9]+", text) is not None


def is_fingerprint(text: str) -> bool:
    """A SHA-256 certificate fingerprint: 64 hex digits, optionally colon-separated."""
    return re.fullmatch(r"[0-9A-Fa-f]{64}", text.replace(":", "")) is not None


def is_time_unit(text: str) -> bool:
    """An Elasticsearch time value such as 30d, 12h, 90m (no fractions)."""
    return re.fullmatch(r"[1-9]\d*(d|h|m|s|ms|micros|nanos)", text) is not None


def is_data_stream(text: str) -> bool:
    """Elasticsearch data stream naming: lower case, no spaces or \\/*?"<>|,#:, no leading -_+."""
    return (
        text == text.lower()
        and not re.search(r'[\s\\/*?"<>|,#:]', text)
        and text[0] not in "-_+."
        and len(text.encode()) <= 255
    )
