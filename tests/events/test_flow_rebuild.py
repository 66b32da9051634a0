"""Per-call pcaps of messages that arrived fragmented, segmented, VLAN-tagged or tunnelled:
each call's pcap replays to that call's events with `sipcm.reassembled`, `network.vlan` and
`sipcm.tunnel` as in the full replay. Input frames are built here byte by byte
(tests/unit/decode/frames.py), independently of the writer under test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ecs import assert_valid
from tests.events.scen import MS, SDP, T0, Capture, Leg, S
from tests.events.test_flow import ANON, replay_flow
from tests.events.test_flow_web import call_path, serve_replay, without_frame
from tests.replayutil import replay_docs
from tests.unit.decode.frames import eth, frag6, ip4, ip6, tcp, udp, vxlan

ETH_IP4, ETH_IP6, ETH_VLAN = 0x0800, 0x86DD, 0x8100
BIG_SDP = SDP + "".join(f"a=x-filler:{i:04d} {'z' * 60}\r\n" for i in range(40))


def frags4(src: str, dst: str, l4: bytes, ident: int) -> list[bytes]:
    cut = 1480
    return [ip4(src, dst, 17, l4[:cut], ident=ident, frag=0x2000),
            ip4(src, dst, 17, l4[cut:], ident=ident, frag=cut // 8)]  # fmt: skip


def frags6(src: str, dst: str, l4: bytes, ident: int) -> list[bytes]:
    cut = 1232
    return [ip6(src, dst, 44, frag6(17, 0, True, ident) + l4[:cut]),
            ip6(src, dst, 44, frag6(17, cut, False, ident) + l4[cut:])]  # fmt: skip


def capture() -> Capture:
    cap = Capture()
    add = cap.packets.append
    # 1. An INVITE call on VLAN 100, its 200 (with a large SDP: the call-start's trigger) in
    # two IPv4 fragments.
    a, b = ("192.0.2.10", 5060), ("192.0.2.20", 5060)
    leg = Leg("v4frag@example.com", a_ip=a[0], b_ip=b[0])
    inv = leg.req("INVITE", body=SDP, headers=("Content-Type: application/sdp",))
    leg.to_tag = "t1"
    ok200 = leg.resp(inv, 200, "OK", body=BIG_SDP, headers=("Content-Type: application/sdp",))
    assert len(ok200) > 3000
    ack = leg.req("ACK", cseq=inv.cseq, ruri="sip:bob@192.0.2.20")
    bye = leg.req("BYE", ruri="sip:bob@192.0.2.20")
    for dt, src, dst, data in (
        (0, a, b, inv.raw), (1 * S + 20 * MS, a, b, ack.raw), (5 * S, a, b, bye.raw),
        (5 * S + 30 * MS, b, a, leg.resp(bye, 200, "OK")),
    ):  # fmt: skip
        pkt = ip4(src[0], dst[0], 17, udp(src[1], dst[1], data))
        add((T0 + dt, eth(ETH_VLAN, struct_vlan(100, ETH_IP4) + pkt)))
    for i, pkt in enumerate(frags4(b[0], a[0], udp(5060, 5060, ok200), ident=7)):
        add((T0 + 1 * S + i * 10_000, eth(ETH_VLAN, struct_vlan(100, ETH_IP4) + pkt)))
    # 2. An OPTIONS over IPv6, its 200 (the other-ok's trigger) in two fragments.
    v6a, v6b = "2001:db8::10", "2001:db8::20"
    opt6 = Leg("v6frag@example.com", a_ip=v6a, b_ip=v6b)
    req = opt6.req("OPTIONS")
    add((T0 + 2 * S, eth(ETH_IP6, ip6(v6a, v6b, 17, udp(5060, 5060, req.raw)))))
    ok = opt6.resp(req, 200, "OK", to_tag="o6", body=BIG_SDP,
                   headers=("Content-Type: application/sdp",))  # fmt: skip
    for i, pkt in enumerate(frags6(v6b, v6a, udp(5060, 5060, ok), ident=9)):
        add((T0 + 2 * S + 5 * MS + i * 10_000, eth(ETH_IP6, pkt)))
    # 3. An OPTIONS over TCP in one segment, its 200 in two.
    c, d = ("198.51.100.1", 40000), ("198.51.100.2", 5060)
    tleg = Leg("tcpseg@example.com", a_ip=c[0], a_port=c[1], b_ip=d[0], transport="TCP")
    treq = tleg.req("OPTIONS")
    add((T0 + 3 * S, eth(ETH_IP4, ip4(c[0], d[0], 6, tcp(c[1], 5060, 1000, treq.raw)))))
    tok = tleg.resp(treq, 200, "OK", to_tag="ot")
    half = len(tok) // 2
    for i, (seq, part) in enumerate(((5000, tok[:half]), (5000 + half, tok[half:]))):
        add((T0 + 3 * S + 9 * MS + i * MS,
             eth(ETH_IP4, ip4(d[0], c[0], 6, tcp(5060, c[1], seq, part)))))  # fmt: skip
    # 4. An OPTIONS and its 200 inside VXLAN (VNI 42) between two VTEPs.
    vleg = Leg("vx@example.com", a_ip="10.1.0.1", b_ip="10.1.0.2")
    vreq = vleg.req("OPTIONS")
    for dt, (s_ip, d_ip), data in (
        (4 * S, ("10.1.0.1", "10.1.0.2"), vreq.raw),
        (4 * S + 3 * MS, ("10.1.0.2", "10.1.0.1"), vleg.resp(vreq, 200, "OK", to_tag="ov")),
    ):
        inner = eth(ETH_IP4, ip4(s_ip, d_ip, 17, udp(5060, 5060, data)))
        outer = ip4("172.16.0.1", "172.16.0.2", 17, udp(49152, 4789, vxlan(42, inner)))
        add((T0 + dt, eth(ETH_IP4, outer)))
    # 5. An OPTIONS and its 200 inside GRE (IPv4 payload, no key).
    gleg = Leg("gre@example.com", a_ip="10.2.0.1", b_ip="10.2.0.2")
    greq = gleg.req("OPTIONS")
    for dt, (s_ip, d_ip), data in (
        (6 * S, ("10.2.0.1", "10.2.0.2"), greq.raw),
        (6 * S + 4 * MS, ("10.2.0.2", "10.2.0.1"), gleg.resp(greq, 200, "OK", to_tag="og")),
    ):
        inner = ip4(s_ip, d_ip, 17, udp(5060, 5060, data))
        outer = ip4("172.16.1.1", "172.16.1.2", 47, (0).to_bytes(2, "big") + b"\x08\x00" + inner)
        add((T0 + dt, eth(ETH_IP4, outer)))
    return cap


def struct_vlan(vid: int, etype: int) -> bytes:
    return vid.to_bytes(2, "big") + etype.to_bytes(2, "big")


CALLS = (
    "v4frag@example.com", "v6frag@example.com", "tcpseg@example.com", "vx@example.com",
    "gre@example.com",
)  # fmt: skip


@pytest.mark.parametrize("workers", [1, 2])
def test_reassembled_vlan_and_tunnelled_calls_replay_from_their_pcaps(
    tmp_path: Path, workers: int
) -> None:
    path = capture().write(tmp_path / "r.pcap")
    assert replay_docs([path])[1][0].reassembled == 3
    docs, replies = serve_replay(path, [call_path(c, "pcap") for c in CALLS], workers=workers)
    by_call = {c: [d for d in docs if d["sip"]["call_id"] == c] for c in CALLS}
    # What the full replay says, so the comparison below covers these fields:
    assert [(d["event"]["action"], d["sip"]["call_id"]) for d in docs] == [
        ("call-start", CALLS[0]), ("call-end", CALLS[0]), ("other-ok", CALLS[1]),
        ("other-ok", CALLS[2]), ("other-ok", CALLS[3]), ("other-ok", CALLS[4]),
    ]  # fmt: skip
    start = by_call["v4frag@example.com"][0]
    assert (start["network"]["vlan"], start["sipcm"].get("reassembled")) == ({"id": "100"}, True)
    assert by_call["vx@example.com"][0]["sipcm"]["tunnel"] == {
        "type": "vxlan", "vni": 42, "source": {"ip": "172.16.0.1", "port": 49152},
        "destination": {"ip": "172.16.0.2", "port": 4789},
    }  # fmt: skip
    assert by_call["gre@example.com"][0]["sipcm"]["tunnel"] == {
        "type": "gre", "source": {"ip": "172.16.1.1"}, "destination": {"ip": "172.16.1.2"},
    }  # fmt: skip
    for call_id, r in zip(CALLS, replies, strict=True):
        assert r.status == 200, r.body
        one = tmp_path / "one.pcap"
        one.write_bytes(r.body)
        got, (totals,) = replay_docs([one])
        for d in got:
            assert_valid(d)
        assert [without_frame(d) for d in got] == [without_frame(d) for d in by_call[call_id]]
        # the 200s of the first three calls were reassembled, and are again (timer events
        # such as other-ok carry no packet, so this is where it shows)
        assert totals.reassembled == (1 if "frag" in call_id or "seg" in call_id else 0), call_id


def test_anonymized_flow_hides_tunnel_endpoints(tmp_path: Path) -> None:
    path = capture().write(tmp_path / "r.pcap")
    docs, _, _ = replay_flow(path, "-", *ANON)
    vx = next(d for d in docs if d["sipcm"].get("tunnel", {}).get("type") == "vxlan")
    _docs, flow, _ = replay_flow(path, vx["sip"]["call_id"], *ANON)
    tunnels = {repr(m["tunnel"]) for m in flow["messages"]}
    assert tunnels == {
        repr(("vxlan", vx["sipcm"]["tunnel"]["source"]["ip"],
              vx["sipcm"]["tunnel"]["destination"]["ip"], 49152, 4789, 42))
    }  # fmt: skip
    assert "172.16." not in repr(flow)
    assert "10.1.0." not in repr(flow)
