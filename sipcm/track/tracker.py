"""Tracker: the correlation engine's entry point (SPEC section 6).

Input: parsed SipMessages (with `payload` set: capture time, addresses) in capture order, and
clock ticks; output: lists of `Outcome`s (call-start, call-end, call-attempt, reg-new, reg-del,
reg-expired, auth-failed, other-ok, other-failed, other-timeout). All time is capture time:
`process` first fires the timers due at the message's timestamp (their outcomes come first),
`advance` fires them on an idle link, so a replay is deterministic. It never reads the wall
clock, never touches bytes and never builds documents.

Per message: the duplicate filter (`dedup.py`) drops retransmissions and copies (counted);
REGISTER goes to the non-INVITE transactions (`trans.py`) and from their 2xx to the binding
cache (`regs.py`); INVITE, BYE, CANCEL, ACK, PRACK, UPDATE, and any request or reply whose
Call-ID belongs to a call, go to the dialogs (`calls.py`); other methods start non-INVITE
transactions when they carry no To-tag (an in-dialog request of an unknown dialog is counted,
not reported: SPEC 6 in-dialog rule). The state machine itself is data (`states.py`).

Decisions where SPEC 6 leaves room (details in the module named):
- Forking (`calls.py`): one call-start and one call-end per dialog answered 2xx; at most one
  call-attempt per attempt, none if any dialog started.
- Auth retries: a credentialed request of the same method after a 401/407 continues the
  attempt, under the same Call-ID (higher CSeq) or a new one; a new Call-ID is matched by
  method, From and To address-of-record, request-URI and source IP while the challenged entry
  lives (its inv_neg / non_inv_neg timer) (`core.retry_key`). Every credentialed request
  answered 401/407/403 is one auth-failed (once per transaction, named by its Via branch as
  RFC 3261 17.1.3 says, so guesses that reuse Call-ID and CSeq each count; retransmissions and
  copies never count twice) and nothing else; a challenge nobody answers ends as
  call-attempt/other-failed with its status when the timer fires.
- Duplicates (`dedup.py`): fingerprint Call-ID, CSeq, method or status, From/To tags within
  `dup_window` (32 s); same top branch, Via count and direction = retransmission (counted in
  CallMetrics.retransmissions), otherwise a copy.
- Timer events carry the timer's expiry as their time, status 408 and reason
  "timeout <timer>"; call-end by timeout reports the last in-dialog message as its end.
- finish("conclude") runs the pending timers (events at their expiry times);
  finish("expire-all") then ends calls and bindings at the current clock with reason
  "timeout end of replay"; finish("decided") (a live sensor stopping) runs only the timers
  whose event is already decided (`states.DECIDED`: a final reply seen, no retry can change
  it), again each event at its timer's expiry, as if the sensor had kept running; the rest
  stays (a challenge waiting for its retry, unanswered requests, calls, bindings).
- Memory: three budgets, each least recently used first evicted without an event:
  `max_pending` unconfirmed entries (INVITEs not answered 2xx, other transactions), `max_calls`
  established calls (Call-IDs with a dialog answered 2xx) and `max_regs` bindings, so a flood
  of requests nobody answers evicts only its own kind (`core.py`); stored messages are slim
  copies (`core.slim`).

Counters (group passed in): retransmissions, duplicate_copies, pending_evicted, calls_evicted,
regs_evicted, dup_evicted, forks, forks_limited, in_dialog_unmatched, unmatched_reply,
auth_retry_new_call_id, auth_retry_unmatched, reg_refreshes, reg_contact_not_in_reply.
"""

from __future__ import annotations

from collections import ChainMap, Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, cast

from sipcm import counterdefs
from sipcm.track.calls import Calls
from sipcm.track.core import NS, CallSet, Core, Leg, Trans
from sipcm.track.dedup import NEW, RETRANS, DupFilter
from sipcm.track.regs import Binding, Registrar
from sipcm.track.states import (
    DECIDED,
    DEFAULT_TIMEOUTS,
    ENDED,
    PENDING,
    State,
    call_state_text,
)
from sipcm.track.timers import Timed
from sipcm.track.trans import Transactions

if TYPE_CHECKING:
    from sipcm.sip.message import SipMessage
    from sipcm.track.outcome import Outcome

# The counter keys of sip_requests / sip_responses. Final copies of counterdefs' tables:
# compiled, a Final name loads from a C static, an imported one from the module's dict at
# every use (here per message).
OTHER: Final = counterdefs.OTHER
REQUEST_KEYS: Final = counterdefs.REQUEST_KEYS
RESPONSE_KEYS: Final = counterdefs.RESPONSE_KEYS
RESPONSE_OTHER: Final = counterdefs.RESPONSE_OTHER
# Retransmissions and proxy copies of one message arrive within a transaction's lifetime
# (RFC 3261 17: Timer B/F/H = 64*T1 = 32 s).
DUP_WINDOW_S: Final = 32.0
FINISH_MODES: Final = ("conclude", "expire-all", "decided", "none")
_UNANSWERED: Final = frozenset({State.INIT, State.INV_1ST, State.INV_EARLY})


class Tracker:
    """Follows dialogs, transactions and registrations; see the module docstring."""

    timeout_names: ClassVar[tuple[str, ...]] = (*DEFAULT_TIMEOUTS, "dup_window")

    def __init__(
        self,
        counters: Counter[str],
        *,
        timeouts: Mapping[str, float] | None = None,
        reg_grace_s: float = 30.0,
        max_calls: int = 100_000,
        max_regs: int = 100_000,
        max_pending: int = 100_000,
        requests: Counter[str] | None = None,
        responses: Counter[str] | None = None,
        call_times: Counter[str] | None = None,
    ) -> None:
        """`requests`, `responses` and `call_times` are the counter groups of the same names
        (sipcm.counterdefs); private ones when not given."""
        if min(max_calls, max_regs, max_pending) < 1:
            raise ValueError("max_calls, max_regs and max_pending must be at least 1")
        tmo = {**DEFAULT_TIMEOUTS, "dup_window": DUP_WINDOW_S}
        for name, value in (timeouts or {}).items():
            if name not in tmo:
                import difflib  # errors only: not imported at every start-up

                close = difflib.get_close_matches(name, self.timeout_names, n=1, cutoff=0.0)
                raise ValueError(f"unknown timeout {name!r}, did you mean {close[0]!r}?")
            if float(value) > 0:  # 0 or less restores the default (reference notes 1.4)
                tmo[name] = float(value)
        self.timeouts: dict[str, float] = tmo
        self.counters = counters
        tmo_ns = {k: int(v * NS) for k, v in tmo.items()}
        self._core = core = Core(counters, tmo_ns, max_pending, max_calls)
        self._regs = Registrar(core, int(reg_grace_s * NS), max_regs)
        self._calls = Calls(core, Counter() if call_times is None else call_times)
        self._requests = Counter() if requests is None else requests
        self._responses = Counter() if responses is None else responses
        self._trans = Transactions(core, self._regs)
        dups = 2 * max(max_pending, max_calls) + 1024
        self._dups = DupFilter(core.tmo["dup_window"], dups, counters)
        self.last_dup = NEW  # the duplicate filter's verdict on the last processed message

    @property
    def entries(self) -> Mapping[object, object]:
        """Every call and transaction, established and pending (read-only use: sizes, tests)."""
        return ChainMap(cast(Any, self._core.dialogs), cast(Any, self._core.pending))

    @property
    def now_ns(self) -> int:
        """The capture-time clock (latest timestamp seen)."""
        return self._core.now

    # -- input ---------------------------------------------------------------------------------

    def process(self, msg: SipMessage) -> list[Outcome]:
        """Correlate one message; timers due at its timestamp fire first."""
        core = self._core
        out: list[Outcome] = []
        core.out = out
        k = core.key.load(msg)
        p = k.payload
        now = core.now
        ts = p.ts_ns if p is not None else now
        if ts >= now:
            core.now = now = ts
            heap = core.timers.heap
            if heap and heap[0][0] <= ts:  # most messages find no timer due
                self._fire(ts)
        # The window runs on the tracker's clock (the latest capture time seen), not on this
        # message's own stamp: a message stamped earlier than the clock must not find
        # sightings that a clock-ordered view has already expired, whichever worker holds it.
        kind = self._dups.check_key(k, now)
        self.last_dup = kind
        if kind != NEW:
            self._duplicate(k.call_id, kind)
            return out
        is_req = k.is_request
        target: Calls | Transactions
        method: str | None
        if is_req:
            method = k.method
            self._requests[REQUEST_KEYS.get(method, OTHER)] += 1
        else:
            method = k.cseq_method
            self._responses[
                RESPONSE_KEYS.get(method, RESPONSE_OTHER)[(msg.status or 0) // 100]
            ] += 1
        if method == "REGISTER":
            target = self._trans
        # the INVITE family, spelled out: compiled, `in` a literal tuple is a chain of native
        # string compares (a frozenset was a generic PySet_Contains per message)
        elif method in ("INVITE", "ACK", "BYE", "CANCEL", "PRACK", "UPDATE"):
            target = self._calls
        elif isinstance(core.peek(k.call_id), CallSet):
            target = self._calls  # in-dialog request or reply of a known call
        elif is_req and k.to_tag is not None:
            core.c["in_dialog_unmatched"] += 1
            return out
        else:
            target = self._trans
        if is_req:
            target.request(msg, ts)
        else:
            target.response(msg, ts)
        return out

    def _duplicate(self, call_id: str, kind: int) -> None:
        c = self.counters
        if kind == RETRANS:
            c["retransmissions"] += 1
            cs = self._core.peek(call_id)
            if isinstance(cs, CallSet):
                cs.retrans += 1
        else:
            c["duplicate_copies"] += 1

    def advance(self, now_ns: int) -> list[Outcome]:
        """Fire the timers due at or before `now_ns` (capture time); the clock never goes back."""
        out: list[Outcome] = []
        self._core.out = out
        if now_ns >= self._core.now:
            self._fire(now_ns)
        return out

    def _fire(self, now: int) -> None:
        core = self._core
        core.now = now
        timers = core.timers
        while True:
            item = timers.pop_next(now)
            if item is None:
                return
            self._expire(item[2], item[0])

    def _expire(self, obj: object, due: int) -> None:
        if isinstance(obj, Leg):
            self._calls.timeout(obj, due)
        elif isinstance(obj, Trans):
            self._trans.timeout(obj, due)
        elif isinstance(obj, Binding):
            self._regs.timeout(obj, due)

    def finish(self, mode: str = "conclude") -> list[Outcome]:
        """End of input, every outcome in one list (see `finish_chunks`)."""
        return [o for chunk in self.finish_chunks(mode) for o in chunk]

    def finish_chunks(self, mode: str = "conclude", size: int = 1000) -> Iterator[list[Outcome]]:
        """End of input, in lists of about `size` outcomes. "conclude": run the timers of
        pending transactions (each event at its timer's expiry), keeping established calls and
        bindings; "expire-all": that, and end established calls (call-end, originator timeout)
        and bindings (reg-expired) at the current clock; "decided": run only the timers whose
        event is already decided (see `_decided`), keeping everything else; "none": nothing.

        Only one list is alive at a time (100,000 entries concluded in one list of documents
        were a 1.4 GB spike). Outcomes come in (time, Call-ID) order, and one time and Call-ID
        is never split across lists, so lists sorted one by one are in the order of one sorted
        whole. Entries end independently of each other (a pending fork's call-attempt is
        withheld once any dialog of its call started, whatever the order)."""
        if mode not in FINISH_MODES:
            raise ValueError(f"finish mode {mode!r} is not one of {', '.join(FINISH_MODES)}")
        if size < 1:
            raise ValueError("size must be at least 1")
        if mode == "none":
            return
        core = self._core
        now = core.now
        work: list[tuple[int, str, int, Timed]] = []  # (event time, Call-ID, timer order, obj)
        for n, obj in enumerate(core.timers.armed()):
            assert isinstance(obj, (Leg, Trans, Binding))
            cid = obj.cs.call_id if isinstance(obj, Leg) else obj.call_id
            due = obj.due if obj.due is not None else now
            if mode == "decided":
                if self._decided(obj):
                    work.append((due, cid, n, obj))
            elif isinstance(obj, (Leg, Trans)) and obj.state in PENDING:
                work.append((due, cid, n, obj))
            elif mode == "expire-all":
                work.append((now, cid, n, obj))
        work.sort(key=lambda w: w[:3])
        chunk: list[Outcome] = []
        core.out = chunk
        last: tuple[int, str] | None = None
        for ts, cid, _, obj in work:
            if len(chunk) >= size and (ts, cid) != last:
                yield chunk
                chunk = []
                core.out = chunk
            last = (ts, cid)
            self._end(obj, now)
        core.out = []
        if chunk:
            yield chunk

    def _end(self, obj: Timed, now: int) -> None:
        """Conclude one entry at the end of input: a pending one at its expiry, an open call
        or binding at `now`."""
        due = obj.due
        if due is None:
            return  # ended meanwhile
        self._core.timers.cancel(obj)
        if isinstance(obj, Binding):
            self._regs.timeout(obj, now, "timeout end of replay")
        elif isinstance(obj, Leg) and obj.state not in PENDING:
            self._calls.expire_established(obj, now)
        else:
            self._expire(obj, due)

    @staticmethod
    def _decided(obj: object) -> bool:
        """The event this entry's timer will publish can no longer change (`states.DECIDED`):
        for a call leg, also no other fork of the call still waits for its final reply, and a
        cancelled INVITE's own final reply was seen."""
        if isinstance(obj, Trans):
            return obj.state in DECIDED
        if not isinstance(obj, Leg) or obj.state not in DECIDED:
            return False
        if obj.state is State.INV_CANCELED and obj.status is None:
            return False
        return not any(leg.state in _UNANSWERED for leg in obj.cs.legs if leg is not obj)

    # -- state across restarts ------------------------------------------------------------------

    def export_state(self) -> list[dict]:
        """Every entry as a JSON-able record (`persist.py`): pending entries, established calls,
        then bindings, each least recently used first. Bounded by the entry limits."""
        from sipcm.track import persist  # state files only: not imported at every start-up

        core = self._core
        recs = [persist.encode(e) for e in core.pending.values()]
        recs += [persist.encode(cs) for cs in core.dialogs.values()]
        recs += [persist.encode(b) for b in self._regs.table.values()]
        return recs

    def import_state(self, records: Iterable[object], now_ns: int) -> tuple[int, int]:
        """Restore records from `export_state` (of this or other trackers); returns (restored,
        discarded), also counted as state_restored / state_discarded.

        All or nothing: a record that does not decode raises `persist.StateError` before
        anything changes. Expiries are on the capture-time clock, which is wall-clock time
        live, so time that passed meanwhile needs no adjustment: the clock moves to `now_ns`
        and a timer that expired meanwhile fires at the next `advance`/`process` with its own
        expiry as the event time, as if no restart had happened. Per budget the most recently
        used entries are kept; the rest, and keys already tracked, are discarded."""
        from sipcm.track import persist  # state files only: not imported at every start-up

        # (entry, its timers) by key; a key given twice: the later record
        entries: dict[object, tuple[CallSet | Trans, list[tuple[Timed, int]]]] = {}
        bindings: dict[tuple, tuple[Binding, list[tuple[Timed, int]]]] = {}
        total = 0
        for rec in records:
            entry, timers = persist.decode(rec)
            total += 1
            if isinstance(entry, Binding):
                bindings.pop((entry.aor, entry.ckey), None)
                bindings[(entry.aor, entry.ckey)] = (entry, timers)
            else:
                key: object = entry.key if isinstance(entry, Trans) else entry.call_id
                entries.pop(key, None)
                entries[key] = (entry, timers)
        core, regs = self._core, self._regs
        fresh = [(k, et) for k, et in entries.items() if core.peek(k) is None]
        dialogs = [(k, et) for k, et in fresh if isinstance(et[0], CallSet) and et[0].started]
        pending = [(k, et) for k, et in fresh if not (isinstance(et[0], CallSet) and et[0].started)]
        kept: list[list[tuple[Timed, int]]] = []
        for items, table, limit in (
            (pending, core.pending, core.max_pending),
            (dialogs, core.dialogs, core.max_dialogs),
        ):
            for key, (e, timers) in items[max(0, len(items) + len(table) - limit) :]:
                table[key] = e  # type: ignore[assignment]
                kept.append(timers)
        new_b = [bt for k, bt in bindings.items() if k not in regs.table]
        for b, timers in new_b[max(0, len(new_b) + len(regs) - regs.max_regs) :]:
            regs.table[(b.aor, b.ckey)] = b
            regs.by_aor.setdefault(b.aor, {})[b.ckey] = b
            kept.append(timers)
        for timers in kept:
            for obj, due in timers:
                core.timers.arm(obj, due)
        core.now = max(core.now, now_ns)
        restored = len(kept)
        self.counters["state_restored"] += restored
        self.counters["state_discarded"] += total - restored
        return restored, total - restored

    # -- views ---------------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Gauges: calls (Call-IDs), dialogs, established dialogs, transactions, bindings,
        armed timers and remembered message fingerprints."""
        calls = dialogs = established = trans = 0
        for e in self._core.values():
            if isinstance(e, CallSet):
                calls += 1
                dialogs += len(e.legs)
                established += sum(1 for leg in e.legs if leg.state is State.INV_ESTABLISHED)
            else:
                trans += 1
        return {
            "calls": calls,
            "dialogs": dialogs,
            "calls_established": established,
            "transactions": trans,
            "registrations": len(self._regs),
            "timers": len(self._core.timers),
            "fingerprints": len(self._dups),
        }

    def active_calls(self) -> list[dict]:
        """One small JSON-able dict per dialog being followed: established calls, then pending
        ones, each least recently active first. `state_text` is the readable state;
        `duration_ns` runs from the answer to the end of the call (`ended`: a BYE was seen) or
        to the tracker's clock (None before an answer)."""
        rows = []
        now = self._core.now
        for e in self._core.values():
            if not isinstance(e, CallSet):
                continue
            req = e.invite
            for leg in e.legs:
                ended = leg.state in ENDED
                end = leg.end_ts if ended and leg.end_ts is not None else now
                answer = leg.answer_ts
                rows.append(
                    {
                        "call_id": e.call_id,
                        "state": leg.state.value,
                        "state_text": call_state_text(
                            leg.state,
                            status=leg.status,
                            reason=leg.reason,
                            by=leg.ended_by,
                            ringing=leg.ring_ts is not None,
                        ),
                        "ended": ended,
                        "duration_ns": max(0, end - answer) if answer is not None else None,
                        "from": req.from_.uri.original if req is not None else None,
                        "to": req.to.uri.original if req is not None else None,
                        "to_tag": leg.to_tag,
                        "client": list(e.client) if e.client else None,
                        "server": list(e.server) if e.server else None,
                        "invite_ns": e.inv_ts,
                        "answer_ns": leg.answer_ts,
                        "last_ns": leg.last_ts,
                        "reconstructed_from": e.recon,
                    }
                )
        return rows

    def registrations(self) -> list[dict]:
        """One small JSON-able dict per cached binding, least recently refreshed first."""
        return self._regs.summaries()
