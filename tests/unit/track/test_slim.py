"""`slim` (written field by field) equals a copy made generically from the declared fields."""

from __future__ import annotations

import dataclasses

import pytest

from sipcm.decode.packet import Payload
from sipcm.sip.message import FIELD_NAMES, SipMessage
from sipcm.sip.parser import parse
from sipcm.track.core import slim
from tests.conftest import CORPUS
from tests.sipgen import Leg


def _reference(msg: SipMessage, all_contacts: bool) -> SipMessage:
    values = {name: getattr(msg, name) for name in FIELD_NAMES}
    values.update(vias=[], body=b"", headers={})
    if not all_contacts:
        values["contacts"] = msg.contacts[:1]
    p = msg.payload
    if p is not None:
        values["payload"] = dataclasses.replace(p, data=b"")
    return SipMessage(**values)


def _messages() -> list[SipMessage]:
    leg = Leg("slim@h", from_tag="f1")
    inv = leg.req("INVITE", headers=("Contact: <sip:a@1.2.3.4>, <sip:b@1.2.3.5>",))
    leg.to_tag = "t1"
    raws = [inv.raw, leg.resp(inv, 200, "OK"), leg.req("BYE").raw]
    raws.append(leg.req("REGISTER", headers=("Contact: <sip:a@h1>, <sip:a@h2>",)).raw)
    out = []
    for i, raw in enumerate(raws):
        m = parse(raw)
        assert isinstance(m, SipMessage)
        m.payload = Payload(raw, i, "192.0.2.1", "192.0.2.2", 5060, 5060, "udp", 4, True)
        out.append(m)
    return out


@pytest.mark.parametrize("all_contacts", [False, True])
def test_slim_equals_the_reference_copy(all_contacts: bool) -> None:
    for m in _messages():
        got = slim(m, all_contacts)
        assert got == _reference(m, all_contacts)
        assert got.payload is not m.payload  # the stored copy holds no payload bytes
        assert m.payload.data  # the original keeps them


@pytest.mark.needs_shared("corpus")
def test_slim_of_every_corpus_message() -> None:
    from sipcm.capture.pcapfile import PcapReader
    from sipcm.compose import build_decoder
    from sipcm.config import load_config
    from sipcm.counters import Counters

    files = sorted(CORPUS.rglob("*.pcap*"))
    dec = build_decoder(load_config(None, []), Counters(), heuristic=True)
    n = 0
    for f in files:
        for batch in PcapReader(f).batches():
            for p in dec.decode(batch):
                m = parse(p.data)
                if isinstance(m, SipMessage):
                    m.payload = p
                    for all_contacts in (False, True):
                        assert slim(m, all_contacts) == _reference(m, all_contacts)
                    n += 1
    assert n > 250  # every SIP message of the 23 files
