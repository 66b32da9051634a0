"""INVITE dialogs: route INVITE/BYE/CANCEL/ACK/in-dialog traffic to dialogs, carry out effects.

Input: SipMessages of a Call-ID's INVITE dialogs (not duplicates: `dedup.py` removed those)
and timer expiries; output: call-start, call-end, call-attempt and auth-failed Outcomes appended
to `Core.out`. It never decides transitions itself (`states.py` does) and never reads a clock.

Design decisions (SPEC 6 over the reference notes 1.3-1.10):
- One `CallSet` per Call-ID holds one `Leg` per dialog (To-tag). A 1xx/2xx, re-INVITE or BYE
  with a new To-tag forks a leg (at most MAX_LEGS); a negative reply's leg is reused by a later
  reply from another branch (serial forking, RFC 3261 16.7). Every leg answered 2xx produces its
  own call-start, and its own call-end: two established dialogs are two calls to the operator.
  call-attempt is produced at most once per attempt and never when some leg started.
- The INVITE transaction of an attempt is the latest INVITE without To-tag and a higher CSeq
  (or the same CSeq under a new Via branch, RFC 3261 17.1.3: a cracker's next guess);
  a credentialed one after a challenge continues the attempt (Ev.RETRY). Metrics (pdd, ring,
  setup) are measured from that INVITE, i.e. from the request that was answered.
- Reconstruction: a set created without its INVITE is labelled by `CallSet.recon` ("2xx",
  "reply", "reinvite", "bye", "cancel"); a call-end of a leg that never saw a 2xx is labelled
  reconstructed "bye" (and had no call-start). A call rebuilt from a BYE has no known caller,
  so its call-end has no originator and no client/server.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

from sipcm.counterdefs import DURATION, PDD, SETUP, HistogramDef
from sipcm.track.core import (
    CallSet,
    Core,
    Leg,
    ends,
    flow_of,
    proof,
    same_txn,
    slim,
    txn_branches,
)  # fmt: skip
from sipcm.track.dedup import MsgKey
from sipcm.track.outcome import CallMetrics, Outcome
from sipcm.track.states import TRANSITIONS, Effect, Ev, State, timer_name, transition

if TYPE_CHECKING:
    from collections import Counter

    from sipcm.sip.message import SipMessage

MAX_LEGS: Final = 16
_PRE: Final = frozenset({State.INIT, State.INV_1ST, State.INV_EARLY})
_NEGS: Final = frozenset({State.INV_NEG, State.INV_CHALLENGED, State.INV_AUTH_FAILED})
_OPEN: Final = _PRE | _NEGS | {State.INV_CANCELED}  # the INVITE transaction may still be answered
_RETRYABLE: Final = frozenset({State.INV_CHALLENGED, State.INV_AUTH_FAILED})
_AUTH_CODES: Final = frozenset({401, 407})


def _ms(a: int | None, b: int | None) -> float | None:
    return (b - a) / 1e6 if a is not None and b is not None else None


def _round(x: float) -> int:
    """round(x) (half to even) for a finite x: native when compiled, round() is generic."""
    r = math.floor(x)
    d = x - r
    if d > 0.5 or (d == 0.5 and r % 2 == 1):
        r += 1
    return r


class Histogram:
    """A histogram declared in sipcm.counterdefs (HISTOGRAMS), counted in its counter group:
    `<key>_b<i>` observations in bucket i and `<key>_sum_ms`. The bounds and names are held
    here as native fields (the declaration's are generic lookups); one observation per call,
    never per message."""

    __slots__ = ("bounds", "counters", "names")

    def __init__(self, hist: HistogramDef, counters: Counter[str]) -> None:
        self.bounds: tuple[float, ...] = hist.bounds_ms
        self.names: tuple[str, ...] = hist.names  # bucket counter names by index, then the sum
        self.counters = counters

    def observe(self, ms: float) -> None:
        """Count one observation of `ms` milliseconds."""
        i = 0
        for bound in self.bounds:  # bisect_left: the first bucket whose bound is >= ms
            if bound < ms:
                i += 1
            else:
                break
        names = self.names
        counters = self.counters
        counters[names[i]] += 1
        counters[names[-1]] += _round(ms)


class Calls:
    """The INVITE side of the tracker (see module docstring)."""

    __slots__ = ("core", "duration", "pdd", "setup")

    def __init__(self, core: Core, times: Counter[str]) -> None:
        """`times` is the counter group call_times (the PDD, setup and duration histograms)."""
        self.core = core
        self.pdd = Histogram(PDD, times)
        self.setup = Histogram(SETUP, times)
        self.duration = Histogram(DURATION, times)

    # -- routing -------------------------------------------------------------------------------

    def _new_set(self, msg: SipMessage, k: MsgKey, recon: str | None) -> CallSet:
        cs = CallSet(k.call_id)
        cs.recon = recon
        cs.client, cs.server = ends(msg)
        # the caller's tag: From of a request, From of a response (to the caller's request)
        cs.caller_tag = k.from_tag
        if recon == "bye" or recon == "reinvite":  # either side may send these
            cs.caller_known = False
            cs.client = cs.server = None
        self.core.add(k.call_id, cs)
        return cs

    @staticmethod
    def _dialog_tag(cs: CallSet, k: MsgKey) -> tuple[str | None, bool]:
        """(To-tag of the dialog, sent-or-answered-by-callee) for the message `k` of `cs`."""
        if k.from_tag == cs.caller_tag or k.to_tag != cs.caller_tag:
            return k.to_tag, False
        return k.from_tag, True

    def _leg(self, cs: CallSet, tag: str | None, fork: bool) -> Leg:
        legs = cs.legs
        if tag is None:
            return legs[0]
        for leg in legs:
            if leg.to_tag == tag:
                return leg
        for leg in legs:
            if leg.to_tag is None:
                leg.to_tag = tag
                return leg
        if fork:
            for leg in legs:
                if leg.state in _NEGS:  # another branch answers after a negative reply
                    leg.to_tag = tag
                    return leg
            if len(legs) < MAX_LEGS:
                state = State.INV_1ST if cs.invite is not None else State.INIT
                child = Leg(cs, state, tag)
                parent = legs[0]
                child.pdd_ts, child.ring_ts = parent.pdd_ts, parent.ring_ts
                if state is State.INV_1ST:
                    self.core.timers.arm(child, self.core.now + self.core.timeout(state))
                legs.append(child)
                self.core.c["forks"] += 1
                return child
            self.core.c["forks_limited"] += 1
        return legs[0]

    # -- requests ------------------------------------------------------------------------------

    def request(self, msg: SipMessage, ts: int) -> None:
        """Route one request of the INVITE family (or an in-dialog request of a known call)."""
        core = self.core
        k = core.key
        method = k.method
        cs = core.get(k.call_id)
        if cs is None:
            if method == "INVITE":
                if k.to_tag is None and proof(msg) is not None:
                    core.take_retry(msg)
                cs = self._new_set(msg, k, "reinvite" if k.to_tag else None)
            elif method == "BYE":
                cs = self._new_set(msg, k, "bye")
            elif method == "CANCEL":
                cs = self._new_set(msg, k, "cancel")
            else:
                core.c["in_dialog_unmatched"] += 1
                return
            cs.legs.append(Leg(cs, State.INIT))
        assert isinstance(cs, CallSet)
        if method == "INVITE" and k.to_tag is None:
            self._invite(cs, msg, ts)
        elif method == "CANCEL":
            for leg in list(cs.legs):
                self._step(leg, Ev.CANCEL, msg, ts)
        else:
            tag, by_callee = self._dialog_tag(cs, k)
            is_bye = method == "BYE"
            leg = self._leg(cs, tag, fork=is_bye or method == "INVITE")
            ev = Ev.BYE if is_bye else Ev.REINVITE if method == "INVITE" else None
            if ev is None:
                leg.last_ts = ts
                core.set_state(leg, leg.state, ts)  # in-dialog traffic keeps the dialog alive
                self._drop_init(cs, leg)
            else:
                self._step(leg, ev, msg, ts, by_callee)

    def _invite(self, cs: CallSet, msg: SipMessage, ts: int) -> None:
        leg = cs.legs[0]
        cseq = self.core.key.cseq
        if cseq < cs.inv_cseq or same_txn(cs.inv_branches, msg, cs.inv_cseq):
            self.core.set_state(leg, leg.state, ts)  # an old INVITE (a copy not paired)
            return
        retry = leg.state in _RETRYABLE and proof(msg) is not None
        ev = Ev.RETRY if retry else Ev.INVITE
        new, eff = transition(leg.state, ev)
        if eff is Effect.CONCLUDE:
            self._effect(leg, TRANSITIONS[(leg.state, Ev.TIMEOUT)][1], None, ts)
        if new is leg.state and leg.state not in _PRE:
            return  # a new INVITE without To-tag in an established call: nothing to follow
        if new is not leg.state or leg.state is State.INIT:
            for other in cs.legs[1:]:  # a new attempt: forget the previous attempt's forks
                self.core.timers.cancel(other)
            del cs.legs[1:]
            leg.to_tag = None
            leg.pdd_ts = leg.ring_ts = leg.answer_ts = leg.status = leg.reason = leg.final = None
            cs.attempted = False
        cs.invite, cs.inv_ts, cs.inv_cseq, cs.creds = slim(msg), ts, cseq, proof(msg)
        cs.inv_branches = txn_branches(msg)
        cs.caller_tag = self.core.key.from_tag
        if cs.recon is not None and cs.recon != "bye":
            cs.recon = None
        leg.last_ts = ts
        self.core.set_state(leg, new, ts)

    # -- responses -----------------------------------------------------------------------------

    def response(self, msg: SipMessage, ts: int) -> None:
        """Route one response to INVITE, BYE, CANCEL or an in-dialog request."""
        core = self.core
        k = core.key
        method, status = k.cseq_method, k.status or 0
        cs = core.get(k.call_id)
        if cs is None:
            if method == "INVITE" and status > 100:
                cs = self._new_set(msg, k, "2xx" if 200 <= status < 300 else "reply")
            elif method == "BYE":
                cs = self._new_set(msg, k, "bye")
            else:
                core.c["unmatched_reply"] += 1
                return
            cs.legs.append(Leg(cs, State.INIT))
        assert isinstance(cs, CallSet)
        if method == "CANCEL":
            if 200 <= status < 300:
                for leg in list(cs.legs):
                    self._step(leg, Ev.R_CANCEL, msg, ts)
            return
        tag, by_callee = self._dialog_tag(cs, k)
        if method == "BYE":
            leg = self._leg(cs, tag, fork=True)
            self._step(leg, Ev.R_BYE, msg, ts, by_callee)
            return
        current = method == "INVITE" and status > 100 and k.cseq >= cs.inv_cseq
        leg = self._leg(cs, tag, fork=current)
        if not current or leg.state not in _OPEN:
            leg.last_ts = ts
            core.set_state(leg, leg.state, ts)  # re-INVITE, PRACK, UPDATE, ... replies
            self._drop_init(cs, leg)
            return
        if 180 <= status < 190 and leg.ring_ts is None:
            leg.ring_ts = ts
        if (180 <= status < 190 or status >= 200) and leg.pdd_ts is None:
            leg.pdd_ts = ts
        if status >= 200 and (leg.status is None or (leg.status >= 300 and status < 300)):
            leg.status, leg.reason, leg.final = status, msg.reason, slim(msg)
        if status < 200:
            ev = Ev.R_1XX_TAG if k.to_tag else None
        elif status < 300:
            ev = Ev.R_2XX_INV
        elif cs.creds is not None and (status in _AUTH_CODES or status == 403):
            ev = Ev.R_AUTH_FAIL_INV
        elif status in _AUTH_CODES:
            ev = Ev.R_CHALLENGE_INV
        else:
            ev = Ev.R_NEG_INV
        if ev is None:
            leg.last_ts = ts
            core.set_state(leg, leg.state, ts)
            self._drop_init(cs, leg)
            return
        self._step(leg, ev, msg, ts)

    # -- transitions and effects ---------------------------------------------------------------

    def _step(self, leg: Leg, ev: Ev, msg: SipMessage, ts: int, by_callee: bool = False) -> None:
        old = leg.state
        new, eff = transition(old, ev)
        leg.last_ts = ts
        if new is State.INV_CHALLENGED or new is State.INV_AUTH_FAILED:
            self.core.note_challenge(leg.cs.invite, leg.cs.call_id)
        self.core.set_state(leg, new, ts)
        if eff is not Effect.NONE:
            self._effect(leg, eff, msg, ts, by_callee)
        self._drop_init(leg.cs, leg)

    def _drop_init(self, cs: CallSet, leg: Leg) -> None:
        """A leg still in INIT after its first message has nothing to follow."""
        if leg.state is State.INIT:
            self._remove(leg)

    def timeout(self, leg: Leg, due: int) -> None:
        """The leg's timer fired at `due`: its final effect, then forget it."""
        new, eff = transition(leg.state, Ev.TIMEOUT)
        timer = timer_name(leg.state)
        leg.state = new
        self._effect(leg, eff, None, due, timer=timer)
        self._remove(leg)

    def _remove(self, leg: Leg) -> None:
        cs = leg.cs
        self.core.timers.cancel(leg)
        if leg in cs.legs:
            cs.legs.remove(leg)
        if not cs.legs:
            self.core.pop(cs.call_id)

    def _effect(
        self,
        leg: Leg,
        eff: Effect,
        msg: SipMessage | None,
        ts: int,
        by_callee: bool = False,
        timer: str | None = None,
    ) -> None:
        cs = leg.cs
        if eff is Effect.CALL_START:
            self._start(leg, msg, ts)
        elif eff is Effect.CALL_END or eff is Effect.END_TIMEOUT:
            self._end(leg, msg, ts, by_callee, eff is Effect.END_TIMEOUT)
        elif eff is Effect.AUTH_FAILED:
            txn = (cs.inv_cseq, cs.inv_branches)
            if msg is None or cs.auth_txn == txn:
                return
            cs.auth_txn = txn
            self._emit("auth-failed", leg, ts, msg, msg.status, msg.reason, None)
        elif eff is Effect.ATTEMPT or eff is Effect.ATTEMPT_TIMEOUT or eff is Effect.ATTEMPT_CANCEL:
            if cs.started or cs.attempted:
                return
            cs.attempted = True
            status: int | None
            reason: str | None
            if eff is Effect.ATTEMPT_TIMEOUT:
                status, reason = 408, f"timeout {timer or leg.state.value}"
            elif eff is Effect.ATTEMPT_CANCEL and leg.status is None:
                status, reason = 487, "cancel"  # the INVITE's final reply was not seen
            else:
                status, reason = leg.status, leg.reason
            m = self._metrics(leg)
            if m.pdd_ms is not None:
                self.pdd.observe(m.pdd_ms)
            self._emit("call-attempt", leg, ts, msg, status, reason, m)

    def _metrics(self, leg: Leg) -> CallMetrics:
        cs = leg.cs
        return CallMetrics(
            pdd_ms=_ms(cs.inv_ts, leg.pdd_ts),
            ring_time_ms=_ms(leg.ring_ts, leg.answer_ts),
            setup_time_ms=_ms(cs.inv_ts, leg.answer_ts),
            reconstructed=cs.recon is not None,
            reconstructed_from=cs.recon,
            retransmissions=cs.retrans,
        )

    def _start(self, leg: Leg, msg: SipMessage | None, ts: int) -> None:
        if leg.started:
            return
        leg.started = True
        leg.answer_ts = ts
        cs = leg.cs
        cs.started += 1
        if cs.started == 1:
            self.core.confirm(cs.call_id)
        m = self._metrics(leg)
        if m.pdd_ms is not None:
            self.pdd.observe(m.pdd_ms)
        if msg is not None and msg.is_request:  # an in-dialog request implied the 2xx
            m.reconstructed, m.reconstructed_from = True, cs.recon or "reinvite"
            m.setup_time_ms = m.ring_time_ms = None
            self._emit("call-start", leg, ts, msg, None, None, m, start=ts)
        else:
            if m.setup_time_ms is not None:
                self.setup.observe(m.setup_time_ms)
            st = msg.status if msg is not None else None
            rs = msg.reason if msg is not None else None
            self._emit("call-start", leg, ts, msg, st, rs, m, start=ts)

    def _end(
        self,
        leg: Leg,
        msg: SipMessage | None,
        ts: int,
        by_callee: bool,
        timed_out: bool,
        why: str = "timeout inv_established",
    ) -> None:
        if leg.ended:
            return
        leg.ended = True
        cs = leg.cs
        m = self._metrics(leg)
        status: int | None
        reason: str | None
        if leg.answer_ts is None:
            m.reconstructed, m.reconstructed_from = True, cs.recon or "bye"
        if timed_out:
            m.originator = "timeout"
            end = leg.last_ts
            status, reason = 408, why
        else:
            if cs.caller_known:
                m.originator = "callee" if by_callee else "caller"
            end = ts
            status, reason = (leg.status, leg.reason) if leg.started else (None, None)
        if leg.answer_ts is not None:
            m.duration_ns = max(0, end - leg.answer_ts)
            self.duration.observe(m.duration_ns / 1e6)
        leg.end_ts, leg.ended_by = end, m.originator
        self._emit("call-end", leg, ts, msg, status, reason, m, start=leg.answer_ts, end=end)

    def _emit(
        self,
        action: str,
        leg: Leg,
        ts: int,
        msg: SipMessage | None,
        status: int | None,
        reason: str | None,
        metrics: CallMetrics | None,
        start: int | None = None,
        end: int | None = None,
    ) -> None:
        cs = leg.cs
        if action == "call-end" and msg is not None:
            flow = flow_of(msg)  # the BYE, or its reply
        else:
            flow = flow_of(cs.invite, msg, leg.final)
        self.core.out.append(
            Outcome(
                action,
                ts,
                msg=msg,
                request=cs.invite,
                response=leg.final if action != "auth-failed" else msg,
                call_id=cs.call_id,
                method="INVITE",
                status=status,
                reason=reason,
                client=cs.client,
                server=cs.server,
                start_ns=start,
                end_ns=end,
                call=metrics,
                flow=flow,
            )
        )

    # -- end of input --------------------------------------------------------------------------

    def expire_established(self, leg: Leg, ts: int) -> None:
        """End an established leg now (finish "expire-all")."""
        self.core.timers.cancel(leg)
        leg.last_ts = max(leg.last_ts, ts)
        leg.state = State.DONE
        self._end(leg, None, ts, False, True, "timeout end of replay")
        self._remove(leg)
