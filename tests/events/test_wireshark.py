"""End-to-end events of zeek's sip-wireshark.pcap (Wireshark sample aaa.pcap, SIP only).

Derived by hand from the packets (tshark -T fields ... frame.number, sip.Method,
sip.Status-Code, sip.Call-ID, sip.CSeq, sip.Expires, sip.Contact, sip.auth.username):

Call-ID 578222729-4665d775@578222732-4665d772 (one Call-ID, a new From-tag per REGISTER):
  f1  REGISTER 68 (AOR voi18063, no credentials)  -> f2 401        first challenge: nothing
  f3  REGISTER 69 (credentials voi18063)          -> f4 100, f5 403 "Wrong password": auth-failed
  f6  REGISTER 70 (no credentials)                -> f7 401        nothing
  f8  REGISTER 71 (credentials voi18063)          -> f9 401        auth-failed
  f10 REGISTER 72 (AOR voi18062, no credentials)  -> f11 401       nothing
  f12 REGISTER 73 (credentials voi18062)          -> f13 401       auth-failed
  f14 REGISTER 74 (no credentials)                -> f15 401       nothing
  f16 REGISTER 75 (credentials voi18062)          -> f17 100, f18 200 Contact expires=1200: reg-new
  f45 REGISTER 76 Expires 0 (no credentials)      -> f46 401       nothing
  f47 REGISTER 77 Expires 0 (credentials)         -> f48 401       auth-failed (rejected
                                                     de-registration: the binding stays, no reg-del)
  f49 REGISTER 78 (AOR 35104723, no credentials)  -> f50 401       nothing
  f51 REGISTER 79 (credentials voi18062)          -> f52 401       auth-failed
Call-ID 29858147-465b0752@29858051-465b07b2 (AOR 35104723):
  f53 no credentials -> 401; f55 credentials -> 100, f57 200 expires=1200: reg-new;
  f58 no credentials -> 401; f63 credentials -> f64 401: auth-failed;
  f77 no credentials -> 401; f79 credentials -> 100, f81 200: refresh, nothing.
INVITE 105090259-446faf7a@192.168.1.2: INVITE x3 (retransmissions), 100, CANCEL (x11 in all),
  f26 408 to the INVITE, ACK, f36 408 to the CANCEL: one call-attempt 408 (the CANCEL
  transaction has no event of its own), at a timer after the final reply.
INVITE 85216695-42dcdb1d: INVITE x3, 407, ACK, f42 credentialed INVITE -> f43 403: auth-failed
  only (not also call-attempt).
INVITE 24487391-449bf2a0: 407, ACK, f65 credentialed -> 100, f67 403: auth-failed only.
INVITE 11894297-4432a9f8: 407, ACK, f72 credentialed INVITE (1120470983.863488) -> 100,
  f74 183 (1120470984.289950), f75 480: one call-attempt 480, pdd 426.462 ms (the INVITE that
  the 183 answers; the challenge answered with credentials continues the same attempt).
Timers. The SPEC ends a challenge as a failure when it is not answered "before the transaction
times out". This phone answers every challenge 17-51 s later (its user types the password), so
the list above needs a challenge to wait longer than that: the `auth_wait` timer (default 60 s)
does. The 480 of 11894297 then ends at the INVITE negative-reply timer (inv_neg, 30 s), during
the replay. With `auth_wait` at 10 s ("impatient") each REGISTER 401 first ends as other-failed
401 and each INVITE 407 as call-attempt 407 (11894297 too: its retry comes 17.3 s later and
then starts a new attempt that ends 480). With the negative-reply timers at 60 s ("patient")
the 480 is still pending at the last packet and is concluded at the end.
Registrations still valid at the end: voi18062 (200 at f18, 1200 s) and 35104723 (200 at f57,
refreshed at f81). Conclude mode keeps them open; expire-all ends both as reg-expired.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sipcm.events.community_id import community_id
from tests.events.scen import briefs, iso, run_files, ts_of

REG1 = "578222729-4665d775@578222732-4665d772"
REG2 = "29858147-465b0752@29858051-465b07b2"
INV_CANCEL = "105090259-446faf7a@192.168.1.2"
INV_403A = "85216695-42dcdb1d@192.168.1.2"
INV_403B = "24487391-449bf2a0@192.168.1.2"
INV_480 = "11894297-4432a9f8@192.168.1.2"
PHONE = "192.168.1.2"
REGISTRAR = "212.242.33.35"
PATIENT = "calls_timeouts={non_inv_neg: 60s, inv_neg: 60s}"
SEC = 1_000_000_000


def ns(sec: int, usec: int) -> int:
    return sec * SEC + usec * 1000


# Frame capture times (tshark frame.time_epoch; the pcap has microseconds).
F = {
    2: ns(1120469572, 981006),
    3: ns(1120469590, 259876),
    5: ns(1120469590, 455801),
    7: ns(1120469680, 330692),
    8: ns(1120469697, 469146),
    9: ns(1120469697, 621120),
    11: ns(1120469847, 809339),
    12: ns(1120469864, 994366),
    13: ns(1120469865, 145161),
    15: ns(1120469939, 47813),
    16: ns(1120469956, 235447),
    18: ns(1120469956, 406918),
    26: ns(1120470085, 961798),
    36: ns(1120470116, 279089),
    37: ns(1120470233, 794463),
    40: ns(1120470235, 448732),
    42: ns(1120470267, 923616),
    43: ns(1120470268, 128176),
    46: ns(1120470456, 286438),
    47: ns(1120470473, 529233),
    48: ns(1120470473, 676412),
    50: ns(1120470490, 782704),
    51: ns(1120470509, 450894),
    52: ns(1120470509, 599796),
    54: ns(1120470796, 941095),
    55: ns(1120470814, 189540),
    57: ns(1120470814, 349707),
    59: ns(1120470831, 540377),
    61: ns(1120470848, 682926),
    70: ns(1120470966, 601590),
    72: ns(1120470983, 863488),
    63: ns(1120470865, 653226),
    64: ns(1120470865, 804796),
    65: ns(1120470899, 862890),
    67: ns(1120470900, 56743),
    75: ns(1120470984, 332623),
    78: ns(1120471001, 405003),
    79: ns(1120471018, 723316),
    81: ns(1120471018, 881832),
}
END = F[81]
NONCE = "nonce has changed"
WRONG = "Wrong password or domain"

# (action, call-id, method, code, time, credential user, reason). `time` is an exact capture
# time for events produced by a message, or a (low, high) open interval for timer events.
PATIENT_LIST = [
    ("auth-failed", REG1, "REGISTER", 403, F[5], "voi18063", "Wrong password"),
    ("auth-failed", REG1, "REGISTER", 401, F[9], "voi18063", NONCE),
    ("auth-failed", REG1, "REGISTER", 401, F[13], "voi18062", NONCE),
    ("reg-new", REG1, "REGISTER", 200, F[18], "voi18062", "OK"),
    ("call-attempt", INV_CANCEL, "INVITE", 408, (F[26], F[37]), None, "Request Timeout"),
    ("auth-failed", INV_403A, "INVITE", 403, F[43], "voi18062", WRONG),
    ("auth-failed", REG1, "REGISTER", 401, F[48], "voi18062", NONCE),
    ("auth-failed", REG1, "REGISTER", 401, F[52], "voi18062", NONCE),
    ("reg-new", REG2, "REGISTER", 200, F[57], "voi18062", "OK"),
    ("auth-failed", REG2, "REGISTER", 401, F[64], "voi18062", NONCE),
    ("auth-failed", INV_403B, "INVITE", 403, F[67], "voi18062", WRONG),
    # inv_neg 60 s: still pending after the last packet; concluded at the end.
    ("call-attempt", INV_480, "INVITE", 480, (END - 1, F[75] + 61 * SEC), "voi18062", "Error"),
]


def _unanswered(cid: str, reply: int, retry: int) -> tuple:
    return ("other-failed", cid, "REGISTER", 401, (reply, retry), None, "Unauthorized")


# Default timers: the 480 ends at inv_neg (30 s), fired by the f79 REGISTER (34.4 s later).
DEFAULT_LIST = [
    *PATIENT_LIST[:11],
    ("call-attempt", INV_480, "INVITE", 480, (F[75], F[79]), "voi18062", "Error"),
]

AUTH_REQ = "authentication required"
IMPATIENT = "calls_timeouts={auth_wait: 10s}"
IMPATIENT_LIST = [
    _unanswered(REG1, F[2], F[3]),
    PATIENT_LIST[0],
    _unanswered(REG1, F[7], F[8]),
    PATIENT_LIST[1],
    _unanswered(REG1, F[11], F[12]),
    PATIENT_LIST[2],
    _unanswered(REG1, F[15], F[16]),
    PATIENT_LIST[3],
    PATIENT_LIST[4],
    ("call-attempt", INV_403A, "INVITE", 407, (F[40], F[42]), None, AUTH_REQ),
    PATIENT_LIST[5],
    _unanswered(REG1, F[46], F[47]),
    PATIENT_LIST[6],
    _unanswered(REG1, F[50], F[51]),
    PATIENT_LIST[7],
    _unanswered(REG2, F[54], F[55]),
    PATIENT_LIST[8],
    _unanswered(REG2, F[59], F[63]),
    ("call-attempt", INV_403B, "INVITE", 407, (F[61], F[63]), None, AUTH_REQ),
    PATIENT_LIST[9],
    PATIENT_LIST[10],
    ("call-attempt", INV_480, "INVITE", 407, (F[70], F[72]), None, AUTH_REQ),
    _unanswered(REG2, F[78], F[79]),
    # inv_neg 30 s: fires during the replay (at the f79 REGISTER, 34 s after the 480).
    ("call-attempt", INV_480, "INVITE", 480, (F[75], F[79]), "voi18062", "Error"),
]


@pytest.fixture(scope="module")
def pcap(corpus: Path) -> Path:
    return corpus / "zeek" / "sip-wireshark.pcap"


CASES = {
    "default": ((), DEFAULT_LIST),
    "patient": ((PATIENT,), PATIENT_LIST),
    "impatient": ((IMPATIENT,), IMPATIENT_LIST),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest, pcap: Path) -> tuple[list[dict], list, list]:
    """(documents, totals, expected list) for the default, 60 s and 10 s timers."""
    overrides, expected = CASES[request.param]
    docs, totals = run_files([pcap], *overrides)
    return docs, totals, expected


def test_exact_event_list(case: tuple) -> None:
    docs, _, expected = case
    assert briefs(docs) == [e[:4] for e in expected]


def test_cancelled_call_reports_the_invite_final_reply(case: tuple) -> None:
    """The CANCELed INVITE got a real final reply (408 at f26): that is its status, not a
    made-up 487."""
    docs, _, _ = case
    (d,) = (d for d in docs if d["sip"]["call_id"] == INV_CANCEL)
    assert d["sip"]["code"] == 408
    assert d["sip"]["status"] == "Request Timeout"
    assert d["event"]["reason"] == "Request Timeout"


def test_totals(case: tuple) -> None:
    docs, totals, expected = case
    (t,) = totals
    assert t.packets == 81
    assert t.messages == 81
    assert t.parse_errors == 0
    assert t.probes == 0
    assert len(docs) == len(expected)
    by_action: dict[str, int] = {}
    for d in docs:
        by_action[d["event"]["action"]] = by_action.get(d["event"]["action"], 0) + 1
    if expected is IMPATIENT_LIST:
        assert by_action == {"auth-failed": 8, "reg-new": 2, "call-attempt": 5, "other-failed": 9}
    else:
        assert by_action == {"auth-failed": 8, "reg-new": 2, "call-attempt": 2}
    methods = [d["sip"]["method"] for d in docs if d["event"]["action"] == "auth-failed"]
    assert methods.count("REGISTER") == 6
    assert methods.count("INVITE") == 2


def test_event_times(case: tuple) -> None:
    """A message's event carries its capture time; a timer's event falls after the reply it
    waited on and before the retry it did not see; documents come out in time order."""
    docs, _, expected = case
    for doc, exp in zip(docs, expected, strict=True):
        when = exp[4]
        if isinstance(when, tuple):
            assert when[0] < ts_of(doc) < when[1], exp
        else:
            assert doc["@timestamp"] == iso(when), exp
    stamps = [ts_of(d) for d in docs]
    assert stamps == sorted(stamps)


def test_auth_failed_fields(case: tuple) -> None:
    docs, _, expected = case
    for doc, exp in zip(docs, expected, strict=True):
        if exp[0] != "auth-failed":
            continue
        assert doc["user"]["name"] == exp[5]
        assert exp[5] in doc["related"]["user"]
        assert doc["sip"]["status"] == exp[6]
        assert doc["event"]["reason"] == exp[6]
        assert doc["event"]["category"] == ["authentication", "network"]
        assert doc["event"]["outcome"] == "failure"
        assert doc["sip"]["auth"]["realm"] == "sip.cybercity.dk"
        # Who acted: the phone sent the refused credentials to the registrar/proxy (the reply
        # that triggered the event travels the other way).
        assert doc["source"] == {"ip": PHONE, "port": 5060}
        assert doc["destination"] == {"ip": REGISTRAR, "port": 5060}
        assert doc["network"]["community_id"] == community_id("udp", PHONE, 5060, REGISTRAR, 5060)
        assert doc["client"]["ip"] == PHONE
        assert doc["server"]["ip"] == REGISTRAR


def test_unanswered_challenges(case: tuple) -> None:
    """Challenges that timed out carry no user (the request had no credentials)."""
    docs, _, expected = case
    for doc, exp in zip(docs, expected, strict=True):
        if exp[0] == "other-failed" or exp[3] == 407:
            assert "user" not in doc
            assert doc["sip"]["status"] == exp[6]
            assert doc["event"]["outcome"] == "failure"


def test_reg_new_fields(case: tuple) -> None:
    docs, _, _ = case
    r1, r2 = (d for d in docs if d["event"]["action"] == "reg-new")
    assert r1["sip"]["reg"]["expires"] == 1200
    assert r1["sip"]["reg"]["aor"] == "sip:voi18062@sip.cybercity.dk"
    assert r1["sip"]["contact"]["uri"]["username"] == "voi18062"
    assert r1["sip"]["contact"]["uri"]["host"] == PHONE
    assert r1["sip"]["contact"]["uri"]["port"] == 5060
    assert r1["user"]["name"] == "voi18062"
    assert r2["sip"]["reg"]["expires"] == 1200
    assert r2["sip"]["reg"]["aor"] == "sip:35104723@sip.cybercity.dk"
    assert r2["sip"]["contact"]["uri"]["username"] == "35104723"
    assert r2["sip"]["contact"]["display_info"] == "pel"
    for r in (r1, r2):
        assert r["event"]["outcome"] == "success"
        assert r["client"] == {"ip": PHONE, "port": 5060}
        assert r["server"] == {"ip": REGISTRAR, "port": 5060}


def test_call_attempt_fields(case: tuple) -> None:
    docs, _, _ = case
    by_cid = {d["sip"]["call_id"]: d for d in docs if d["event"]["action"] == "call-attempt"}
    cancel, failed = by_cid[INV_CANCEL], by_cid[INV_480]
    assert cancel["url"]["original"] == "sip:97239287044@voip.brujula.net"
    assert cancel["sip"]["from"]["display_info"] == "arik"
    assert cancel["client"] == {"ip": PHONE, "port": 5060}
    assert cancel["server"] == {"ip": "200.68.120.81", "port": 5060}
    assert cancel["event"]["outcome"] == "failure"
    # INVITE f19 (1120470049.188993) to its final reply f26 (no 18x): 36772.805 ms.
    assert cancel["sip"]["call"]["pdd"] == 36772.805
    assert failed["sip"]["status"] == "Error"
    assert failed["sip"]["to"]["uri"]["username"] == "35104724"
    # Credentialed INVITE f72 (1120470983.863488) to the 183 f74 (1120470984.289950).
    assert failed["sip"]["call"]["pdd"] == 426.462
    assert failed["user"]["name"] == "voi18062"
    assert failed["event"]["outcome"] == "failure"


def test_expire_all_ends_both_bindings(pcap: Path) -> None:
    docs, _ = run_files([pcap], PATIENT, end="expire-all")
    # Everything ended at the end comes out in time order: the bindings (stamped at the end
    # of the capture) before the 480 whose 60 s timer runs past it.
    stamps = [ts_of(d) for d in docs]
    assert stamps == sorted(stamps)
    tail = [d for d in docs if d["event"]["action"] == "reg-expired"]
    assert briefs([d for d in docs if d not in tail]) == [e[:4] for e in PATIENT_LIST]
    assert sorted((d["event"]["action"], d["sip"]["call_id"]) for d in tail) == sorted(
        [("reg-expired", REG1), ("reg-expired", REG2)]
    )
    for d in tail:
        assert d["sip"]["method"] == "REGISTER"
        assert d["sip"]["reg"]["expires"] == 1200
        assert d["event"]["outcome"] == "failure"
        # Ended no earlier than the end of the capture and no later than the binding's own
        # expiry (last 2xx + 1200 s + 30 s grace); the lifetime starts at the reg-new and
        # ends at the expiry or at the end of the capture, whichever is first.
        start, last_ok = (F[18], F[18]) if d["sip"]["call_id"] == REG1 else (F[57], F[81])
        assert END <= ts_of(d) <= last_ok + 1231 * SEC
        life = min(last_ok + 1200 * SEC, ts_of(d)) - start
        assert d["event"]["duration"] == life
        assert d["sip"]["reg"]["lifetime"] == life // SEC


def test_end_none_keeps_pending(pcap: Path) -> None:
    """With 60 s negative timers the 480 of 11894297 (34.5 s before the last packet) is still
    pending at the end: `--end none` drops it."""
    docs, _ = run_files([pcap], PATIENT, end="none")
    assert briefs(docs) == [e[:4] for e in PATIENT_LIST[:11]]
