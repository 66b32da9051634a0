"""Non-INVITE transactions outside calls: OPTIONS, MESSAGE, SUBSCRIBE, PUBLISH, REGISTER, ...

Input: out-of-dialog non-INVITE requests and their responses (not duplicates) and timer
expiries; output: other-ok / other-failed / other-timeout / auth-failed Outcomes appended to
`Core.out`, and REGISTER 2xx handed to the binding cache (`regs.py`). One `Trans` per Call-ID
and method follows the transactions of that Call-ID one after the other: a new request (higher
CSeq, or the same CSeq with a new Via branch: RFC 3261 17.1.3, as a password cracker that reuses
Call-ID and CSeq sends) concludes the previous one at once, except a credentialed retry after a
challenge, which continues it. A reply whose Via branches do not include the current request's
is a late reply to an earlier transaction and changes nothing. A 2xx to REGISTER produces
binding events, never other-ok. It never reads a clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from sipcm.track.core import Core, Trans, ends, flow_of, proof, same_txn, slim, txn_branches
from sipcm.track.outcome import Outcome
from sipcm.track.states import TIMER_OF, TRANSITIONS, Effect, Ev, State, timer_name, transition

if TYPE_CHECKING:
    from sipcm.sip.message import SipMessage
    from sipcm.track.regs import Registrar

_RETRYABLE: Final = frozenset({State.NON_INV_CHALLENGED, State.NON_INV_AUTH_FAILED})
_OPEN: Final = frozenset({State.INIT, State.NON_INV_1ST})  # no final reply yet
_ACTION: Final = {
    Effect.OTHER_OK: "other-ok",
    Effect.OTHER_FAILED: "other-failed",
    Effect.OTHER_TIMEOUT: "other-timeout",
}


class Transactions:
    """The non-INVITE side of the tracker (see module docstring)."""

    __slots__ = ("core", "regs")

    def __init__(self, core: Core, regs: Registrar) -> None:
        self.core = core
        self.regs = regs

    def request(self, msg: SipMessage, ts: int) -> None:
        """A request that starts (or retries, or retransmits) a transaction."""
        core = self.core
        k = core.key
        method = k.method or k.cseq_method
        key = (k.call_id, method)
        t = core.get(key)
        if t is None:
            if proof(msg) is not None:
                core.take_retry(msg)
            t = Trans(key, method)
            core.add(key, t)
        assert isinstance(t, Trans)
        if k.cseq < t.cseq or same_txn(t.branches, msg, t.cseq):
            core.set_state(t, t.state, ts)  # an old request (a copy the filter could not pair)
            return
        retry = t.state in _RETRYABLE and proof(msg) is not None
        new, eff = transition(t.state, Ev.RETRY if retry else Ev.REQ)
        if eff is Effect.CONCLUDE:
            self._effect(t, TRANSITIONS[(t.state, Ev.TIMEOUT)][1], None, ts, TIMER_OF[t.state])
        t.req, t.cseq, t.creds = slim(msg, method == "REGISTER"), k.cseq, proof(msg)
        t.branches = txn_branches(msg)
        t.resp = t.status = t.reason = None
        t.client, t.server = ends(msg)
        core.set_state(t, new, ts)

    def response(self, msg: SipMessage, ts: int) -> None:
        """A final or provisional response to a non-INVITE request."""
        core = self.core
        k = core.key
        status = k.status or 0
        t = core.get((k.call_id, k.cseq_method))
        if t is None:
            if k.cseq_method == "REGISTER" and 200 <= status < 300:
                self.regs.on_2xx(None, msg, ts)  # the request was not seen
            else:
                core.c["unmatched_reply"] += 1
            return
        assert isinstance(t, Trans)
        if status < 200 or not same_txn(t.branches, msg, t.cseq):
            core.set_state(t, t.state, ts)  # provisional, or late for an earlier transaction
            return
        ok = status < 300
        if ok:
            ev = Ev.R_2XX_REG if t.method == "REGISTER" else Ev.R_2XX
        elif t.creds is not None and status in (401, 403, 407):
            ev = Ev.R_AUTH_FAIL
        elif status in (401, 407):
            ev = Ev.R_CHALLENGE
        else:
            ev = Ev.R_NEG
        if t.state in _OPEN or (ok and t.state is not State.NON_INV_FIN):
            t.resp, t.status, t.reason = slim(msg), status, msg.reason
        if t.client is None:
            t.client, t.server = ends(msg)
        new, eff = transition(t.state, ev)
        if new is State.NON_INV_CHALLENGED or new is State.NON_INV_AUTH_FAILED:
            core.note_challenge(t.req, t.key)
        core.set_state(t, new, ts)
        if eff is not Effect.NONE:
            self._effect(t, eff, msg, ts)
        if t.state is State.INIT:
            core.drop(t.key)

    def timeout(self, t: Trans, due: int) -> None:
        """The transaction's timer fired at `due`: its final effect, then forget it."""
        new, eff = transition(t.state, Ev.TIMEOUT)
        timer = timer_name(t.state)
        t.state = new
        self._effect(t, eff, None, due, timer)
        self.core.pop(t.key)

    def _effect(
        self, t: Trans, eff: Effect, msg: SipMessage | None, ts: int, timer: str = ""
    ) -> None:
        if eff is Effect.REG:
            if msg is not None:
                self.regs.on_2xx(t.req, msg, ts)
            return
        if eff is Effect.AUTH_FAILED:
            txn = (t.cseq, t.branches)
            if msg is None or t.auth_txn == txn:
                return
            t.auth_txn = txn
            self._emit("auth-failed", t, ts, msg, msg.status, msg.reason)
            return
        action = _ACTION.get(eff)
        if action is None or (eff is Effect.OTHER_OK and t.method == "REGISTER"):
            return
        if eff is Effect.OTHER_TIMEOUT:
            self._emit(action, t, ts, msg, 408, f"timeout {timer}")
        else:
            self._emit(action, t, ts, msg, t.status, t.reason)

    def _emit(
        self,
        action: str,
        t: Trans,
        ts: int,
        msg: SipMessage | None,
        status: int | None,
        reason: str | None,
    ) -> None:
        self.core.out.append(
            Outcome(
                action,
                ts,
                msg=msg,
                request=t.req,
                response=msg if action == "auth-failed" else t.resp,
                call_id=t.call_id,
                method=t.method,
                status=status,
                reason=reason,
                client=t.client,
                server=t.server,
                flow=flow_of(t.req, msg),
            )
        )
