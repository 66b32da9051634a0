"""The web API's live-state rows (active calls, registrations, rates) in terms of event fields.

Each row kind maps every key it has to the event field whose value it shows (`schema.py`),
to an (ip field, port field) pair for an `[ip, port]` endpoint, or to None for what is not an
event value (states, times, counts). `anonymize_rows` passes each value through the same
transformation the event documents get, so the API shows exactly what the events show; a key
a row kind does not declare is dropped (and counted) while anonymization is on, so a new row
key cannot go out in clear. Rows come from `Tracker.active_calls`, `Tracker.registrations`,
`RateLimiter.table` and `AuthSources.top`; whoever produces them for the web calls
`anonymize_rows` once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sipcm.events.anonymize import Anonymizer

Endpoint = tuple[str, str]
RowSpec = Mapping[str, str | Endpoint | None]

CALL_ROW: RowSpec = {
    "call_id": "sip.call_id",
    "state": None,
    "state_text": None,
    "ended": None,
    "duration_ns": None,
    "from": "sip.from.uri.original",
    "to": "sip.to.uri.original",
    "to_tag": "sip.to.tag",
    "client": ("client.ip", "client.port"),
    "server": ("server.ip", "server.port"),
    "invite_ns": None,
    "answer_ns": None,
    "last_ns": None,
    "reconstructed_from": "sip.call.reconstructed_from",
}

REGISTRATION_ROW: RowSpec = {
    "aor": "sip.reg.aor",
    "contact": "sip.contact.uri.original",
    "expires": "sip.reg.expires",
    "created_ns": None,
    "refreshed_ns": None,
    "expires_at_ns": None,
    "call_id": "sip.call_id",
    "client": ("client.ip", "client.port"),
}

AUTH_SOURCE_ROW: RowSpec = {
    "source_ip": "source.ip",
    "failures": None,
    "first_ns": None,
    "last_ns": None,
}

RATE_ROW: RowSpec = {
    "event": "event.action",
    "source_ip": "source.ip",
    "rates": None,
    "events": None,
    "last_seen": None,
    "blacklisted": None,
    "exceeded": None,
    "since": None,
}


def anonymize_rows(anon: Anonymizer, rows: Iterable[dict], spec: RowSpec) -> list[dict]:
    """`rows` as the event documents would show their values (new dicts; unchanged when
    anonymization is off). Values that cannot be encrypted become None, never clear text."""
    if not anon.enabled:
        return list(rows)
    out = []
    for row in rows:
        new: dict[str, Any] = {}
        for key, v in row.items():
            if key not in spec:
                anon.counters["undeclared_row_values_dropped"] += 1
                continue
            field = spec[key]
            if field is None or v is None:
                new[key] = v
            elif isinstance(field, tuple):
                ip = anon.value(field[0], v[0])
                new[key] = None if ip is None else [ip, anon.value(field[1], v[1])]
            else:
                new[key] = anon.value(field, v)
        out.append(new)
    return out
