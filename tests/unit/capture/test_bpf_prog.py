"""The kernel program on crafted frames, through BPF_PROG_TEST_RUN (no namespaces needed).

Each case checks the verdict (always pass), the exact bytes that reached the ring (read with
RingReader) and the kernel counters.
"""

from __future__ import annotations

import os
import time

import pytest

from sipcm.capture.records import DIR_EGRESS, DIR_INGRESS
from tests.unit.capture.bpf_frames import (
    INVITE,
    eth,
    ipv4,
    ipv6,
    prog_run,
    tcp,
    udp,
    v6_ext,
    v6_frag,
    vxlan,
)

XDP_PASS = 2
TC_ACT_OK = 0
A4, B4 = "10.0.0.1", "10.0.0.2"
A6, B6 = "fd00::1", "fd00::2"


def _load(**opts):
    if os.geteuid() != 0:
        pytest.skip("BPF program tests need root")
    from sipcm.capture.program import BuildOptions, Program
    from sipcm.capture.ring import RingReader
    from sipcm.errors import CaptureError

    try:
        prog = Program(BuildOptions(**opts))
    except CaptureError as exc:
        pytest.skip(f"BPF unavailable: {exc}")
    prog.set_ports([5060], [4789])
    return prog, RingReader(prog.ring_fd, prog.ring_size)


@pytest.fixture(scope="module")
def loaded():
    prog, ring = _load()
    yield prog, ring
    ring.close()
    prog.close()


class Runner:
    def __init__(self, prog, ring):
        self.prog, self.ring = prog, ring
        ring.read()  # start each test with an empty ring

    def run(self, frame: bytes, egress: bool = False, repeat: int = 1):
        """(frames copied to the ring, counter deltas) after running the program."""
        before = self.prog.counters()
        fd = self.prog.egress_fd if egress else self.prog.xdp_fd
        verdict, _ = prog_run(fd, frame, repeat)
        assert verdict == (TC_ACT_OK if egress else XDP_PASS)
        after = self.prog.counters()
        delta = {k: after[k] - before[k] for k in after if after[k] != before[k]}
        batch = self.ring.read()
        frames = [
            bytes(batch.data[o : o + c]) for o, c in zip(batch.offset, batch.caplen, strict=True)
        ]
        return frames, delta, batch


@pytest.fixture
def r(loaded):
    prog, ring = loaded
    prog.set_ports([5060], [4789])
    prog.set_heuristic(False)
    return Runner(prog, ring)


SEL = {"seen": 1, "selected": 1, "copied": 1}
NOT = {"seen": 1}


def test_udp4_5060_copied_whole_with_header_fields(r):
    f = eth(0x0800, ipv4(A4, B4, 17, udp(40000, 5060, INVITE)))
    t0 = time.monotonic_ns()
    frames, delta, batch = r.run(f)
    t1 = time.monotonic_ns()
    assert frames == [f]
    assert delta == SEL
    assert batch.origlen.tolist() == [len(f)]
    assert batch.direction.tolist() == [DIR_INGRESS]
    assert batch.ifindex.tolist() == [1]  # test runs use the loopback device
    assert t0 <= int(batch.ts_ns[0]) <= t1


def test_source_port_5060_selected(r):
    f = eth(0x0800, ipv4(A4, B4, 17, udp(5060, 33333, INVITE)))
    assert r.run(f)[:2] == ([f], SEL)


def test_udp6_and_tcp4_and_tcp6(r):
    for f in (
        eth(0x86DD, ipv6(A6, B6, 17, udp(40000, 5060, INVITE))),
        eth(0x0800, ipv4(A4, B4, 6, tcp(40000, 5060, INVITE))),
        eth(0x86DD, ipv6(A6, B6, 6, tcp(5060, 40000, INVITE))),
    ):
        assert r.run(f)[:2] == ([f], SEL)


def test_ipv6_extension_headers_walked(r):
    # hop-by-hop (0) -> destination options (60, 16 octets) -> routing (43) -> UDP
    body = v6_ext(60) + v6_ext(43, 1) + v6_ext(17) + udp(40000, 5060, INVITE)
    f = eth(0x86DD, ipv6(A6, B6, 0, body))
    assert r.run(f)[:2] == ([f], SEL)


def test_vlan_and_qinq(r):
    inner = ipv4(A4, B4, 17, udp(40000, 5060, INVITE))
    for vlans in ((0x8100,), (0x88A8, 0x8100), (0x8100, 0x8100)):
        f = eth(0x0800, inner, vlans)
        assert r.run(f)[:2] == ([f], SEL)
    # Three tags exceed the supported depth: left alone.
    f = eth(0x0800, inner, (0x88A8, 0x8100, 0x8100))
    assert r.run(f)[:2] == ([], NOT)


def test_vxlan_with_sip_inside(r):
    inner = eth(0x0800, ipv4("192.168.1.1", "192.168.1.2", 17, udp(5060, 5060, INVITE)))
    f = eth(0x0800, ipv4(A4, B4, 17, udp(51000, 4789, vxlan(42, inner))))
    assert r.run(f)[:2] == ([f], {**SEL, "vxlan_inner": 1})
    # Outer IPv6, inner VLAN-tagged IPv6 TCP.
    inner6 = eth(0x86DD, ipv6(A6, B6, 6, tcp(40000, 5060, INVITE)), (0x8100,))
    f6 = eth(0x86DD, ipv6("fd01::1", "fd01::2", 17, udp(51000, 4789, vxlan(7, inner6))))
    assert r.run(f6)[:2] == ([f6], {**SEL, "vxlan_inner": 1})


def test_vxlan_without_sip_or_without_i_flag_left_alone(r):
    inner = eth(0x0800, ipv4("192.168.1.1", "192.168.1.2", 17, udp(1000, 53, b"dns")))
    f = eth(0x0800, ipv4(A4, B4, 17, udp(51000, 4789, vxlan(42, inner))))
    assert r.run(f)[:2] == ([], NOT)
    sip_inner = eth(0x0800, ipv4("192.168.1.1", "192.168.1.2", 17, udp(5060, 5060, INVITE)))
    no_i = b"\x00" * 8 + sip_inner
    f2 = eth(0x0800, ipv4(A4, B4, 17, udp(51000, 4789, no_i)))
    assert r.run(f2)[:2] == ([], NOT)
    # Not a VXLAN port: the inner SIP frame is not looked at.
    f3 = eth(0x0800, ipv4(A4, B4, 17, udp(51000, 4790, vxlan(42, sip_inner))))
    assert r.run(f3)[:2] == ([], NOT)


def test_ipv4_fragments_follow_their_selected_first_fragment(r):
    first = eth(0x0800, ipv4(A4, B4, 17, udp(40000, 5060, INVITE[:64]), ident=77, mf=True))
    later = eth(0x0800, ipv4(A4, B4, 17, INVITE[64:128], ident=77, frag=9, mf=True))
    last = eth(0x0800, ipv4(A4, B4, 17, INVITE[128:], ident=77, frag=17))
    assert r.run(first)[:2] == ([first], {**SEL, "frag_first": 1})
    assert r.run(later)[:2] == ([later], {**SEL, "frag_matched": 1})
    assert r.run(last)[:2] == ([last], {**SEL, "frag_matched": 1})
    # A later fragment of another datagram (other id, or first fragment not SIP).
    other = eth(0x0800, ipv4(A4, B4, 17, INVITE[64:128], ident=78, frag=9))
    assert r.run(other)[:2] == ([], {**NOT, "frag_unmatched": 1})
    dns_first = eth(0x0800, ipv4(A4, B4, 17, udp(4000, 53, bytes(64)), ident=79, mf=True))
    dns_later = eth(0x0800, ipv4(A4, B4, 17, bytes(64), ident=79, frag=9))
    assert r.run(dns_first)[:2] == ([], NOT)
    assert r.run(dns_later)[:2] == ([], {**NOT, "frag_unmatched": 1})


def test_ipv6_fragment_header(r):
    first = eth(0x86DD, ipv6(A6, B6, 44, v6_frag(17, 0, True, 5) + udp(40000, 5060, INVITE[:64])))
    later = eth(0x86DD, ipv6(A6, B6, 44, v6_frag(17, 9, False, 5) + INVITE[64:]))
    stray = eth(0x86DD, ipv6(A6, B6, 44, v6_frag(17, 9, False, 6) + INVITE[64:]))
    assert r.run(first)[:2] == ([first], {**SEL, "frag_first": 1})
    assert r.run(later)[:2] == ([later], {**SEL, "frag_matched": 1})
    assert r.run(stray)[:2] == ([], {**NOT, "frag_unmatched": 1})


def test_non_sip_left_alone(r):
    arp = eth(0x0806, bytes(28))
    icmp = eth(0x0800, ipv4(A4, B4, 1, bytes([8, 0]) + bytes(62)))
    for f in (
        eth(0x0800, ipv4(A4, B4, 17, udp(4000, 53, b"\x12\x34" + bytes(30)))),
        eth(0x0800, ipv4(A4, B4, 6, tcp(40000, 80, b"GET / HTTP/1.1\r\n\r\n"))),
        eth(0x86DD, ipv6(A6, B6, 17, udp(4000, 5061, INVITE))),
        icmp,
        arp,
    ):
        assert r.run(f)[:2] == ([], NOT)
        assert r.run(f, egress=True)[:2] == ([], NOT)


def test_truncated_frames_counted_short(r):
    full = eth(0x0800, ipv4(A4, B4, 17, udp(40000, 5060, INVITE)))
    for cut in (14 + 10, 14 + 20 + 4):  # inside the IPv4 header, inside the UDP header
        assert r.run(full[:cut])[:2] == ([], {**NOT, "short": 1})
    v6 = eth(0x86DD, ipv6(A6, B6, 17, udp(40000, 5060, INVITE)))
    assert r.run(v6[: 14 + 30])[:2] == ([], {**NOT, "short": 1})


def test_egress_program_marks_direction(r):
    f = eth(0x86DD, ipv6(A6, B6, 17, udp(5060, 5060, INVITE)))
    frames, delta, batch = r.run(f, egress=True)
    assert frames == [f]
    assert delta == SEL
    assert batch.direction.tolist() == [DIR_EGRESS]


def test_many_records_one_batch_in_order(r):
    f = eth(0x0800, ipv4(A4, B4, 17, udp(40000, 5060, INVITE)))
    frames, delta, batch = r.run(f, repeat=500)
    assert frames == [f] * 500
    assert delta == {"seen": 500, "selected": 500, "copied": 500}
    assert (batch.ts_ns[1:] >= batch.ts_ns[:-1]).all()


def test_ports_change_at_run_time(r):
    f5060 = eth(0x0800, ipv4(A4, B4, 17, udp(40000, 5060, INVITE)))
    f5080 = eth(0x0800, ipv4(A4, B4, 17, udp(40000, 5080, INVITE)))
    vx = eth(0x0800, ipv4(A4, B4, 17, udp(1, 8472, vxlan(1, f5080))))
    assert r.run(f5080)[:2] == ([], NOT)
    r.prog.set_ports([5080, 5062], [8472])
    assert r.run(f5060)[:2] == ([], NOT)
    assert r.run(f5080)[:2] == ([f5080], SEL)
    assert r.run(vx)[:2] == ([vx], {**SEL, "vxlan_inner": 1})
    r.prog.set_ports([5060], [4789])
    assert r.run(f5060)[:2] == ([f5060], SEL)
    assert r.run(f5080)[:2] == ([], NOT)


@pytest.mark.parametrize(
    ("payload", "hit"),
    [
        (b"OPTIONS sip:a@b SIP/2.0\r\n", True),
        (b"REGISTER sip:b SIP/2.0\r\n", True),
        (b"SUBSCRIBE sip:b SIP/2.0\r\n", True),
        (b"SIP/2.0 200 OK\r\nVia: x\r\n", True),
        (b"ACK sip:a@b SIP/2.0\r\n\r\n", True),
        (b"REGISTERX sip:b SIP/2.0\r\n", False),
        (b"INVITEsip:a@b SIP/2.0\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", False),
        (b"SIP/2.1 200 OK\r\nVia: x\r\n", False),
    ],
)
def test_heuristic_prefix(r, payload, hit):
    f = eth(0x0800, ipv4(A4, B4, 17, udp(7000, 7001, payload)))
    assert r.run(f)[:2] == ([], NOT)
    r.prog.set_heuristic(True)
    expect = ([f], {**SEL, "heuristic": 1}) if hit else ([], NOT)
    assert r.run(f)[:2] == expect
    t = eth(0x0800, ipv4(A4, B4, 6, tcp(7000, 7001, payload)))
    assert r.run(t)[:2] == (([t], {**SEL, "heuristic": 1}) if hit else ([], NOT))


@pytest.fixture(scope="module")
def small():
    prog, ring = _load(snap_len=128, ring_size=2 * 4096)
    yield prog, ring
    ring.close()
    prog.close()


def test_snap_length_truncates_and_counts(small):
    r = Runner(*small)
    f = eth(0x0800, ipv4(A4, B4, 17, udp(40000, 5060, INVITE)))
    frames, delta, batch = r.run(f)
    assert frames == [f[:128]]
    assert batch.origlen.tolist() == [len(f)]
    assert delta == {**SEL, "truncated": 1}


def test_ring_full_counted_and_recovers(small):
    r = Runner(*small)
    f = eth(0x0800, ipv4(A4, B4, 17, udp(40000, 5060, INVITE)))
    # 128-byte snap: each record takes 8 + 24 + 128 = 160 bytes; 51 fit in 8191.
    frames, delta, _ = r.run(f, repeat=100)
    assert frames == [f[:128]] * 51
    assert delta == {
        "seen": 100,
        "selected": 100,
        "copied": 51,
        "truncated": 100,
        "ring_full_lost": 49,
    }
    assert r.run(f)[0] == [f[:128]]


def test_print_bpf_shows_flags_and_all_sources():
    from sipcm.capture.program import BuildOptions, print_bpf

    text = print_bpf(BuildOptions(snap_len=1500, ring_size=1 << 20))
    first = text.splitlines()[0]
    assert "-DSIPCM_SNAP_LEN=1500" in first
    assert "-DSIPCM_SNAP_MASK=0x7ff" in first
    assert "-DSIPCM_RING_PAGES=256" in first
    for name in ("sipcm.h", "parsing.h", "sipcm.bpf.c"):
        assert f"// ===== bpf/{name} =====" in text
    assert "int sipcm_xdp(struct xdp_md *ctx)" in text


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"snap_len": 10}, "snap length 10 out of range"),
        ({"snap_len": 70000}, "snap length 70000 out of range"),
        ({"ring_size": 3 * 4096}, "ring size 12288 is not a power-of-two number of pages"),
        ({"ring_size": 1000}, "ring size 1000 is not a power-of-two number of pages"),
    ],
)
def test_bad_build_options_are_capture_errors(opts, message):
    from sipcm.capture.program import BuildOptions, cflags
    from sipcm.errors import CaptureError

    with pytest.raises(CaptureError) as err:
        cflags(BuildOptions(**opts))
    assert err.value.message == message
