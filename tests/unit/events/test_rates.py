"""RateLimiter: sliding-window estimates, blacklisting, report thinning, recovery, table bound.

Expected values are derived by hand from the estimator in sipcm/events/rates.py:
est = prev * (I - off) / I + cur, buckets aligned to the key's first event.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sipcm.events.build import EventBuilder, rfc3339
from sipcm.events.rates import RateLimiter, next_report
from tests.ecs import assert_valid
from tests.unit.events.factories import T0, Outcome, invite

S = 1_000_000_000
MS = 1_000_000
A, B = "192.0.2.10", "2001:db8::1"


def limiter(**kw) -> tuple[RateLimiter, Counter[str]]:
    ctr: Counter[str] = Counter()
    return RateLimiter(ctr, **kw), ctr


def reported(c_max: int, lo: int = 100, hi: int = 10_000) -> list[int]:
    out, c = [1], 1
    while True:
        c = next_report(c, lo, hi)
        if c == 0 or c > c_max:
            return out
        out.append(c)


def test_next_report_sequences() -> None:
    assert reported(39_999) == [1, 100, 200, 400, 800, 1600, 3200, 6400, 10_000, 20_000, 30_000]
    # report_min above report_max (the config rejects it): only multiples of the cap.
    assert reported(30_000, 40_000) == [1, 10_000, 20_000, 30_000]
    assert reported(400, 100, 100) == [1, 100, 200, 300, 400]
    assert reported(40, 0, 10) == [1, 10, 20, 30, 40]
    assert reported(40, 1, 10) == [1, 2, 4, 8, 10, 20, 30, 40]
    assert reported(2000, 100, 0) == [1, 100, 200, 400, 800, 1600]  # no cap: doubles forever
    assert reported(10**6, 0, 0) == [1]


def test_under_the_limit_everything_passes() -> None:
    rl, ctr = limiter()
    # 20 events within 0.95 s, then from 2 s on 1 per 0.5 s for 100 s (1 s: <= 2 after the
    # first bucket, 1 min: <= 136, 1 h: 220).
    times = [T0 + k * 50 * MS for k in range(20)] + [T0 + 2 * S + k * S // 2 for k in range(200)]
    assert all(rl.check("reg-new", A, t) is True for t in times)
    assert ctr == Counter()
    assert rl.stats() == {"rate_entries": 1, "rate_blacklisted": 0, "rate_max_entries": 1048576}


def test_21st_event_in_one_second_is_first_over_and_reported() -> None:
    rl, ctr = limiter()
    res = [rl.check("call-attempt", A, T0 + k * 10 * MS) for k in range(21)]
    assert res[:20] == [True] * 20
    assert res[20] == {
        "exceeded": 1,
        "current": 21.0,
        "limit": 20,
        "window": 1,
        "since": rfc3339(T0 + 200 * MS),
    }
    assert ctr == Counter(rate_blacklisted_keys=1, rate_reported=1)
    o = Outcome(
        action="call-attempt",
        ts_ns=T0,
        msg=invite(),
        status=486,
        reason="Busy Here",
        extra={f"sipcm.rate.{k}": v for k, v in res[20].items()},
    )
    doc = EventBuilder("sensor1").build(o)
    assert_valid(doc)
    assert doc["sipcm"]["rate"] == res[20]


def test_long_flood_publishes_only_the_doubling_repeats() -> None:
    rl, ctr = limiter()
    flood = 20 + 45_000  # one event per ms: 1000/s, over the 1 s limit from the 21st on
    published = {}
    for k in range(flood):
        r = rl.check("auth-failed", A, T0 + k * MS)
        if r is not True and r is not False:
            published[r["exceeded"]] = (k, r)
        elif k >= 20:
            assert r is False
    assert list(published) == reported(45_000)
    assert list(published)[-4:] == [10_000, 20_000, 30_000, 40_000]
    # c = k - 19. c=100: k=119, bucket 0 holds 120 events, no previous bucket.
    assert published[100][1]["current"] == 120.0
    # c=10000: k=10019 at 10.019 s: cur = 20 (10.000 .. 10.019), prev = 1000, off = 19 ms.
    assert published[10_000][1] == {
        "exceeded": 10_000,
        "current": 1000 * 981 / 1000 + 20,
        "limit": 20,
        "window": 1,
        "since": rfc3339(T0 + 20 * MS),
    }
    assert ctr == Counter(rate_blacklisted_keys=1, rate_reported=12, rate_suppressed=45_000 - 12)
    row = rl.table()[0]
    assert row["blacklisted"] is True
    assert row["exceeded"] == 45_000
    assert row["events"] == flood
    assert row["since"] == rfc3339(T0 + 20 * MS)


def test_other_ip_and_other_event_are_independent() -> None:
    rl, ctr = limiter()
    for k in range(30):
        rl.check("reg-new", A, T0 + k * MS)
    assert rl.check("reg-new", A, T0 + 30 * MS) is False
    assert rl.check("reg-new", B, T0 + 31 * MS) is True
    assert rl.check("reg-del", A, T0 + 32 * MS) is True
    assert rl.check("reg-new", None, T0 + 33 * MS) is True
    assert ctr["rate_blacklisted_keys"] == 1
    assert rl.stats()["rate_entries"] == 4
    assert rl.stats()["rate_blacklisted"] == 1


def test_recovery_after_one_second_burst() -> None:
    rl, ctr = limiter()
    for k in range(22):
        rl.check("other-failed", A, T0 + k * 10 * MS)
    # At 5 s: 1 s window in bucket 5 (prev 0, cur 1); 1 min window holds 23 <= 240.
    assert rl.check("other-failed", A, T0 + 5 * S) is True
    assert ctr == Counter(
        rate_blacklisted_keys=1, rate_reported=1, rate_suppressed=1, rate_recovered=1
    )
    assert rl.table()[0]["blacklisted"] is False
    assert rl.table()[0]["since"] is None


def test_recovery_waits_for_the_minute_window_to_slide() -> None:
    rl, ctr = limiter()
    res = [rl.check("other-ok", A, T0 + k * 10 * MS) for k in range(300)]  # 100/s for 3 s
    assert res[20]["window"] == 1
    assert sum(isinstance(r, dict) for r in res) == 3  # c = 1, 100, 200 (c reaches 280)
    # 30 s: 1 s window fine, but the minute bucket 0 holds 301 > 240.
    assert rl.check("other-ok", A, T0 + 30 * S) is False
    # 70 s: minute bucket 1, off 10 s: 301 * 50/60 + 1 = 251.83 > 240.
    assert rl.check("other-ok", A, T0 + 70 * S) is False
    # 73 s: off 13 s: 301 * 47/60 + 2 = 237.78 <= 240: back off the blacklist.
    assert rl.check("other-ok", A, T0 + 73 * S) is True
    assert ctr == Counter(
        rate_blacklisted_keys=1, rate_reported=3, rate_suppressed=279, rate_recovered=1
    )
    assert rl.table()[0]["rates"] == [
        {"window": 1, "limit": 20, "current": 1.0},  # bucket 73: 1 event
        {"window": 60, "limit": 240, "current": round(301 * 47 / 60 + 2, 3)},
        {"window": 3600, "limit": 3600, "current": 303.0},
    ]


def test_minute_window_reports_its_own_limit() -> None:
    rl, _ = limiter(limits=(0, 240, 0))
    res = [rl.check("other-ok", A, T0 + k * 10 * MS) for k in range(300)]
    assert res[:240] == [True] * 240
    assert res[240] == {
        "exceeded": 1,
        "current": 241.0,
        "limit": 240,
        "window": 60,
        "since": rfc3339(T0 + 2400 * MS),
    }


def test_previous_bucket_is_weighted_by_overlap() -> None:
    rl, _ = limiter(limits=(20, 0, 0))
    for k in range(20):  # bucket 0: 20 events in [0.5, 0.69] s relative to the first at 0
        rl.check("x", A, T0 + (0 if k == 0 else 500 * MS + k * 10 * MS))
    # 1.25 s: bucket 1, off 0.25 s: 20 * 0.75 + 1 = 16, then 17, ... ; 20*0.75 + 6 = 21 > 20.
    res = [rl.check("x", A, T0 + 1250 * MS) for _ in range(6)]
    assert res[:5] == [True] * 5
    assert res[5]["current"] == 21.0
    # 2.5 s: bucket 2, off 0.5 s, prev = 6 events of bucket 1: 6 * 0.5 + 1 = 4.
    assert rl.check("x", A, T0 + 2500 * MS) is True
    # The table estimates at the latest time seen (2.5 s): the same 4.
    assert rl.table()[0]["rates"][0]["current"] == 4.0
    # 5.3 s: bucket [5, 6) after a gap; 6.1 s: next bucket, prev 1 weighted 0.9.
    assert rl.check("x", A, T0 + 5300 * MS) is True
    assert rl.check("x", A, T0 + 6100 * MS) is True
    assert rl.table()[0]["rates"][0]["current"] == 1.9


def test_out_of_order_time_counts_in_newest_bucket() -> None:
    rl, _ = limiter(limits=(20, 0, 0))
    for k in range(20):
        assert rl.check("x", A, T0 + 900 * MS + k * MS) is True
    # bucket 0 is [T0+900ms, T0+1.9s); an earlier time is counted as if at the newest one.
    assert rl.check("x", A, T0 + 100 * MS)["current"] == 21.0


def test_out_of_order_time_is_estimated_at_the_newest_time() -> None:
    rl, _ = limiter(limits=(3, 0, 0))
    assert [rl.check("x", A, T0 + k * MS) for k in range(3)] == [True] * 3
    assert rl.check("x", A, T0 + 1500 * MS) is True  # 3 * 0.5 + 1 = 2.5
    # 0.2 s is before the current bucket [1, 2): counted at 1.5 s, 3 * 0.5 + 2 = 3.5 > 3.
    assert rl.check("x", A, T0 + 200 * MS)["current"] == 3.5
    assert rl.table()[0]["last_seen"] == rfc3339(T0 + 1500 * MS)


@pytest.mark.parametrize(
    ("intervals", "limits"), [((0, 0, 0), (20, 240, 3600)), ((1, 60, 3600), (0, 0, 0))]
)
def test_all_windows_disabled(intervals, limits) -> None:
    rl, ctr = limiter(intervals_s=intervals, limits=limits)
    assert all(rl.check("x", A, T0) is True for _ in range(10_000))
    assert ctr == Counter()
    assert rl.stats()["rate_entries"] == 0


def test_zero_interval_disables_only_that_window() -> None:
    rl, _ = limiter(intervals_s=(0, 60, 3600), limits=(20, 240, 3600))
    res = [rl.check("x", A, T0) for _ in range(241)]
    assert res[:240] == [True] * 240
    assert res[240]["window"] == 60


def test_fractional_window_is_published_as_float() -> None:
    rl, _ = limiter(intervals_s=(0.5,), limits=(2,))
    res = [rl.check("x", A, T0 + k * MS) for k in range(3)]
    assert res[2]["window"] == 0.5


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="same length"):
        RateLimiter(Counter(), intervals_s=(1, 2), limits=(1,))
    with pytest.raises(ValueError, match=">= 0"):
        RateLimiter(Counter(), intervals_s=(-1,), limits=(1,))
    with pytest.raises(ValueError, match="max_entries"):
        RateLimiter(Counter(), max_entries=0)


def test_table_rates_decay_to_the_latest_capture_time() -> None:
    rl, _ = limiter(limits=(20, 0, 0))
    for k in range(10):
        rl.check("x", A, T0 + k * MS)
    rl.check("x", B, T0 + 1250 * MS)  # moves "now" into A's next bucket: 10 * 0.75 = 7.5
    assert [(r["source_ip"], r["rates"][0]["current"]) for r in rl.table()] == [(B, 1.0), (A, 7.5)]
    # 2.5 s: two buckets on for A (0); B's buckets start at 1.25 s: 1 * 0.75 + 1.
    rl.check("x", B, T0 + 2500 * MS)
    assert [(r["source_ip"], r["rates"][0]["current"]) for r in rl.table()] == [(B, 1.75), (A, 0.0)]
    assert rl.table()[1]["last_seen"] == rfc3339(T0 + 9 * MS)


def test_table_full_evicts_least_recently_used_ok_key() -> None:
    rl, ctr = limiter(max_entries=3)
    for ip, t in (("10.0.0.1", 0), ("10.0.0.2", 1), ("10.0.0.3", 2), ("10.0.0.1", 3)):
        assert rl.check("x", ip, T0 + t * MS) is True
    assert rl.check("x", "10.0.0.4", T0 + 4 * MS) is True  # evicts .2, least recently used
    assert [r["source_ip"] for r in rl.table()] == ["10.0.0.4", "10.0.0.1", "10.0.0.3"]
    assert [r["events"] for r in rl.table()] == [1, 2, 1]
    assert ctr == Counter(rate_evicted=1)
    assert [r["source_ip"] for r in rl.table(limit=2)] == ["10.0.0.4", "10.0.0.1"]


def test_flood_of_keys_never_grows_past_the_bound() -> None:
    rl, ctr = limiter(max_entries=100)
    for k in range(10_000):
        assert rl.check("parse-error", f"10.{k >> 16}.{(k >> 8) & 255}.{k & 255}", T0 + k) is True
        assert rl.stats()["rate_entries"] <= 100
    assert rl.stats()["rate_entries"] == 100
    assert ctr == Counter(rate_evicted=9_900)


def test_full_of_active_blacklisted_keys_publishes_untracked() -> None:
    rl, ctr = limiter(intervals_s=(1,), limits=(2,), max_entries=2)
    for ip in ("10.0.0.1", "10.0.0.2"):
        assert [rl.check("x", ip, T0) for _ in range(3)][2]["exceeded"] == 1
    # Both keys blacklisted and still over (3 > 2 in the current bucket): z is published untracked.
    assert rl.check("x", "10.0.0.9", T0 + 500 * MS) is True
    assert rl.check("x", "10.0.0.9", T0 + 600 * MS) is True
    assert ctr["rate_table_full"] == 2
    assert ctr["rate_evicted"] == 0
    assert [r["source_ip"] for r in rl.table()] == ["10.0.0.2", "10.0.0.1"]
    # At 3 s the least recently used blacklisted key (.1) has decayed to 0: it is evicted.
    assert rl.check("x", "10.0.0.9", T0 + 3 * S) is True
    assert ctr["rate_evicted"] == 1
    assert [(r["source_ip"], r["blacklisted"]) for r in rl.table()] == [
        ("10.0.0.2", True),
        ("10.0.0.9", False),
    ]
    # .1 returns: .2 is now the stale blacklisted key and goes; .1 starts afresh.
    assert rl.check("x", "10.0.0.1", T0 + 3 * S + MS) is True
    assert ctr["rate_evicted"] == 2
    assert ctr["rate_table_full"] == 2
    assert sorted(r["source_ip"] for r in rl.table()) == ["10.0.0.1", "10.0.0.9"]


def test_replay_is_deterministic() -> None:
    rng = random.Random(7)
    events = []
    t = T0
    for _ in range(20_000):
        t += rng.choice((0, MS, 10 * MS, S))
        events.append((rng.choice(("reg-new", "auth-failed")), f"10.0.0.{rng.randrange(4)}", t))
    runs = []
    for _ in range(2):
        rl, ctr = limiter(limits=(3, 20, 200), max_entries=6)
        results = [rl.check(*ev) for ev in events]
        runs.append((results, ctr, rl.table()))
    assert runs[0] == runs[1]
    assert runs[0][1]["rate_suppressed"] > 0
    assert runs[0][1]["rate_evicted"] > 0


# -- limits per event name (issue 9.4) ---------------------------------------------------------

PER_EVENT = {"default": (20, 240, 3600), "call-start": (0, 0, 0), "auth-failed": (5, 60, 600)}


def test_per_event_limits_and_unlimited_events_are_still_counted() -> None:
    """call-start (all limits 0) is counted in the table but never limited; auth-failed uses
    its own 5/s; other-failed falls back to the default 20/s."""
    limited: Counter[str] = Counter()
    rl = RateLimiter(Counter(), limits=PER_EVENT, limited=limited)
    starts = [rl.check("call-start", A, T0 + k * MS) for k in range(1000)]
    assert starts == [True] * 1000
    auth = [rl.check("auth-failed", A, T0 + k * MS) for k in range(10)]
    assert auth[:5] == [True] * 5
    assert auth[5] == {
        "exceeded": 1, "current": 6.0, "limit": 5, "window": 1, "since": rfc3339(T0 + 5 * MS),
    }  # fmt: skip
    assert auth[6:] == [False] * 4
    other = [rl.check("other-failed", A, T0 + k * MS) for k in range(25)]
    assert other[:20] == [True] * 20
    assert other[20]["limit"] == 20
    assert other[21:] == [False] * 4
    assert limited == Counter({"auth-failed": 4, "other-failed": 4})
    rows = {r["event"]: r for r in rl.table()}
    assert rows["call-start"]["events"] == 1000
    assert rows["call-start"]["blacklisted"] is False
    assert rows["call-start"]["rates"] == [
        {"window": 1, "limit": 0, "current": 1000.0},
        {"window": 60, "limit": 0, "current": 1000.0},
        {"window": 3600, "limit": 0, "current": 1000.0},
    ]
    assert rows["auth-failed"]["blacklisted"] is True
    assert rl.limits_of("reg-new") == (20, 240, 3600)
    assert rl.limits_of("auth-failed") == (5, 60, 600)


def test_a_window_no_event_limits_is_not_counted() -> None:
    """Only auth-failed limits the minute window: the table shows that window for every event
    (limit 0 where the event is unlimited), and not the second and hour windows nobody uses."""
    rl = RateLimiter(Counter(), limits={"default": (0, 0, 0), "auth-failed": (0, 3, 0)})
    assert rl.check("reg-new", A, T0) is True
    assert rl.table()[0]["rates"] == [{"window": 60, "limit": 0, "current": 1.0}]
    res = [rl.check("auth-failed", A, T0 + k * S) for k in range(4)]
    assert res[3]["limit"] == 3
    assert res[3]["window"] == 60


def test_mapping_without_default_is_refused() -> None:
    with pytest.raises(ValueError, match="'default'"):
        RateLimiter(Counter(), limits={"auth-failed": (1, 1, 1)})
    with pytest.raises(ValueError, match="same length"):
        RateLimiter(Counter(), limits={"default": (1, 1, 1), "auth-failed": (1,)})
