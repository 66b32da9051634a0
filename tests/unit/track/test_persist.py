"""State across restarts: tracker records (`persist.py`), the state file (`snapshot.py`), and
a tracker restored mid-traffic giving the same documents as one that never stopped."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from sipcm.decode.packet import Payload
from sipcm.events.build import EventBuilder
from sipcm.sip.parser import parse
from sipcm.track import persist, snapshot
from sipcm.track.core import CallSet, Leg, Trans
from sipcm.track.regs import Binding
from sipcm.track.tracker import Tracker
from tests.ecs import assert_valid
from tests.events.scen import auth_hdr
from tests.sipgen import SDP, T0, S
from tests.sipgen import Leg as Party

MIN = 60 * S
SDP_HDR = ("Content-Type: application/sdp",)
RESTART = (T0 + 10 * S, T0 + 20 * S)  # stopped after 10 s of traffic, back 10 s later


def own_attrs(cls: type) -> set[str]:
    """A class's own attributes: `__slots__`, or what mypyc lists when it is compiled."""
    own = cls.__dict__.get("__slots__")
    if own is not None:
        return set(own)
    inherited = {a for b in cls.__mro__[1:] for a in getattr(b, "__mypyc_attrs__", ())}
    return set(cls.__mypyc_attrs__) - inherited


def tracker(**kw: object) -> Tracker:
    return Tracker(Counter(), **kw)  # type: ignore[arg-type]


def traffic() -> list[tuple[int, bytes, tuple[str, int], tuple[str, int]]]:
    """(time, bytes, source, destination) of: an established call hung up after the restart
    ("a"); a call ringing across the restart and answered after it ("b"); a busy call whose
    inv_neg timer runs across it ("c"); a registration with credentials that is never
    refreshed; an OPTIONS never answered; an OPTIONS answered just before the restart (its
    non_inv_fin timer expires while stopped)."""
    out = []

    def a2b(p: Party, t: float, raw: bytes) -> None:
        out.append((T0 + round(t * 1000) * 1_000_000, raw, (p.a_ip, p.a_port), (p.b_ip, p.b_port)))

    def b2a(p: Party, t: float, raw: bytes) -> None:
        out.append((T0 + round(t * 1000) * 1_000_000, raw, (p.b_ip, p.b_port), (p.a_ip, p.a_port)))

    def invite(p: Party, t: float) -> object:
        p.to_tag = None
        inv = p.req("INVITE", body=SDP, headers=SDP_HDR)
        a2b(p, t, inv.raw)
        p.to_tag = f"tt-{p.call_id}"
        return inv

    a = Party("a@test", from_tag="fa")
    inv = invite(a, 0.0)
    b2a(a, 0.2, a.resp(inv, 180, "Ringing"))
    b2a(a, 2.0, a.resp(inv, 200, "OK", body=SDP, headers=SDP_HDR))
    a2b(a, 2.02, a.req("ACK", cseq=inv.cseq).raw)
    b = Party("b@test", a_ip="192.0.2.11", from_tag="fb", user_agent="Other/3")
    inv_b = invite(b, 5.0)
    b2a(b, 5.2, b.resp(inv_b, 180, "Ringing"))
    c = Party("c@test", a_ip="192.0.2.12", from_tag="fc")
    inv_c = invite(c, 8.0)
    b2a(c, 8.5, c.resp(inv_c, 486, "Busy Here"))
    r = Party("reg@test", a_user="carol", b_user="carol", from_tag="fr")
    reg = r.req("REGISTER", headers=("Expires: 60", auth_hdr("carol")))
    a2b(r, 7.0, reg.raw)
    contact = ("Contact: <sip:carol@192.0.2.10:5060>;expires=60",)
    b2a(r, 7.1, r.resp(reg, 200, "OK", to_tag="rt", headers=contact))
    o1 = Party("o1@test", from_tag="fo1")
    a2b(o1, 9.0, o1.req("OPTIONS").raw)
    o2 = Party("o2@test", from_tag="fo2")
    opt = o2.req("OPTIONS")
    a2b(o2, 9.5, opt.raw)
    b2a(o2, 9.6, o2.resp(opt, 200, "OK", to_tag="to2"))
    # after the restart
    b2a(b, 25.0, b.resp(inv_b, 200, "OK", body=SDP, headers=SDP_HDR))
    a2b(b, 25.02, b.req("ACK", cseq=inv_b.cseq).raw)
    a2b(a, 30.0, a.req("BYE").raw)
    bye_b = b.req("BYE", from_callee=True, cseq=1)
    b2a(b, 40.0, bye_b.raw)
    return sorted(out, key=lambda x: x[0])


def feed(t: Tracker, items: list, builder: EventBuilder) -> list[dict]:
    docs = []
    for ts, raw, src, dst in items:
        msg = parse(raw)
        msg.payload = Payload(raw, ts, src[0], dst[0], src[1], dst[1], "udp", 4, True)
        docs += [builder.build(o) for o in t.process(msg)]
    return docs


def through_file(tmp_path: Path, records: list[dict], saved: int, now: int) -> list[dict]:
    path = tmp_path / "state.json"
    snapshot.save(path, records, saved)
    got = snapshot.load(path, max_age_ns=5 * MIN, now_ns=now)
    assert got.problem is None
    assert not got.too_old
    assert not path.exists()
    return list(got.records)


def test_restored_tracker_gives_the_documents_of_one_that_never_stopped(tmp_path: Path) -> None:
    build = EventBuilder("sensor").build
    items = traffic()
    before = [x for x in items if x[0] <= RESTART[0]]
    after = [x for x in items if x[0] > RESTART[0]]
    end = T0 + 200 * S

    ref = tracker()
    b = EventBuilder("sensor")
    want = feed(ref, before, b)
    want += [build(o) for o in ref.advance(RESTART[1])]
    want += feed(ref, after, b)
    want += [build(o) for o in ref.advance(end)]

    first = tracker()
    got = feed(first, before, b)
    records = json.loads(json.dumps(first.export_state()))  # what a file holds
    assert Counter(r["kind"] for r in records) == {"call": 3, "trans": 3, "binding": 1}
    second = tracker()
    records = through_file(tmp_path, records, RESTART[0], RESTART[1])
    assert second.import_state(records, RESTART[1]) == (7, 0)
    assert second.counters["state_restored"] == 7
    got += [build(o) for o in second.advance(RESTART[1])]
    got += feed(second, after, b)
    got += [build(o) for o in second.advance(end)]

    assert got == want
    brief = [(d["event"]["action"], d["sip"]["call_id"], d["@timestamp"][11:23]) for d in got]
    assert brief == [
        ("call-start", "a@test", "22:13:22.000"),
        ("reg-new", "reg@test", "22:13:27.100"),
        ("other-ok", "o2@test", "22:13:34.600"),  # non_inv_fin ran out while stopped
        ("call-start", "b@test", "22:13:45.000"),
        ("call-end", "a@test", "22:13:50.000"),
        ("call-attempt", "c@test", "22:13:58.500"),  # inv_neg, 30 s after the 486
        ("other-timeout", "o1@test", "22:13:59.000"),
        ("call-end", "b@test", "22:14:00.000"),
        ("reg-expired", "reg@test", "22:14:57.100"),  # 60 s + reg_exp_delta 30 s
    ]
    ends = {d["sip"]["call_id"]: d for d in got if d["event"]["action"] == "call-end"}
    assert ends["a@test"]["event"]["duration"] == 28 * S
    assert ends["a@test"]["sip"]["call"]["reconstructed"] is False
    assert ends["b@test"]["event"]["duration"] == 15 * S
    assert ends["b@test"]["sip"]["call"]["originator"] == "callee"
    start_b = next(
        d for d in got if d["event"]["action"] == "call-start" and d["sip"]["call_id"] == "b@test"
    )
    assert start_b["sip"]["call"]["setup_time"] == 20_000.0  # INVITE before, 200 after
    assert start_b["user_agent"]["original"] == "Other/3"
    for d in got:
        assert_valid(d)


def test_records_carry_every_slot_and_their_shard_key() -> None:
    t = tracker()
    b = EventBuilder("sensor")
    feed(t, [x for x in traffic() if x[0] <= RESTART[0]], b)
    records = t.export_state()
    keys = {(r["kind"], r["shard_key"]) for r in records}
    assert keys == {
        ("call", "a@test"), ("call", "b@test"), ("call", "c@test"),
        ("trans", "sip:carol@example.com"),  # REGISTER: the address-of-record
        ("trans", "o1@test"), ("trans", "o2@test"),
        ("binding", "sip:carol@example.com"),
    }  # fmt: skip
    for rec in records:
        cls = persist.KINDS[rec["kind"]]
        assert set(rec) == {"kind", "shard_key", *own_attrs(cls)} | (
            {"due"} if cls is not CallSet else set()
        )
    call = next(r for r in records if r["shard_key"] == "a@test")
    assert set(call["legs"][0]) == {"due", *(s for s in own_attrs(Leg) if s != "cs")}
    # decoded entries equal the originals slot by slot (messages compared field by field)
    again = tracker()
    again.import_state(json.loads(json.dumps(records)), RESTART[1])
    for rec in records:
        orig, copy = _find(t, rec), _find(again, rec)
        for slot in sorted(own_attrs(type(orig))):
            if slot == "legs":
                for lo, lc in zip(orig.legs, copy.legs, strict=True):
                    for s in sorted(own_attrs(Leg)):
                        if s != "cs":
                            assert getattr(lo, s) == getattr(lc, s), s
                        assert lc.cs is copy
                    assert lo.due == lc.due
            else:
                assert getattr(orig, slot) == getattr(copy, slot), slot
        if not isinstance(orig, CallSet):
            assert orig.due == copy.due
    assert again.export_state() == records


def _find(t: Tracker, rec: dict) -> CallSet | Trans | Binding:
    if rec["kind"] == "binding":
        return next(iter(t._regs.table.values()))
    if rec["kind"] == "call":
        return t.entries[rec["shard_key"]]  # type: ignore[return-value]
    return next(
        e
        for e in t.entries.values()
        if isinstance(e, Trans) and persist.shard_key(e) == rec["shard_key"]
    )  # type: ignore[return-value]


def sample_records() -> list[dict]:
    t = tracker()
    feed(t, [x for x in traffic() if x[0] <= RESTART[0]], EventBuilder("sensor"))
    return json.loads(json.dumps(t.export_state()))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: r.update(kind="dialog"), "unknown record kind 'dialog'"),
        (lambda r: r.pop("caller_tag"), "CallSet: missing ['caller_tag'], unknown []"),
        (lambda r: r.update(colour="red"), "CallSet: missing [], unknown ['colour']"),
        (lambda r: r["legs"][0].update(state="ringing"), "Leg: unknown state 'ringing'"),
        (lambda r: r["legs"][0].update(due="soon"), "Leg: due is not an integer"),
        (lambda r: r["invite"].update(cseq="one"), "SipMessage.cseq: expected int, got str"),
        (lambda r: r["invite"]["from_"].pop("uri"), "NameAddr: missing uri"),
        (lambda r: r["invite"]["payload"].update(src_ip=None), "Payload.src_ip: may not be null"),
        (lambda r: r["invite"].update(vias={}), "SipMessage.vias: expected a list"),
        (lambda r: r.update(shard_key="other"), "CallSet record: shard_key does not match"),
        (lambda r: r.update(client={"ip": 1}), "CallSet.client: unexpected dict"),
    ],
)
def test_a_record_that_does_not_fit_changes_nothing(damage, message) -> None:
    records = sample_records()
    damage(next(r for r in records if r["shard_key"] == "a@test"))
    t = tracker()
    with pytest.raises(persist.StateError) as exc:
        t.import_state(records, RESTART[1])
    assert str(exc.value).startswith(message)
    assert len(t.entries) == 0
    assert t.registrations() == []
    assert t.stats()["timers"] == 0
    assert t.counters["state_restored"] == 0


def test_a_record_saved_before_the_call_end_slots_restores() -> None:
    records = sample_records()
    for rec in records:
        for leg in rec.get("legs", ()):
            del leg["end_ts"], leg["ended_by"]  # what an older version saved
    t = tracker()
    assert t.import_state(records, RESTART[1]) == (len(records), 0)
    legs = [leg for e in t.entries.values() if isinstance(e, CallSet) for leg in e.legs]
    assert legs
    assert {(leg.end_ts, leg.ended_by) for leg in legs} == {(None, None)}


def test_import_keeps_the_most_recent_entries_within_each_budget() -> None:
    # least recently used first: pending b (5.2 s), REGISTER (7.1), c (8.5), o1 (9.0),
    # o2 (9.6), then established a, then the binding
    records = sample_records()
    assert [r["shard_key"] for r in records] == [
        "b@test", "sip:carol@example.com", "c@test", "o1@test", "o2@test", "a@test",
        "sip:carol@example.com",
    ]  # fmt: skip
    t = tracker(max_pending=2, max_calls=1, max_regs=1)
    assert t.import_state(records, RESTART[1]) == (4, 3)
    assert set(t.entries) == {"a@test", ("o1@test", "OPTIONS"), ("o2@test", "OPTIONS")}
    assert t.counters["state_discarded"] == 3
    # split by shard key and restored into two trackers, nothing is lost
    one, two = tracker(), tracker()
    assert one.import_state([r for r in records if r["shard_key"] < "c"], 0) == (2, 0)
    assert two.import_state([r for r in records if r["shard_key"] >= "c"], 0) == (5, 0)
    # a key given twice keeps the later record; keys already tracked are not replaced
    dup = tracker()
    assert dup.import_state(records + records[:1], RESTART[1]) == (7, 1)
    assert dup.import_state(records, RESTART[1]) == (0, 7)


def test_state_file_roundtrip_is_atomic_and_read_once(tmp_path: Path) -> None:
    records = sample_records()
    path = tmp_path / "sub" / "state.json"
    snapshot.save(path, records, T0)
    header = json.loads(path.read_text().splitlines()[0])
    assert header == {"format": "sipcm-state", "version": 1, "saved_ns": T0, "records": 7}
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]  # no temp file left
    got = snapshot.load(path, max_age_ns=5 * MIN, now_ns=T0 + 299 * S)
    assert (got.saved_ns, got.count, got.problem, got.too_old) == (T0, 7, None, False)
    assert not path.exists()  # removed once opened: a crash mid-restore cannot restore twice
    assert list(got.records) == records
    nothing = snapshot.load(path, max_age_ns=5 * MIN, now_ns=T0)
    assert (nothing.saved_ns, nothing.problem, list(nothing.records)) == (None, None, [])


def _saved(tmp_path: Path, text: str | None = None) -> Path:
    path = tmp_path / "state.json"
    snapshot.save(path, sample_records(), T0)
    if text is not None:
        path.write_text(text)
    return path


def test_state_file_older_than_the_maximum_age_is_discarded(tmp_path: Path) -> None:
    got = snapshot.load(_saved(tmp_path), max_age_ns=5 * MIN, now_ns=T0 + 5 * MIN + 1)
    assert (got.count, got.too_old, got.problem, list(got.records)) == (7, True, None, [])
    assert not (tmp_path / "state.json").exists()


@pytest.mark.parametrize(
    ("mangle", "count", "problem"),
    [
        (lambda t: "garbage\n", 0, "not a sipcm state file (no valid header line)"),
        (lambda t: "", 0, "not a sipcm state file (no valid header line)"),
        (lambda t: '{"format": "other"}\n', 0, "not a sipcm state file (no valid header line)"),
        (lambda t: t.replace('"saved_ns": ', '"saved_ns": "', 1), 0,
         "not a sipcm state file (no valid header line)"),
        (lambda t: t.replace('"version": 1', '"version": 2', 1), 7,
         "format version 2, this sipcm reads version 1"),
    ],
)  # fmt: skip
def test_state_file_with_a_bad_header(tmp_path: Path, mangle, count, problem) -> None:
    path = _saved(tmp_path)
    path.write_text(mangle(path.read_text()))
    got = snapshot.load(path, max_age_ns=5 * MIN, now_ns=T0)
    assert (got.count, got.problem, list(got.records)) == (count, problem, [])
    assert not path.exists()


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (
            lambda t: t[: t.rindex("\n", 0, -1) + 1],
            "6 records where the header says 7 (truncated?)",
        ),
        (lambda t: t[:-40] + "\n", "line 8 is not valid JSON"),
        (lambda t: t + "[1, 2]\n", "line 9 is not a record"),
    ],
)
def test_state_file_with_a_bad_record_restores_nothing(tmp_path: Path, mangle, message) -> None:
    path = _saved(tmp_path)
    path.write_text(mangle(path.read_text()))
    got = snapshot.load(path, max_age_ns=5 * MIN, now_ns=T0)
    assert (got.count, got.problem) == (7, None)
    t = tracker()
    with pytest.raises(snapshot.CorruptFile, match=re.escape(message)):
        t.import_state(got.records, T0)
    assert len(t.entries) == 0
    assert t.registrations() == []
    assert t.stats()["timers"] == 0


def test_unreadable_state_file_is_a_problem_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "state.json").mkdir()
    got = snapshot.load(tmp_path / "state.json", max_age_ns=5 * MIN, now_ns=T0)
    assert got.problem == "cannot read it: Is a directory"
