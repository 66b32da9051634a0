"""With every encrypt_* switch on, no web surface shows a clear value from the input.

A real pipeline is fed one established call and one registration whose every identity (IPs,
users, domain, Call-IDs, User-Agent/Server) is a recognisable canary; then every GET endpoint of
a server wired by `compose.web_state` is read and searched for the canaries, with one process
and with two workers (whose shards produce the rows). The rows must also show the very values
the event documents show.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sipcm.capture.pcapfile import PcapReader
from sipcm.compose import web_state
from sipcm.config import load_config
from sipcm.decrypt import decrypt_value, load_key
from sipcm.events import rows, schema
from sipcm.events.anonymize import FIELDS, Anonymizer
from sipcm.pipeline import Pipeline
from sipcm.web.api import ROUTES
from sipcm.web.server import WebServer
from tests.ecs import assert_valid
from tests.replayutil import Collect
from tests.sipgen import MS, SDP, T0, Capture, Leg
from tests.unit.web.client import Client

ANON = (
    "encrypt_ip_addresses=true",
    "encrypt_uris=true",
    "encrypt_call_ids=true",
    "encrypt_ua=true",
    "encryption_passphrase=canary-pass",
    "encryption_salt=canary-salt",
)
CALL = dict(
    call_id="canarycid-1@canarydomain.example",
    a_user="canaryalice",
    b_user="canarybob",
    domain="canarydomain.example",
    a_ip="198.51.100.77",
    b_ip="203.0.113.88",
    user_agent="CanaryPhone/9",
    server="CanaryServer/9",
)
REG = dict(
    call_id="canarycid-2@canarydomain.example",
    a_user="canaryreg",
    b_user="canaryreg",
    domain="canarydomain.example",
    a_ip="198.51.100.78",
    b_ip="203.0.113.88",
    user_agent="CanaryPhone/9",
    server="CanaryServer/9",
)
GUESSER = "198.51.100.79"
CANARIES = (
    "canarycid",
    "canaryalice",
    "canarybob",
    "canaryreg",
    "canarydomain",
    "198.51.100.77",
    "198.51.100.78",
    GUESSER,
    "203.0.113.88",
    "CanaryPhone",
    "CanaryServer",
)


def _capture(path: Path) -> Path:
    cap = Capture()
    call, reg_leg = Leg(**CALL), Leg(**REG)  # fresh: a Leg counts its CSeq and tags
    inv = call.req("INVITE", body=SDP, headers=("Content-Type: application/sdp",))
    cap.a2b(call, T0, inv.raw)
    cap.b2a(call, T0 + 100 * MS, call.resp(inv, 180, "Ringing", to_tag="tt1"))
    call.to_tag = "tt1"
    cap.b2a(call, T0 + 900 * MS, call.resp(inv, 200, "OK", body=SDP))
    ack = call.req("ACK", cseq=inv.cseq, ruri=f"sip:canarybob@{call.b_ip}")
    cap.a2b(call, T0 + 950 * MS, ack.raw)
    contact = f"<sip:canaryreg@{reg_leg.a_ip}:5060>"
    reg = reg_leg.req("REGISTER", ruri="sip:canarydomain.example", headers=("Expires: 3600",))
    cap.a2b(reg_leg, T0 + 1000 * MS, reg.raw)
    ok = reg_leg.resp(reg, 200, "OK", to_tag="rt1", headers=(f"Contact: {contact};expires=3600",))
    cap.b2a(reg_leg, T0 + 1010 * MS, ok)
    # A guessed password, refused: an auth failure from a canary address (its source table).
    guess = Leg(**{**REG, "call_id": "canarycid-3@canarydomain.example", "a_ip": GUESSER})
    creds = 'Authorization: Digest username="canaryreg",realm="canarydomain.example",nonce="n1"'
    bad = guess.req("REGISTER", ruri="sip:canarydomain.example", headers=(creds,))
    cap.a2b(guess, T0 + 1100 * MS, bad.raw)
    cap.b2a(guess, T0 + 1105 * MS, guess.resp(bad, 401, "Unauthorized", to_tag="gt1"))
    return cap.write(path)


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
def fed(request, tmp_path: Path) -> Iterator[tuple[Pipeline, Collect, WebServer]]:
    workers = request.param
    cfg = load_config(None, ["stats_interval=0", "http_port=0", f"workers={workers}", *ANON])
    out = Collect()
    pipe = Pipeline(cfg, [out], hostname="h", heuristic=True, workers=workers)
    reader = PcapReader(str(_capture(tmp_path / "canary.pcap")))
    for batch in reader.batches(4096):
        pipe.feed(batch)
    pipe.sync()
    reader.close()
    srv = WebServer("127.0.0.1", 0, token=None, state=web_state(cfg, pipe))
    srv.start()
    yield pipe, out, srv
    srv.stop()
    pipe.close()


def test_no_clear_value_on_any_endpoint(fed) -> None:
    _pipe, out, srv = fed
    client = Client(srv.url)
    assert [d["event"]["action"] for d in out.docs] == ["call-start", "reg-new", "auth-failed"]
    for d in out.docs:
        assert_valid(d)
    calls = client.get("/api/calls").json()
    regs = client.get("/api/registrations").json()
    rates = client.get("/api/rates").json()
    auth = client.get("/api/auth-sources").json()
    assert (calls["count"], regs["count"], rates["count"], auth["total"]) == (1, 1, 3, 1)
    bodies = {}
    for path, methods in ROUTES.items():
        if "GET" in methods:
            query = "?limit=10000" if path == "/api/events" else ""
            r = client.get(path + query)
            assert r.status == 200, path
            bodies[path] = r.body.decode()
    leaks = {(path, c) for path, body in bodies.items() for c in CANARIES if c in body}
    assert leaks == set()
    # The clear values were there to leak: the rows hold them, encrypted.
    key = load_key(passphrase="canary-pass", salt="canary-salt")
    assert decrypt_value("call_id", calls["calls"][0]["call_id"], key) == CALL["call_id"]
    assert decrypt_value("ip", regs["registrations"][0]["client"][0], key) == REG["a_ip"]
    assert decrypt_value("ip", auth["top"][0]["source_ip"], key) == GUESSER


def test_rows_show_what_the_events_show(fed) -> None:
    _pipe, out, srv = fed
    client = Client(srv.url)
    start, reg_new, failed = out.docs
    [call] = client.get("/api/calls").json()["calls"]
    assert call["call_id"] == start["sip"]["call_id"]
    assert call["from"] == start["sip"]["from"]["uri"]["original"]
    assert call["to"] == start["sip"]["to"]["uri"]["original"]
    assert call["client"] == [start["client"]["ip"], start["client"]["port"]]
    assert call["server"] == [start["server"]["ip"], start["server"]["port"]]
    assert call["to_tag"] == "tt1"
    [binding] = client.get("/api/registrations").json()["registrations"]
    assert binding["aor"] == reg_new["sip"]["reg"]["aor"]
    assert binding["contact"] == reg_new["sip"]["contact"]["uri"]["original"]
    assert binding["call_id"] == reg_new["sip"]["call_id"]
    assert binding["client"] == [reg_new["client"]["ip"], reg_new["client"]["port"]]
    by_event = {r["event"]: r for r in client.get("/api/rates").json()["rates"]}
    assert by_event["call-start"]["source_ip"] == start["client"]["ip"]
    assert by_event["reg-new"]["source_ip"] == reg_new["client"]["ip"]
    [source] = client.get("/api/auth-sources").json()["top"]
    assert source["source_ip"] == failed["source"]["ip"] == by_event["auth-failed"]["source_ip"]


def test_undeclared_row_key_is_dropped_and_counted() -> None:
    anon = Anonymizer(ip=True, ipcipher=False, uris=True, call_ids=True, ua=True,
                      passphrase="p", salt="s")  # fmt: skip
    got = rows.anonymize_rows(anon, [{"state": "confirmed", "secret": "clear"}], rows.CALL_ROW)
    assert got == [{"state": "confirmed"}]
    assert anon.counters["undeclared_row_values_dropped"] == 1


def test_row_specs_name_schema_fields() -> None:
    for spec in (rows.CALL_ROW, rows.REGISTRATION_ROW, rows.RATE_ROW, rows.AUTH_SOURCE_ROW):
        for field in spec.values():
            for name in field if isinstance(field, tuple) else (field,):
                assert name is None or name in schema.BY_NAME, name


def test_sensitivity_is_declared_once_in_the_schema() -> None:
    assert schema.check_sensitivity() == []
    assert set(FIELDS) == {f.name for f in schema.FIELDS if f.sensitive}
    assert FIELDS["related.ip"] == ("ip|uris", "ip")
    assert FIELDS["sip.call_id"] == ("call_ids", "call_id")


def test_api_config_masks_url_passwords() -> None:
    cfg = load_config(None, ['outputs.elasticsearch.hosts=["https://elastic:hunter2pw@es:9200"]'])
    pipe = Pipeline(cfg, [], hostname="h")
    srv = WebServer("127.0.0.1", 0, token=None, state=web_state(cfg, pipe))
    srv.start()
    try:
        got = Client(srv.url).get("/api/config").json()
    finally:
        srv.stop()
        pipe.close()
    assert got["outputs"]["elasticsearch"]["hosts"] == ["https://elastic:***@es:9200"]


def test_an_undeclared_address_field_is_a_schema_problem(monkeypatch) -> None:
    extra = (
        schema.Field("host.ip", "ip", "An address someone forgot to declare.", array=True),
        schema.Field("sipcm.x", "keyword", "A typo.", sensitive="phone"),
    )
    monkeypatch.setattr(schema, "FIELDS", schema.FIELDS + extra)
    assert schema.check_sensitivity() == [
        "host.ip: an address field must declare its sensitivity",
        "sipcm.x: unknown sensitivity 'phone'",
    ]
