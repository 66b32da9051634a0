"""SipMessage declares its fields once (`FIELDS`): the constructor, equality, repr, slim copies
and state files must all agree with that table."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import MISSING

import pytest

from sipcm import accel
from sipcm.decode.packet import Payload, Tunnel
from sipcm.sip.message import (
    DEFERRED,
    FIELD_NAMES,
    FIELDS,
    REQUIRED,
    Credentials,
    NameAddr,
    ParseError,
    SipMessage,
    Uri,
    Via,
)
from sipcm.sip.parser import parse
from tests.sipgen import Leg


def _minimal() -> SipMessage:
    na = NameAddr(Uri("sip:a@x", "sip", "a", "x"), tag="t")
    return SipMessage(True, "INVITE", na.uri, None, None, "c@x", na, na, 1, "INVITE")


@pytest.mark.skipif(accel.status().startswith("compiled"), reason="compiled: no signature")
def test_constructor_parameters_are_the_declared_fields_in_order() -> None:
    params = list(inspect.signature(SipMessage.__init__).parameters.values())[1:]
    assert [p.name for p in params] == list(FIELD_NAMES)
    for p, (_name, _ann, default) in zip(params, FIELDS, strict=True):
        assert (p.default is inspect.Parameter.empty) == (default is REQUIRED)


def test_defaults_are_the_declared_ones_and_fresh_per_message() -> None:
    a, b = _minimal(), _minimal()
    for name, _ann, default in FIELDS:
        if default is not REQUIRED:
            assert getattr(a, name) == default, name
    a.contacts.append(a.to)
    a.headers["x"] = ["1"]
    assert b.contacts == []
    assert b.headers == {}


def test_equality_and_repr_cover_every_field() -> None:
    a, b = _minimal(), _minimal()
    assert a == b
    assert repr(a) == repr(b)
    for name in ("size", "body", "user_agent", "bad_headers"):
        c = _minimal()
        setattr(c, name, {"size": 5, "body": b"x", "user_agent": "u", "bad_headers": 1}[name])
        assert c != a, name
        assert f"{name}=" in repr(c)
    assert a != "not a message"


def test_a_deferred_field_read_runs_the_second_step_once() -> None:
    leg = Leg("steps@h")
    raw = leg.req("BYE", headers=("Reason: Q.850;cause=16",)).raw
    bye = parse(raw)
    assert isinstance(bye, SipMessage)
    assert bye._rest is not None
    assert bye.call_id == "steps@h"
    assert bye._rest is not None
    assert bye.reason_hdr == "Q.850;cause=16"
    assert bye._rest is None
    for name in DEFERRED:  # every deferred field is readable and settable once complete
        setattr(bye, name, getattr(bye, name))
    assert bye == parse(raw)


# Each part with values for its required fields (typed: a compiled constructor checks them).
PARTS = {
    Uri: ("sip:a@x",),
    NameAddr: (Uri("sip:a@x"),),
    Via: ("UDP", "h"),
    Credentials: ("Digest", "u", None),
    ParseError: ("bad_cseq", 7),
    Payload: (b"x", 1, "192.0.2.1", "192.0.2.2", 5060, 5060, "udp", 4, True),
    Tunnel: ("vxlan", "192.0.2.3", "192.0.2.4"),
}


@pytest.mark.skipif(accel.status().startswith("compiled"), reason="compiled: no signature")
@pytest.mark.parametrize("cls", PARTS, ids=lambda c: c.__name__)
def test_written_out_constructors_take_the_declared_fields(cls: type) -> None:
    """The parts are dataclasses whose `__init__` is written out (native when compiled): it
    takes every field in order, required ones without a default, the others with the
    declared default (None standing for a fresh `default_factory` value)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields, strict=True):
        if f.default is not dataclasses.MISSING:
            assert p.default == f.default, f.name
        elif f.default_factory is not dataclasses.MISSING:
            assert p.default is None, f.name
        else:
            assert p.default is inspect.Parameter.empty, f.name


@pytest.mark.parametrize("cls", PARTS, ids=lambda c: c.__name__)
def test_defaults_of_the_parts_are_the_declared_ones_and_fresh(cls: type) -> None:
    fields = dataclasses.fields(cls)
    a, b = cls(*PARTS[cls]), cls(*PARTS[cls])
    assert a == b
    assert repr(a) == repr(b)
    for f in fields:
        if f.default is not MISSING:
            assert getattr(a, f.name) == f.default, f.name
        elif f.default_factory is not MISSING:
            assert getattr(a, f.name) == f.default_factory(), f.name
            assert getattr(a, f.name) is not getattr(b, f.name), f.name  # not shared
