"""Prometheus text exposition format 0.0.4 for `/metrics`.

Input: a `MetricsView` (counter groups and table sizes). Output: the exposition text, every
family with HELP and TYPE lines, families sorted by name so scrapes diff cleanly. Counters
become `sipcm_<group>_<name>_total`; the `interfaces` group (keys `IFACE/DIRECTION`) becomes
one family with `interface` and `direction` labels; gauge groups (tracker table sizes) become
`sipcm_<group>_<name>` gauges. Never raises on odd names: anything outside [a-zA-Z0-9_] is
replaced by `_`, and names that collide after that are summed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from sipcm.web.state import MetricsView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "sipcm"
INTERFACES_GROUP = "interfaces"
_BAD = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(slots=True)
class _Family:
    kind: str  # "counter" | "gauge"
    sources: list[str] = field(default_factory=list)
    samples: dict[tuple[tuple[str, str], ...], int] = field(default_factory=dict)
    help: str = ""


def sanitize(part: str) -> str:
    """A metric-name fragment: characters outside [a-zA-Z0-9_] become `_`."""
    return _BAD.sub("_", part) or "_"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(view: MetricsView, gauge_groups: Iterable[str] = ()) -> str:
    """The exposition text for `view`; groups in `gauge_groups` are exported as gauges."""
    gauges = frozenset(gauge_groups)
    fams: dict[str, _Family] = {}

    def add(name: str, kind: str, source: str, value: int, labels=()) -> None:
        fam = fams.get(name)
        if fam is None:
            fam = fams[name] = _Family(kind)
        if source not in fam.sources:
            fam.sources.append(source)
        fam.samples[labels] = fam.samples.get(labels, 0) + value

    for group, names in view.counters.items():
        g = sanitize(group)
        if group == INTERFACES_GROUP:
            for key, value in names.items():
                iface, _, direction = key.rpartition("/") if "/" in key else (key, "", "")
                labels = (("interface", iface), ("direction", direction))
                add(f"{PREFIX}_interface_frames_total", "counter", "", value, labels)
            continue
        is_gauge = group in gauges
        for key, value in names.items():
            suffix = "" if is_gauge else "_total"
            name = f"{PREFIX}_{g}_{sanitize(key)}{suffix}"
            add(name, "gauge" if is_gauge else "counter", f"{group}.{key}", value)

    fixed = (
        ("active_calls", view.active_calls, "dialogs being followed"),
        ("registrations", view.registrations, "registration bindings cached"),
        ("recent_events", view.recent_events, "published events kept for the web API"),
        ("blacklisted_event_types", view.blacklisted_types, "event types not published"),
    )
    for short, value, text in fixed:
        name = f"{PREFIX}_{short}"
        add(name, "gauge", "", value)
        fams[name].help = text
    if f"{PREFIX}_interface_frames_total" in fams:
        fams[
            f"{PREFIX}_interface_frames_total"
        ].help = "frames captured per interface and direction"

    lines: list[str] = []
    for name in sorted(fams):
        fam = fams[name]
        text = fam.help or _default_help(fam)
        lines.append(f"# HELP {name} {_escape_help(text)}")
        lines.append(f"# TYPE {name} {fam.kind}")
        for labels in sorted(fam.samples):
            value = fam.samples[labels]
            if labels:
                inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
                lines.append(f"{name}{{{inner}}} {value}")
            else:
                lines.append(f"{name} {value}")
    return "\n".join(lines) + "\n"


def _default_help(fam: _Family) -> str:
    what = "sipcm gauge" if fam.kind == "gauge" else "sipcm counter"
    return f"{what} {', '.join(s for s in fam.sources if s)}"
