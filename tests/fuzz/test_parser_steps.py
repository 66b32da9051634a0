"""The two-step parse agrees with the one-step parse.

`parse` runs a keyed step (start line, From, To, Call-ID, CSeq, Vias) and leaves the other
fields to a second step over the same bytes; `parse_full` parses every header at once. For any
input they must give the same ParseError (reason, offset, probe), or messages equal in every
field (and the same `message_shard_key`, which reads keyed fields only). Inputs: arbitrary
bytes, mutations of a message that uses every header kind, generated messages, the sipgen
builders and every payload of the shared corpus. `_parse` is called without the safety net
of `parse`, so an exception in either step fails the test.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipcm.sip.message import DEFERRED, FIELD_NAMES, ParseError, SipMessage
from sipcm.sip.nameaddr import _plain_contact, _shared_name_addr, parse_name_addr
from sipcm.sip.parser import KEYED_METHODS, _keyed, _parse, parse, parse_full
from sipcm.sip.shardkey import message_shard_key
from sipcm.sip.via import (
    _FAST,
    _fast_via,
    _general_via,
    _parse_without_branch,
    _plain_without_branch,
    _shared_via,
    parse_via,
)
from tests.conftest import CORPUS
from tests.fuzz.test_parser_fuzz import SPECIAL, VALID, address, mutated
from tests.sipgen import Leg

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYED = ("is_request", "method", "uri", "status", "reason", "call_id", "from_", "to", "cseq")
KEYED += ("cseq_method", "vias", "size")


def check_steps(data: bytes) -> SipMessage | ParseError:
    """Both paths agree on `data`; returns the two-step result (completed)."""
    full = parse_full(data)
    two = _parse(data)
    keyed = _keyed(data)  # the keyed step whatever the message
    if isinstance(full, ParseError):
        assert two == full
        assert keyed is None or keyed == full
        return two
    if keyed is not None:
        assert keyed._rest is not None, "keyed step: second step pending"
        for name in KEYED:
            assert getattr(keyed, name) == getattr(full, name), name
        assert keyed == full
    assert isinstance(two, SipMessage), (two, full)
    for name in KEYED:  # before the second step runs
        assert getattr(two, name) == getattr(full, name), name
    assert message_shard_key(two) == message_shard_key(full)  # keyed fields only
    assert two == full  # reads every field: runs the second step
    assert two._rest is None
    assert repr(two) == repr(full)
    return two


@SETTINGS
@given(st.binary(max_size=1500))
def test_any_bytes(data: bytes) -> None:
    check_steps(data)


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from([b"OPTIONS sip:x@y SIP/2.0\r\n", b"SIP/2.0 1 x\n"]))
def test_any_bytes_after_a_start_line(tail: bytes, head: bytes) -> None:
    check_steps(head + tail)
    check_steps(VALID[: VALID.index(b"Content-Length")] + tail)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_message(data: bytes) -> None:
    check_steps(data)


_NAMES = st.sampled_from(
    [
        *("From", "f", "FROM", "from ", "To", "t", "T\t", "Call-ID", "i", "call-id", "CSeq"),
        *("cseq", "Via", "v", "VIA", "Contact", "m", "X-From", "Fromx", "Expires", "l", ""),
    ]
)
_VALUES = st.sampled_from(
    [
        *("<sip:a@x>;tag=1", "<sip:b@y>", "sip:c@z;tag=2", '"D" <sip:d@w>', "<sip:bad host>", ""),
        *("c1@h", "1 INVITE", "2 REGISTER", "x INVITE", "SIP/2.0/UDP h:5060;branch=z9hG4bKa"),
        *("SIP/2.0/UDP h;branch=b1, SIP/2.0/TCP g;branch=b2", "junk", "60", " 12 "),
    ]
)


@SETTINGS
@given(
    st.lists(st.tuples(_NAMES, _VALUES, st.sampled_from([":", ": ", " : ", ":\t"])), max_size=9),
    st.sampled_from(["\r\n", "\n"]),
    st.sampled_from(["REGISTER sip:r SIP/2.0", "SIP/2.0 200 OK", "INVITE sip:b@y SIP/2.0"]),
    st.lists(st.sampled_from(SPECIAL), max_size=2),
)
def test_generated_header_blocks(headers, eol, start, junk) -> None:
    """Every order, spelling, repetition and breakage of the headers the keyed step reads."""
    lines = [start] + [n + sep + v for n, v, sep in headers]
    data = (eol.join(lines) + eol + eol).encode()
    check_steps(data)
    for j in junk:  # the same block with one special sequence inserted mid-way
        mid = len(data) // 2
        check_steps(data[:mid] + j + data[mid:])


@SETTINGS
@given(address(), address(), st.sampled_from(["INVITE", "REGISTER", "BYE", "OPTIONS"]))
def test_generated_requests_and_replies(fr, to, method) -> None:
    leg = Leg("gen@h", a_user=fr[2], b_user=to[2], domain=to[3], from_tag=fr[5] or "t1")
    req = leg.req(method, headers=("Expires: 60",) if method == "REGISTER" else ())
    for data in (req.raw, leg.resp(req, 200, "OK"), leg.resp(req, 180, "Ringing")):
        m = check_steps(data)
        assert isinstance(m, SipMessage)
        assert _keyed(data) is not None  # ordinary messages: no general path
        lazy = m.method in KEYED_METHODS if m.is_request else m.status < 200 or method == "BYE"
        assert (_parse(data)._rest is not None) == lazy  # only these wait for the second step
    bye = leg.req("BYE").raw
    assert _parse(bye)._rest is not None
    assert check_steps(bye).call_id == "gen@h"


_TAGGED = st.tuples(
    st.sampled_from(['"A" <sip:a@x>', "<sip:b@y:5060;transport=tcp>", "<sip:c@[::1]:99999>"]),
    st.sampled_from(["", ";x=1", ";tag=", ";TAG=a", ";tag=1;tag=2", '"', " ", ">"]),
    st.text(alphabet='ab;"\t =>\u00a0', max_size=6),
)


@settings(max_examples=1000, deadline=None)
@given(_TAGGED, st.sampled_from(["SIP/2.0/UDP h:5060", "SIP/2.0/TCP [::1]", "SIP/2.0/udp x:70000"]))
def test_shared_tag_and_branch_parses_agree(tagged, via_head) -> None:
    """The caches share the parse of a value without its tag / branch; same result."""
    address, mid, tail = tagged
    text = address + mid + ";tag=" + tail
    assert _shared_name_addr(text) == parse_name_addr(text)
    for value in (f"{via_head};branch={tail}{mid}", f"{via_head}{mid};branch={tail};rport"):
        assert _shared_via(value) == parse_via(value)


_PLAIN = st.text(alphabet='aZ09._-:@;=<>" \t\n/\u00a0', max_size=12)


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from(["<sip:", "<sips:", "<SIP:", "sip:", "<sip:a@", "<sip:@"]),
    _PLAIN,
    st.sampled_from(["h", "10.0.0.1", "Host.Example", "h:5060", "h:65535", "h:65536", "h:"]),
    st.sampled_from([">", "", ">;x", "> ", ";p>"]),
)
def test_plain_shapes_read_as_the_regexes_read_them(head, mid, host, tail) -> None:
    """Contacts and branchless Vias of new hosts skip the regexes; same values."""
    text = head + mid + host + tail
    plain = _plain_contact(text)
    assert plain is None or plain == parse_name_addr(text)
    assert _shared_name_addr(text) == parse_name_addr(text)
    for via in (
        f"SIP/2.0/UDP {mid}{host};branch=",
        f"SIP/2.0/{mid} {host};branch=;rport{tail}",
        f"SIP/2.0/tcp {host};branch={mid};received=1.2.3.4",
        f"SIP/2.0/UDP {host}{mid};branch=;{mid}",
    ):
        m = _FAST.fullmatch(via)
        ref = None  # what _parse_without_branch gave with the regex alone
        if m is not None and m.groups()[3] == "":
            ref = _fast_via(m.groups()) or _general_via(via)
        plain_via = _plain_without_branch(via)
        assert plain_via is None or plain_via == ref, via
        assert _parse_without_branch(via) == ref, via


def test_plain_shapes_taken() -> None:
    """The usual new texts do take the plain readers."""
    na = _plain_contact("<sip:alice@10.0.0.7:5060>")
    assert na == parse_name_addr("<sip:alice@10.0.0.7:5060>")
    assert na is not None
    assert (na.uri.user, na.uri.host, na.uri.port, na.display) == ("alice", "10.0.0.7", 5060, None)
    via = _plain_without_branch("SIP/2.0/UDP 10.0.0.7:5060;branch=;rport")
    assert via == parse_via("SIP/2.0/UDP 10.0.0.7:5060;branch=;rport")
    assert via is not None
    assert (via.transport, via.host, via.port, via.branch) == ("UDP", "10.0.0.7", 5060, None)
    assert via.params == {"rport": ""}


def test_keyed_step_defers_the_other_headers() -> None:
    bye = VALID.replace(b"INVITE", b"BYE").replace(b"Subject: folded\r\n  line\r\n", b"")
    m = parse(bye)
    assert isinstance(m, SipMessage)
    assert m._rest is not None
    assert (m.call_id, m.cseq, m.from_.tag, len(m.vias)) == (
        "a84b4c76e66710@pc33.atlanta.example.com",
        314159,
        "1928301774",
        3,
    )
    assert m._rest is not None  # reading keyed fields does not complete it
    assert m.credentials.username == "alice"  # a deferred field: the second step runs
    assert m._rest is None
    assert m.headers["www-authenticate"] == ['Digest realm="r"']
    assert (m.bad_headers, m.body, m.content_length) == (1, b"v=0\r", 4)  # cut at 4
    assert m.complete() is m
    assert sorted(DEFERRED) == sorted(f for f in FIELD_NAMES if f not in {*KEYED, "payload"})


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (VALID, "folded line"),
        (VALID.replace(b"\r\n", b"\n"), "no CRLF blank line"),
        (VALID[: VALID.index(b"\r\n\r\n")], "no blank line"),
        (VALID.replace(b"Expires: 60\r\n", b"\n"), "bare-LF blank line"),
        (VALID.replace(b"CSeq: 314159", b"CSeq: x"), "an error"),
    ],
)
def test_the_general_path_decides_unusual_blocks(data: bytes, why: str) -> None:
    assert _keyed(data) is None, why
    check_steps(data)


def test_unknown_attribute_still_raises() -> None:
    m = parse(VALID)
    with pytest.raises(AttributeError):
        m.no_such_field  # noqa: B018


def test_corpus_payloads_agree() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    from sipcm.capture.pcapfile import PcapReader
    from sipcm.decode.decoder import Decoder
    from sipcm.decode.stream import TcpReassembler

    kinds: Counter[str] = Counter()
    for path in sorted(CORPUS.rglob("*.pcap*")):
        c: Counter[str] = Counter()
        dec = Decoder(c, tcp=TcpReassembler(c))
        for batch in PcapReader(path).batches():
            for p in dec.decode(batch):
                keyed = _keyed(p.data)
                kinds["keyed" if isinstance(keyed, SipMessage) else "general"] += 1
                check_steps(p.data)
    assert kinds["keyed"] > kinds["general"] > 0, kinds
