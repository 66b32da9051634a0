"""End-to-end REGISTER outcomes: reg-new, reg-del, reg-expired, auth-failed and the REGISTER
failures that end as other-failed / other-timeout (SPEC 6; reference notes 1.7).

Registrar R = 192.0.2.5:5060; AOR sip:alice@example.com; phone 1 at 192.0.2.10 registers
contact A = sip:alice@192.0.2.10:5060, phone 2 at 192.0.2.11 contact B = sip:alice@192.0.2.11:5060.
"""

from __future__ import annotations

from pathlib import Path

from sipcm.events.community_id import community_id
from tests.events.scen import (
    MS,
    T0,
    Capture,
    Leg,
    Req,
    S,
    auth_hdr,
    briefs,
    doubled,
    iso,
    proxy_copy,
    run,
    ts_of,
)

R = ("192.0.2.5", 5060)
AOR = "sip:alice@example.com"
CA = "<sip:alice@192.0.2.10:5060>"
CB = "<sip:alice@192.0.2.11:5060>"


def phone(call_id: str, ip: str = "192.0.2.10", tag: str = "rf1") -> Leg:
    return Leg(call_id, a_user="alice", b_user="alice", a_ip=ip, b_ip=R[0], from_tag=tag)


def register(
    cap: Capture,
    leg: Leg,
    t: int,
    *,
    expires: int = 3600,
    contact: str | None = None,
    reply: tuple[str, ...] | None = None,
    status: int = 200,
    reason: str = "OK",
    creds: str | None = None,
    delay: int = 50 * MS,
) -> Req:
    """REGISTER at t (Expires header, one Contact) and its reply at t+delay. A 200 lists
    `reply` as its Contact headers (default: the registered contact with its expires)."""
    contact = contact or f"<sip:alice@{leg.a_ip}:{leg.a_port}>"
    hdrs = [f"Expires: {expires}"]
    if creds:
        hdrs.append(creds)
    req = leg.req("REGISTER", ruri="sip:example.com", contact=contact, headers=tuple(hdrs))
    cap.a2b(leg, t, req.raw)
    if status:
        if reply is None:
            reply = (f"{contact};expires={expires}",) if status == 200 and expires else ()
        headers = tuple(f"Contact: {c}" for c in reply)
        if status in (401, 407):
            headers += ('WWW-Authenticate: Digest realm="example.com",nonce="abc"',)
        cap.b2a(leg, t + delay, leg.resp(req, status, reason, to_tag="reg-tt", headers=headers))
    return req


def test_reg_new_and_stays_open(tmp_path: Path) -> None:
    cap = Capture()
    register(cap, phone("r-new@test"), T0)
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("reg-new", "r-new@test", "REGISTER", 200)]
    (d,) = docs
    assert d["@timestamp"] == iso(T0 + 50 * MS)
    assert d["sip"]["reg"]["expires"] == 3600
    assert d["sip"]["reg"]["aor"] == AOR
    assert d["sip"]["contact"]["uri"]["username"] == "alice"
    assert d["sip"]["contact"]["uri"]["host"] == "192.0.2.10"
    assert d["sip"]["contact"]["uri"]["port"] == 5060
    assert d["client"] == {"ip": "192.0.2.10", "port": 5060}
    assert d["server"] == {"ip": R[0], "port": R[1]}
    assert d["source"] == {"ip": "192.0.2.10", "port": 5060}  # the REGISTER's sender
    assert d["destination"] == {"ip": R[0], "port": R[1]}
    assert d["network"]["community_id"] == community_id("udp", "192.0.2.10", 5060, *R)
    assert d["url"]["original"] == "sip:example.com"
    assert d["event"]["type"] == ["start"]
    assert d["event"]["outcome"] == "success"
    assert "lifetime" not in d["sip"]["reg"]


def test_refreshes_produce_nothing(tmp_path: Path) -> None:
    """Refresh in the same Call-ID at T0+1800 s and from a new Call-ID (phone restarted) at
    T0+3000 s: still one binding; expire-all ends it once."""
    cap = Capture()
    leg = phone("r-ref@test")
    register(cap, leg, T0)
    register(cap, leg, T0 + 1800 * S)
    register(cap, phone("r-ref2@test", tag="rf2"), T0 + 3000 * S)
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("reg-new", "r-ref@test", "REGISTER", 200)]
    docs = run(tmp_path, cap, end="expire-all", name="all.pcap")
    assert [d["event"]["action"] for d in docs] == ["reg-new", "reg-expired"]


def test_reg_del_expires_zero(tmp_path: Path) -> None:
    """Binding at T0+50 ms; REGISTER with expires=0 at T0+100 s; 200 (no Contact left)."""
    cap, leg = Capture(), phone("r-del@test")
    register(cap, leg, T0)
    register(cap, leg, T0 + 100 * S, expires=0, contact=f"{CA};expires=0")
    docs = run(tmp_path, cap)
    assert briefs(docs) == [
        ("reg-new", "r-del@test", "REGISTER", 200),
        ("reg-del", "r-del@test", "REGISTER", 200),
    ]
    d = docs[1]
    assert d["@timestamp"] == iso(T0 + 100 * S + 50 * MS)
    assert d["event"]["duration"] == 100 * S
    assert d["sip"]["reg"]["lifetime"] == 100
    assert d["sip"]["reg"]["aor"] == AOR
    assert d["event"]["type"] == ["end"]
    assert d["event"]["outcome"] == "success"
    # Nothing is left to expire.
    docs = run(tmp_path, cap, end="expire-all", name="all.pcap")
    assert [d["event"]["action"] for d in docs] == ["reg-new", "reg-del"]


def test_reg_del_contact_star(tmp_path: Path) -> None:
    cap, leg = Capture(), phone("r-star@test")
    register(cap, leg, T0)
    register(cap, leg, T0 + 100 * S, expires=0, contact="*")
    docs = run(tmp_path, cap)
    assert briefs(docs) == [
        ("reg-new", "r-star@test", "REGISTER", 200),
        ("reg-del", "r-star@test", "REGISTER", 200),
    ]
    assert docs[1]["@timestamp"] == iso(T0 + 100 * S + 50 * MS)
    assert docs[1]["event"]["duration"] == 100 * S
    docs = run(tmp_path, cap, end="expire-all", name="all.pcap")
    assert [d["event"]["action"] for d in docs] == ["reg-new", "reg-del"]


def test_contact_star_removes_every_binding_of_the_aor(tmp_path: Path) -> None:
    """Phones 1 and 2 register A and B for the same AOR; phone 1 sends `Contact: *` with
    Expires 0 (RFC 3261 10.2.2: remove all bindings): both bindings are deleted."""
    cap, p1, p2 = Capture(), phone("r-s1@test"), phone("r-s2@test", "192.0.2.11", "rf2")
    register(cap, p1, T0)
    register(cap, p2, T0 + 10 * S, reply=(f"{CA};expires=3590", f"{CB};expires=3600"))
    register(cap, p1, T0 + 100 * S, expires=0, contact="*")
    docs = run(tmp_path, cap, end="expire-all")
    assert briefs(docs[:2]) == [
        ("reg-new", "r-s1@test", "REGISTER", 200),
        ("reg-new", "r-s2@test", "REGISTER", 200),
    ]
    dels = docs[2:]
    assert [d["event"]["action"] for d in dels] == ["reg-del", "reg-del"]
    assert sorted(d["sip"]["contact"]["uri"]["host"] for d in dels) == [
        "192.0.2.10",
        "192.0.2.11",
    ]
    for d in dels:
        assert ts_of(d) >= T0 + 100 * S + 50 * MS
        assert d["sip"]["reg"]["aor"] == AOR


def test_contact_dropped_from_2xx(tmp_path: Path) -> None:
    """Phone 1 binds A (T0), phone 2 binds B (T0+10 s; the 200 lists A and B). Phone 1's
    refresh at T0+100 s is answered with a 200 listing only B: A was removed -> reg-del A."""
    cap, p1, p2 = Capture(), phone("r-d1@test"), phone("r-d2@test", "192.0.2.11", "rf2")
    register(cap, p1, T0)
    register(cap, p2, T0 + 10 * S, reply=(f"{CA};expires=3590", f"{CB};expires=3600"))
    register(cap, p1, T0 + 100 * S, reply=(f"{CB};expires=3510",))
    docs = run(tmp_path, cap)
    assert briefs(docs) == [
        ("reg-new", "r-d1@test", "REGISTER", 200),
        ("reg-new", "r-d2@test", "REGISTER", 200),
        ("reg-del", "r-d1@test", "REGISTER", 200),
    ]
    assert docs[1]["sip"]["contact"]["uri"]["host"] == "192.0.2.11"
    d = docs[2]
    assert d["@timestamp"] == iso(T0 + 100 * S + 50 * MS)
    assert d["sip"]["contact"]["uri"]["host"] == "192.0.2.10"
    assert d["event"]["duration"] == 100 * S


def _expiring(extra_at: int) -> Capture:
    """A binding granted for 60 s (200 at T0+50 ms) and an unrelated OPTIONS/200 later."""
    cap = Capture()
    register(cap, phone("r-exp@test"), T0, expires=60)
    ping = Leg("ping@test", a_ip="192.0.2.30", b_ip="192.0.2.40")
    opt = ping.req("OPTIONS")
    cap.a2b(ping, extra_at, opt.raw)
    cap.b2a(ping, extra_at + 20 * MS, ping.resp(opt, 200, "OK", to_tag="p1"))
    return cap


def _check_expired(d: dict, due: int) -> None:
    """reg-expired fires at the timer (expiry + grace); the binding itself lived from its 200
    (T0+50 ms) until the registrar's expiry 60 s later, which is its lifetime."""
    assert due <= ts_of(d) <= due + S
    granted = T0 + 50 * MS
    assert d["event"]["duration"] == 60 * S
    assert d["event"]["start"] == iso(granted)
    assert d["event"]["end"] == iso(granted + 60 * S)
    assert d["sip"]["reg"]["lifetime"] == 60
    assert d["sip"]["reg"]["expires"] == 60
    assert d["sip"]["reg"]["aor"] == AOR
    assert d["event"]["outcome"] == "failure"


def test_reg_expired_after_grace(tmp_path: Path) -> None:
    """Not refreshed: expires at 200 + 60 s + 30 s grace = T0+90.05 s, before the OPTIONS at
    T0+200 s."""
    docs = run(tmp_path, _expiring(T0 + 200 * S))
    assert [(d["event"]["action"], d["sip"]["call_id"]) for d in docs] == [
        ("reg-new", "r-exp@test"),
        ("reg-expired", "r-exp@test"),
        ("other-ok", "ping@test"),
    ]
    assert docs[1]["sip"]["method"] == "REGISTER"
    _check_expired(docs[1], T0 + 90 * S + 50 * MS)


def test_not_expired_within_grace(tmp_path: Path) -> None:
    """OPTIONS at T0+85 s: past the 60 s but inside the 30 s grace; the binding stays open."""
    docs = run(tmp_path, _expiring(T0 + 85 * S))
    assert briefs(docs) == [
        ("reg-new", "r-exp@test", "REGISTER", 200),
        ("other-ok", "ping@test", "OPTIONS", 200),
    ]


def test_reg_exp_delta_changes_the_grace(tmp_path: Path) -> None:
    """-E reg_exp_delta=5s: expiry at T0+65.05 s, before the OPTIONS at T0+85 s."""
    docs = run(tmp_path, _expiring(T0 + 85 * S), "reg_exp_delta=5s")
    assert [(d["event"]["action"], d["sip"]["call_id"]) for d in docs] == [
        ("reg-new", "r-exp@test"),
        ("reg-expired", "r-exp@test"),
        ("other-ok", "ping@test"),
    ]
    _check_expired(docs[1], T0 + 65 * S + 50 * MS)


def test_expire_all_ends_a_valid_registration(tmp_path: Path) -> None:
    cap = Capture()
    register(cap, phone("r-all@test"), T0)
    docs = run(tmp_path, cap, end="expire-all")
    assert [(d["event"]["action"], d["sip"]["call_id"]) for d in docs] == [
        ("reg-new", "r-all@test"),
        ("reg-expired", "r-all@test"),
    ]
    d = docs[1]
    # Ended no earlier than the end of the capture, no later than its own expiry.
    assert T0 + 50 * MS <= ts_of(d) <= T0 + 50 * MS + 3630 * S + S
    assert d["event"]["duration"] == ts_of(d) - (T0 + 50 * MS)


def test_register_auth_failed(tmp_path: Path) -> None:
    """401 to the first REGISTER (not counted); the credentialed retry gets 401 again."""
    cap, leg = Capture(), phone("r-auth@test")
    register(cap, leg, T0, status=401, reason="Unauthorized")
    register(cap, leg, T0 + S, status=401, reason="Unauthorized", creds=auth_hdr("alice"))
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("auth-failed", "r-auth@test", "REGISTER", 401)]
    (d,) = docs
    assert d["@timestamp"] == iso(T0 + S + 50 * MS)
    assert d["user"]["name"] == "alice"
    assert d["sip"]["auth"]["realm"] == "example.com"
    assert d["sip"]["cseq"]["code"] == 2
    assert d["client"] == {"ip": "192.0.2.10", "port": 5060}
    assert d["source"] == {"ip": "192.0.2.10", "port": 5060}  # who sent the credentials
    assert d["destination"] == {"ip": R[0], "port": R[1]}


def test_register_refused_403(tmp_path: Path) -> None:
    cap = Capture()
    register(cap, phone("r-403@test"), T0, status=403, reason="Forbidden", creds=auth_hdr("eve"))
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("auth-failed", "r-403@test", "REGISTER", 403)]
    assert docs[0]["@timestamp"] == iso(T0 + 50 * MS)
    assert docs[0]["user"]["name"] == "eve"


def test_403_without_credentials_is_not_an_auth_failure(tmp_path: Path) -> None:
    cap = Capture()
    register(cap, phone("r-403n@test"), T0, status=403, reason="Forbidden")
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("other-failed", "r-403n@test", "REGISTER", 403)]
    assert ts_of(docs[0]) > T0 + 50 * MS


def _guessing_run(cap: Capture, n: int) -> list[int]:
    """REGISTER, 401; then n credentialed REGISTERs 2 s apart, each sent twice (a
    retransmission 500 ms later) and answered 401 twice. Returns the first 401 times."""
    leg = phone("r-guess@test")
    register(cap, leg, T0, status=401, reason="Unauthorized")
    times = []
    for k in range(1, n + 1):
        t = T0 + 2 * k * S
        req = register(cap, leg, t, status=401, reason="Unauthorized", creds=auth_hdr("alice", n=k))
        cap.a2b(leg, t + 500 * MS, req.raw)
        cap.b2a(leg, t + 550 * MS, leg.resp(req, 401, "Unauthorized", to_tag="reg-tt"))
        times.append(t + 50 * MS)
    return times


def test_password_guessing_run(tmp_path: Path) -> None:
    cap = Capture()
    times = _guessing_run(cap, 5)
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("auth-failed", "r-guess@test", "REGISTER", 401)] * 5
    assert [d["@timestamp"] for d in docs] == [iso(t) for t in times]
    assert [d["sip"]["cseq"]["code"] for d in docs] == [2, 3, 4, 5, 6]


def test_password_guessing_run_seen_twice(tmp_path: Path) -> None:
    """The same run with every frame captured twice (ingress + egress): still 5."""
    cap = Capture()
    times = _guessing_run(cap, 5)
    docs = run(tmp_path, doubled(cap))
    assert briefs(docs) == [("auth-failed", "r-guess@test", "REGISTER", 401)] * 5
    assert [d["@timestamp"] for d in docs] == [iso(t) for t in times]


def test_password_guessing_new_call_ids(tmp_path: Path) -> None:
    """A scanner that puts every guess in a new Call-ID, credentials at once: each 401 to a
    credentialed REGISTER is a failed guess."""
    cap = Capture()
    for k in range(5):
        leg = phone(f"r-scan{k}@test", ip="198.51.100.7", tag=f"s{k}")
        register(
            cap, leg, T0 + k * S, status=401, reason="Unauthorized", creds=auth_hdr(f"user{k}", n=k)
        )
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("auth-failed", f"r-scan{k}@test", "REGISTER", 401) for k in range(5)]
    assert [d["user"]["name"] for d in docs] == [f"user{k}" for k in range(5)]
    assert [d["@timestamp"] for d in docs] == [iso(T0 + k * S + 50 * MS) for k in range(5)]


def test_register_challenge_never_answered(tmp_path: Path) -> None:
    """REGISTER, 401 and no retry: other-failed 401 (not auth-failed) when the timer fires."""
    cap = Capture()
    register(cap, phone("r-chal@test"), T0, status=401, reason="Unauthorized")
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("other-failed", "r-chal@test", "REGISTER", 401)]
    assert ts_of(docs[0]) > T0 + 50 * MS
    assert "user" not in docs[0]


def test_register_without_reply(tmp_path: Path) -> None:
    cap = Capture()
    register(cap, phone("r-lost@test"), T0, status=0)
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("other-timeout", "r-lost@test", "REGISTER", 408)]
    assert ts_of(docs[0]) > T0


# -- a SIPVicious-style cracker: every guess reuses Call-ID and CSeq 2 (issue 9.1) ---------------

ATTACKER = ("203.0.113.66", 5070)
_CHAL = ('WWW-Authenticate: Digest realm="example.com",nonce="abc"',)


def _cracker(cap: Capture, guesses: int, *, via_proxy: str | None = None) -> list[tuple]:
    """REGISTER CSeq 1 -> 401, then `guesses` REGISTERs that all reuse the Call-ID and CSeq 2,
    each with a new Via branch, a new From-tag and a new Digest response, each answered 401,
    one guess every 200 ms. With `via_proxy`, every message is also captured on the proxy's
    other leg (request: one more Via; reply: as the registrar sent it). Returns per guess
    (time of its 401 on the attacker's leg, user name, From-tag, branch)."""
    leg = Leg(
        "crack@test", a_user="100", b_user="100", a_ip=ATTACKER[0], a_port=ATTACKER[1],
        b_ip=R[0], from_tag="ct0",
    )  # fmt: skip
    first = leg.req("REGISTER", ruri="sip:example.com", cseq=1)
    cap.a2b(leg, T0, first.raw)
    cap.b2a(leg, T0 + 10 * MS, leg.resp(first, 401, "Unauthorized", to_tag="rt0", headers=_CHAL))
    out = []
    for k in range(1, guesses + 1):
        t = T0 + k * 200 * MS
        leg.from_tag = f"ct{k}"
        branch = f"z9hG4bKguess{k}"
        req = leg.req(
            "REGISTER", ruri="sip:example.com", cseq=2, branch=branch,
            headers=(auth_hdr(f"u{k}", n=k),),
        )  # fmt: skip
        resp = leg.resp(req, 401, "Unauthorized", to_tag=f"rt{k}", headers=_CHAL)
        if via_proxy is None:
            cap.a2b(leg, t, req.raw)
            cap.b2a(leg, t + 10 * MS, resp)
        else:
            p, side = (via_proxy, 5060), f"z9hG4bKpx{k}"
            cap.udp(t, ATTACKER, p, req.raw)
            cap.udp(t + MS, p, R, proxy_copy(req.raw, via_proxy, side, request=True))
            cap.udp(t + 9 * MS, R, p, proxy_copy(resp, via_proxy, side, request=False))
            cap.udp(t + 10 * MS, p, ATTACKER, resp)
        out.append((t + 10 * MS, f"u{k}", f"ct{k}", branch))
    return out


def test_cracker_guesses_on_one_call_id_are_each_an_auth_failed(tmp_path: Path) -> None:
    """5 guesses under one Call-ID and CSeq: 5 auth-failed, one per guess, each naming the
    guess's user, From-tag and time; the unanswered first challenge is not a failure. The
    attacker is `source` (it sent the credentials), the registrar `destination`."""
    cap = Capture()
    guesses = _cracker(cap, 5)
    docs = run(tmp_path, cap, end="none")
    assert briefs(docs) == [("auth-failed", "crack@test", "REGISTER", 401)] * 5
    assert [(ts_of(d), d["user"]["name"], d["sip"]["from"]["tag"]) for d in docs] == [
        (t, user, tag) for t, user, tag, _b in guesses
    ]
    for d in docs:
        assert d["sip"]["cseq"] == {"code": 2, "method": "REGISTER"}
        assert d["source"] == {"ip": ATTACKER[0], "port": ATTACKER[1]}
        assert d["destination"] == {"ip": R[0], "port": R[1]}
        assert d["client"] == d["source"]


def test_cracker_guess_retransmitted_counts_once(tmp_path: Path) -> None:
    """One guess sent three times (same branch, 500 ms apart) and answered 401 each time."""
    cap = Capture()
    _cracker(cap, 1)
    again = [(ts, frame) for ts, frame in cap.packets if ts >= T0 + 200 * MS]
    for n in (1, 2):
        cap.packets += [(ts + n * 500 * MS, frame) for ts, frame in again]
    docs = run(tmp_path, cap, end="none")
    assert briefs(docs) == [("auth-failed", "crack@test", "REGISTER", 401)]
    assert ts_of(docs[0]) == T0 + 210 * MS


def test_cracker_through_a_proxy_counts_each_guess_once(tmp_path: Path) -> None:
    """Every guess seen on both legs of a proxy (4 frames per guess): still one auth-failed per
    guess, on the attacker's leg."""
    cap = Capture()
    guesses = _cracker(cap, 3, via_proxy="192.0.2.7")
    docs = run(tmp_path, cap, end="none")
    assert briefs(docs) == [("auth-failed", "crack@test", "REGISTER", 401)] * 3
    assert [d["user"]["name"] for d in docs] == ["u1", "u2", "u3"]
    # the registrar's 401 on the proxy's leg is the first sighting: 1 ms before the copy
    assert [ts_of(d) for d in docs] == [t - MS for t, *_ in guesses]
    for d in docs:
        # the guess was first seen on the attacker's leg: attacker -> proxy
        assert d["source"] == {"ip": ATTACKER[0], "port": ATTACKER[1]}
        assert d["destination"] == {"ip": "192.0.2.7", "port": 5060}
        assert d["network"]["community_id"] == community_id("udp", *ATTACKER, "192.0.2.7", 5060)


def test_late_reply_to_an_earlier_guess_changes_nothing(tmp_path: Path) -> None:
    """Guess 1 answered; guess 2 sent; a retransmitted 401 of guess 1 (its branch) arrives
    40 s later (after the duplicate window), then guess 2's 401: two auth-failed, the second
    at guess 2's reply, not at the stale one."""
    cap = Capture()
    leg = Leg("late@test", a_user="100", b_user="100", a_ip=ATTACKER[0], b_ip=R[0])
    stale = b""
    for k, t in ((1, T0), (2, T0 + 41 * S)):
        leg.from_tag = f"lt{k}"
        req = leg.req("REGISTER", ruri="sip:example.com", cseq=2, headers=(auth_hdr("x", n=k),))
        resp = leg.resp(req, 401, "Unauthorized", to_tag=f"r{k}", headers=_CHAL)
        cap.a2b(leg, t, req.raw)
        if k == 1:
            cap.b2a(leg, t + 10 * MS, resp)
            stale = resp
        else:
            cap.b2a(leg, t + 5 * MS, stale)
            cap.b2a(leg, t + 10 * MS, resp)
    docs = run(tmp_path, cap, end="none")
    assert briefs(docs) == [("auth-failed", "late@test", "REGISTER", 401)] * 2
    assert [ts_of(d) for d in docs] == [T0 + 10 * MS, T0 + 41 * S + 10 * MS]
    assert [d["sip"]["from"]["tag"] for d in docs] == ["lt1", "lt2"]
