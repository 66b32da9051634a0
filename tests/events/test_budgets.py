"""Separate memory budgets end to end: a flood of unanswered INVITEs from another source, past
pending_max_entries, evicts only unanswered INVITEs; the established call it used to push out
ends with a normal call-end (SPEC 6: bounded memory, nothing reconstructed)."""

from __future__ import annotations

from pathlib import Path

from sipcm.config import load_config
from sipcm.run import replay
from tests.ecs import assert_valid
from tests.events.scen import MS, T0, Capture, Leg, S, briefs, iso
from tests.replayutil import Collect, replay_docs
from tests.sipgen import basic_call

FLOOD = 1500
BUDGET = 1000


def test_established_call_survives_a_flood_of_unanswered_invites(tmp_path: Path) -> None:
    """Call: INVITE T0, 200 T0+2 s, BYE T0+62 s (basic_call, talk 60 s). Flood: 1,500 INVITEs
    from 198.51.100.66, each a new Call-ID, 1 ms apart from T0+3 s, never answered."""
    cap = Capture()
    basic_call(cap, Leg("call@test"), T0, talk_s=60)
    for i in range(FLOOD):
        scan = Leg(f"scan-{i}@flood", a_ip="198.51.100.66", from_tag=f"s{i}")
        cap.a2b(scan, T0 + 3 * S + i * MS, scan.req("INVITE").raw)
    path = cap.write(tmp_path / "flood.pcap")
    cfg = load_config(
        None,
        ["stats_interval=0", "evr_limits=[0,0,0]", f"pending_max_entries={BUDGET}",
         "calls_max_entries=10", "workers=1"],
    )  # fmt: skip
    out, groups = Collect(), []
    replay(cfg, [str(path)], lambda c: (groups.append(c), [out])[1], end="conclude")
    docs = out.docs
    for d in docs:
        assert_valid(d)

    track = groups[0].group("track")
    assert track["pending_evicted"] == FLOOD - BUDGET
    assert track["calls_evicted"] == 0
    assert briefs(docs[:2]) == [
        ("call-start", "call@test", "INVITE", 200),
        ("call-end", "call@test", "INVITE", 200),
    ]
    end = docs[1]
    assert end["@timestamp"] == iso(T0 + 62 * S)
    assert end["event"]["duration"] == 60 * S
    assert end["event"]["start"] == iso(T0 + 2 * S)
    assert end["sip"]["call"]["reconstructed"] is False
    assert end["sip"]["call"]["originator"] == "caller"
    # The 1,000 INVITEs still held end as call-attempt 408 at the end of the replay (inv_1st,
    # 120 s after each); the 500 oldest were evicted and give nothing.
    attempts = docs[2:]
    assert [d["sip"]["call_id"] for d in attempts] == [
        f"scan-{i}@flood" for i in range(FLOOD - BUDGET, FLOOD)
    ]
    assert {(d["event"]["action"], d["sip"]["code"]) for d in attempts} == {("call-attempt", 408)}
    assert attempts[0]["@timestamp"] == iso(T0 + 123 * S + (FLOOD - BUDGET) * MS)
    # Two workers share the budgets (500 pending each) and keep the same established call.
    docs2, _ = replay_docs(
        [path], "evr_limits=[0,0,0]", f"pending_max_entries={BUDGET}", "calls_max_entries=10",
        workers=2,
    )  # fmt: skip
    assert docs2[:2] == docs[:2]
