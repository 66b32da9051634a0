"""Registration binding cache: reg-new, refresh, reg-del (expires 0, dropped contact, `*`),
reg-expired after expiry plus grace, and its bound."""

from __future__ import annotations

from collections import Counter

from sipcm.track.tracker import Tracker
from tests.unit.track.msgs import (
    ALICE,
    PROXY,
    S,
    again,
    brief,
    creds,
    feed,
    kept,
    na,
    ns,
    request,
    resp,
)

AOR = "sip:alice@example.com"
C1 = "sip:alice@10.0.0.1:5060"
C2 = "sip:alice@192.0.2.7:5070"


def tracker(**kw: object) -> Tracker:
    return Tracker(Counter(), **kw)  # type: ignore[arg-type]


def register(cid: str, cseq: int, ts: float, contacts: list, *, to: str = AOR, **kw: object):
    return request(
        "REGISTER", cid, "rt", cseq, ts, ALICE, PROXY, to=to, ruri="sip:example.com",
        contacts=contacts, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def ok(req, ts: float, contacts: list, **kw: object):
    return resp(req, 200, ts, "reg", contacts=contacts, **kw)  # type: ignore[arg-type]


def test_new_refresh_delete() -> None:
    t = tracker()
    r1 = register("r", 1, 0.0, [na(C1)], expires=600)
    r2 = register("r", 2, 250.0, [na(C1)], expires=600)
    r3 = register("r", 3, 400.0, [na(C1)], expires=0)
    msgs = [
        r1,
        ok(r1, 0.1, [na(C1, expires="300")]),
        r2,
        ok(r2, 250.1, [na(C1, expires="300")]),  # refresh: nothing
        r3,
        ok(r3, 400.1, []),
    ]
    out = feed(t, msgs, until=2000)
    assert brief(out) == [
        ("reg-new", "r", 200, "OK", 0.1),
        ("reg-del", "r", 200, "OK", 400.1),
    ]
    new, dele = out
    assert (new.reg.aor, new.reg.contact.uri.original, new.reg.expires) == (AOR, C1, 300)
    assert kept(new.request) == kept(r1)
    assert new.method == "REGISTER"
    assert new.start_ns == ns(0.1)
    assert new.client == ("10.0.0.1", 5060)
    assert new.server == ("10.0.0.9", 5060)
    assert (dele.reg.expires, dele.reg.lifetime_ns) == (0, 400 * S)
    assert (dele.start_ns, dele.end_ns) == (ns(0.1), ns(400.1))
    assert t.registrations() == []
    assert t.counters["reg_refreshes"] == 1


def test_challenge_retry_then_new_binding() -> None:
    t = tracker()
    r1 = register("r", 1, 0.0, [na(C1)], expires=3600)
    r2 = register("r", 2, 0.05, [na(C1)], expires=3600, creds=creds())
    msgs = [r1, resp(r1, 401, 0.01, "x"), r2, ok(r2, 0.06, [na(C1, expires="3600")])]
    out = feed(t, msgs, until=60)
    assert brief(out) == [("reg-new", "r", 200, "OK", 0.06)]
    assert t.registrations() == [
        {
            "aor": AOR,
            "contact": C1,
            "expires": 3600,
            "created_ns": ns(0.06),
            "refreshed_ns": ns(0.06),
            "expires_at_ns": ns(3600.06),
            "call_id": "r",
            "client": ["10.0.0.1", 5060],
        }
    ]


def test_expired_after_expiry_plus_grace() -> None:
    t = tracker(reg_grace_s=10)
    r = register("r", 1, 0.0, [na(C1)])
    out = feed(t, [r, ok(r, 1.0, [na(C1, expires="60")])], until=70.99)
    assert brief(out) == [("reg-new", "r", 200, "OK", 1.0)]
    out = t.advance(ns(71.0))
    assert brief(out) == [("reg-expired", "r", 408, "timeout registration", 71.0)]
    assert out[0].reg.lifetime_ns == 60 * S
    assert out[0].end_ns == ns(61.0)
    assert out[0].msg is None
    assert out[0].client == ("10.0.0.1", 5060)


def test_refresh_under_new_call_id_keeps_binding() -> None:
    t = tracker(reg_grace_s=0)
    r1 = register("a", 1, 0.0, [na(C1)], expires=100)
    r2 = register("b", 1, 90.0, [na(C1)], expires=100)
    out = feed(t, [r1, ok(r1, 0.0, [na(C1)]), r2, ok(r2, 90.0, [na(C1)])], until=189.0)
    assert brief(out) == [("reg-new", "a", 200, "OK", 0.0)]
    assert brief(t.advance(ns(190))) == [("reg-expired", "b", 408, "timeout registration", 190.0)]


def test_contact_dropped_from_2xx_is_deleted() -> None:
    t = tracker()
    r1 = register("r", 1, 0.0, [na(C1)], expires=600)
    r2 = register("r", 2, 10.0, [na(C1)], expires=600)
    msgs = [r1, ok(r1, 0.1, [na(C1, expires="600")]), r2, ok(r2, 10.1, [na(C2, expires="600")])]
    out = feed(t, msgs, until=11)
    assert brief(out) == [("reg-new", "r", 200, "OK", 0.1), ("reg-del", "r", 200, "OK", 10.1)]
    assert out[1].reg.contact.uri.original == C1


def test_contact_star_deletes_every_binding_of_the_aor() -> None:
    t = tracker()
    r1 = register("r", 1, 0.0, [na(C1), na(C2)], expires=600)
    other = register("o", 1, 0.5, [na("sip:bob@10.0.0.2")], to="sip:bob@example.com", expires=600)
    r2 = register("r", 2, 20.0, [], contact_star=True, expires=0)
    msgs = [
        r1,
        ok(r1, 0.1, [na(C1, expires="600"), na(C2, expires="600")]),
        other,
        ok(other, 0.6, [na("sip:bob@10.0.0.2", expires="600")]),
        r2,
        ok(r2, 20.1, []),
    ]
    out = feed(t, msgs, until=21)
    assert [(o.action, o.reg.aor, o.reg.contact and o.reg.contact.uri.original) for o in out] == [
        ("reg-new", AOR, C1),
        ("reg-new", AOR, C2),
        ("reg-new", "sip:bob@example.com", "sip:bob@10.0.0.2"),
        ("reg-del", AOR, C1),
        ("reg-del", AOR, C2),
    ]
    assert [r["aor"] for r in t.registrations()] == ["sip:bob@example.com"]


def test_star_without_known_bindings_and_delete_of_unknown_binding() -> None:
    t = tracker()
    r1 = register("r", 1, 0.0, [], contact_star=True, expires=0)
    r2 = register("s", 1, 1.0, [na(C2, expires="0")])
    out = feed(t, [r1, ok(r1, 0.1, []), r2, ok(r2, 1.1, [])], until=10)
    assert [(o.action, o.reg.contact, o.reg.lifetime_ns) for o in out] == [
        ("reg-del", None, None),
        ("reg-del", out[1].reg.contact, None),
    ]
    assert out[1].reg.contact.uri.original == C2


def test_expires_fallbacks() -> None:
    t = tracker()
    # 2xx lists the contact without a parameter: its Expires header counts
    r1 = register("a", 1, 0.0, [na(C1)], expires=900)
    # 2xx lists no contact at all: the request stands in
    r2 = register("b", 1, 0.0, [na(C2)], expires=120, to="sip:carol@example.com")
    # nothing anywhere: RFC 3261 default 3600
    r3 = register("c", 1, 0.0, [na(C1)], to="sip:dave@example.com")
    msgs = [r1, ok(r1, 0.1, [na(C1)], expires=300), r2, ok(r2, 0.1, []), r3, ok(r3, 0.1, [na(C1)])]
    out = feed(t, msgs, until=1)
    assert [o.reg.expires for o in out] == [300, 120, 3600]


def test_binding_fetch_and_reply_only_registration() -> None:
    t = tracker()
    fetch = register("f", 1, 0.0, [])
    lone = register("l", 1, 1.0, [na(C2)])  # not fed: only its 2xx is seen
    msgs = [fetch, ok(fetch, 0.1, [na(C1, expires="60")]), ok(lone, 1.1, [na(C2, expires="60")])]
    out = feed(t, msgs, until=10)
    assert [(o.action, o.call_id, o.request) for o in out] == [("reg-new", "l", None)]
    assert out[0].client == ("10.0.0.1", 5060)


def test_duplicate_2xx_copy_gives_one_event() -> None:
    t = tracker()
    r = register("r", 1, 0.0, [na(C1)], expires=60)
    r_ok = ok(r, 0.1, [na(C1, expires="60")])
    out = feed(t, [r, again(r, 0.5), r_ok, again(r_ok, 0.6)], until=10)
    assert [o.action for o in out] == ["reg-new"]


def test_contact_compare_ignores_params_and_host_case() -> None:
    t = tracker()
    r1 = register("r", 1, 0.0, [na("sip:alice@Host.Example:5060")], expires=60)
    r2 = register("r", 2, 30.0, [na("sip:alice@host.example:5060")], expires=60)
    msgs = [
        r1,
        ok(r1, 0.1, []),
        r2,
        ok(r2, 30.1, [na("sip:alice@HOST.example:5060", expires="60")]),
    ]
    out = feed(t, msgs, until=31)
    assert [o.action for o in out] == ["reg-new"]


def test_max_regs_evicts_oldest_without_event() -> None:
    t = tracker(max_regs=3)
    msgs = []
    for i in range(5):
        c = f"sip:u{i}@10.1.0.{i}"
        r = register(f"r{i}", 1, float(i), [na(c)], to=f"sip:u{i}@example.com", expires=60)
        msgs += [r, ok(r, i + 0.1, [na(c, expires="60")])]
    out = feed(t, msgs, until=10)
    assert [o.action for o in out] == ["reg-new"] * 5
    assert [r["aor"] for r in t.registrations()] == [f"sip:u{i}@example.com" for i in (2, 3, 4)]
    assert t.counters["regs_evicted"] == 2
    out = t.advance(ns(1000))
    assert [o.reg.aor for o in out] == [f"sip:u{i}@example.com" for i in (2, 3, 4)]


def test_aor_of_brackets_ipv6_hosts() -> None:
    from sipcm.sip.message import Uri
    from sipcm.track.core import aor_of

    uri = Uri("sip:bob@[2001:DB8::1]:5070", "sip", "bob", "2001:DB8::1", 5070)
    assert aor_of(uri) == "sip:bob@[2001:db8::1]:5070"
    assert aor_of(Uri("sip:example.com", "sip", None, "Example.COM")) == "sip:example.com"
