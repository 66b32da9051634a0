"""Anonymizer on whole EventBuilder documents: exact fields, markers, round trips, no leaks."""

from __future__ import annotations

import copy
import itertools
import json
from collections import Counter

import pytest

from sipcm.errors import ConfigError, SipcmError
from sipcm.events.anon.codec import Codec
from sipcm.events.anon.keys import AnonKey
from sipcm.events.anonymize import FIELDS, Anonymizer, Decryptor, decrypt_doc
from sipcm.events.build import EventBuilder
from sipcm.events.community_id import community_id
from sipcm.sip.message import NameAddr, ParseError, Uri
from tests.ecs import assert_valid
from tests.unit.events.factories import (
    ALICE,
    BOB,
    T0,
    CallMetrics,
    Credentials,
    Outcome,
    RegInfo,
    Tunnel,
    invite,
    payload,
    register,
    response,
)

HEX = "000102030405060708090a0b0c0d0e0f"
KEY = AnonKey.from_settings(key_hex=HEX)
C = Codec(KEY, ipcipher4=False)
BUILDER = EventBuilder("sensor1", {2: "eth0"}, product_version="9.9.9")
ALL = {"ip": True, "ipcipher": False, "uris": True, "call_ids": True, "ua": True}


def anonymizer(**switches: bool) -> Anonymizer:
    kw = {"ip": False, "ipcipher": False, "uris": False, "call_ids": False, "ua": False}
    kw.update(switches)
    return Anonymizer(**kw, key_hex=HEX)


def call_start() -> Outcome:
    """An INVITE with credentials, PAI, a tunnel and a 200 with Server."""
    tun = Tunnel("vxlan", "198.51.100.1", "198.51.100.2", 40000, 4789, 42)
    pai = NameAddr(Uri("tel:+15551234;cpc=ord", "tel", "+15551234", ""))
    inv = invite(
        payload(ALICE, BOB),
        credentials=Credentials("Digest", "alice.auth", "atlanta.example.com"),
        pai=[pai, NameAddr(Uri("sip:+15551234@10.0.0.1", "sip", "+15551234", "10.0.0.1"))],
    )
    ok = response(inv, 200, "OK", payload(BOB, ALICE, tunnel=tun))
    return Outcome(
        "call-start", T0, msg=ok, request=inv, response=ok, method="INVITE", status=200,
        reason="OK", client=ALICE, server=BOB, start_ns=T0, call=CallMetrics(pdd_ms=1.5),
    )  # fmt: skip


def reg_new() -> Outcome:
    req = register(Credentials("Digest", "bob", "biloxi.example.com"))
    return Outcome(
        "reg-new", T0, msg=req, request=req, status=200, reason="OK",
        reg=RegInfo("sip:bob@biloxi.example.com", req.contacts[0], 3600),
    )  # fmt: skip


def reg_del_star() -> Outcome:
    req = register(expires="0")
    req.contacts = []
    req.contact_star = True
    return Outcome(
        "reg-del", T0, msg=req, request=req, reg=RegInfo("sip:bob@biloxi.example.com", None, 0)
    )


def parse_error() -> Outcome:
    pl = payload(("2001:db8::7", 5060), ("2001:db8::1", 5060), ip_version=6)
    return Outcome("parse-error", T0, error=ParseError("bad_via", 22, payload=pl), payload=pl)


def probe() -> Outcome:
    pl = payload()
    return Outcome("msg-probe", T0, error=ParseError("too_short", 0, probe=True, payload=pl))


OUTCOMES = [call_start, reg_new, reg_del_star, parse_error, probe]


def test_call_start_exact_fields() -> None:
    doc = BUILDER.build(call_start())
    clear = copy.deepcopy(doc)
    anon = Anonymizer(**ALL, key_hex=HEX).apply(doc)
    assert anon is doc
    assert_valid(doc)
    ip, user, host, uri = C.ip, lambda v: C.text("user", v), C.host, C.uri
    assert doc["source"] == {"ip": ip("192.0.2.20"), "port": 5062}
    assert doc["destination"] == {"ip": ip("192.0.2.10"), "port": 5060}
    assert doc["client"] == {"ip": ip("192.0.2.10"), "port": 5060}
    assert doc["server"] == {"ip": ip("192.0.2.20"), "port": 5062}
    assert doc["url"] == {"original": uri("sip:bob@192.0.2.20:5062")}
    assert doc["user_agent"] == {"original": C.text("ua", "Softphone/1.0")}
    assert doc["user"] == {"name": user("alice.auth")}
    assert doc["related"] == {
        "ip": [ip(a) for a in clear["related"]["ip"]],
        "user": [user(u) for u in ("alice.auth", "bob", "alice", "+15551234")],
        "hosts": [host("atlanta.example.com"), host("biloxi.example.com")],
    }
    sip = doc["sip"]
    assert sip["call_id"] == C.text("call_id", "a84b4c76e66710@pc33.atlanta.example.com")
    assert sip["uri"] == {
        "original": uri("sip:bob@192.0.2.20:5062"),
        "scheme": "sip",
        "username": user("bob"),
        "host": ip("192.0.2.20"),
        "port": 5062,
    }
    assert sip["from"] == {
        "display_info": C.text("display", "Alice"),
        "tag": "1928301774",
        "uri": {
            "original": uri("sip:alice@atlanta.example.com"),
            "scheme": "sip",
            "username": user("alice"),
            "host": host("atlanta.example.com"),
        },
    }
    assert sip["to"]["tag"] == "a6c85cf"
    assert sip["contact"]["uri"]["host"] == ip("192.0.2.10")
    assert sip["pai"] == [uri("tel:+15551234;cpc=ord"), uri("sip:+15551234@10.0.0.1")]
    assert sip["auth"] == {"scheme": "Digest", "realm": host("atlanta.example.com")}
    assert sip["user_agent"] == {"original": C.text("ua", "PBX/2.1")}
    assert (sip["method"], sip["code"], sip["status"]) == ("INVITE", 200, "OK")
    assert doc["sipcm"]["tunnel"] == {
        "type": "vxlan", "vni": 42,
        "source": {"ip": ip("198.51.100.1"), "port": 40000},
        "destination": {"ip": ip("198.51.100.2"), "port": 4789},
    }  # fmt: skip
    assert doc["sipcm"]["anon"] == {
        "fields": [
            "client.ip", "destination.ip", "related.hosts", "related.ip", "related.user",
            "server.ip", "sip.auth.realm", "sip.call_id", "sip.contact.uri.host",
            "sip.contact.uri.original", "sip.contact.uri.username", "sip.from.display_info",
            "sip.from.uri.host", "sip.from.uri.original", "sip.from.uri.username", "sip.pai",
            "sip.to.uri.host", "sip.to.uri.original", "sip.to.uri.username", "sip.uri.host",
            "sip.uri.original", "sip.uri.username", "sip.user_agent.original",
            "sipcm.tunnel.destination.ip", "sipcm.tunnel.source.ip", "source.ip",
            "url.original", "user.name", "user_agent.original",
        ],
        "key_check": KEY.check,
        "ipv4": "prefix",
    }  # fmt: skip
    # The community id hashes the encrypted 5-tuple, never the clear one (which would confirm
    # a guessed address).
    assert doc["network"] == {
        **clear["network"],
        "community_id": community_id("udp", ip("192.0.2.20"), 5062, ip("192.0.2.10"), 5060),
    }
    assert clear["network"]["community_id"] == community_id("udp", *ALICE, *BOB)
    # Everything not anonymized is untouched.
    for k in ("@timestamp", "ecs", "event", "observer"):
        assert doc[k] == clear[k]
    assert list(doc) == [*list(clear), *([] if "sipcm" in clear else ["sipcm"])]


def _strings(obj: object) -> list[str]:
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return [obj] if isinstance(obj, str) else []


CLEAR_VALUES = [
    "192.0.2.10", "192.0.2.20", "198.51.100.1", "198.51.100.2", "10.0.0.1", "2001:db8::5",
    "2001:db8::1", "2001:db8::7", "alice", "bob", "Alice", "alice.auth", "atlanta", "biloxi",
    "example.com", "15551234", "cpc=ord", "a84b4c76e66710", "843817637684230", "998sdasdh09",
    "Softphone", "PBX/2.1", "Phone/3", "registrar",
]  # fmt: skip


@pytest.mark.parametrize("make", OUTCOMES, ids=lambda f: f.__name__)
def test_no_clear_value_left(make) -> None:
    doc = Anonymizer(**ALL, key_hex=HEX).apply(BUILDER.build(make()))
    assert_valid(doc)
    text = json.dumps(doc)
    for v in CLEAR_VALUES:
        assert v not in text, v
    # Every URI with a user part has a token there (lower-case base32).
    for s in _strings(doc):
        if "@" in s:
            user = s.split(":", 1)[1].split("@", 1)[0]
            assert (user.isalnum(), user.islower(), len(user) >= 39) == (True, True, True), s


SWITCH_SETS = [
    dict(zip(("ip", "ipcipher", "uris", "call_ids", "ua"), bits, strict=True))
    for bits in itertools.product([False, True], repeat=5)
]


@pytest.mark.parametrize("make", OUTCOMES, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "switches", SWITCH_SETS, ids=lambda s: "".join("01"[v] for v in s.values())
)
def test_round_trip_every_switch_set(make, switches: dict[str, bool]) -> None:
    clear = BUILDER.build(make())
    doc = anonymizer(**switches).apply(copy.deepcopy(clear))
    assert_valid(doc)
    on = dict(switches, ip=switches["ip"] or switches["ipcipher"])
    on["ip|uris"] = on["ip"] or on["uris"]
    want = sorted(
        name
        for name, (switch, _) in FIELDS.items()
        if on[switch] and _get(clear, name) not in (None, "*")
    )
    changed = sorted(name for name in FIELDS if _get(doc, name) != _get(clear, name))
    assert changed == want
    if want:
        assert doc["sipcm"]["anon"]["fields"] == want
        assert doc["sipcm"]["anon"]["key_check"] == KEY.check
    else:
        assert doc == clear
    back = decrypt_doc(doc, KEY)
    assert back == clear
    assert json.dumps(back) == json.dumps(clear)  # same key order too


def test_each_switch_changes_only_its_fields() -> None:
    clear = BUILDER.build(call_start())
    expect = {
        "call_ids": ["sip.call_id"],
        "ua": ["sip.user_agent.original", "user_agent.original"],
        "ip": ["client.ip", "destination.ip", "related.ip", "server.ip",
               "sipcm.tunnel.destination.ip", "sipcm.tunnel.source.ip", "source.ip"],
    }  # fmt: skip
    for switch, fields in expect.items():
        doc = anonymizer(**{switch: True}).apply(copy.deepcopy(clear))
        assert doc["sipcm"]["anon"]["fields"] == fields
        assert ("ipv4" in doc["sipcm"]["anon"]) == (switch == "ip")
        changed = {k for k in FIELDS if _get(doc, k) != _get(clear, k)}
        assert changed == set(fields)
    doc = anonymizer(uris=True).apply(copy.deepcopy(clear))
    assert doc["source"] == clear["source"]
    assert doc["related"]["ip"] == [C.ip(a) for a in clear["related"]["ip"]]  # URI IPs inside
    assert doc["sip"]["call_id"] == clear["sip"]["call_id"]
    assert doc["user_agent"] == clear["user_agent"]


def _get(doc: dict, dotted: str) -> object:
    node: object = doc
    for p in dotted.split("."):
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return node


def test_ipcipher_implies_ip_and_uses_ipcipher_for_ipv4() -> None:
    doc = anonymizer(ipcipher=True).apply(BUILDER.build(call_start()))
    assert doc["sipcm"]["anon"]["ipv4"] == "ipcipher"
    assert doc["source"]["ip"] == Codec(KEY, ipcipher4=True).ip("192.0.2.20")
    assert doc["source"]["ip"] != C.ip("192.0.2.20")
    assert "sip.uri.host" not in doc["sipcm"]["anon"]["fields"]


def test_prefix_preserved_across_fields() -> None:
    doc = anonymizer(ip=True).apply(BUILDER.build(call_start()))
    # 192.0.2.10 and 192.0.2.20 share 27 bits; the encrypted ones share exactly 27.
    a, b = (int.from_bytes(bytes(map(int, doc[k]["ip"].split("."))), "big")
            for k in ("client", "server"))  # fmt: skip
    assert 32 - (a ^ b).bit_length() == 27


def test_deterministic_and_key_dependent() -> None:
    one = Anonymizer(**ALL, key_hex=HEX).apply(BUILDER.build(call_start()))
    two = Anonymizer(**ALL, key_hex=HEX).apply(BUILDER.build(call_start()))
    other = Anonymizer(**ALL, key_hex="f" * 32).apply(BUILDER.build(call_start()))
    assert one == two
    assert one["sip"]["call_id"] != other["sip"]["call_id"]
    assert one["source"]["ip"] != other["source"]["ip"]
    assert one["sipcm"]["anon"]["key_check"] != other["sipcm"]["anon"]["key_check"]


def test_disabled_needs_no_key_and_changes_nothing() -> None:
    a = Anonymizer(ip=False, ipcipher=False, uris=False, call_ids=False, ua=False)
    assert not a.enabled
    clear = BUILDER.build(call_start())
    assert a.apply(copy.deepcopy(clear)) == clear


def test_enabled_without_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no encryption key is set"):
        Anonymizer(ip=True, ipcipher=False, uris=False, call_ids=False, ua=False)


def test_nothing_to_change_adds_no_markers() -> None:
    stats = BUILDER.build_stats(T0, {"capture": {"frames": 3}})
    assert Anonymizer(**ALL, key_hex=HEX).apply(copy.deepcopy(stats)) == stats
    doc = anonymizer(call_ids=True).apply(BUILDER.build(probe()))
    assert "sipcm" not in doc or "anon" not in doc["sipcm"]


def test_contact_star_is_kept_and_not_listed() -> None:
    doc = Anonymizer(**ALL, key_hex=HEX).apply(BUILDER.build(reg_del_star()))
    assert doc["sip"]["contact"] == {"uri": {"original": "*"}}
    assert "sip.contact.uri.original" not in doc["sipcm"]["anon"]["fields"]
    assert doc["sip"]["reg"]["aor"] == C.uri("sip:bob@biloxi.example.com")


def test_invalid_values_are_dropped_and_counted() -> None:
    counters: Counter[str] = Counter()
    a = Anonymizer(**ALL, key_hex=HEX, counters=counters)
    doc = BUILDER.build(call_start())
    doc["source"]["ip"] = "not-an-ip"
    doc["related"]["ip"].append("999.1.1.1")
    doc["user"]["name"] = 7
    a.apply(doc)
    assert "ip" not in doc["source"]
    assert "user" not in doc  # no empty parent left behind
    assert "999.1.1.1" not in doc["related"]["ip"]
    assert len(doc["related"]["ip"]) == 5
    assert_valid(doc)
    assert counters == Counter(invalid_values_dropped=3)
    assert "source.ip" not in doc["sipcm"]["anon"]["fields"]


def test_second_apply_is_refused() -> None:
    counters: Counter[str] = Counter()
    a = Anonymizer(**ALL, key_hex=HEX, counters=counters)
    once = a.apply(BUILDER.build(call_start()))
    snapshot = copy.deepcopy(once)
    assert a.apply(once) == snapshot
    assert counters == Counter(already_anonymized=1)
    assert decrypt_doc(once, KEY) == BUILDER.build(call_start())


def test_repr_and_errors_never_show_the_key(tmp_path) -> None:
    secret = "correct horse battery staple"
    a = Anonymizer(**ALL, passphrase=secret, salt="s1")
    for text in (repr(a), str(a)):
        assert secret not in text
        assert a.key_check in text
    b = Anonymizer(**ALL, key_hex=HEX)
    assert HEX[:8] not in repr(b)
    assert HEX not in repr(Decryptor(KEY))
    doc = a.apply(BUILDER.build(call_start()))
    with pytest.raises(SipcmError) as ei:
        decrypt_doc(doc, KEY)
    assert HEX[:8] not in str(ei.value)
    assert secret not in str(ei.value)


def test_wrong_key() -> None:
    doc = Anonymizer(**ALL, key_hex="f" * 32).apply(BUILDER.build(call_start()))
    other = AnonKey.from_settings(key_hex="f" * 32).check
    with pytest.raises(SipcmError) as ei:
        decrypt_doc(doc, KEY)
    assert str(ei.value) == (
        f"wrong key: the events were encrypted with key check {other}, this key's check is "
        f"{KEY.check} (give the passphrase and salt, or the key, that the sensor used)"
    )


def test_decrypt_errors() -> None:
    clear = BUILDER.build(call_start())
    assert decrypt_doc(copy.deepcopy(clear), KEY) == clear  # no markers: unchanged
    doc = Anonymizer(**ALL, key_hex=HEX).apply(copy.deepcopy(clear))
    altered = copy.deepcopy(doc)
    altered["sip"]["call_id"] = altered["sip"]["call_id"][:-3] + "aaa"
    with pytest.raises(
        SipcmError, match=r"^cannot decrypt sip\.call_id: not encrypted with this key"
    ):
        decrypt_doc(altered, KEY)
    unknown = copy.deepcopy(doc)
    unknown["sipcm"]["anon"]["fields"].append("sip.body")
    with pytest.raises(SipcmError, match=r"unknown anonymized field 'sip\.body'"):
        decrypt_doc(unknown, KEY)
    bad = copy.deepcopy(doc)
    bad["sipcm"]["anon"] = {"fields": "x"}
    with pytest.raises(SipcmError, match=r"malformed sipcm\.anon"):
        decrypt_doc(bad, KEY)
    # A listed field that a filter removed later is skipped.
    partial = copy.deepcopy(doc)
    del partial["user_agent"]
    back = decrypt_doc(partial, Decryptor(KEY))
    assert "user_agent" not in back
    assert back["sip"] == clear["sip"]
