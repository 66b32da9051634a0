"""LiveCapture in network namespaces with real SIP traffic (sipp) and crafted datagrams.

Topology: namespace "uac" (10.99.0.1, fd99::1) -- veth v0/v1 -- namespace "srv" (10.99.0.2,
fd99::2); the capture is attached to v1 inside "srv" (ingress XDP + egress tcx), as a sensor on
the SIP server would be.
"""

from __future__ import annotations

import re
import socket
import struct
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from sipcm.capture.records import DIR_EGRESS, DIR_INGRESS
from tests.netns.conftest import capture, collect, in_ns, l4, need, wait_listening

pytestmark = pytest.mark.netns
SCENARIOS = Path(__file__).parent / "scenarios"
CALLID = re.compile(rb"\r\nCall-ID: ([^\r\n]+)")
START = re.compile(rb"(INVITE|ACK|BYE|SIP/2\.0 \d{3}) ")


@pytest.fixture
def pair(net):
    a, b = net.ns("uac"), net.ns("srv")
    net.veth(a, "v0", ("10.99.0.1/24", "fd99::1/64"), b, "v1", ("10.99.0.2/24", "fd99::2/64"))
    return a, b


def sipp_calls(net, a, b, n, *, transport="u1", v6=False, scenario=None) -> None:
    """n sipp calls from namespace a to a sipp UAS in namespace b (both exit when done)."""
    need("sipp")
    srv, cli = ("fd99::2", "fd99::1") if v6 else ("10.99.0.2", "10.99.0.1")
    remote = f"[{srv}]:5060" if v6 else f"{srv}:5060"
    common = ["-t", transport, "-m", str(n), "-nostdin", "-timeout", "30"]
    uas = net.popen(b, "sipp", "-sn", "uas", "-i", srv, "-p", "5060", *common)
    wait_listening(net, b, 5060, tcp=transport.startswith("t"))
    uac_scn = ["-sf", str(scenario)] if scenario else ["-sn", "uac"]
    uac = net.run(a, "sipp", *uac_scn, remote, "-i", cli, "-p", "5062", "-r", "20", *common)
    assert uac.returncode == 0, uac.stderr[-500:]
    # Over TCP the UAS counts its last call failed when the UAC closes the connection while
    # the UAS scenario still pauses; the calls themselves completed (checked by the tests).
    assert uas.wait(30) in ((0, 1) if transport.startswith("t") else (0,))


def messages(frames: list[tuple[int, bytes]]) -> Counter:
    """Distinct (direction, start token, Call-ID) among frames that start a SIP message."""
    seen = set()
    for d, f in frames:
        payload = l4(f)[4]
        m, c = START.match(payload), CALLID.search(payload)
        if m and c:
            seen.add((d, m.group(1)[:11], c.group(1)))
    return Counter((d, tok) for d, tok, _ in seen)


def call_flow(n: int) -> Counter:
    return Counter(
        {
            (DIR_INGRESS, b"INVITE"): n,
            (DIR_INGRESS, b"ACK"): n,
            (DIR_INGRESS, b"BYE"): n,
            (DIR_EGRESS, b"SIP/2.0 180"): n,
            (DIR_EGRESS, b"SIP/2.0 200"): n,  # distinct per Call-ID: INVITE and BYE answers
        }
    )


def assert_only_sip(frames, proto=17, ver=4):
    for _, f in frames:
        v, p, sport, dport, _ = l4(f)
        assert (v, p) == (ver, proto)
        assert 5060 in (sport, dport)


def assert_no_loss(cap, n_records):
    k = cap.kernel_counters()
    assert k["ring_full_lost"] == 0
    assert k["selected"] == k["copied"] == n_records


def test_udp_calls_ingress_and_egress(net, pair):
    a, b = pair
    with capture(b, ["v1"]) as cap:
        sipp_calls(net, a, b, 5)
        frames = collect(cap, timeout=5, until=lambda r: messages(r) == call_flow(5))
        assert messages(frames) == call_flow(5)
        assert_only_sip(frames)
        assert_no_loss(cap, len(frames))
        assert cap.ifnames() == {cap.attachments()[0].ifindex: "v1"}


def test_tcp_calls(net, pair):
    a, b = pair
    with capture(b, ["v1"]) as cap:
        sipp_calls(net, a, b, 4, transport="t1")
        frames = collect(cap, timeout=5, settle=0.5)
    sip = [(d, f) for d, f in frames if l4(f)[4]]
    assert_only_sip(sip, proto=6)
    # TCP may put several messages in one segment: count in the concatenated streams.
    stream = {d: b"".join(l4(f)[4] for dd, f in sip if dd == d) for d in (1, 2)}
    invites = set(re.findall(rb"INVITE sip:[^\r]+\r\n(?:[^\r]+\r\n)*?Call-ID: ([^\r]+)", stream[1]))
    assert len(invites) == 4
    assert stream[1].count(b"\r\nCSeq: 2 BYE\r\n") >= 4
    assert stream[2].count(b"SIP/2.0 200 OK\r\n") >= 8
    # Handshake/ACK-only segments (no payload) are SIP-port traffic too: all selected.
    assert_only_sip(frames, proto=6)


def test_ipv6_calls(net, pair):
    a, b = pair
    with capture(b, ["v1"]) as cap:
        sipp_calls(net, a, b, 3, v6=True)
        frames = collect(cap, timeout=5, until=lambda r: messages(r) == call_flow(3))
        assert messages(frames) == call_flow(3)
        assert_only_sip(frames, ver=6)
        assert_no_loss(cap, len(frames))


def reassemble_v4(frames) -> dict[int, bytes]:
    """IPv4 datagram payloads (UDP header included) by IP ID, from captured fragments."""
    parts: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    for _, f in frames:
        ident, fo = struct.unpack_from("!HH", f, 18)
        if fo & 0x3FFF:
            ihl = (f[14] & 15) * 4
            total = struct.unpack_from("!H", f, 16)[0]
            parts[ident].append(((fo & 0x1FFF) * 8, f[14 + ihl : 14 + total]))
    out = {}
    for ident, ps in parts.items():
        ps.sort()
        assert all(off == sum(len(p) for _, p in ps[:i]) for i, (off, _) in enumerate(ps))
        out[ident] = b"".join(p for _, p in ps)
    return out


def test_fragmented_invite_with_big_sdp(net, pair):
    a, b = pair
    with capture(b, ["v1"]) as cap:
        sipp_calls(net, a, b, 2, scenario=SCENARIOS / "uac_big_sdp.xml")
        frames = collect(cap, timeout=5, settle=0.5)
        k = cap.kernel_counters()
    datagrams = reassemble_v4([x for x in frames if x[0] == DIR_INGRESS])
    invites = [d[8:] for d in datagrams.values() if d[8:].startswith(b"INVITE ")]
    assert len(invites) == 2  # retransmissions would add datagrams with other IP IDs
    for inv in invites:
        head, body = inv.split(b"\r\n\r\n", 1)
        assert int(re.search(rb"Content-Length: *(\d+)", head).group(1)) == len(body)
        assert len(inv) > 3000
    n_frag = sum(1 for _, f in frames if struct.unpack_from("!H", f, 20)[0] & 0x3FFF)
    assert k["frag_first"] == len(datagrams)
    assert k["frag_matched"] == n_frag - len(datagrams)
    assert k["frag_unmatched"] == 0
    assert k["ring_full_lost"] == 0


def test_ipv6_fragments_and_non_sip_fragments(net, pair):
    a, b = pair
    sip = b"MESSAGE sip:x@[fd99::2] SIP/2.0\r\nCall-ID: big6\r\n\r\n" + b"z" * 4000
    with capture(b, ["v1"]) as cap:
        with in_ns(a):
            for family, dst in ((socket.AF_INET6, "fd99::2"), (socket.AF_INET, "10.99.0.2")):
                with socket.socket(family, socket.SOCK_DGRAM) as s:
                    s.sendto(sip, (dst, 5060))
                    s.sendto(b"\0" * 4000, (dst, 9999))  # fragmented, not SIP
        frames = collect(cap, timeout=5, until=lambda r: len(r) >= 6)
        k = cap.kernel_counters()
    ingress = [l4(f) for d, f in frames if d == DIR_INGRESS]
    # 4000 + 8 bytes at MTU 1500: 3 fragments per datagram, for IPv6 and IPv4.
    assert [(v, p, s, dp) for v, p, s, dp, _ in ingress] == [
        (6, 17, 0xFFFF & s, 5060) for s in [ingress[0][2]]
    ] + [(6, 17, 0, 0)] * 2 + [(4, 17, ingress[3][2], 5060)] + [(4, 17, 0, 0)] * 2
    assert b"".join(x[4] for x in ingress[:3]) == sip
    assert b"".join(x[4] for x in ingress[3:]) == sip
    assert (k["frag_first"], k["frag_matched"], k["frag_unmatched"]) == (2, 4, 4)


def test_non_sip_flood_never_reaches_user_space(net, pair):
    a, b = pair
    n_noise, n_sip = 20000, 200
    with capture(b, ["v1"]) as cap:
        with in_ns(a), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(n_noise):
                s.sendto(b"noise %d" % i, ("10.99.0.2", 9999 + i % 50))
                if i % 100 == 0:
                    s.sendto(b"OPTIONS sip:a SIP/2.0\r\n\r\n", ("10.99.0.2", 5060))
        frames = collect(cap, timeout=5, until=lambda r: len(r) >= n_sip)
        k = cap.kernel_counters()
    assert len(frames) == n_sip
    assert all(l4(f)[3] == 5060 for _, f in frames)
    assert k["seen"] >= n_noise + n_sip
    assert k["selected"] == k["copied"] == n_sip
    assert cap.counters["ring_records"] == n_sip


def test_ports_changed_at_run_time(net, pair):
    a, b = pair
    msg = b"OPTIONS sip:a SIP/2.0\r\nCall-ID: p%d\r\n\r\n"
    with capture(b, ["v1"]) as cap:
        with in_ns(a), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(msg % 1, ("10.99.0.2", 5080))
            s.sendto(msg % 2, ("10.99.0.2", 5060))
        first = collect(cap, timeout=3, until=lambda r: len(r) >= 1)
        cap.set_ports([5080], [4789])
        with in_ns(a), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(msg % 3, ("10.99.0.2", 5080))
            s.sendto(msg % 4, ("10.99.0.2", 5060))
        second = collect(cap, timeout=3, until=lambda r: len(r) >= 1)
    assert [l4(f)[4] for _, f in first] == [msg % 2]
    assert [l4(f)[4] for _, f in second] == [msg % 3]


def test_vxlan_overlay_through_a_bridge_and_multiple_interfaces(net):
    """h1 --underlay-- h2 [br0: vx0 + p0] -- p1 sip. Capture on h2's underlay u1 (VXLAN) and
    on the bridge port p0 (plain SIP) at the same time."""
    h1, h2, sip = net.ns("h1"), net.ns("h2"), net.ns("sip")
    net.veth(h1, "u0", ("172.31.0.1/24",), h2, "u1", ("172.31.0.2/24",))
    net.vxlan(h1, "vx0", 42, "u0", "172.31.0.1", "172.31.0.2", ("192.168.77.1/24",))
    net.vxlan(h2, "vx0", 42, "u1", "172.31.0.2", "172.31.0.1")
    net.veth(h2, "p0", (), sip, "p1", ("192.168.77.2/24",))
    net.bridge(h2, "br0", ["vx0", "p0"])
    need("sipp")
    with capture(h2, ["u1", "p0"]) as cap:
        uas = net.popen(
            sip,
            "sipp",
            "-sn",
            "uas",
            "-i",
            "192.168.77.2",
            "-p",
            "5060",
            "-m",
            "3",
            "-nostdin",
            "-timeout",
            "30",
        )
        wait_listening(net, sip, 5060)
        uac = net.run(
            h1,
            "sipp",
            "-sn",
            "uac",
            "192.168.77.2:5060",
            "-i",
            "192.168.77.1",
            "-p",
            "5062",
            "-m",
            "3",
            "-r",
            "20",
            "-nostdin",
            "-timeout",
            "30",
        )
        assert uac.returncode == 0, uac.stderr[-500:]
        assert uas.wait(30) == 0
        with in_ns(h1), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(20):  # non-SIP inside the overlay: never copied
                s.sendto(b"noise %d" % i, ("192.168.77.2", 9999))
        frames = collect(cap, timeout=5, settle=0.5)
        k = cap.kernel_counters()
        names = cap.ifnames()
    by_if = defaultdict(list)
    for d, f in frames:
        by_if[l4(f)[3] == 4789 or l4(f)[2] == 4789].append((d, f))
    outer, plain = by_if[True], by_if[False]
    # Underlay: VXLAN UDP 4789 carrying the calls; inner frame starts after 14+20+8+8 bytes.
    inner = [(d, f[50:]) for d, f in outer]
    assert messages(inner) == call_flow(3)
    # Bridge port p0: the same calls unencapsulated, directions seen from p0 (towards the UAS
    # is egress).
    flipped = Counter({(3 - d, t): n for (d, t), n in messages(plain).items()})
    assert flipped == call_flow(3)
    assert_only_sip(plain)
    assert all(5060 in l4(f)[2:4] for _, f in inner)
    assert k["vxlan_inner"] == len(outer)
    assert k["ring_full_lost"] == 0
    assert sorted(names.values()) == ["p0", "u1"]


@pytest.mark.parametrize(
    ("mode", "expect"), [("auto", "native"), ("native", "native"), ("generic", "generic")]
)
def test_attach_modes(net, pair, mode, expect):
    a, b = pair
    msg = b"OPTIONS sip:a SIP/2.0\r\nCall-ID: m\r\n\r\n"
    with capture(b, ["v1"], attach_mode=mode) as cap:
        assert cap.attachments()[0].xdp_mode == expect
        with in_ns(a), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(msg, ("10.99.0.2", 5060))
        frames = collect(cap, timeout=3, until=lambda r: len(r) >= 1)
    assert [(d, l4(f)[4]) for d, f in frames] == [(DIR_INGRESS, msg)]
