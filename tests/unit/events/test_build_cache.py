"""The builder's caches (URI sections, Community IDs, observers) and fast paths give the same
documents as building every part anew, and sections shared between documents survive the
anonymization of one of them."""

from __future__ import annotations

import copy
import ipaddress
import json
import math
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from sipcm.events import build
from sipcm.events.anon.codec import Codec
from sipcm.events.anon.keys import AnonKey
from sipcm.events.anonymize import Anonymizer, decrypt_doc
from sipcm.events.build import EventBuilder, UriDoc, round_ms
from sipcm.events.community_id import community_id, rehash
from sipcm.sip.message import NameAddr, Uri
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
    invite,
    payload,
    register,
    response,
)

HEX = "000102030405060708090a0b0c0d0e0f"
ALL = {"ip": True, "ipcipher": False, "uris": True, "call_ids": True, "ua": True}


def fresh() -> EventBuilder:
    return EventBuilder("sensor1", {2: "eth0"}, product_version="9.9.9")


def reference_uri(u: Uri) -> tuple[dict[str, Any], list[str], list[str], list[str]]:
    """The `uri` section and the related users, hosts and IPs, spelled out field by field."""
    d: dict[str, Any] = {"original": u.original}
    if u.scheme:
        d["scheme"] = u.scheme
    if u.user:
        d["username"] = u.user
    if u.host:
        d["host"] = u.host
    if u.port is not None:
        d["port"] = u.port
    users, hosts, ips = [u.user] if u.user else [], [], []
    if u.host:
        h = u.host[1:-1] if u.host.startswith("[") and u.host.endswith("]") else u.host
        try:
            ips.append(str(ipaddress.ip_address(h)))
        except ValueError:
            hosts.append(u.host)
    return d, users, hosts, ips


HOSTS = st.one_of(
    st.sampled_from(["", "example.com", "192.0.2.1", "01.2.3.4", "[2001:DB8::1]", "2001:db8::1"]),
    st.ip_addresses().map(str),
    st.text("0123456789.:abf[]", max_size=20),
)
URIS = st.builds(
    Uri,
    original=st.text(min_size=1, max_size=30),
    scheme=st.sampled_from(["", "sip", "sips", "tel"]),
    user=st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=8)),
    host=HOSTS,
    port=st.one_of(st.none(), st.integers(0, 65535)),
)


@given(URIS)
def test_uri_section_equals_the_field_by_field_rendering(u: Uri) -> None:
    want, users, hosts, ips = reference_uri(u)
    e = UriDoc(u)
    got_users: list[str] = []
    got_hosts: list[str] = []
    got_ips: list[str] = []
    e.relate(got_users, got_hosts, got_ips)
    assert e.doc == want
    assert list(e.doc) == list(want)  # same key order, so the same JSON text
    assert (got_users, got_hosts, got_ips) == (users, hosts, ips)


def call_start() -> Outcome:
    inv = invite(credentials=Credentials("Digest", "alice", "atlanta.example.com"))
    ok = response(inv, 200, "OK", payload(BOB, ALICE, ifindex=2, direction="ingress"))
    return Outcome(
        "call-start", T0, msg=ok, request=inv, response=ok, call_id=inv.call_id,
        method="INVITE", status=200, reason="OK", client=ALICE, server=BOB, start_ns=T0,
        call=CallMetrics(pdd_ms=1.5, setup_time_ms=2.0004), flow=Flow(*ALICE, *BOB, "udp"),
    )  # fmt: skip


def call_end() -> Outcome:
    inv = invite()
    ok = response(inv, 200, "OK")
    bye = invite(method="BYE", cseq_method="BYE", payload=payload(BOB, ALICE, ifindex=2))
    return Outcome(
        "call-end", T0 + 5, msg=bye, request=inv, response=ok, call_id=inv.call_id,
        method="INVITE", status=200, reason="OK", client=ALICE, server=BOB, start_ns=T0,
        end_ns=T0 + 5, flow=Flow(*BOB, *ALICE, "udp"),
        call=CallMetrics(originator="callee", duration_ns=5, ring_time_ms=1e-4),
    )  # fmt: skip


def reg_new() -> Outcome:
    """A REGISTER whose From and To share one Uri object (as the parser's cache gives)."""
    req = register(Credentials("Digest", "bob", "biloxi.example.com"))
    assert req.from_.uri is req.to.uri
    return Outcome(
        "reg-new", T0, msg=req, request=req, status=200, reason="OK",
        reg=RegInfo("sip:bob@biloxi.example.com", req.contacts[0], 3600),
    )  # fmt: skip


def reg_expired() -> Outcome:
    contact = NameAddr(Uri("sip:bob@192.0.2.99", "sip", "bob", "192.0.2.99"))
    return Outcome(
        "reg-expired", T0, reg=RegInfo("sip:bob@biloxi.example.com", contact, 60, 7),
        flow=Flow("2001:db8::5", 5070, "2001:db8::1", 5060, "udp"),
    )  # fmt: skip


OUTCOMES = [call_start, call_end, reg_new, reg_expired]


def test_a_warm_builder_gives_the_documents_of_a_fresh_one() -> None:
    warm = fresh()
    outcomes = [make() for make in OUTCOMES] * 3  # the same objects again: every cache hits
    for o in outcomes:
        doc = warm.build(o)
        assert_valid(doc)
        assert json.dumps(doc) == json.dumps(fresh().build(o)), o.action


def one_flow_in_many_contexts() -> list[Outcome]:
    """Messages of one flow whose packets differ in VLAN, direction, transport and IP
    version (the flow's network section is rebuilt for each), a call ended by timeout, a
    To tag from the response, extra fields, and a client and server that are not the ends of
    the flow."""
    inv = invite()
    out = []
    for kw in ({"vlan": 10}, {"vlan": 11, "direction": "egress", "ifindex": 3}, {},
               {"transport": "tcp"}, {"ip_version": 6}, {"vlan": 10}):  # fmt: skip
        ok = response(inv, 200, "OK", payload(BOB, ALICE, **kw))
        out.append(Outcome(
            "other-ok", T0, msg=ok, request=inv, response=ok, call_id=inv.call_id,
            method="INVITE", status=200, client=ALICE, server=BOB, flow=Flow(*ALICE, *BOB, "udp"),
        ))  # fmt: skip
    out.append(Outcome(
        "call-end", T0 + 9, request=inv, client=ALICE, server=BOB, start_ns=T0, end_ns=T0 + 9,
        call=CallMetrics(originator="timeout", duration_ns=9), flow=Flow(*ALICE, *BOB, "udp"),
    ))  # fmt: skip
    out.append(Outcome("other-ok", T0, msg=inv, request=inv, extra={"sipcm.rate.exceeded": 3}))
    out.append(Outcome(
        "other-ok", T0, msg=inv, request=inv, client=("192.0.2.99", 5060), server=(BOB[0], 5099),
        flow=Flow(*ALICE, *BOB, "udp"),
    ))  # fmt: skip
    return out


def ndjson(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE)


def test_encoded_documents_give_the_bytes_of_plain_ones() -> None:
    """`line(o)`, which the shard writes when anonymization is off, gives the bytes of the
    plain document: cold and warm, whichever form was built first."""
    outcomes = [make() for make in OUTCOMES] + one_flow_in_many_contexts()
    encoded_first, plain_first = fresh(), fresh()
    for o in outcomes * 2:
        enc = encoded_first.line(o)
        plain = ndjson(encoded_first.build(o))
        assert ndjson(plain_first.build(o)) == plain, o.action
        assert plain_first.line(o) == enc == plain, o.action
        assert fresh().line(o) == plain, o.action


def test_repeated_uri_objects_share_one_section() -> None:
    b = fresh()
    o = reg_new()
    first, second = b.build(o), b.build(o)
    assert first["sip"]["from"]["uri"] is first["sip"]["to"]["uri"]
    assert first["sip"]["from"]["uri"] is second["sip"]["to"]["uri"]
    assert first["sip"]["contact"] is second["sip"]["contact"]
    assert first["observer"] is second["observer"]


def test_anonymizing_a_document_leaves_the_sections_it_shares_alone() -> None:
    b = fresh()
    anonymizer = Anonymizer(**ALL, key_hex=HEX)
    codec = Codec(AnonKey.from_settings(key_hex=HEX), ipcipher4=False)
    for make in OUTCOMES:
        o = make()
        clear = fresh().build(o)
        kept = b.build(o)  # shares sections with the next one
        doc = anonymizer.apply(b.build(o))
        assert kept == clear
        assert b.build(o) == clear
        if "to" in clear["sip"]:
            # encrypted once even where one section sits twice in the document (From and To)
            to = clear["sip"]["to"]["uri"]["original"]
            assert doc["sip"]["to"]["uri"]["original"] == codec.uri(to)
        assert decrypt_doc(copy.deepcopy(doc), AnonKey.from_settings(key_hex=HEX)) == clear


def test_caches_are_bounded_and_exact() -> None:
    b = fresh()
    n = build._CACHE_ENTRIES + 10
    for i in range(n):
        ip = f"10.{i >> 8 & 255}.{i & 255}.1"
        o = Outcome(
            "other-ok", T0, msg=invite(uri=Uri(f"sip:u{i}@{ip}", "sip", f"u{i}", ip)),
            flow=Flow(ip, 5060, "192.0.2.1", 5060, "udp"),
        )  # fmt: skip
        doc = b.build(o)
        assert doc["sip"]["uri"] == {
            "original": f"sip:u{i}@{ip}", "scheme": "sip", "username": f"u{i}", "host": ip
        }  # fmt: skip
        assert doc["network"]["community_id"] == community_id("udp", ip, 5060, "192.0.2.1", 5060)
        assert ip in doc["related"]["ip"]
    for cache in (b._uris, b._parties, b._contacts, b._flows, b._endpoints):
        assert 0 < len(cache) <= build._CACHE_ENTRIES


def test_rehash_replaces_the_network_section() -> None:
    net = {"transport": "udp", "community_id": "1:stale", "protocol": "sip"}
    doc = {"source": {"ip": "192.0.2.1", "port": 5060}, "destination": {"ip": "::1", "port": 1}}
    doc["network"] = net
    rehash(doc)
    assert net == {"transport": "udp", "community_id": "1:stale", "protocol": "sip"}
    assert doc["network"] == {"transport": "udp", "protocol": "sip"}  # mixed families: no ID
    doc["destination"] = {"ip": "192.0.2.2", "port": 5062}
    doc["network"] = net
    rehash(doc)
    want = community_id("udp", "192.0.2.1", 5060, "192.0.2.2", 5062)
    assert doc["network"] == {"transport": "udp", "community_id": want, "protocol": "sip"}
    assert net["community_id"] == "1:stale"


MS_FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(10**15), 10**15).map(lambda ns: ns / 1e6),  # nanoseconds to ms
    st.integers(-(10**12), 10**12).map(lambda us: us * 1000 / 1e6),  # microseconds
    st.sampled_from([0.0, -0.0, 0.0005, -0.0005, 2.675, 1e9 - 0.001, 5e-324]),
)


@given(MS_FLOATS)
def test_round_ms_is_round_to_three_digits(x: float) -> None:
    want = round(x, 3)
    got = round_ms(x)
    assert got == want
    assert math.copysign(1.0, got) == math.copysign(1.0, want)


def one_call_start_and_ends() -> list[Outcome]:
    """A call-start, then call-ends of the same INVITE and answer: one that shows exactly
    what the call-start showed (its sip head is reused), one with another status (it is not)."""
    start = call_start()
    inv, ok = start.request, start.response
    assert inv is not None
    assert ok is not None

    def end(status: int, reason: str) -> Outcome:
        return Outcome(
            "call-end", T0 + 5, request=inv, response=ok, call_id=inv.call_id, method="INVITE",
            status=status, reason=reason, client=ALICE, server=BOB, start_ns=T0, end_ns=T0 + 5,
            flow=Flow(*ALICE, *BOB, "udp"),
            call=CallMetrics(originator="caller", duration_ns=5, pdd_ms=1.5),
        )  # fmt: skip

    return [start, end(200, "OK"), start, end(487, "Request Terminated")]


def test_a_call_end_shows_its_call_starts_sip_head() -> None:
    """The encoded call-end reuses the call-start's sip section head (then forgets it) and
    gives the bytes of the plain document; a call-end that differs builds its own."""
    b = fresh()
    start, same, _, other = one_call_start_and_ends()
    plain = [ndjson(fresh().build(o)) for o in (start, same, other)]
    assert b.line(start) == plain[0]
    assert len(b._sip_heads) == 1
    assert b.line(same) == plain[1]
    assert b._sip_heads == {}
    assert b.line(start) == plain[0]
    assert b.line(other) == plain[2]
    assert len(b._sip_heads) == 1  # kept: this call-end was not the one the head shows
    doc = b.build(same)
    assert_valid(doc)
    assert doc["sip"]["call"]["originator"] == "caller"
    assert doc["sip"]["code"] == 200
    assert json.loads(plain[2])["sip"]["code"] == 487


def test_cached_section_json_holds_only_its_own_bytes() -> None:
    """orjson's bytes keep its 4 KiB working buffer; thousands of sections are cached at once
    (per URI, party, flow), so each keeps a copy of its own size (c20k: 34 MiB less)."""
    import tracemalloc

    from sipcm.events.build import Shared

    sections = [Shared({"uri": f"sip:user{i}@example.com", "port": i}) for i in range(200)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [s.json() for s in sections]
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held[7] == b'{"uri":"sip:user7@example.com","port":7}'
    assert grown < 200 * 200  # about 80 B each, not 4 KiB
