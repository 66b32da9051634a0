"""Pipeline wiring: rate limiting and blacklisting applied between track and outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipcm.capture.pcapfile import PcapReader
from sipcm.config import load_config
from sipcm.events.build import rfc3339
from sipcm.pipeline import Pipeline
from tests.ecs import assert_valid
from tests.replayutil import Collect, replay_docs
from tests.sipgen import MS, T0, Capture, Leg, S


def options_flood(path: Path, n: int, spacing_ns: int) -> Path:
    """`n` OPTIONS from one IP, each answered 200, `spacing_ns` apart."""
    cap = Capture()
    for i in range(n):
        leg = Leg(f"opt-{i}@example.com")
        req = leg.req("OPTIONS")
        t = T0 + i * spacing_ns
        cap.a2b(leg, t, req.raw)
        cap.b2a(leg, t + 1 * MS, leg.resp(req, 200, "OK"))
    return cap.write(path)


def test_rate_limit_publishes_first_over_then_every_report_min(tmp_path: Path) -> None:
    # 250 OPTIONS in 250 ms from 192.0.2.10: the 1 s limit of 20 is crossed at the 21st event;
    # while blacklisted, repeats 1, 100 and 200 are published (SPEC 10), the rest counted.
    pcap = options_flood(tmp_path / "flood.pcap", 250, 1 * MS)
    docs, _ = replay_docs([pcap])
    assert all(d["event"]["action"] == "other-ok" for d in docs)
    limited = [d for d in docs if "rate" in d.get("sipcm", {})]
    assert len(docs) == 20 + 3
    assert [d["sipcm"]["rate"]["exceeded"] for d in limited] == [1, 100, 200]
    assert {d["sipcm"]["rate"]["limit"] for d in limited} == {20}
    for d in limited:
        assert_valid(d)


def test_rates_off_when_limits_are_zero(tmp_path: Path) -> None:
    pcap = options_flood(tmp_path / "flood.pcap", 250, 1 * MS)
    docs, _ = replay_docs([pcap], "evr_limits=[0,0,0]")
    assert len(docs) == 250


def test_blacklisted_event_type_is_not_published(tmp_path: Path) -> None:
    pcap = options_flood(tmp_path / "few.pcap", 5, 100 * MS)
    docs, _ = replay_docs([pcap], "event_types_blst=[other-ok]")
    assert docs == []


def many_calls(path: Path, n: int, *, same_caller: bool) -> Path:
    """`n` calls to one server within a second, from one caller or from `n` callers."""
    from tests.sipgen import basic_call

    cap = Capture()
    for i in range(n):
        ip = "192.0.2.10" if same_caller else f"198.51.100.{i + 1}"
        basic_call(cap, Leg(f"c{i}@example.com", a_ip=ip), T0 + i * 10 * MS, talk_s=1)
    return cap.write(path)


def test_rate_key_is_the_caller_side(tmp_path: Path) -> None:
    """40 callers each placing one call through one busy server: the server's 200 OKs
    trigger every call-start, yet nothing is limited, because the key is the caller."""
    docs, _ = replay_docs([many_calls(tmp_path / "many.pcap", 40, same_caller=False)])
    acts = [d["event"]["action"] for d in docs]
    assert (acts.count("call-start"), acts.count("call-end")) == (40, 40)
    assert not [d for d in docs if "rate" in d.get("sipcm", {})]


def test_call_records_are_never_limited_by_default(tmp_path: Path) -> None:
    """40 calls within 0.4 s from one caller (a trunk): every call-start and call-end is
    published, none is marked, nothing is counted as limited (issue 9.4)."""
    docs, totals = replay_docs([many_calls(tmp_path / "one.pcap", 40, same_caller=True)])
    acts = [d["event"]["action"] for d in docs]
    assert (acts.count("call-start"), acts.count("call-end")) == (40, 40)
    assert not [d for d in docs if "rate" in d.get("sipcm", {})]
    assert totals[0].limited == {}


def test_a_named_call_record_limit_applies(tmp_path: Path) -> None:
    """Naming call-start in evr_limits limits it like any other event: 20 pass, the 21st is
    the first over, 19 more are suppressed and counted per event name."""
    pcap = many_calls(tmp_path / "one.pcap", 40, same_caller=True)
    docs, totals = replay_docs([pcap], "evr_limits={call-start: [20, 240, 3600]}")
    starts = [d for d in docs if d["event"]["action"] == "call-start"]
    assert len(starts) == 21
    assert starts[-1]["sipcm"]["rate"]["exceeded"] == 1
    assert [d["event"]["action"] for d in docs].count("call-end") == 40  # still unlimited
    assert totals[0].limited == {"call-start": 19}


def test_limited_counts_per_file_and_in_stats_events(tmp_path: Path) -> None:
    """250 OPTIONS in 250 ms, then one more at T0+20 s: 20 other-ok pass, repeats 1, 100, 200
    are reported, 227 are suppressed (their non_inv_fin timers fire 5 s after each 200), as the
    stats event at T0+10 s says per event name. The last one is still over the minute window
    (251 > 240, its 229th repeat, not a reported one): 228 in the replay totals."""
    cap = Capture()
    for i in range(251):
        leg = Leg(f"opt-{i}@example.com")
        req = leg.req("OPTIONS")
        t = T0 + (i * MS if i < 250 else 20 * S)
        cap.a2b(leg, t, req.raw)
        cap.b2a(leg, t + 1 * MS, leg.resp(req, 200, "OK"))
    docs, totals = replay_docs([cap.write(tmp_path / "f.pcap")], "stats_interval=10s")
    assert totals[0].limited == {"other-ok": 228}
    stats = [d for d in docs if d["event"]["action"] == "stats"]
    assert [d["@timestamp"] for d in stats] == [rfc3339(T0 + 10 * S)]
    assert_valid(stats[0])
    assert stats[0]["sipcm"]["counters"]["rates_limited"] == {"other-ok": 227}
    assert stats[0]["sipcm"]["counters"]["rates"]["rate_suppressed"] == 227


def test_stop_publishes_what_is_decided_then_flushes(tmp_path: Path) -> None:
    """What a live sensor does on SIGINT/SIGTERM (`Pipeline.finish("decided")`): an OPTIONS
    answered 200 at T0+10 ms is published at once (stamped at its non_inv_fin expiry,
    T0+5.01 s); a REGISTER challenged 401 may still be retried and an INVITE still rings:
    neither is published. The outputs are flushed after the documents are written."""
    cap = Capture()
    opt_leg, reg_leg, inv_leg = Leg("stop-opt@t"), Leg("stop-reg@t"), Leg("stop-inv@t")
    opt = opt_leg.req("OPTIONS")
    cap.a2b(opt_leg, T0, opt.raw)
    cap.b2a(opt_leg, T0 + 10 * MS, opt_leg.resp(opt, 200, "OK", to_tag="o"))
    reg = reg_leg.req("REGISTER", ruri="sip:example.com")
    cap.a2b(reg_leg, T0 + 20 * MS, reg.raw)
    cap.b2a(reg_leg, T0 + 30 * MS, reg_leg.resp(reg, 401, "Unauthorized", to_tag="r"))
    inv = inv_leg.req("INVITE")
    cap.a2b(inv_leg, T0 + 40 * MS, inv.raw)
    cap.b2a(inv_leg, T0 + 50 * MS, inv_leg.resp(inv, 180, "Ringing", to_tag="i"))
    cfg = load_config(None, ["stats_interval=0"])
    seen: list[str] = []

    class Out:
        def write(self, docs: list[dict]) -> None:
            seen.extend(d["event"]["action"] for d in docs)
            for d in docs:
                assert_valid(d)
                assert d["sip"]["call_id"] == "stop-opt@t"
                assert d["@timestamp"] == rfc3339(T0 + 5 * S + 10 * MS)

        def flush(self) -> None:
            seen.append("flush")

        def close(self) -> None:
            pass

    pipe = Pipeline(cfg, [Out()], hostname="h")
    reader = PcapReader(str(cap.write(tmp_path / "stop.pcap")))
    try:
        for batch in reader.batches(64):
            pipe.feed(batch)
    finally:
        reader.close()
    assert seen == []
    pipe.finish("decided")
    assert seen == ["other-ok", "flush"]


class Batches:
    """An output that keeps every document and the size of every write."""

    def __init__(self) -> None:
        self.docs: list[dict] = []
        self.sizes: list[int] = []

    def write(self, events: list[dict]) -> None:
        self.docs.extend(events)
        self.sizes.append(len(events))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_end_of_replay_is_published_in_bounded_chunks(tmp_path: Path) -> None:
    """2,500 INVITEs nobody answers, 1 ms apart: at the end each is concluded (call-attempt,
    408, at INVITE + 120 s), built and written at most FINISH_CHUNK (1,000) at a time, in
    time order."""
    from sipcm.config import load_config
    from sipcm.pipeline import FINISH_CHUNK
    from sipcm.run import replay

    cap = Capture()
    for i in range(2500):
        leg = Leg(f"u{i}@example.com", a_ip=f"198.51.{100 + i // 250}.{i % 250 + 1}")
        cap.a2b(leg, T0 + i * MS, leg.req("INVITE").raw)
    path = cap.write(tmp_path / "unanswered.pcap")
    out = Batches()
    cfg = load_config(None, ["stats_interval=0", "evr_limits=[0,0,0]", "workers=1"])
    replay(cfg, [str(path)], lambda _c: [out], end="conclude")
    assert FINISH_CHUNK == 1000
    assert out.sizes == [1000, 1000, 500]
    assert [d["sip"]["call_id"] for d in out.docs] == [f"u{i}@example.com" for i in range(2500)]
    assert {(d["event"]["action"], d["sip"]["code"]) for d in out.docs} == {("call-attempt", 408)}
    assert out.docs[0]["@timestamp"] == "2023-11-14T22:15:20.000000000Z"  # T0 + 120 s
    for d in out.docs[::250]:
        assert_valid(d)


def test_history_samples_on_idle_ticks_as_a_live_sensor(tmp_path: Path) -> None:
    """A live sensor's clock also moves by ticks on an idle link: an OPTIONS at T0 answered
    at T0+1 ms; ticks at 3 s (before the first boundary), 6 s (sample at 5 s, the other-ok
    of the answered OPTIONS, fired at its 5.001 s expiry by this tick, included) and 21 s
    (one sample, at 20 s: the latest boundary the clock crossed, then every 5 s again)."""
    cfg = load_config(None, ["stats_interval=0", "workers=1"])
    pipe = Pipeline(cfg, [], hostname="h", heuristic=True)
    reader = PcapReader(str(options_flood(tmp_path / "o.pcap", 1, S)))
    for batch in reader.batches(4096):
        pipe.feed(batch)
    reader.close()
    pipe.tick(T0 + 3 * S)
    assert pipe.history.view()["samples"] == []
    pipe.tick(T0 + 6 * S)
    pipe.tick(T0 + 21 * S)
    samples = pipe.history.view()["samples"]
    assert [s["t"] for s in samples] == [T0 + 5 * S, T0 + 20 * S]
    assert [s["c"]["sip.messages"] for s in samples] == [2, 2]
    assert samples[0]["c"]["events_published.other-ok"] == 1
    assert pipe.history.next_ns == T0 + 25 * S
    pipe.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_replay_samples_the_dashboard_history_only_when_it_is_served(
    tmp_path: Path, workers: int
) -> None:
    """A history sample drains every worker first, so a replay whose pipeline nobody reads
    afterwards (no --serve: `after` is None) takes none; with `after` the 5 s boundaries of a
    12 s capture give samples at 5 s and 10 s plus the conclusion's, and the events are the
    same either way."""
    import sipcm.run
    from sipcm.run import replay

    path = options_flood(tmp_path / "o.pcap", 12, S)  # one OPTIONS a second for 12 s
    cfg = load_config(None, ["stats_interval=0", f"workers={workers}"])
    built: list[Pipeline] = []
    seen: list[list[int]] = []

    class Recording(Pipeline):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    def run(after) -> list[dict]:
        out = Collect()
        orig = sipcm.run.Pipeline
        sipcm.run.Pipeline = Recording  # type: ignore[misc]
        try:
            replay(cfg, [str(path)], lambda _c: [out], end="conclude", after=after)
        finally:
            sipcm.run.Pipeline = orig  # type: ignore[misc]
        return out.docs

    unserved = run(None)
    assert built[-1].history.view()["samples"] == []
    assert built[-1].history.next_ns is None
    served = run(lambda p: seen.append([s["t"] for s in p.history.view()["samples"]]))
    assert seen[0][:2] == [T0 + 5 * S, T0 + 10 * S]
    assert len(seen[0]) == 3
    assert [d["event"]["action"] for d in served] == [d["event"]["action"] for d in unserved]
    assert served == unserved
