"""Pipeline wiring: rate limiting and blacklisting applied between track and outputs."""

from __future__ import annotations

from pathlib import Path

from tests.ecs import assert_valid
from tests.replayutil import replay_docs
from tests.sipgen import MS, T0, Capture, Leg


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


def test_one_caller_over_the_limit_is_limited(tmp_path: Path) -> None:
    docs, _ = replay_docs([many_calls(tmp_path / "one.pcap", 40, same_caller=True)])
    starts = [d for d in docs if d["event"]["action"] == "call-start"]
    # 40 call-starts within 0.4 s from one caller: 20 pass, the 21st is the first over.
    assert len(starts) == 21
    assert starts[-1]["sipcm"]["rate"]["exceeded"] == 1
