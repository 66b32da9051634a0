"""The dashboard's aggregations on their own: call outcome keys and ratios, the bounded
auth-failure source table, the counter history ring and the readable call states."""

from __future__ import annotations

from sipcm.authsources import AuthSources
from sipcm.callstats import outcome_key, summary
from sipcm.history import History
from sipcm.track.outcome import Outcome
from sipcm.track.states import CALL_STATE_TEXT, State, call_state_text

S = 1_000_000_000


def test_outcome_keys() -> None:
    assert outcome_key(Outcome("call-start", 0, method="INVITE", status=200)) == "answered"
    assert outcome_key(Outcome("call-attempt", 0, method="INVITE", status=486)) == "486"
    timer = Outcome("call-attempt", 0, method="INVITE", status=408, reason="timeout inv_1st")
    assert outcome_key(timer) == "timeout"
    replied = Outcome("call-attempt", 0, method="INVITE", status=408, reason="Request Timeout")
    assert outcome_key(replied) == "408"
    assert outcome_key(Outcome("auth-failed", 0, method="INVITE", status=403)) == "403"
    assert outcome_key(Outcome("auth-failed", 0, method="REGISTER", status=401)) is None
    assert outcome_key(Outcome("call-end", 0, method="INVITE")) is None


def test_summary_without_calls() -> None:
    assert summary({}) == {
        "attempted": 0,
        "answered": 0,
        "effective": 0,
        "asr": None,
        "ner": None,
        "ner_user_codes": [480, 486, 487, 600, 603],
        "failures": [],
    }


def test_auth_sources_cap_counts_what_it_cannot_hold() -> None:
    t = AuthSources(capacity=2)
    for ip, ts in (("a", 1), ("b", 2), ("a", 3), ("c", 4), ("c", 5), ("b", 6)):
        t.add(ip, ts)
    assert t.top(5) == {
        "total": 6,
        "sources": 2,
        "capacity": 2,
        "untracked": 2,  # both failures from c found the table full
        "top": [
            {"source_ip": "b", "failures": 2, "first_ns": 2, "last_ns": 6},
            {"source_ip": "a", "failures": 2, "first_ns": 1, "last_ns": 3},
        ],
    }
    assert [r["source_ip"] for r in t.top(1)["top"]] == ["b"]


def test_history_ring_boundaries_and_window() -> None:
    h = History(interval_s=5, capacity=3, window_s=10)
    h.start(7 * S)
    assert h.next_ns == 10 * S
    snap = {"sip": {"messages": 4}, "call_outcomes": {"answered": 1}, "decode": {"x": 9}}
    h.add(10 * S, snap, 10 * S)
    assert h.next_ns == 15 * S
    h.add(15 * S, {"sip": {"messages": 6}, "call_outcomes": {"answered": 1, "486": 1}}, 31 * S)
    assert h.next_ns == 35 * S  # an idle gap: one sample, then the schedule realigns
    h.add(31 * S, {"sip": {"messages": 7}, "call_outcomes": {"answered": 2, "486": 3}}, 31 * S)
    h.add(31 * S, {"sip": {"messages": 8}, "call_outcomes": {"answered": 2, "486": 3}}, 31 * S)
    samples = h.view()["samples"]
    assert [(s["t"], s["c"]) for s in samples] == [
        (10 * S, {"call_outcomes.answered": 1, "sip.messages": 4}),
        (15 * S, {"call_outcomes.486": 1, "call_outcomes.answered": 1, "sip.messages": 6}),
        (31 * S, {"call_outcomes.486": 3, "call_outcomes.answered": 2, "sip.messages": 8}),
    ]
    # The window at 31 s starts from the sample at 15 s (the last one at least 10 s older).
    assert samples[-1]["calls"] == {"attempted": 3, "asr": 0.3333, "ner": 1.0}
    h.add(40 * S, {}, 40 * S)
    assert [s["t"] for s in h.view()["samples"]] == [15 * S, 31 * S, 40 * S]  # capacity 3
    assert [s["t"] for s in h.view(31 * S)["samples"]] == [40 * S]


def test_every_dialog_state_reads_as_words() -> None:
    dialog_states = [s for s in State if not s.name.startswith("NON_INV")]
    assert set(dialog_states) <= set(CALL_STATE_TEXT)
    kw = {"status": None, "reason": None, "by": None, "ringing": False}
    assert call_state_text(State.INV_1ST, **kw) == "calling"
    assert call_state_text(State.INV_1ST, **{**kw, "ringing": True}) == "ringing"
    assert call_state_text(State.INV_NEG, **{**kw, "status": 486, "reason": "Busy Here"}) == (
        "failed: 486 Busy Here"
    )
    assert call_state_text(State.INV_BYE_SEEN, **{**kw, "by": "callee"}) == "ended: BYE by callee"
    assert call_state_text(State.INV_BYE_REPL, **kw) == "ended: BYE"
    assert call_state_text(State.INV_NEG, **kw) == "failed: no final reply"
