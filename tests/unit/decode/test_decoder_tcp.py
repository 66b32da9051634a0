"""TCP through the decoder: which segments reach the reassembler, and messages as Payloads."""

from __future__ import annotations

from collections import Counter

from sipcm.decode.decoder import Decoder
from sipcm.decode.stream import TcpReassembler
from tests.unit.decode.frames import INVITE, OK, batch, eth, ip4, ip6, tcp

SYN, FIN, ACK, PSH, RST = 0x02, 0x01, 0x10, 0x08, 0x04


class FakeReassembler:
    """Records calls; returns each data segment as one message (spans when it has 'X')."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.keys: set = set()

    def has(self, key) -> bool:
        return key in self.keys

    def segment(self, key, seq, flags, data, ts_ns):
        self.calls.append((key, seq, flags, data))
        self.keys.add(key)
        return [(data, b"X" in data)] if data else []

    def expire(self, now_ns: int) -> int:
        return 0


def seg(sport, dport, seq, data=b"", flags=ACK | PSH, src="10.0.0.1", dst="10.0.0.2"):
    return eth(0x0800, ip4(src, dst, 6, tcp(sport, dport, seq, data, flags)))


def test_candidate_rules_and_calls():
    fake = FakeReassembler()
    c: Counter[str] = Counter()
    d = Decoder(c, tcp=fake)
    frames = [
        seg(40000, 5060, 1000, flags=SYN),  # SIP port: SYN goes in
        seg(40000, 5060, 1001, flags=ACK),  # bare ACK: not passed
        seg(40000, 5060, 1001, INVITE + b"X"),  # data on SIP port
        seg(41000, 15060, 7, INVITE),  # heuristic: request line on another port
        seg(41000, 15060, 7 + len(INVITE), b"Content-Type: x\r\n"),  # tracked stream
        seg(41000, 15060, 99, flags=FIN | ACK),  # FIN of a tracked stream
        seg(42000, 8080, 1, b"GET / HTTP/1.1\r\n\r\n"),  # not SIP
        seg(42000, 8080, 1, flags=SYN),  # SYN off port, untracked: ignored quietly
    ]
    out = d.decode(batch(frames, first_frame=1))
    k1 = ("10.0.0.1", 40000, "10.0.0.2", 5060)
    k2 = ("10.0.0.1", 41000, "10.0.0.2", 15060)
    assert [(k, s, f) for k, s, f, _ in fake.calls] == [
        (k1, 1000, SYN),
        (k1, 1001, ACK | PSH),
        (k2, 7, ACK | PSH),
        (k2, 7 + len(INVITE), ACK | PSH),
        (k2, 99, FIN | ACK),
    ]
    assert [(p.transport, p.on_sip_port, p.reassembled, p.frame_no) for p in out] == [
        ("tcp", True, True, 3),
        ("tcp", False, False, 4),
        ("tcp", False, False, 5),
    ]
    assert c["not_sip_candidate"] == 1


def test_real_reassembler_one_message_over_segments_and_two_in_one():
    c: Counter[str] = Counter()
    t: Counter[str] = Counter()
    d = Decoder(c, tcp=TcpReassembler(t))
    both = INVITE + OK
    frames = [
        seg(40000, 5060, 100, flags=SYN),
        seg(40000, 5060, 101, INVITE[:30]),
        seg(40000, 5060, 101 + 30, INVITE[30:]),
        seg(40000, 5060, 101 + len(INVITE), both),
    ]
    out = d.decode(batch(frames))
    assert [(p.data, p.reassembled, p.frame_no, p.src_port) for p in out] == [
        (INVITE, True, 3, 40000),
        (INVITE, False, 4, 40000),
        (OK, False, 4, 40000),
    ]


def test_real_reassembler_out_of_order_ipv6():
    a, b = "2001:db8::1", "2001:db8::2"

    def seg6(seq, data, flags=ACK | PSH):
        return eth(0x86DD, ip6(b, a, 6, tcp(5060, 40000, seq, data, flags)))

    d = Decoder(Counter(), tcp=TcpReassembler(Counter()))
    out = d.decode(batch([seg6(500, b"", SYN | ACK), seg6(501 + 20, OK[20:]), seg6(501, OK[:20])]))
    assert [(p.data, p.src_ip, p.ip_version, p.reassembled) for p in out] == [(OK, b, 6, True)]


def test_rst_and_expire_reach_the_reassembler():
    t: Counter[str] = Counter()
    r = TcpReassembler(t, idle_timeout_s=1)
    d = Decoder(Counter(), tcp=r)
    d.decode(batch([seg(40000, 5060, 1, INVITE[:10])]))
    assert len(r) == 1
    d.decode(batch([seg(40000, 5060, 11, flags=RST)]))
    assert len(r) == 0
    d.decode(batch([seg(40001, 5060, 1, INVITE[:10])], ts=[0]))
    d.expire(5_000_000_000)
    assert len(r) == 0
    assert t["tcp_stream_expired"] == 1
