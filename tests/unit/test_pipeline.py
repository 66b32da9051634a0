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
