"""EventBuilder: one hand-built Outcome per action, exact documents or exact key fields."""

from __future__ import annotations

import json

import pytest

from sipcm.events.build import ACTIONS, EventBuilder, rfc3339
from sipcm.events.community_id import community_id
from sipcm.sip.message import NameAddr, ParseError, Uri
from tests.ecs import assert_valid
from tests.unit.events.factories import (
    ALICE,
    BOB,
    T0,
    CallMetrics,
    Credentials,
    Flow,
    Outcome,
    RegInfo,
    Tunnel,
    invite,
    payload,
    register,
    response,
)

S = 1_000_000_000
BUILDER = EventBuilder("sensor1", {2: "eth0", 3: "eth1"}, product_version="9.9.9")
OBSERVER = {
    "hostname": "sensor1",
    "product": "sipcm",
    "vendor": "sipcm",
    "version": "9.9.9",
    "type": "sensor",
}
FROM = {
    "display_info": "Alice",
    "tag": "1928301774",
    "uri": {
        "original": "sip:alice@atlanta.example.com",
        "scheme": "sip",
        "username": "alice",
        "host": "atlanta.example.com",
    },
}
TO_URI = {
    "original": "sip:bob@biloxi.example.com",
    "scheme": "sip",
    "username": "bob",
    "host": "biloxi.example.com",
}


def build(o: Outcome) -> dict:
    doc = BUILDER.build(o)
    assert_valid(doc)
    return doc


def test_rfc3339_nanoseconds_utc() -> None:
    assert rfc3339(T0) == "2023-11-14T22:13:20.123456789Z"
    assert rfc3339(0) == "1970-01-01T00:00:00.000000000Z"
    assert rfc3339(T0 + S) == "2023-11-14T22:13:21.123456789Z"
    assert rfc3339(T0) == "2023-11-14T22:13:20.123456789Z"  # cache goes back correctly


def test_call_start_exact_document() -> None:
    inv = invite(payload(ALICE, BOB, direction="ingress", ifindex=2, vlan=100))
    ok = response(
        inv,
        200,
        "OK",
        payload(BOB, ALICE, ts_ns=T0 + 2 * S, direction="egress", ifindex=2, vlan=100, frame_no=7),
    )
    o = Outcome(
        "call-start",
        T0 + 2 * S,
        msg=ok,
        request=inv,
        response=ok,
        method="INVITE",
        status=200,
        reason="OK",
        client=ALICE,
        server=BOB,
        start_ns=T0,
        call=CallMetrics(pdd_ms=120.5, ring_time_ms=1879.5, setup_time_ms=2000, retransmissions=1),
        flow=Flow(*ALICE, *BOB, "udp"),  # the INVITE's sender: who acted
    )
    assert build(o) == {
        "@timestamp": "2023-11-14T22:13:22.123456789Z",
        "ecs": {"version": "9.5.0-dev"},
        "event": {
            "action": "call-start",
            "kind": "event",
            "category": ["network", "session"],
            "type": ["start"],
            "outcome": "success",
            "dataset": "sipcm.sip",
            "module": "sipcm",
            "reason": "OK",
            "start": "2023-11-14T22:13:20.123456789Z",
        },
        "source": {"ip": "192.0.2.10", "port": 5060},
        "destination": {"ip": "192.0.2.20", "port": 5062},
        "client": {"ip": "192.0.2.10", "port": 5060},
        "server": {"ip": "192.0.2.20", "port": 5062},
        "network": {
            "transport": "udp",
            "type": "ipv4",
            "community_id": community_id("udp", "192.0.2.10", 5060, "192.0.2.20", 5062),
            "protocol": "sip",
            "direction": "egress",
            "vlan": {"id": "100"},
        },
        "observer": {**OBSERVER, "egress": {"interface": {"id": "2", "name": "eth0"}}},
        "url": {"original": "sip:bob@192.0.2.20:5062"},
        "user_agent": {"original": "Softphone/1.0"},
        "related": {
            "ip": ["192.0.2.10", "192.0.2.20"],
            "user": ["bob", "alice"],
            "hosts": ["atlanta.example.com", "biloxi.example.com"],
        },
        "sip": {
            "call_id": "a84b4c76e66710@pc33.atlanta.example.com",
            "method": "INVITE",
            "code": 200,
            "status": "OK",
            "uri": {
                "original": "sip:bob@192.0.2.20:5062",
                "scheme": "sip",
                "username": "bob",
                "host": "192.0.2.20",
                "port": 5062,
            },
            "from": FROM,
            "to": {"tag": "a6c85cf", "uri": TO_URI},
            "contact": {
                "uri": {
                    "original": "sip:alice@192.0.2.10",
                    "scheme": "sip",
                    "username": "alice",
                    "host": "192.0.2.10",
                }
            },
            "cseq": {"code": 314159, "method": "INVITE"},
            "user_agent": {"original": "PBX/2.1"},
            "call": {
                "pdd": 120.5,
                "ring_time": 1879.5,
                "setup_time": 2000.0,
                "reconstructed": False,
                "retransmissions": 1,
            },
        },
        "sipcm": {"frame": 7},
    }


def test_call_start_with_credentials_is_also_authentication() -> None:
    inv = invite(credentials=Credentials("Digest", "alice", "atlanta.example.com"))
    o = Outcome("call-start", T0, msg=inv, request=inv, status=200, reason="OK")
    doc = build(o)
    assert doc["event"]["category"] == ["authentication", "network", "session"]
    assert doc["user"] == {"name": "alice"}
    assert doc["sip"]["auth"] == {"scheme": "Digest", "realm": "atlanta.example.com"}
    assert doc["related"]["user"] == ["alice", "bob"]  # credentials first, then URIs


def test_call_end_by_callee_with_duration() -> None:
    inv = invite()
    ok = response(inv, 200, "OK")
    bye = invite(payload(BOB, ALICE, ts_ns=T0 + 62 * S), method="BYE", cseq_method="BYE", cseq=1)
    o = Outcome(
        "call-end",
        T0 + 62 * S,
        msg=bye,
        request=inv,
        response=ok,
        method="INVITE",
        status=200,
        reason="OK",
        client=ALICE,
        server=BOB,
        start_ns=T0 + 2 * S,
        end_ns=T0 + 62 * S,
        call=CallMetrics(originator="callee", duration_ns=60 * S),
    )
    doc = build(o)
    assert doc["event"] == {
        "action": "call-end",
        "kind": "event",
        "category": ["network", "session"],
        "type": ["end"],
        "outcome": "success",
        "dataset": "sipcm.sip",
        "module": "sipcm",
        "reason": "OK",
        "duration": 60 * S,
        "start": "2023-11-14T22:13:22.123456789Z",
        "end": "2023-11-14T22:14:22.123456789Z",
    }
    assert doc["source"] == {"ip": "192.0.2.20", "port": 5062}  # the BYE came from Bob
    assert doc["sip"]["from"] == FROM  # caller's view, from the INVITE
    assert doc["sip"]["cseq"] == {"code": 314159, "method": "INVITE"}
    assert doc["sip"]["call"] == {
        "originator": "callee",
        "reconstructed": False,
        "retransmissions": 0,
    }


def test_call_end_by_timeout_has_unknown_outcome_and_no_source() -> None:
    inv = invite()
    o = Outcome(
        "call-end",
        T0 + 3600 * S,
        request=inv,
        status=408,
        reason="timeout: established call",
        client=ALICE,
        server=BOB,
        call=CallMetrics(originator="timeout", reconstructed=True, reconstructed_from="2xx"),
    )
    doc = build(o)
    assert doc["event"]["outcome"] == "unknown"
    assert "source" not in doc
    assert "destination" not in doc
    # Network context still comes from the request; no direction without a triggering packet.
    assert doc["network"] == {"transport": "udp", "type": "ipv4", "protocol": "sip"}
    assert doc["sip"]["call"]["reconstructed_from"] == "2xx"
    assert doc["sip"]["code"] == 408


def test_call_attempt_busy() -> None:
    inv = invite()
    busy = response(inv, 486, "Busy Here")
    o = Outcome(
        "call-attempt",
        T0 + 30 * S,
        request=inv,
        response=busy,
        status=486,
        reason="Busy Here",
        client=ALICE,
        server=BOB,
        call=CallMetrics(pdd_ms=300.0),
    )
    doc = build(o)
    assert doc["event"]["category"] == ["network", "session"]
    assert doc["event"]["type"] == ["start"]
    assert doc["event"]["outcome"] == "failure"
    assert doc["event"]["reason"] == "Busy Here"
    assert (doc["sip"]["code"], doc["sip"]["status"]) == (486, "Busy Here")
    assert doc["sip"]["method"] == "INVITE"
    assert doc["sip"]["to"]["tag"] == "a6c85cf"  # from the response
    assert doc["sip"]["user_agent"] == {"original": "PBX/2.1"}


def test_reg_new_ipv6_with_credentials_exact_sip_part() -> None:
    req = register(Credentials("Digest", "bob", "biloxi.example.com"))
    ok = response(
        req,
        200,
        "OK",
        payload(("2001:db8::1", 5060), ("2001:db8::5", 5070), ip_version=6, transport="tcp"),
    )
    contact = req.contacts[0]
    o = Outcome(
        "reg-new",
        T0,
        msg=ok,
        request=req,
        response=ok,
        status=200,
        reason="OK",
        client=("2001:db8::5", 5070),
        server=("2001:db8::1", 5060),
        reg=RegInfo("sip:bob@biloxi.example.com", contact, 3600),
    )
    doc = build(o)
    assert doc["event"]["category"] == ["authentication", "network", "session"]
    assert doc["event"]["type"] == ["start"]
    assert doc["network"] == {
        "transport": "tcp",
        "type": "ipv6",
        # no flow from the tracker: the triggering 2xx's packet, either direction hashes alike
        "community_id": community_id("tcp", "2001:db8::5", 5070, "2001:db8::1", 5060),
        "protocol": "sip",
    }
    assert doc["related"] == {
        "ip": ["2001:db8::1", "2001:db8::5"],
        "user": ["bob"],
        "hosts": ["registrar.biloxi.example.com", "biloxi.example.com"],
    }
    assert doc["sip"]["contact"] == {
        "uri": {
            "original": "sip:bob@[2001:db8::5]:5070",
            "scheme": "sip",
            "username": "bob",
            "host": "[2001:db8::5]",
            "port": 5070,
        },
        "expires": 3600,
    }
    assert doc["sip"]["reg"] == {"aor": "sip:bob@biloxi.example.com", "expires": 3600}
    assert doc["sip"]["uri"] == {
        "original": "sip:registrar.biloxi.example.com",
        "scheme": "sip",
        "host": "registrar.biloxi.example.com",
    }
    assert doc["sip"]["method"] == "REGISTER"
    assert doc["user_agent"] == {"original": "Phone/3"}


@pytest.mark.parametrize(
    ("action", "outcome"), [("reg-del", "success"), ("reg-expired", "failure")]
)
def test_reg_end_lifetime(action: str, outcome: str) -> None:
    req = register(expires="0")
    o = Outcome(
        action,
        T0 + 7200 * S,
        request=req,
        client=("2001:db8::5", 5070),
        server=("2001:db8::1", 5060),
        start_ns=T0,
        end_ns=T0 + 7200 * S,
        reg=RegInfo("sip:bob@biloxi.example.com", req.contacts[0], 3600, 7200 * S + 5),
    )
    doc = build(o)
    assert doc["event"]["type"] == ["end"]
    assert doc["event"]["outcome"] == outcome
    assert doc["event"]["duration"] == 7200 * S + 5
    assert doc["sip"]["reg"] == {
        "aor": "sip:bob@biloxi.example.com",
        "expires": 3600,
        "lifetime": 7200,
    }
    assert doc["sip"]["contact"]["expires"] == 0


def test_reg_del_contact_star() -> None:
    req = register(expires="0")
    req.contacts = []
    req.contact_star = True
    o = Outcome(
        "reg-del", T0, msg=req, request=req, reg=RegInfo("sip:bob@biloxi.example.com", None, 0)
    )
    doc = build(o)
    assert doc["sip"]["contact"] == {"uri": {"original": "*"}}
    assert doc["sip"]["reg"] == {"aor": "sip:bob@biloxi.example.com", "expires": 0}


def test_auth_failed() -> None:
    inv = invite(credentials=Credentials("Digest", "1001", "pbx.example.com", proxy=True))
    challenge = response(inv, 407, "Proxy Authentication Required")
    o = Outcome(
        "auth-failed",
        T0 + S // 10,
        msg=challenge,
        request=inv,
        response=challenge,
        status=407,
        reason="Proxy Authentication Required",
        client=ALICE,
        server=BOB,
    )
    doc = build(o)
    assert doc["event"]["category"] == ["authentication", "network"]
    assert doc["event"]["type"] == ["start"]
    assert doc["event"]["outcome"] == "failure"
    assert doc["user"] == {"name": "1001"}
    assert doc["related"]["user"] == ["1001", "bob", "alice"]
    assert doc["sip"]["code"] == 407
    assert doc["@timestamp"] == "2023-11-14T22:13:20.223456789Z"


@pytest.mark.parametrize(
    ("action", "status", "reason", "outcome"),
    [
        ("other-ok", 200, "OK", "success"),
        ("other-failed", 404, "Not Found", "failure"),
        ("other-timeout", 408, "timeout: no final reply", "failure"),
    ],
)
def test_other(action: str, status: int, reason: str, outcome: str) -> None:
    opt = invite(method="OPTIONS", cseq_method="OPTIONS", contacts=[], user_agent=None)
    o = Outcome(
        action,
        T0 + 32 * S,
        request=opt,
        method="OPTIONS",
        status=status,
        reason=reason,
        client=ALICE,
        server=BOB,
    )
    doc = build(o)
    assert doc["event"]["category"] == ["network"]
    assert doc["event"]["type"] == ["info", "protocol"]
    assert doc["event"]["outcome"] == outcome
    assert doc["event"]["reason"] == reason
    assert (doc["sip"]["method"], doc["sip"]["code"], doc["sip"]["status"]) == (
        "OPTIONS",
        status,
        reason,
    )
    assert "contact" not in doc["sip"]
    assert "user_agent" not in doc


def test_parse_error_exact_document() -> None:
    pl = payload(
        ALICE,
        BOB,
        data=b"INVITE sip:x SIP/2.0\r\nVia: ???\r\n",
        transport="tcp",
        reassembled=True,
        frame_no=12,
    )
    o = Outcome(
        "parse-error",
        T0,
        error=ParseError("bad_via", 22, payload=pl),
        payload=pl,
        client=ALICE,
        server=BOB,
    )
    assert build(o) == {
        "@timestamp": "2023-11-14T22:13:20.123456789Z",
        "ecs": {"version": "9.5.0-dev"},
        "event": {
            "action": "parse-error",
            "kind": "event",
            "category": ["network"],
            "type": ["protocol"],
            "outcome": "failure",
            "dataset": "sipcm.sip",
            "module": "sipcm",
            "reason": "bad_via",
        },
        "source": {"ip": "192.0.2.10", "port": 5060},
        "destination": {"ip": "192.0.2.20", "port": 5062},
        "client": {"ip": "192.0.2.10", "port": 5060},
        "server": {"ip": "192.0.2.20", "port": 5062},
        "network": {
            "transport": "tcp",
            "type": "ipv4",
            "community_id": community_id("tcp", "192.0.2.10", 5060, "192.0.2.20", 5062),
            "protocol": "sip",
        },
        "observer": OBSERVER,
        "error": {"code": "bad_via", "message": "SIP parse error: bad_via at byte 22"},
        "related": {"ip": ["192.0.2.10", "192.0.2.20"]},
        "sipcm": {
            "frame": 12,
            "reassembled": True,
            "parse": {"offset": 22},
            "payload": {"size": 32},
        },
    }


def test_msg_probe_payload_only_in_parse_error() -> None:
    pl = payload(ALICE, BOB, data=b"\r\n\r\n")
    o = Outcome("msg-probe", T0, error=ParseError("too_short", 0, probe=True, payload=pl))
    doc = build(o)
    assert doc["event"]["category"] == ["network"]
    assert doc["event"]["type"] == ["info"]
    assert doc["event"]["outcome"] == "unknown"
    assert doc["error"] == {
        "code": "too_short",
        "message": "not a SIP message: too_short (4 bytes)",
    }
    assert doc["sipcm"] == {"payload": {"size": 4}}
    assert doc["source"] == {"ip": "192.0.2.10", "port": 5060}
    assert "sip" not in doc


def test_vxlan_tunnel_and_ingress_interface() -> None:
    pl = payload(
        ALICE,
        BOB,
        direction="ingress",
        ifindex=9,
        tunnel=Tunnel("vxlan", "198.51.100.1", "198.51.100.2", 40000, 4789, vni=42),
    )
    inv = invite(pl)
    o = Outcome("other-ok", T0, msg=inv, request=inv, status=200, reason="OK")
    doc = build(o)
    assert doc["sipcm"]["tunnel"] == {
        "type": "vxlan",
        "vni": 42,
        "source": {"ip": "198.51.100.1", "port": 40000},
        "destination": {"ip": "198.51.100.2", "port": 4789},
    }
    assert doc["source"]["ip"] == "192.0.2.10"  # inner addresses stay in source/destination
    # the community id hashes the inner 5-tuple, not the VXLAN outer one
    assert doc["network"]["community_id"] == community_id("udp", *ALICE, *BOB)
    assert doc["network"]["community_id"] != community_id(
        "udp", "198.51.100.1", 40000, "198.51.100.2", 4789
    )
    assert doc["related"]["ip"] == ["192.0.2.10", "192.0.2.20", "198.51.100.1", "198.51.100.2"]
    # ifindex 9 has no known name: only its id.
    assert doc["observer"]["ingress"] == {"interface": {"id": "9"}}
    assert doc["network"]["direction"] == "ingress"


def test_pai_display_and_ip_uri_host() -> None:
    pai = NameAddr(Uri("tel:+15551234", "tel", "+15551234"), display="Alice A")
    inv = invite(pai=[pai, NameAddr(Uri("sip:+15551234@10.0.0.1", "sip", "+15551234", "10.0.0.1"))])
    doc = build(Outcome("call-attempt", T0, request=inv, status=487, reason="Request Terminated"))
    assert doc["sip"]["pai"] == ["tel:+15551234", "sip:+15551234@10.0.0.1"]
    # No triggering packet: related.ip holds the IP literal hosts of the request URI, the
    # contact and the second PAI; PAI users are related users.
    assert doc["related"] == {
        "ip": ["192.0.2.20", "192.0.2.10", "10.0.0.1"],
        "user": ["bob", "alice", "+15551234"],
        "hosts": ["atlanta.example.com", "biloxi.example.com"],
    }


def test_extra_dotted_fields_are_nested() -> None:
    inv = invite()
    extra = {"sipcm.rate.exceeded": 100, "sipcm.rate.limit": 20.0, "sipcm.rate.window": 1}
    doc = build(Outcome("other-ok", T0, msg=inv, request=inv, status=200, extra=extra))
    assert doc["sipcm"]["rate"] == {"exceeded": 100, "limit": 20.0, "window": 1}


def test_every_action_valid_and_deterministic() -> None:
    inv = invite()
    for action in sorted(ACTIONS):
        o = Outcome(
            action,
            T0,
            msg=inv,
            request=inv,
            status=200,
            reason="OK",
            error=ParseError("x", 1) if action in ("parse-error", "msg-probe") else None,
        )
        first, second = build(o), EventBuilder("sensor1", {2: "eth0", 3: "eth1"}, "9.9.9").build(o)
        assert json.dumps(first) == json.dumps(second)
        assert first["event"]["action"] == action


def test_stats_document() -> None:
    snap = {"decode": {"ip4_bad_header": 3}, "events": {}, "sip": {"sip_parse_error": 1}}
    doc = BUILDER.build_stats(T0, snap)
    assert_valid(doc)
    assert doc == {
        "@timestamp": "2023-11-14T22:13:20.123456789Z",
        "ecs": {"version": "9.5.0-dev"},
        "event": {"action": "stats", "kind": "metric", "dataset": "sipcm.sip", "module": "sipcm"},
        "observer": OBSERVER,
        "sipcm": {"counters": {"decode": {"ip4_bad_header": 3}, "sip": {"sip_parse_error": 1}}},
    }


def test_unknown_action_is_rejected() -> None:
    with pytest.raises(KeyError):
        BUILDER.build(Outcome("call-unknown", T0))


def test_every_type_is_expected_for_every_category() -> None:
    """Stricter than the validator (which needs one category): no mixed-up categorisation."""
    from sipcm.events.build import _CATEGORISE, _WITH_AUTH
    from tests.ecs import ecs_fields

    expected = {
        a["name"]: set(a["expected_event_types"])
        for a in ecs_fields()["event.category"]["allowed_values"]
    }
    for action, (cats, types, _) in _CATEGORISE.items():
        for cat in cats + (_WITH_AUTH if action in ("call-start", "reg-new") else ()):
            assert set(types) <= expected[cat], (action, cat)


def test_reg_expired_without_messages_names_the_binding() -> None:
    """The binding cache keeps no message: the AOR becomes sip.to, the contact sip.contact."""
    from sipcm.track.outcome import Outcome, RegInfo

    contact = NameAddr(Uri("sip:bob@192.0.2.7:5062", "sip", "bob", "192.0.2.7", 5062))
    o = Outcome(
        "reg-expired",
        1_700_000_000_000_000_000,
        call_id="reg-1",
        method="REGISTER",
        status=408,
        reason="timeout registration",
        reg=RegInfo("sip:bob@example.com", contact, 600, 630_000_000_000),
    )
    doc = BUILDER.build(o)
    assert_valid(doc)
    assert doc["sip"]["to"] == {
        "uri": {
            "original": "sip:bob@example.com",
            "scheme": "sip",
            "username": "bob",
            "host": "example.com",
        }
    }
    assert doc["sip"]["contact"]["uri"]["host"] == "192.0.2.7"
    assert doc["related"]["user"] == ["bob"]
