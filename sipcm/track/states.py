"""The dialog / transaction state machine as data: states, inputs, effects, one table.

Input: the current `State` and an `Ev` (what a message or timer means for the entry, decided by
the tracker); output: the next state and an `Effect` the tracker carries out (emit an event,
update the binding cache, conclude the previous transaction). A pair missing from TRANSITIONS
keeps the state and has no effect (retransmissions, in-dialog traffic, late replies). This
module never looks at messages, clocks or memory.

States follow sipcmbeat's names (reference notes 1.4), which are also the names of the per-state
timeouts; `*_CHALLENGED` (401/407 to a request without credentials) and `*_AUTH_FAILED` (401/
407/403 to a request with credentials) split sipcmbeat's negative states so that the table says
which event the timer ends with. They wait `auth_wait` for a credentialed retry.
"""

from __future__ import annotations

from enum import Enum
from typing import Final


class State(Enum):
    __hash__ = object.__hash__  # identity: Enum's own __hash__ is Python code on a hot path
    INIT = "init"  # transient: the entry was just created, the first input decides
    INV_1ST = "inv_1st"
    INV_EARLY = "inv_early_dlg"
    INV_NEG = "inv_neg"
    INV_CHALLENGED = "inv_challenged"
    INV_AUTH_FAILED = "inv_auth_failed"
    INV_CANCELED = "inv_canceled"
    INV_ESTABLISHED = "inv_established"
    INV_BYE_SEEN = "inv_bye_seen"
    INV_BYE_REPL = "inv_bye_repl"
    NON_INV_1ST = "non_inv_1st"
    NON_INV_NEG = "non_inv_neg"
    NON_INV_CHALLENGED = "non_inv_challenged"
    NON_INV_AUTH_FAILED = "non_inv_auth_failed"
    NON_INV_FIN = "non_inv_fin"
    DONE = "done"  # terminal: the timer fired (or the entry was concluded at the end)


class Ev(Enum):
    __hash__ = object.__hash__
    INVITE = "invite"  # INVITE without To-tag starting a new transaction (CSeq above the last)
    RETRY = "retry"  # same-method request with credentials after a challenge
    REINVITE = "reinvite"  # INVITE with To-tag (in-dialog)
    BYE = "bye"
    CANCEL = "cancel"
    REQ = "req"  # out-of-dialog non-INVITE request starting a new transaction
    R_1XX_TAG = "r_1xx_tag"  # 101-199 to INVITE carrying a To-tag (early dialog)
    R_2XX_INV = "r_2xx_inv"
    R_NEG_INV = "r_neg_inv"  # 300-699 to INVITE, not an auth case
    R_CHALLENGE_INV = "r_challenge_inv"  # 401/407 to an INVITE without credentials
    R_AUTH_FAIL_INV = "r_auth_fail_inv"  # 401/407/403 to an INVITE with credentials
    R_CANCEL = "r_cancel"  # 2xx to CANCEL
    R_BYE = "r_bye"  # any final reply to BYE
    R_2XX = "r_2xx"  # 2xx to a non-INVITE, non-REGISTER transaction
    R_2XX_REG = "r_2xx_reg"  # 2xx to REGISTER
    R_NEG = "r_neg"
    R_CHALLENGE = "r_challenge"
    R_AUTH_FAIL = "r_auth_fail"
    TIMEOUT = "timeout"


class Effect(Enum):
    __hash__ = object.__hash__
    NONE = "none"
    CALL_START = "call_start"
    CALL_END = "call_end"
    ATTEMPT = "attempt"  # call-attempt with the recorded final status
    ATTEMPT_TIMEOUT = "attempt_timeout"  # call-attempt 408 (no final reply)
    ATTEMPT_CANCEL = "attempt_cancel"  # call-attempt 487
    END_TIMEOUT = "end_timeout"  # call-end, originator timeout
    AUTH_FAILED = "auth_failed"
    OTHER_OK = "other_ok"  # (nothing for REGISTER: the binding events cover it)
    OTHER_FAILED = "other_failed"
    OTHER_TIMEOUT = "other_timeout"
    REG = "reg"  # REGISTER 2xx: binding cache update
    CONCLUDE = "conclude"  # a new transaction replaces a finished one: its timer effect now


S, E, X = State, Ev, Effect
_PRE = (S.INIT, S.INV_1ST, S.INV_EARLY)  # INVITE sent, no final reply yet
_INV_NEGS = (S.INV_NEG, S.INV_CHALLENGED, S.INV_AUTH_FAILED)
_NI_NEGS = (S.NON_INV_NEG, S.NON_INV_CHALLENGED, S.NON_INV_AUTH_FAILED)
_NI_RETRY = (S.NON_INV_CHALLENGED, S.NON_INV_AUTH_FAILED)

TRANSITIONS: Final[dict[tuple[State, Ev], tuple[State, Effect]]] = {
    # INVITE transactions and dialogs (reference notes 1.5)
    (S.INIT, E.INVITE): (S.INV_1ST, X.NONE),
    **{(s, E.INVITE): (S.INV_1ST, X.CONCLUDE) for s in (S.INV_NEG, S.INV_CANCELED)},
    **{(s, E.RETRY): (S.INV_1ST, X.NONE) for s in (S.INV_CHALLENGED, S.INV_AUTH_FAILED)},
    **{(s, E.REINVITE): (S.INV_ESTABLISHED, X.CALL_START) for s in _PRE},
    (S.INIT, E.R_1XX_TAG): (S.INV_EARLY, X.NONE),
    (S.INV_1ST, E.R_1XX_TAG): (S.INV_EARLY, X.NONE),
    **{
        (s, E.R_2XX_INV): (S.INV_ESTABLISHED, X.CALL_START)
        for s in (*_PRE, *_INV_NEGS, S.INV_CANCELED)
    },
    **{(s, E.R_NEG_INV): (S.INV_NEG, X.NONE) for s in _PRE},
    **{(s, E.R_CHALLENGE_INV): (S.INV_CHALLENGED, X.NONE) for s in _PRE},
    **{(s, E.R_AUTH_FAIL_INV): (S.INV_AUTH_FAILED, X.AUTH_FAILED) for s in _PRE},
    **{(s, E.CANCEL): (S.INV_CANCELED, X.NONE) for s in _PRE},
    **{(s, E.R_CANCEL): (S.INV_CANCELED, X.NONE) for s in _PRE},
    **{(s, E.BYE): (S.INV_BYE_SEEN, X.CALL_END) for s in (*_PRE, *_INV_NEGS, S.INV_ESTABLISHED)},
    **{(s, E.R_BYE): (S.INV_BYE_REPL, X.CALL_END) for s in (*_PRE, *_INV_NEGS, S.INV_ESTABLISHED)},
    (S.INV_BYE_SEEN, E.R_BYE): (S.INV_BYE_REPL, X.NONE),
    (S.INV_1ST, E.TIMEOUT): (S.DONE, X.ATTEMPT_TIMEOUT),
    (S.INV_EARLY, E.TIMEOUT): (S.DONE, X.ATTEMPT_TIMEOUT),
    (S.INV_NEG, E.TIMEOUT): (S.DONE, X.ATTEMPT),
    (S.INV_CHALLENGED, E.TIMEOUT): (S.DONE, X.ATTEMPT),  # challenge never answered
    (S.INV_AUTH_FAILED, E.TIMEOUT): (S.DONE, X.NONE),  # already reported as auth-failed
    (S.INV_CANCELED, E.TIMEOUT): (S.DONE, X.ATTEMPT_CANCEL),
    (S.INV_ESTABLISHED, E.TIMEOUT): (S.DONE, X.END_TIMEOUT),
    (S.INV_BYE_SEEN, E.TIMEOUT): (S.DONE, X.NONE),
    (S.INV_BYE_REPL, E.TIMEOUT): (S.DONE, X.NONE),
    # non-INVITE transactions (OPTIONS, MESSAGE, SUBSCRIBE, REGISTER, ...)
    (S.INIT, E.REQ): (S.NON_INV_1ST, X.NONE),
    **{(s, E.REQ): (S.NON_INV_1ST, X.CONCLUDE) for s in (S.NON_INV_1ST, *_NI_NEGS, S.NON_INV_FIN)},
    **{(s, E.RETRY): (S.NON_INV_1ST, X.NONE) for s in _NI_RETRY},
    **{(s, E.R_2XX): (S.NON_INV_FIN, X.NONE) for s in (S.INIT, S.NON_INV_1ST, *_NI_NEGS)},
    **{(s, E.R_2XX_REG): (S.NON_INV_FIN, X.REG) for s in (S.INIT, S.NON_INV_1ST, *_NI_NEGS)},
    (S.INIT, E.R_NEG): (S.NON_INV_NEG, X.NONE),
    (S.NON_INV_1ST, E.R_NEG): (S.NON_INV_NEG, X.NONE),
    (S.NON_INV_1ST, E.R_CHALLENGE): (S.NON_INV_CHALLENGED, X.NONE),
    (S.NON_INV_1ST, E.R_AUTH_FAIL): (S.NON_INV_AUTH_FAILED, X.AUTH_FAILED),
    (S.NON_INV_1ST, E.TIMEOUT): (S.DONE, X.OTHER_TIMEOUT),
    (S.NON_INV_NEG, E.TIMEOUT): (S.DONE, X.OTHER_FAILED),
    (S.NON_INV_CHALLENGED, E.TIMEOUT): (S.DONE, X.OTHER_FAILED),  # challenge never answered
    (S.NON_INV_AUTH_FAILED, E.TIMEOUT): (S.DONE, X.NONE),
    (S.NON_INV_FIN, E.TIMEOUT): (S.DONE, X.OTHER_OK),
}
del S, E, X

TERMINAL: Final = frozenset({State.DONE})
# States whose entry is a pending transaction: `finish("conclude")` runs their timers.
PENDING: Final = frozenset(State) - {State.INV_ESTABLISHED, State.DONE, State.INIT}

# States whose timer effect is already decided: a final reply was seen and no credentialed retry
# can continue the entry, so the event its timer would publish cannot change. `finish("decided")`
# (a live sensor stopping) runs their timers now. NON_INV_FIN: other-ok (2xx seen, only its
# linger for late retransmissions is left); NON_INV_NEG: other-failed (a non-auth negative reply:
# a new request would conclude it the same way); INV_NEG: call-attempt with that reply, provided
# no other fork of the call is still unanswered (the tracker checks); INV_CANCELED: call-attempt
# 487 once the INVITE's own final reply was seen (else a 200 may still cross the CANCEL).
# Not decided: *_CHALLENGED (401/407 to a request without credentials: the retry that continues
# the attempt may still come within auth_wait), INV_1ST/INV_EARLY/NON_INV_1ST (no final reply),
# established calls and bindings. *_AUTH_FAILED and INV_BYE_* publish nothing at their timers.
DECIDED: Final = frozenset(
    {State.NON_INV_FIN, State.NON_INV_NEG, State.INV_NEG, State.INV_CANCELED}
)

# Timeout (seconds) per state name, defaults from the reference notes 1.4, plus `auth_wait`:
# how long a 401/407 waits for the credentialed retry that continues the attempt. Phones that
# ask their user for a password retry 15-50 s later (sip-wireshark.pcap in the corpus), so the
# reference's 5 s non-INVITE negative-reply timer would split one attempt into two events.
DEFAULT_TIMEOUTS: Final[dict[str, float]] = {
    "inv_1st": 120.0,
    "inv_early_dlg": 180.0,
    "inv_neg": 30.0,
    "inv_established": 3600.0,
    "inv_bye_seen": 30.0,
    "inv_bye_repl": 5.0,
    "inv_canceled": 5.0,
    "non_inv_1st": 30.0,
    "non_inv_neg": 5.0,
    "non_inv_fin": 5.0,
    "auth_wait": 60.0,
}
TIMER_OF: Final[dict[State, str]] = {s: s.value for s in State if s.value in DEFAULT_TIMEOUTS} | {
    State.INV_CHALLENGED: "auth_wait",
    State.INV_AUTH_FAILED: "auth_wait",
    State.NON_INV_CHALLENGED: "auth_wait",
    State.NON_INV_AUTH_FAILED: "auth_wait",
}


# What a person reads for a dialog in each state (the web's calls table): `call_state_text`
# fills in the final status ({status}) and who hung up ({by}). Non-INVITE states never show.
CALL_STATE_TEXT: Final[dict[State, str]] = {
    State.INIT: "new",
    State.INV_1ST: "calling",
    State.INV_EARLY: "ringing",
    State.INV_NEG: "failed: {status}",
    State.INV_CHALLENGED: "challenged: {status}",
    State.INV_AUTH_FAILED: "auth failed: {status}",
    State.INV_CANCELED: "cancelled",
    State.INV_ESTABLISHED: "answered",
    State.INV_BYE_SEEN: "ended: BYE by {by}",
    State.INV_BYE_REPL: "ended: BYE by {by}",
    State.DONE: "ended",
}
# Dialog states in which the call is over (a BYE was seen): their duration is final.
ENDED: Final = frozenset({State.INV_BYE_SEEN, State.INV_BYE_REPL, State.DONE})


def call_state_text(
    state: State, *, status: int | None, reason: str | None, by: str | None, ringing: bool
) -> str:
    """The readable state of a dialog, e.g. "ringing", "failed: 486 Busy Here",
    "ended: BYE by caller" (by: "caller", "callee" or None when the caller is unknown)."""
    if state is State.INV_1ST and ringing:  # a 180 without To-tag: no early dialog, but ringing
        state = State.INV_EARLY
    text = CALL_STATE_TEXT.get(state, state.value)
    code = f"{status} {reason}".strip() if status is not None else "no final reply"
    text = text.replace("{status}", code)
    return text.replace(" by {by}", f" by {by}" if by else "")


# TRANSITIONS by input, then by state, and the unlisted pairs' answer per state: a lookup
# without building a key or a default tuple per message.
_BY_EV: Final[dict[Ev, dict[State, tuple[State, Effect]]]] = {
    ev: {s: TRANSITIONS.get((s, ev), (s, Effect.NONE)) for s in State} for ev in Ev
}


def timer_name(state: State) -> str:
    """The name of the timer running in `state` (the state's own name when it has none)."""
    name = TIMER_OF.get(state)
    return name if name is not None else state.value


def transition(state: State, ev: Ev) -> tuple[State, Effect]:
    """The next state and the effect of input `ev` in `state` (unlisted: keep, no effect)."""
    return _BY_EV[ev][state]
