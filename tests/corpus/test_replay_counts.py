"""`sipcm replay` over every shared capture: per-file counts pinned, no traceback.

Expected numbers come from the captures themselves (tshark's SIP view, the corpus README's
frames/SIP and reassembly columns), not from sipcm's output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS, REPO

# file: (packets, SIP messages, parse errors, probes, reassembled payloads)
EXPECTED = {
    "PcapPlusPlus/sdp.pcap": (1, 1, 0, 0, 0),
    "PcapPlusPlus/sip_not_sdp.pcap": (1, 1, 0, 0, 0),
    "PcapPlusPlus/sip_reqs.pcap": (4, 4, 0, 0, 0),  # CANCEL and ACK over PPPoE
    "PcapPlusPlus/sip_resp.pcap": (7, 7, 0, 0, 0),  # one 401 over TCP
    "arkime/gtp-iphone.pcap": (106, 17, 0, 0, 4),  # GTP-U, inner IPv6, TCP-segmented SIP
    "peafowl/ip_fragmentation_correct_1.pcap": (23, 1, 0, 0, 1),  # 33 kB CANCEL, 23 fragments
    "sngrep/aaa.pcap": (691, 81, 0, 0, 0),  # RTP around the SIP of sip-wireshark
    "sngrep/ipip.pcap": (4, 4, 0, 0, 0),  # IP-in-IP, SIP over TCP
    "sngrep/ipv6frag.pcap": (34, 32, 0, 0, 2),  # Linux SLL, two fragmented INVITEs
    "suricata-verify/sip-body-frames.pcap": (10, 10, 0, 0, 0),
    "suricata-verify/sip-body-large.pcap": (16, 2, 0, 0, 1),  # 64 KiB INVITE over TCP, DLT_NULL
    "suricata-verify/sip-compact-form.pcap": (1, 1, 0, 0, 0),
    "suricata-verify/sip-header-multi-value.pcap": (1, 1, 0, 0, 0),
    "suricata-verify/sip-options-method.pcap": (2, 2, 0, 0, 0),
    "suricata-verify/sip-pattern-matching.pcap": (2, 2, 0, 0, 0),
    "suricata-verify/sip-sdp.pcap": (2, 2, 0, 0, 0),
    "suricata-verify/sip-tcp-method.pcap": (11, 2, 0, 0, 1),  # REGISTER split over 2 segments
    "suricata-verify/sip-tcp-pattern-matching.pcap": (7, 2, 0, 0, 0),
    "zeek/sip-invalid-content-length.pcap": (2, 2, 0, 0, 0),
    # 4 NUL bytes on 5060 (a NAT keep-alive: counted, no event), then junk glued to a
    # REGISTER that has no From/To/Call-ID/CSeq
    "zeek/sip-junk.pcap": (2, 0, 1, 0, 0),
    "zeek/sip-path-length-limits.pcap": (2, 2, 0, 0, 0),  # raw IPv4 link type
    "zeek/sip-wireshark.pcap": (81, 81, 0, 0, 0),
    "zeek/vxlan.pcap": (10, 0, 0, 0, 0),  # VXLAN with ICMP and ARP inside: no SIP
}

SIPCM = [sys.executable, "-m", "sipcm"]
pytestmark = pytest.mark.needs_shared("corpus")


def run_sipcm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIPCM, *args], capture_output=True, text=True, cwd=REPO, timeout=300, check=False
    )


def test_every_corpus_file_is_pinned() -> None:
    found = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.pcap*")}
    assert found == set(EXPECTED)


def test_replay_whole_corpus_counts() -> None:
    files = [str(CORPUS / name) for name in EXPECTED]
    res = run_sipcm("replay", "--summary", "json", "-E", "outputs.console.enabled=false", *files)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    lines = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    got = {
        str(Path(t["name"]).relative_to(CORPUS)): (
            t["packets"],
            t["messages"],
            t["parse_errors"],
            t["probes"],
            t["reassembled"],
        )
        for t in lines
    }
    assert got == EXPECTED


@pytest.mark.parametrize(
    ("name", "method", "size", "transport"),
    [
        ("peafowl/ip_fragmentation_correct_1.pcap", "CANCEL", 33_324, "udp"),  # 23 fragments
        ("suricata-verify/sip-body-large.pcap", "INVITE", 65_793, "tcp"),  # many segments
        ("sngrep/ipv6frag.pcap", "INVITE", 1_691, "udp"),  # IPv6 fragment header
    ],
)
def test_big_messages_come_out_whole(name: str, method: str, size: int, transport: str) -> None:
    """Reassembled payloads parse as one message of their full size."""
    from collections import Counter

    from sipcm.capture.pcapfile import PcapReader
    from sipcm.decode.decoder import Decoder
    from sipcm.decode.stream import TcpReassembler
    from sipcm.sip.message import SipMessage
    from sipcm.sip.parser import parse

    dec = Decoder(Counter(), tcp=TcpReassembler(Counter()))
    whole = [
        (parse(p.data), p)
        for batch in PcapReader(CORPUS / name).batches()
        for p in dec.decode(batch)
        if p.reassembled
    ]
    msg, payload = whole[0]
    assert isinstance(msg, SipMessage), msg
    assert (msg.method, msg.size, payload.transport) == (method, size, transport)
    assert len(payload.data) == size


def test_missing_file_is_one_line_error(tmp_path: Path) -> None:
    res = run_sipcm("replay", str(tmp_path / "nope.pcap"))
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "nope.pcap" in res.stderr


def test_non_pcap_file_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not a capture\n" * 10)
    res = run_sipcm("replay", str(bad))
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "notes.txt" in res.stderr


def test_truncated_pcap_replays_what_is_readable(tmp_path: Path) -> None:
    """A capture cut mid-record: the readable part is replayed, then a one-line error."""
    data = (CORPUS / "zeek/sip-wireshark.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) // 2])
    res = run_sipcm("replay", "--summary", "json", "-E", "outputs.console.enabled=false", str(cut))
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    summary = json.loads(res.stderr.splitlines()[0])
    assert 0 < summary["packets"] < 81
    assert summary["messages"] == summary["packets"]
    assert summary["truncated"]
    assert res.stderr.strip().splitlines()[-1].startswith("sipcm: error: ")
