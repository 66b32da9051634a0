"""The transition table: reachability, terminal states, timers, and the rows SPEC 6 relies on."""

from __future__ import annotations

from sipcm.track.states import (
    DEFAULT_TIMEOUTS,
    PENDING,
    TERMINAL,
    TIMER_OF,
    TRANSITIONS,
    Effect,
    Ev,
    State,
    transition,
)


def test_every_state_is_reachable_from_init() -> None:
    seen = {State.INIT}
    todo = [State.INIT]
    while todo:
        s = todo.pop()
        for (src, _), (dst, _) in TRANSITIONS.items():
            if src is s and dst not in seen:
                seen.add(dst)
                todo.append(dst)
    assert seen == set(State)


def test_terminal_states_are_final() -> None:
    assert {State.DONE} == TERMINAL
    assert [k for k in TRANSITIONS if k[0] in TERMINAL] == []
    for ev in Ev:
        assert transition(State.DONE, ev) == (State.DONE, Effect.NONE)


def test_every_waiting_state_has_a_timer_that_ends_it() -> None:
    waiting = set(State) - TERMINAL - {State.INIT}
    for s in waiting:
        assert TRANSITIONS[(s, Ev.TIMEOUT)][0] is State.DONE, s
        assert TIMER_OF[s] in DEFAULT_TIMEOUTS, s
    assert (State.INIT, Ev.TIMEOUT) not in TRANSITIONS
    assert set(TIMER_OF) == waiting
    assert set(TIMER_OF.values()) == set(DEFAULT_TIMEOUTS)
    assert waiting - {State.INV_ESTABLISHED} == PENDING


def test_unlisted_pairs_keep_the_state() -> None:
    assert transition(State.INV_ESTABLISHED, Ev.R_NEG_INV) == (State.INV_ESTABLISHED, Effect.NONE)
    assert transition(State.INV_ESTABLISHED, Ev.REINVITE) == (State.INV_ESTABLISHED, Effect.NONE)
    assert transition(State.INV_CANCELED, Ev.R_NEG_INV) == (State.INV_CANCELED, Effect.NONE)
    assert transition(State.INV_BYE_SEEN, Ev.BYE) == (State.INV_BYE_SEEN, Effect.NONE)


def test_timeout_effects() -> None:
    effects = {s: TRANSITIONS[(s, Ev.TIMEOUT)][1] for s in TIMER_OF}
    assert effects == {
        State.INV_1ST: Effect.ATTEMPT_TIMEOUT,
        State.INV_EARLY: Effect.ATTEMPT_TIMEOUT,
        State.INV_NEG: Effect.ATTEMPT,
        State.INV_CHALLENGED: Effect.ATTEMPT,
        State.INV_AUTH_FAILED: Effect.NONE,
        State.INV_CANCELED: Effect.ATTEMPT_CANCEL,
        State.INV_ESTABLISHED: Effect.END_TIMEOUT,
        State.INV_BYE_SEEN: Effect.NONE,
        State.INV_BYE_REPL: Effect.NONE,
        State.NON_INV_1ST: Effect.OTHER_TIMEOUT,
        State.NON_INV_NEG: Effect.OTHER_FAILED,
        State.NON_INV_CHALLENGED: Effect.OTHER_FAILED,
        State.NON_INV_AUTH_FAILED: Effect.NONE,
        State.NON_INV_FIN: Effect.OTHER_OK,
    }


def test_key_rows() -> None:
    assert transition(State.INV_1ST, Ev.R_2XX_INV) == (State.INV_ESTABLISHED, Effect.CALL_START)
    assert transition(State.INV_NEG, Ev.R_2XX_INV) == (State.INV_ESTABLISHED, Effect.CALL_START)
    assert transition(State.INV_CHALLENGED, Ev.RETRY) == (State.INV_1ST, Effect.NONE)
    assert transition(State.INV_1ST, Ev.R_AUTH_FAIL_INV) == (
        State.INV_AUTH_FAILED,
        Effect.AUTH_FAILED,
    )
    assert transition(State.INV_ESTABLISHED, Ev.BYE) == (State.INV_BYE_SEEN, Effect.CALL_END)
    assert transition(State.INV_BYE_SEEN, Ev.R_BYE) == (State.INV_BYE_REPL, Effect.NONE)
    assert transition(State.INV_NEG, Ev.INVITE) == (State.INV_1ST, Effect.CONCLUDE)
    assert transition(State.NON_INV_FIN, Ev.REQ) == (State.NON_INV_1ST, Effect.CONCLUDE)
    assert transition(State.NON_INV_1ST, Ev.R_2XX_REG) == (State.NON_INV_FIN, Effect.REG)
    # a credentialed request refused and retried: only the auth-failed states accept RETRY
    retry_from = {s for (s, ev) in TRANSITIONS if ev is Ev.RETRY}
    assert retry_from == {
        State.INV_CHALLENGED,
        State.INV_AUTH_FAILED,
        State.NON_INV_CHALLENGED,
        State.NON_INV_AUTH_FAILED,
    }
