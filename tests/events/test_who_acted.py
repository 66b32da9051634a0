"""`source`/`destination` are who acted (issue 9.2): the sender and receiver of the request an
event reports on, on the leg it describes, whatever message or timer triggered the event;
`network.community_id` is Community ID v1 of that 5-tuple (inner one under VXLAN);
`client`/`server` stay the caller and callee side.

Caller A = 192.0.2.10:5060, callee B = 192.0.2.20:5060, registrar R = 192.0.2.5:5060. Each
expectation below is read off the traffic the test builds.
"""

from __future__ import annotations

import struct
from pathlib import Path

from sipcm.capture.pcapwriter import udp_frame
from sipcm.events.community_id import community_id
from tests.events.scen import MS, SDP, T0, Capture, Leg, S, briefs, run

A = ("192.0.2.10", 5060)
B = ("192.0.2.20", 5060)
R = ("192.0.2.5", 5060)
SDP_HDR = ("Content-Type: application/sdp",)


def party(ep: tuple[str, int]) -> dict:
    return {"ip": ep[0], "port": ep[1]}


def assert_acted(doc: dict, sender: tuple[str, int], receiver: tuple[str, int]) -> None:
    assert doc["source"] == party(sender)
    assert doc["destination"] == party(receiver)
    assert doc["network"]["community_id"] == community_id("udp", *sender, *receiver)


def test_call_attempt_rejected_by_callee_is_the_callers_act(tmp_path: Path) -> None:
    """INVITE A->B, 486 B->A: the call-attempt (fired by the inv_neg timer) is A's INVITE."""
    cap, leg = Capture(), Leg("att@test")
    inv = leg.req("INVITE", body=SDP, headers=SDP_HDR)
    cap.a2b(leg, T0, inv.raw)
    cap.b2a(leg, T0 + 300 * MS, leg.resp(inv, 486, "Busy Here", to_tag="x"))
    docs = run(tmp_path, cap)
    assert briefs(docs) == [("call-attempt", "att@test", "INVITE", 486)]
    assert_acted(docs[0], A, B)
    assert (docs[0]["client"], docs[0]["server"]) == (party(A), party(B))


def test_call_end_by_timeout_is_the_invites_sender(tmp_path: Path) -> None:
    """INVITE, 200, ACK and no BYE: call-end at expire-all, who acted = the INVITE's sender."""
    cap, leg = Capture(), Leg("tmo@test")
    inv = leg.req("INVITE", body=SDP, headers=SDP_HDR)
    cap.a2b(leg, T0, inv.raw)
    cap.b2a(leg, T0 + S, leg.resp(inv, 200, "OK", to_tag="t", body=SDP, headers=SDP_HDR))
    docs = run(tmp_path, cap, end="expire-all")
    assert [d["event"]["action"] for d in docs] == ["call-start", "call-end"]
    assert docs[1]["sip"]["call"]["originator"] == "timeout"
    for d in docs:
        assert_acted(d, A, B)


def test_call_end_from_a_bye_reply_alone_is_the_bye_sender(tmp_path: Path) -> None:
    """Only the 200 to the callee's BYE is captured (A->B): the BYE went B->A."""
    cap, leg = Capture(), Leg("byeok@test", to_tag="bt")
    bye = leg.req("BYE", from_callee=True, cseq=7)
    cap.a2b(leg, T0, leg.resp(bye, 200, "OK"))
    docs = run(tmp_path, cap)
    assert [d["event"]["action"] for d in docs] == ["call-end"]
    assert_acted(docs[0], B, A)


def test_other_ok_and_timeout_are_the_requests_sender(tmp_path: Path) -> None:
    """OPTIONS B->A answered 200 (other-ok at the non_inv_fin timer); OPTIONS A->B never
    answered (other-timeout)."""
    cap = Capture()
    ping = Leg("opt-ok@test", a_ip=B[0], b_ip=A[0], a_user="bob", b_user="alice")
    opt = ping.req("OPTIONS")
    cap.a2b(ping, T0, opt.raw)
    cap.b2a(ping, T0 + 20 * MS, ping.resp(opt, 200, "OK", to_tag="o"))
    lost = Leg("opt-lost@test")
    cap.a2b(lost, T0 + S, lost.req("OPTIONS").raw)
    docs = run(tmp_path, cap)
    assert briefs(docs) == [
        ("other-ok", "opt-ok@test", "OPTIONS", 200),
        ("other-timeout", "opt-lost@test", "OPTIONS", 408),
    ]
    assert_acted(docs[0], B, A)
    assert_acted(docs[1], A, B)


def test_registration_events_are_the_registers_sender(tmp_path: Path) -> None:
    """REGISTER A->R, 200: reg-new; at expire-all the reg-expired keeps the REGISTER's flow
    (and its transport) although no message triggers it."""
    cap = Capture()
    leg = Leg("reg@test", a_user="alice", b_user="alice", b_ip=R[0])
    req = leg.req("REGISTER", ruri="sip:example.com", headers=("Expires: 600",))
    cap.a2b(leg, T0, req.raw)
    ok = leg.resp(req, 200, "OK", to_tag="r", headers=("Contact: <sip:alice@192.0.2.10:5060>",))
    cap.b2a(leg, T0 + 20 * MS, ok)
    docs = run(tmp_path, cap, end="expire-all")
    assert [d["event"]["action"] for d in docs] == ["reg-new", "reg-expired"]
    for d in docs:
        assert_acted(d, A, R)
    assert docs[1]["network"]["transport"] == "udp"
    assert docs[1]["network"]["type"] == "ipv4"


def test_vxlan_community_id_is_the_inner_flow(tmp_path: Path) -> None:
    """A whole call inside VXLAN (VTEPs 198.51.100.1 <-> 198.51.100.2, VNI 7): who acted and
    the community id are the inner caller -> callee flow, the outer one is under sipcm.tunnel."""
    plain, leg = Capture(), Leg("vx@test")
    inv = leg.req("INVITE", body=SDP, headers=SDP_HDR)
    plain.a2b(leg, T0, inv.raw)
    plain.b2a(leg, T0 + S, leg.resp(inv, 200, "OK", to_tag="v", body=SDP, headers=SDP_HDR))
    cap = Capture()
    vtep = (("198.51.100.1", 40001), ("198.51.100.2", 4789))
    for ts, inner in plain.packets:
        vx = struct.pack("!BxxxI", 0x08, 7 << 8) + inner
        cap.packets.append((ts, udp_frame(vtep[0][0], vtep[0][1], vtep[1][0], vtep[1][1], vx)))
    docs = run(tmp_path, cap)
    assert [d["event"]["action"] for d in docs] == ["call-start"]
    (d,) = docs
    assert_acted(d, A, B)
    assert d["sipcm"]["tunnel"]["vni"] == 7
    assert d["network"]["community_id"] != community_id("udp", *vtep[0], *vtep[1])
