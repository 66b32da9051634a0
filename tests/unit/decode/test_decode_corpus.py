"""Corpus captures through PcapReader + Decoder + the real TcpReassembler.

Expected numbers come from the traffic (`tshark -r FILE -Y sip` frame lists, the corpus
README): one payload per SIP message tshark shows, plus what the decoder's rules add or drop
(NAT keep-alives on port 5060 are dropped and counted).
"""

from __future__ import annotations

from collections import Counter

import pytest

from sipcm.capture.pcapfile import PcapReader
from sipcm.decode.decoder import Decoder
from sipcm.decode.packet import Tunnel
from sipcm.decode.stream import TcpReassembler


def decode(path, **kw):
    c: Counter[str] = Counter()
    d = Decoder(c, tcp=TcpReassembler(Counter()), **kw)
    out = []
    for b in PcapReader(path).batches():
        out += d.decode(b)
    return out, c


# file: (udp payloads, tcp payloads, reassembled payloads)
EXPECT = {
    "PcapPlusPlus/sdp.pcap": (1, 0, 0),
    "PcapPlusPlus/sip_not_sdp.pcap": (1, 0, 0),
    "PcapPlusPlus/sip_reqs.pcap": (4, 0, 0),  # two of them over PPPoE
    "PcapPlusPlus/sip_resp.pcap": (6, 1, 0),
    "arkime/gtp-iphone.pcap": (4, 13, 4),
    "peafowl/ip_fragmentation_correct_1.pcap": (1, 0, 1),
    "sngrep/aaa.pcap": (81, 0, 0),
    "sngrep/ipip.pcap": (0, 4, 0),
    "sngrep/ipv6frag.pcap": (32, 0, 2),
    "suricata-verify/sip-body-frames.pcap": (10, 0, 0),
    "suricata-verify/sip-body-large.pcap": (0, 2, 1),
    "suricata-verify/sip-compact-form.pcap": (1, 0, 0),
    "suricata-verify/sip-header-multi-value.pcap": (1, 0, 0),
    "suricata-verify/sip-options-method.pcap": (2, 0, 0),
    "suricata-verify/sip-pattern-matching.pcap": (2, 0, 0),
    "suricata-verify/sip-sdp.pcap": (2, 0, 0),
    "suricata-verify/sip-tcp-method.pcap": (0, 2, 1),
    "suricata-verify/sip-tcp-pattern-matching.pcap": (0, 2, 0),
    "zeek/sip-invalid-content-length.pcap": (2, 0, 0),
    "zeek/sip-junk.pcap": (1, 0, 0),  # the other datagram is four NULs: a keep-alive
    "zeek/sip-path-length-limits.pcap": (2, 0, 0),
    "zeek/sip-wireshark.pcap": (81, 0, 0),
    "zeek/vxlan.pcap": (0, 0, 0),
}


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_candidate_counts(corpus, name):
    out, c = decode(corpus / name)
    got = (
        sum(p.transport == "udp" for p in out),
        sum(p.transport == "tcp" for p in out),
        sum(p.reassembled for p in out),
    )
    assert got == EXPECT[name]
    assert c["decode_error"] == 0


def test_aaa_keepalives_and_rtp(corpus):
    _, c = decode(corpus / "sngrep/aaa.pcap")
    assert (c["frames"], c["payloads"], c["udp_keepalive"]) == (691, 81, 21)


def test_peafowl_fragmented_cancel(corpus):
    out, c = decode(corpus / "peafowl/ip_fragmentation_correct_1.pcap")
    (p,) = out
    assert p.data.startswith(b"CANCEL sip:bob@192.168.77.1 SIP/2.0\r\n")
    assert (len(p.data), p.src_ip, p.dst_ip, p.dst_port, p.frame_no) == (
        33324, "192.168.77.2", "192.168.77.1", 5060, 23
    )  # fmt: skip
    assert (c["frag_fragments"], c["frag_reassembled"]) == (23, 1)


def test_ipv6frag_heuristic_and_ports(corpus):
    out, c = decode(corpus / "sngrep/ipv6frag.pcap")
    assert [p.frame_no for p in out if p.reassembled] == [2, 5]  # where tshark shows them
    invite = out[0]
    assert invite.data.startswith(b"INVITE sip:08019200028@[fd17:625c:f037:2:a00:27ff:feb9:4222]")
    assert (invite.src_ip, invite.src_port, invite.dst_port, invite.ip_version) == (
        "fd17:625c:f037:2:a00:27ff:feb9:1521", 15060, 5062, 6
    )  # fmt: skip
    assert not any(p.on_sip_port for p in out)  # 5062/15060/25060: found by the start line
    assert c["frag_reassembled"] == 2
    on_port, _ = decode(corpus / "sngrep/ipv6frag.pcap", sip_ports=(5062,))
    assert sum(p.on_sip_port for p in on_port) == 32
    assert decode(corpus / "sngrep/ipv6frag.pcap", heuristic=False)[0] == []


def test_gtp_iphone(corpus):
    out, c = decode(corpus / "arkime/gtp-iphone.pcap")
    assert [p.frame_no for p in out] == [
        14,
        16,
        27,
        29,
        31,
        34,
        40,
        43,
        45,
        47,
        52,
        80,
        86,
        90,
        91,
        100,
        102,
    ]
    assert {(p.ip_version, p.tunnel.kind, p.tunnel.src_port) for p in out} == {(6, "gtp", 2152)}
    first = out[0]
    assert first.data.startswith(b"REGISTER sip:310410010001002@ims.mnc410.mcc310.3gppnetwork.org")
    assert (first.src_ip, first.dst_ip, first.transport, first.reassembled) == (
        "fd00:183:1:1:1886:9040:8605:32b8", "fd01::183", "tcp", True
    )  # fmt: skip
    assert (first.tunnel.src_ip, first.tunnel.dst_ip) == ("127.0.1.1", "127.0.1.100")
    assert [p.frame_no for p in out if p.transport == "udp"] == [31, 34, 90, 91]
    assert c["gtp_decap"] == 106


def test_ipip(corpus):
    out, c = decode(corpus / "sngrep/ipip.pcap")
    assert [(p.frame_no, p.src_port, p.dst_port, p.data.split(b"\r\n")[0][:19]) for p in out] == [
        (1, 5090, 33093, b"INVITE sip:1bdaa608"),
        (2, 33093, 5090, b"SIP/2.0 183 Ringing"),
        (3, 33093, 5090, b"SIP/2.0 200 OK"),
        (4, 5090, 33093, b"BYE sip:1bdaa608131"),
    ]
    assert [p.tunnel for p in out] == [
        None,
        Tunnel("ipip", "10.15.196.229", "10.15.194.19"),
        Tunnel("ipip", "10.15.196.229", "10.15.194.19"),
        None,
    ]
    assert c["ipip_decap"] == 2


def test_vxlan_capture_decapsulates(corpus):
    out, c = decode(corpus / "zeek/vxlan.pcap")
    # 10 VXLAN frames: 8 inner ICMP echo (not UDP/TCP) and 2 inner ARP.
    assert out == []
    assert (c["vxlan_decap"], c["ip_proto_other"], c["ethertype_other"]) == (10, 8, 2)


def test_pppoe_requests(corpus):
    out, _ = decode(corpus / "PcapPlusPlus/sip_reqs.pcap")
    assert [p.data.split(b" ")[0] for p in out] == [b"INVITE", b"CANCEL", b"ACK", b"BYE"]
    assert [p.src_ip for p in out[1:3]] == ["178.45.73.241", "213.192.59.75"]
