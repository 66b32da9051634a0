"""Events of further corpus captures, derived by hand from the packets.

arkime/gtp-iphone.pcap (VoLTE, SIP in GTP-U, inner IPv6, SIP over TCP and UDP), frames as
tshark numbers them with `-d udp.port==2152,gtp`:
  f14 REGISTER 9, IMS initial registration: Authorization with the private identity and an
      EMPTY nonce and response (3GPP TS 24.229) -> f16 401: a first challenge, not a failure
  f27 REGISTER 10 with the digest answer -> f29 200: reg-new
  f31 SUBSCRIBE -> f34 405: other-failed 405
  f40 INVITE tel:122 -> 100, 180, f47 200, ACK: call-start
  f80 BYE From tel:122 (the callee) -> 200: call-end, originator callee
  f90 MESSAGE -> f91 202: other-ok
  f100 REGISTER 11 Expires 0 -> f102 200: reg-del
sngrep/ipip.pcap (SIP over TCP): INVITE and BYE from the caller in plain IPv4, the callee's
  183 and 200 inside an IP-in-IP tunnel (10.15.196.229 -> 10.15.194.19): call-start (made by
  the tunnelled 200) and call-end (made by the plain BYE); no ACK and no 200 to the BYE.
"""

from __future__ import annotations

from pathlib import Path

from tests.ecs import assert_valid
from tests.events.scen import briefs, run_files

GTP_REG = "5PC5dBCGDQ0csFmFPQXQjE57"
GTP_SUB = "5E6Cykks9Q8hoKaqHXRaeWJr"
GTP_CALL = "zTHDK1uOm6wLihi3m15pRfSR"
GTP_SMS = "Ibayc7qnh1PkQzsM6S0TeFJ6"


def test_volte_capture(corpus: Path) -> None:
    docs, _ = run_files([corpus / "arkime" / "gtp-iphone.pcap"])
    for d in docs:
        assert_valid(d)
    assert briefs(docs) == [
        ("reg-new", GTP_REG, "REGISTER", 200),
        ("other-failed", GTP_SUB, "SUBSCRIBE", 405),
        ("call-start", GTP_CALL, "INVITE", 200),
        ("call-end", GTP_CALL, "INVITE", 200),
        ("other-ok", GTP_SMS, "MESSAGE", 202),
        ("reg-del", GTP_REG, "REGISTER", 200),
    ]
    end = docs[3]
    assert end["sip"]["call"]["originator"] == "callee"
    assert end["network"]["type"] == "ipv6"
    assert end["sipcm"]["tunnel"]["type"] == "gtp"
    reg_new = docs[0]
    assert reg_new["network"]["transport"] == "tcp"
    assert reg_new["user"]["name"] == "263734@imstest.lan"


def test_ip_in_ip_tcp_call(corpus: Path) -> None:
    docs, _ = run_files([corpus / "sngrep" / "ipip.pcap"])
    acts = [(d["event"]["action"], d["network"]["transport"]) for d in docs]
    assert acts == [("call-start", "tcp"), ("call-end", "tcp")]
    assert docs[1]["sip"]["call"]["originator"] == "caller"
    start, end = docs
    assert start["sipcm"]["tunnel"] == {
        "type": "ipip",
        "source": {"ip": "10.15.196.229"},
        "destination": {"ip": "10.15.194.19"},
    }
    assert "tunnel" not in end.get("sipcm", {})
