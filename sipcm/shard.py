"""Shard: the correlation stage that a worker process (or the single process) runs.

Payloads in -> parse -> track -> build -> anonymize -> encode -> `Emitted` rows out. A shard
owns the dialogs, transactions and registrations whose shard key (sipcm.sip.shardkey) maps
to it; with one worker it owns them all. Each row carries its merge key so that the
collector can put rows from any number of shards into one order that does not depend on how
many there are:

    message rows: (ts_ns, MESSAGE, seq, sub, action, rate_ip, line)
    timer rows:   (ts_ns, TIMER, call_id, line, action, rate_ip, line)

`seq` numbers payloads across the whole sensor and `sub` counts the outcomes of one payload;
timer rows (and the end-of-input conclusion) sort by their time, then Call-ID, then bytes.
Every payload arrives with the sensor-wide capture clock (`clk`, the latest timestamp seen
up to it), and the shard fires its timers up to that clock before the payload, exactly where
one process holding every shard would have fired them. The shard also keeps the messages
of the calls it owns (sipcm.flows), with the duplicate filter's verdict on each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Final

import orjson

from sipcm import callstats
from sipcm.callstats import GROUP as OUTCOMES_GROUP
from sipcm.callstats import outcome_key
from sipcm.events.rows import CALL_ROW, REGISTRATION_ROW, anonymize_rows
from sipcm.outputs import base
from sipcm.sip.message import ParseError
from sipcm.sip.parser import parse
from sipcm.track.outcome import Outcome

if TYPE_CHECKING:
    from sipcm.counters import Counters
    from sipcm.decode.packet import Payload
    from sipcm.events.anonymize import Anonymizer
    from sipcm.events.build import EventBuilder
    from sipcm.events.filters import TypeBlacklist
    from sipcm.flows import FlowStore
    from sipcm.track.tracker import Tracker

TIMER = 0
MESSAGE = 1

# Final copies of names from interpreted modules, used per event: compiled, a Final name loads
# from a C static, an imported one from the module's dict (orjson.dumps: and an attribute).
_DUMPS: Final = orjson.dumps
NDJSON_OPTION: Final = base.NDJSON_OPTION
DECIDING_ACTIONS: Final = callstats.DECIDING_ACTIONS

# (seq, clock, payload): one payload with its sensor-wide number and capture clock.
Item = tuple[int, int, "Payload"]
Emitted = tuple  # see the module docstring


class Shard:
    """Correlates the payloads it is given; returns encoded, mergeable event rows."""

    def __init__(
        self,
        counters: Counters,
        tracker: Tracker,
        builder: EventBuilder,
        anonymizer: Anonymizer,
        blacklist: TypeBlacklist,
        flows: FlowStore,
    ) -> None:
        self.counters = counters
        self.tracker = tracker
        self.builder = builder
        self.anonymizer = anonymizer
        self.blacklist = blacklist
        self.flows = flows
        self._sip: Counter[str] = counters.group("sip")
        self._ev: Counter[str] = counters.group("events")
        self._outcomes: Counter[str] = counters.group(OUTCOMES_GROUP)

    def run(self, items: Iterable[Item], advance_to: int) -> list[Emitted]:
        """Correlate `items` in order, then fire the timers due by `advance_to`."""
        out: list[Emitted] = []
        sip = self._sip
        tracker = self.tracker
        flows = self.flows if self.flows.enabled else None
        messages = reassembled = 0  # counted here, added to `sip` once per call
        try:
            for seq, clk, p in items:
                if clk > tracker.now_ns:
                    self._timer_rows(tracker.advance(clk), out)
                res = parse(p.data)
                if p.reassembled:
                    reassembled += 1
                if isinstance(res, ParseError):
                    res.payload = p
                    if not p.on_sip_port:
                        sip["heuristic_not_sip"] += 1
                        continue
                    action = "msg-probe" if res.probe else "parse-error"
                    sip["probes" if res.probe else "parse_errors"] += 1
                    error = Outcome(action, p.ts_ns, error=res, payload=p)
                    self._message_rows([error], seq, out)
                    continue
                messages += 1
                res.payload = p
                found = tracker.process(res)
                if flows is not None:
                    flows.add(seq, res, tracker.last_dup)
                if found:
                    self._message_rows(found, seq, out)
        finally:
            if messages:
                sip["messages"] += messages
            if reassembled:
                sip["reassembled"] += reassembled
        if advance_to > tracker.now_ns:
            self._timer_rows(tracker.advance(advance_to), out)
        return out

    def finish_chunks(self, mode: str, size: int) -> Iterator[list[Emitted]]:
        """The conclusion as lists of rows, about `size` each, in merge order: every row of
        a list sorts before every row of the next (Tracker.finish_chunks never splits one
        time and Call-ID across lists)."""
        for outcomes in self.tracker.finish_chunks(mode, size):
            out: list[Emitted] = []
            self._timer_rows(outcomes, out)
            yield out

    def call_rows(self) -> list[dict]:
        """The dialogs this shard follows, as the web API shows them (anonymized like events)."""
        return anonymize_rows(self.anonymizer, self.tracker.active_calls(), CALL_ROW)

    def registration_rows(self) -> list[dict]:
        """The bindings this shard holds, as the web API shows them (anonymized like events)."""
        return anonymize_rows(self.anonymizer, self.tracker.registrations(), REGISTRATION_ROW)

    def gauges(self) -> dict[str, int]:
        """The tracker's table sizes."""
        return dict(self.tracker.stats())

    # -- encoding ------------------------------------------------------------------------------

    def _encode(self, o: Outcome) -> bytes | None:
        self._ev["generated"] += 1
        # counted before the blacklist: ASR does not depend on it
        if o.method == "INVITE" and o.action in DECIDING_ACTIONS:
            key = outcome_key(o)
            if key is not None:
                self._outcomes[key] += 1
        if not self.blacklist.allows(o.action):
            return None
        if self.anonymizer.enabled:
            return _DUMPS(self.anonymizer.apply(self.builder.build(o)), option=NDJSON_OPTION)
        return self.builder.line(o)

    def _message_rows(self, outcomes: list[Outcome], seq: int, out: list[Emitted]) -> None:
        for sub, o in enumerate(outcomes):
            line = self._encode(o)
            if line is not None:
                out.append((o.ts_ns, MESSAGE, seq, sub, o.action, rate_ip(o), line))

    def _timer_rows(self, outcomes: list[Outcome], out: list[Emitted]) -> None:
        for o in outcomes:
            line = self._encode(o)
            if line is not None:
                out.append((o.ts_ns, TIMER, o.call_id or "", line, o.action, rate_ip(o), line))


def rate_ip(o: Outcome) -> str | None:
    """The rate key's IP: the caller side of the dialog or transaction (as sipcmbeat's
    endpoint 0), so a busy server answering many callers is not what gets limited; the
    packet source when there is no caller side (parse errors)."""
    if o.client is not None:
        return o.client[0]
    p = o.msg.payload if o.msg is not None else o.payload
    if p is None and o.request is not None:
        p = o.request.payload
    return p.src_ip if p is not None else None
