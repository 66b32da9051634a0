"""Collector: the batch path taken when nothing can be held back publishes exactly what the
per-row path (blacklist and rate limiter asked row by row) publishes."""

from __future__ import annotations

import io
from collections import Counter

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from sipcm.authsources import ACTION as AUTH_FAILED
from sipcm.collector import Collector
from sipcm.events.filters import TypeBlacklist
from sipcm.events.rates import RateLimiter
from sipcm.outputs.console import ConsoleOutput
from sipcm.pipeline import FileTotals
from sipcm.shard import MESSAGE, TIMER

T0 = 1_700_000_000_000_000_000
ACTIONS = ("call-start", "call-end", AUTH_FAILED, "msg-probe", "reg-new")


# No limit, so the batch path; a limit no test reaches, so a check per row with the same
# verdicts (the rate fields only appear on a limited key).
BATCH = (0, 0, 0)
PER_ROW = (10**9, 0, 0)


def _collector(limits: tuple[int, ...], blacklist: tuple[str, ...]) -> tuple[Collector, dict]:
    counters: Counter[str] = Counter()
    rates = RateLimiter(Counter(), limits=limits)
    out = io.StringIO()
    col = Collector(counters, TypeBlacklist(blacklist, counters), rates, [ConsoleOutput(out)])
    col.totals = FileTotals("x")
    return col, {"out": out, "counters": counters, "rates": rates}


def _state(col: Collector, parts: dict) -> tuple:
    return (
        parts["out"].getvalue(),
        dict(parts["counters"]),
        list(col.by_action.items()),
        col.auth_sources.table,
        col.auth_sources.total,
        parts["rates"]._now,
        col.totals,
        [orjson.loads(line) for line in col.recent],
    )


@st.composite
def chunks(draw) -> list[list[tuple]]:
    """Chunks of message and timer rows as shards emit them, in no particular order."""
    out = []
    for _ in range(draw(st.integers(1, 4))):
        rows = []
        for seq in range(draw(st.integers(0, 12))):
            ts = T0 + draw(st.integers(0, 5)) * 1_000_000
            action = draw(st.sampled_from(ACTIONS))
            ip = draw(st.sampled_from(["10.0.0.1", "10.0.0.2", None]))
            line = orjson.dumps({"n": seq, "action": action}) + b"\n"
            if draw(st.booleans()):
                rows.append((ts, MESSAGE, seq, 0, action, ip, line))
            else:
                rows.append((ts, TIMER, f"c{seq}", line, action, ip, line))
        out.append(draw(st.permutations(rows)))
    return out


@settings(max_examples=200, deadline=None)
@given(chunks(), st.sampled_from([(), ("msg-probe",), ("call-end", "reg-new")]))
def test_batch_path_publishes_what_the_row_path_does(parts, blacklist) -> None:
    fast, fast_parts = _collector(BATCH, blacklist)
    slow, slow_parts = _collector(PER_ROW, blacklist)
    assert fast.rates.unlimited
    assert not slow.rates.unlimited
    for rows in parts:
        fast.publish(list(rows))
        slow.publish(list(rows))
    assert _state(fast, fast_parts) == _state(slow, slow_parts)


def test_batch_path_writes_rows_in_merge_order_and_counts_them() -> None:
    col, parts = _collector(BATCH, ("msg-probe",))
    a = (T0 + 2, MESSAGE, 7, 0, "call-end", "10.0.0.1", b'{"a":1}\n')
    b = (T0 + 1, TIMER, "c1", b'{"b":2}\n', AUTH_FAILED, "10.0.0.9", b'{"b":2}\n')
    c = (T0 + 2, MESSAGE, 7, 1, AUTH_FAILED, "10.0.0.9", b'{"c":3}\n')
    col.publish([c, a, b])
    assert parts["out"].getvalue() == '{"b":2}\n{"a":1}\n{"c":3}\n'
    assert col.by_action == {AUTH_FAILED: 2, "call-end": 1}
    assert parts["counters"] == {"published": 3}
    assert col.totals.events == 3
    assert col.auth_sources.table == {"10.0.0.9": [2, T0 + 1, T0 + 2]}
    assert parts["rates"]._now == T0 + 2
