"""`EventBuilder.line` (the NDJSON line the shard writes when anonymization is off) gives the
bytes orjson gives for `build`'s document, over varied events: every action, missing optional
parts, clients and servers that are or are not the flow's ends, tunnels, VLANs, interfaces,
errors, extra fields, and text that JSON must escape (quotes, backslashes, control
characters, non-ASCII). Builders are warm and shared with anonymized documents, as in a run."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from sipcm.decode.packet import Tunnel
from sipcm.events.anonymize import Anonymizer
from sipcm.events.build import ACTIONS, EventBuilder
from sipcm.sip.message import Credentials, NameAddr, ParseError, SipMessage, Uri
from tests.ecs import assert_valid
from tests.unit.events.factories import T0, CallMetrics, Flow, Outcome, RegInfo, payload

HEX = "000102030405060708090a0b0c0d0e0f"
ANON = {"ip": True, "ipcipher": False, "uris": True, "call_ids": True, "ua": True}

# Text JSON must escape, and text it passes as it is; no lone surrogates (not UTF-8).
ESCAPED = ["OK", "alice", 'a"b', "back\\slash", "tab\there", "nl\n", "\x00\x1f\x7f", "é",
           "日本", "😀", "</script>", "\u2028"]  # fmt: skip
TEXT = st.one_of(
    st.sampled_from(ESCAPED), st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
)
OPT_TEXT = st.one_of(st.none(), st.just(""), TEXT)
ADDRS = st.sampled_from(["192.0.2.10", "192.0.2.20", "10.0.0.1", "2001:db8::5", "2001:db8::1"])
PORTS = st.sampled_from([5060, 5062, 5070])
ENDPOINTS = st.tuples(ADDRS, PORTS)
TIMES = st.integers(T0 - 5 * 10**9, T0 + 5 * 10**9)
MS = st.one_of(st.none(), st.sampled_from([0.0, 1.5, 200.0, 1e16, 0.0001, 123.456]),
               st.floats(0, 1e7, allow_nan=False))  # fmt: skip
HOSTS = st.sampled_from(["example.com", "192.0.2.10", "[2001:db8::1]", "", "01.2.3.4"])


@st.composite
def uris(draw: st.DrawFn) -> Uri:
    """A URI whose text determines its fields, as the parser's do (the builder caches URI
    sections by their text)."""
    scheme = draw(st.sampled_from(["", "sip", "sips", "tel"]))
    user, host = draw(OPT_TEXT), draw(HOSTS)
    port = draw(st.one_of(st.none(), PORTS))
    original = f"{draw(TEXT)}|{scheme}|{user}|{host}|{port}"
    return Uri(original, scheme, user, host, port)


@st.composite
def name_addrs(draw: st.DrawFn, contact: bool = False) -> NameAddr:
    params = {}
    if contact and draw(st.booleans()):
        params["expires"] = draw(st.sampled_from(["60", "x"]))
    return NameAddr(draw(uris()), display=draw(OPT_TEXT), tag=draw(OPT_TEXT), params=params)


@st.composite
def payloads(draw: st.DrawFn, src: tuple[str, int], dst: tuple[str, int], ts: int) -> Any:
    kw: dict[str, Any] = {}
    if draw(st.booleans()):
        kw["vlan"] = draw(st.integers(1, 4094))
    if draw(st.booleans()):
        kw["direction"] = draw(st.sampled_from(["ingress", "egress", None]))
        kw["ifindex"] = draw(st.sampled_from([0, 2, 3]))
    if draw(st.booleans()):
        kw["tunnel"] = Tunnel("vxlan", "198.51.100.1", "198.51.100.2", 4789, None, 7)
    kw["frame_no"] = draw(st.integers(0, 10**6))
    kw["reassembled"] = draw(st.booleans())
    ip6 = ":" in src[0]
    data = draw(st.binary(max_size=20))
    return payload(src, dst, ts_ns=ts, data=data, ip_version=6 if ip6 else 4,
                   transport=draw(st.sampled_from(["udp", "tcp"])), **kw)  # fmt: skip


@st.composite
def messages(draw: st.DrawFn, request: bool, src: tuple[str, int], dst: tuple[str, int]) -> Any:
    creds = None
    if request and draw(st.booleans()):
        creds = Credentials(draw(st.sampled_from(["Digest", ""])), draw(OPT_TEXT), draw(OPT_TEXT))
    return SipMessage(
        is_request=request,
        method=draw(st.sampled_from(["INVITE", "REGISTER", "OPTIONS"])) if request else None,
        uri=draw(st.one_of(st.none(), uris())) if request else None,
        status=None if request else draw(st.sampled_from([180, 200, 404, 487])),
        reason=None if request else draw(OPT_TEXT),
        call_id=draw(TEXT),
        from_=draw(name_addrs()),
        to=draw(name_addrs()),
        cseq=draw(st.integers(0, 2**31)),
        cseq_method=draw(st.sampled_from(["INVITE", "REGISTER", "", "BYE"])),
        contacts=draw(st.lists(name_addrs(contact=True), max_size=2)),
        contact_star=draw(st.booleans()),
        user_agent=draw(OPT_TEXT),
        server=draw(OPT_TEXT),
        pai=draw(st.lists(name_addrs(), max_size=2)),
        credentials=creds,
        payload=draw(payloads(src, dst, draw(TIMES))),
    )


@st.composite
def outcomes(draw: st.DrawFn) -> Outcome:
    action = draw(st.sampled_from(sorted(ACTIONS)))
    caller, callee = draw(ENDPOINTS), draw(ENDPOINTS)
    req = draw(st.one_of(st.none(), messages(True, caller, callee)))
    resp = draw(st.one_of(st.none(), messages(False, callee, caller)))
    msg = draw(st.sampled_from([None, req, resp]))
    call = None
    if draw(st.booleans()):
        call = CallMetrics(
            pdd_ms=draw(MS), ring_time_ms=draw(MS), setup_time_ms=draw(MS),
            originator=draw(st.sampled_from([None, "caller", "callee", "timeout"])),
            reconstructed=draw(st.booleans()), reconstructed_from=draw(OPT_TEXT),
            retransmissions=draw(st.integers(0, 9)),
            duration_ns=draw(st.one_of(st.none(), st.integers(0, 10**12))),
        )  # fmt: skip
    reg = None
    if draw(st.booleans()):
        contact = draw(st.one_of(st.none(), name_addrs(contact=True)))
        reg = RegInfo(draw(TEXT), contact, draw(st.one_of(st.none(), st.integers(0, 7200))),
                      draw(st.one_of(st.none(), st.integers(0, 10**13))))  # fmt: skip
    error = pl = None
    if action in ("parse-error", "msg-probe"):
        error = ParseError(
            draw(TEXT.filter(bool)), draw(st.integers(0, 99)), probe=action == "msg-probe"
        )
        pl = error.payload = draw(st.one_of(st.none(), payloads(caller, callee, T0)))
        req = resp = msg = None
    flow = None
    if draw(st.booleans()):
        flow = Flow(*draw(st.sampled_from([caller, callee])), *draw(ENDPOINTS), "udp")
    extra = {"sipcm.rate.exceeded": 3} if draw(st.integers(0, 9)) == 0 else None
    return Outcome(
        action, draw(TIMES), msg=msg, request=req, response=resp,
        call_id=draw(st.one_of(st.none(), TEXT)), method=draw(st.one_of(st.none(), TEXT)),
        status=draw(st.one_of(st.none(), st.integers(100, 699))), reason=draw(OPT_TEXT),
        client=draw(st.one_of(st.none(), st.just(caller), ENDPOINTS)),
        server=draw(st.one_of(st.none(), st.just(callee), ENDPOINTS)),
        start_ns=draw(st.one_of(st.none(), TIMES)), end_ns=draw(st.one_of(st.none(), TIMES)),
        call=call, reg=reg, error=error, payload=pl, flow=flow, extra=extra,
    )  # fmt: skip


def ndjson(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE)


def fresh() -> EventBuilder:
    return EventBuilder('sensor-é"1', {2: "eth0", 3: 'we"ird\\if'}, product_version="9.9.9")


WARM = fresh()  # shared by every example, as one builder serves a whole run
ANONYMIZER = Anonymizer(**ANON, key_hex=HEX)


@settings(max_examples=300, deadline=None)
@given(st.lists(outcomes(), min_size=1, max_size=4))
def test_line_gives_the_bytes_of_the_plain_document(batch: list[Outcome]) -> None:
    """Each outcome twice (a call-start's sip head is reused by what follows it), on a warm
    builder that also builds plain and anonymized documents, and on a fresh one."""
    for o in batch + batch:
        plain = ndjson(fresh().build(o))
        assert WARM.line(o) == plain, o.action
        assert ndjson(WARM.build(o)) == plain, o.action
        ANONYMIZER.apply(WARM.build(o))  # must leave the shared sections as they were
        assert WARM.line(o) == plain, o.action
        assert fresh().line(o) == plain, o.action
    assert_valid(orjson.loads(WARM.line(batch[0])))
