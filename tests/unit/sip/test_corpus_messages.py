"""Parse the SIP payloads of the shared corpus (decoded by the real capture/decode layers)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sipcm.capture.pcapfile import PcapReader
from sipcm.decode.decoder import Decoder
from sipcm.decode.stream import TcpReassembler
from sipcm.sip.message import ParseError, SipMessage, Via
from sipcm.sip.parser import parse


def payloads(path: Path) -> list[bytes]:
    c: Counter[str] = Counter()
    dec = Decoder(c, tcp=TcpReassembler(c))
    return [p.data for b in PcapReader(path).batches() for p in dec.decode(b)]


def one(corpus: Path, name: str) -> list[SipMessage | ParseError]:
    return [parse(d) for d in payloads(corpus / name)]


def test_compact_form_invite(corpus: Path) -> None:
    (m,) = one(corpus, "suricata-verify/sip-compact-form.pcap")
    assert isinstance(m, SipMessage)
    assert (m.method, m.uri.user, m.uri.host) == ("INVITE", "97239287044", "voip.brujula.net")
    assert m.vias == [
        Via("UDP", "192.168.1.2", 5060, "z9hG4bKnp104984053-44ce4a41192.168.1.2", {"rport": ""})
    ]
    assert (m.from_.display, m.from_.uri.user, m.from_.uri.host, m.from_.tag) == (
        r"\"arik\"",
        "816666",
        "voip.brurjula.net",
        "6433ef9",
    )
    assert (m.to.uri.user, m.to.tag) == ("97239287044", None)
    assert (m.call_id, m.cseq, m.cseq_method) == ("105090259-446faf7a@192.168.1.2", 1, "INVITE")
    assert (m.user_agent, m.expires, m.content_length) == (
        "Nero SIPPS IP Phone Version 2.0.51.16",
        120,
        272,
    )
    assert [c.uri.original for c in m.contacts] == ["sip:816666@192.168.1.2"]
    assert m.headers == {
        "accept": ["application/sdp"],
        "content-type": ["application/sdp"],
        "max-forwards": ["70"],
        "allow": ["INVITE, ACK, CANCEL, BYE, REFER, OPTIONS, NOTIFY, INFO"],
    }
    assert (len(m.body), m.truncated, m.bad_headers) == (272, False, 0)
    # The SDP in the datagram is longer than Content-Length: 272 says; the body stops there.
    assert m.body.startswith(b"v=0\r\no=SIPPS 105015165")
    assert m.body.endswith(b"r=604800 3600 0 90000\r\nz=2882844")


def test_header_multi_value_second_to_is_kept_raw(corpus: Path) -> None:
    (m,) = one(corpus, "suricata-verify/sip-header-multi-value.pcap")
    assert isinstance(m, SipMessage)
    assert m.to.uri.original == "sip:97239287044@voip.brujula.net"  # t: comes first
    assert m.headers["to"] == ["<sip:12345@voip.brujula.net>"]
    assert m.bad_headers == 1


def test_invalid_content_length(corpus: Path) -> None:
    inv, resp = one(corpus, "zeek/sip-invalid-content-length.pcap")
    assert isinstance(inv, SipMessage)
    assert isinstance(resp, SipMessage)
    assert (inv.method, inv.content_length, inv.headers, inv.bad_headers, inv.body) == (
        "INVITE",
        None,
        {"content-length": ["bad"]},
        1,
        b"",
    )
    assert (resp.status, resp.reason, resp.to.tag, resp.content_length, resp.headers) == (
        200,
        "OK",
        "abc123",
        None,
        {"content-length": ["xyz"]},
    )


def test_junk_register_without_from(corpus: Path) -> None:
    # The 4 NUL bytes of the first datagram never reach the parser (decode drops keep-alives).
    assert one(corpus, "zeek/sip-junk.pcap") == [ParseError("missing_from", 50)]
    assert parse(b"\x00\x00\x00\x00") == ParseError("too_short", 0, probe=True)


def test_long_via_paths(corpus: Path) -> None:
    req, resp = one(corpus, "zeek/sip-path-length-limits.pcap")
    for m in (req, resp):
        assert isinstance(m, SipMessage)
        assert [v.branch for v in m.vias] == [f"z9hG4bK{i}" for i in range(10)]
        assert m.vias[9].host == "a" * 900 + "0009"
        assert (m.call_id, m.cseq, m.bad_headers) == ("path-growth@example.com", 1, 0)
    assert (req.method, resp.status) == ("OPTIONS", 200)


def test_giant_cseq_in_reassembled_fragments(corpus: Path) -> None:
    """The CSeq is ~33,000 zeros then 1 CANCEL: legal 1*DIGIT, so the message parses."""
    (m,) = one(corpus, "peafowl/ip_fragmentation_correct_1.pcap")
    assert isinstance(m, SipMessage)
    assert (m.method, m.cseq, m.cseq_method, m.size) == ("CANCEL", 1, "CANCEL", 33_324)


@pytest.mark.parametrize(
    ("name", "n_ok", "errors"),
    [
        ("sngrep/aaa.pcap", 81, []),
        ("zeek/sip-wireshark.pcap", 81, []),
        ("arkime/gtp-iphone.pcap", 17, []),
        ("sngrep/ipv6frag.pcap", 32, []),
        ("PcapPlusPlus/sip_reqs.pcap", 4, []),
        ("PcapPlusPlus/sip_resp.pcap", 7, []),
        ("suricata-verify/sip-body-large.pcap", 2, []),
    ],
)
def test_corpus_files_parse(corpus: Path, name: str, n_ok: int, errors: list[str]) -> None:
    results = one(corpus, name)
    assert sum(isinstance(r, SipMessage) for r in results) == n_ok
    assert [r.reason for r in results if isinstance(r, ParseError)] == errors
