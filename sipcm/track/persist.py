"""Tracker entries as JSON-able records, so that state outlives a restart (`snapshot.py` files
them).

Input: CallSets (with their Legs), Trans and Bindings; output: one dict per entry, and back.
Every record carries `kind` ("call", "trans" or "binding") and `shard_key`: the Call-ID, or the
address-of-record (To URI without parameters, `core.aor_of`) for REGISTER transactions and
bindings, so that records of several trackers can be concatenated and split again by key.

What is saved is every slot of the entry classes (`__slots__`, so a slot added later is saved
too, or the roundtrip test names it), the timer's expiry on the capture-time clock (`due`),
and the stored messages, which are slim copies (`core.slim`: no body, raw headers or Vias) with
their network context; dataclasses are encoded field by field, leaving out fields that have
their default value. Decoding checks every field against its declared type, so a record that
does not fit is a `StateError`, never a half-built entry. Not saved: the duplicate filter's
fingerprints and the auth-retry index (`Core.chal`); after a restore a retransmission seen for
the first time counts as new and a credentialed retry under a new Call-ID starts a new attempt.
"""

from __future__ import annotations

import ast
import dataclasses
from typing import Any

from sipcm import accel
from sipcm.decode.packet import Payload, Tunnel
from sipcm.sip.message import FIELDS, REQUIRED, Credentials, NameAddr, SipMessage, Uri, Via
from sipcm.track.core import CallSet, Leg, Trans, aor_of
from sipcm.track.regs import Binding
from sipcm.track.states import State
from sipcm.track.timers import Timed

KINDS: dict[str, type] = {"call": CallSet, "trans": Trans, "binding": Binding}
_KIND_OF = {cls: kind for kind, cls in KINDS.items()}
_META = frozenset({"kind", "shard_key", "due"})
_BACKREF = "cs"  # Leg.cs: restored from the enclosing CallSet
# Slots holding a dataclass (the rest are JSON scalars, tuples of them, State or legs).
_DATACLASS_SLOTS: dict[str, type] = {
    "invite": SipMessage,
    "final": SipMessage,
    "req": SipMessage,
    "resp": SipMessage,
    "creds": Credentials,
    "contact": NameAddr,
}
_SCALARS = (str, int, float, bool)
# Slots added after state files were first written, with the value a record without them
# means (a file saved by an older version still restores).
_LATER_SLOTS: dict[str, object] = {"end_ts": None, "ended_by": None}
# Dataclass fields holding other dataclasses: a class, or [class] for a list of them.
_NESTED: dict[type, dict[str, Any]] = {
    SipMessage: {
        "uri": Uri,
        "from_": NameAddr,
        "to": NameAddr,
        "vias": [Via],
        "contacts": [NameAddr],
        "pai": [NameAddr],
        "credentials": Credentials,
        "payload": Payload,
    },
    NameAddr: {"uri": Uri},
    Payload: {"tunnel": Tunnel},
    Uri: {},
    Via: {},
    Credentials: {},
    Tunnel: {},
}
_MISSING = dataclasses.MISSING


class StateError(ValueError):
    """A record that cannot be turned back into an entry."""


def shard_key(entry: CallSet | Trans | Binding) -> str:
    """The key a record is sharded by: Call-ID, or the AOR for REGISTER and bindings."""
    if isinstance(entry, Binding):
        return entry.aor
    if isinstance(entry, Trans) and entry.method == "REGISTER" and entry.req is not None:
        return aor_of(entry.req.to.uri)
    return entry.call_id


def encode(entry: CallSet | Trans | Binding) -> dict[str, Any]:
    """One JSON-able record for an entry (with its legs and timers)."""
    rec = {"kind": _KIND_OF[type(entry)], "shard_key": shard_key(entry)}
    rec.update(_encode_slots(entry))
    return rec


def decode(rec: object) -> tuple[CallSet | Trans | Binding, list[tuple[Timed, int]]]:
    """The entry of a record and the (object, expiry) timers to arm for it; StateError when
    the record does not fit this version's classes."""
    if not isinstance(rec, dict):
        raise StateError(f"a record is a {type(rec).__name__}, not an object")
    cls = KINDS.get(rec.get("kind"))  # type: ignore[arg-type]
    if cls is None:
        raise StateError(f"unknown record kind {rec.get('kind')!r}")
    timers: list[tuple[Timed, int]] = []
    entry = _decode_slots(cls, rec, timers, None)
    if rec.get("shard_key") != shard_key(entry):
        raise StateError(f"{cls.__name__} record: shard_key does not match its content")
    return entry, timers


# -- entries ---------------------------------------------------------------------------------


def _slots(cls: type) -> tuple[str, ...]:
    own = cls.__dict__.get("__slots__")
    if own is None:  # compiled (sipcm.accel): its attributes, the inherited ones included
        inherited = {a for b in cls.__mro__[1:] for a in getattr(b, "__mypyc_attrs__", ())}
        own = [a for a in cls.__mypyc_attrs__ if a not in inherited]  # type: ignore[attr-defined]
    return tuple(sorted(s for s in own if s != _BACKREF))


def _blank(cls: type) -> Any:
    """An instance whose every slot the record then sets. Built through the constructor with
    placeholder arguments: a compiled class (sipcm.accel) runs `__init__` on creation."""
    if cls is CallSet:
        return CallSet("")
    if cls is Leg:
        return Leg(CallSet(""), State.INIT)
    if cls is Trans:
        return Trans(("", ""), "")
    if cls is Binding:
        return Binding("", ("", None, "", None), NameAddr(Uri("")), 0)
    raise StateError(f"unknown record class {cls.__name__}")


def _encode_slots(obj: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _slots(type(obj)):
        out[name] = _encode_slot(name, getattr(obj, name))
    if isinstance(obj, Timed):
        out["due"] = obj.due
    return out


def _encode_slot(name: str, v: object) -> object:
    if v is None or isinstance(v, _SCALARS):
        return v
    if isinstance(v, State):
        return v.value
    if name == "legs":
        return [_encode_slots(leg) for leg in v]  # type: ignore[attr-defined]
    if name in _DATACLASS_SLOTS:
        return _encode_dc(v)
    if isinstance(v, tuple) and all(x is None or isinstance(x, _SCALARS) for x in v):
        return list(v)
    raise TypeError(f"cannot save slot {name!r} holding {type(v).__name__}")


def _decode_slots(
    cls: type, data: object, timers: list[tuple[Timed, int]], parent: CallSet | None
) -> Any:
    if not isinstance(data, dict):
        raise StateError(f"{cls.__name__}: expected an object")
    names = _slots(cls)
    missing = [n for n in names if n not in data and n not in _LATER_SLOTS]
    extra = sorted(k for k in data if k not in names and k not in _META)
    if missing or extra:
        raise StateError(f"{cls.__name__}: missing {missing}, unknown {extra}")
    obj = _blank(cls)
    if isinstance(obj, Timed):
        due = data.get("due")
        if due is not None:
            if type(due) is not int:
                raise StateError(f"{cls.__name__}: due is not an integer")
            timers.append((obj, due))
    if parent is not None:
        obj.cs = parent
    for name in names:
        value = data[name] if name in data else _LATER_SLOTS[name]
        setattr(obj, name, _decode_slot(cls, name, value, timers, obj))
    if getattr(obj, "state", State.INIT) is None:
        raise StateError(f"{cls.__name__}: no state")
    return obj


def _decode_slot(
    cls: type, name: str, v: object, timers: list[tuple[Timed, int]], owner: object
) -> object:
    if v is None:
        return None
    if name == "state":
        try:
            return State(v)
        except ValueError:
            raise StateError(f"{cls.__name__}: unknown state {v!r}") from None
    if name == "legs":
        if not isinstance(v, list):
            raise StateError("legs: expected a list")
        return [_decode_slots(Leg, leg, timers, owner) for leg in v]  # type: ignore[arg-type]
    dc = _DATACLASS_SLOTS.get(name)
    if dc is not None:
        return _decode_dc(dc, v)
    if isinstance(v, _SCALARS):
        return v
    if isinstance(v, list) and all(x is None or isinstance(x, _SCALARS) for x in v):
        return tuple(v)
    raise StateError(f"{cls.__name__}.{name}: unexpected {type(v).__name__}")


# -- dataclasses (messages and their parts) --------------------------------------------------


def _default(f: dataclasses.Field) -> object:
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:
        return f.default_factory()
    return _MISSING


def _source_annotations(cls: type) -> dict[str, str]:
    """A dataclass's field annotations as written in its module's source: a compiled dataclass
    (sipcm.accel) reports erased types (`str | None` becomes `type`)."""
    tree = ast.parse(accel.source_path(cls.__module__).read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            return {
                st.target.id: ast.unparse(st.annotation)
                for st in node.body
                if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)
            }
    raise LookupError(f"class {cls.__name__} not found in the source of {cls.__module__}")


def _dataclass_fields(cls: type) -> list[tuple[str, str, object]]:
    ann = _source_annotations(cls)
    return [(f.name, ann[f.name], _default(f)) for f in dataclasses.fields(cls)]


# (name, annotation, default) per field of each class in _NESTED, filled on first use: reading
# the sources costs start-up time that a run without a state file never needs back.
_FIELDS: dict[type, list[tuple[str, str, object]]] = {}


def _fields(cls: type) -> list[tuple[str, str, object]]:
    got = _FIELDS.get(cls)
    if got is None:
        if cls is SipMessage:  # a plain class (deferred fields are properties) with FIELDS
            got = [(n, a, _MISSING if d is REQUIRED else d) for n, a, d in FIELDS]
        else:
            got = _dataclass_fields(cls)
        _FIELDS[cls] = got
    return got


def _encode_dc(obj: Any) -> dict[str, Any]:
    cls = type(obj)
    nested = _NESTED[cls]
    out: dict[str, Any] = {}
    for name, _ann, default in _fields(cls):
        v = getattr(obj, name)
        if default is not _MISSING and v == default:
            continue
        sub = nested.get(name)
        if v is None:
            out[name] = None
        elif isinstance(sub, list):
            out[name] = [_encode_dc(x) for x in v]
        elif sub is not None:
            out[name] = _encode_dc(v)
        elif isinstance(v, bytes):
            out[name] = v.decode("latin-1")
        elif isinstance(v, dict):
            out[name] = {k: list(x) if isinstance(x, list) else x for k, x in v.items()}
        else:
            out[name] = v
    return out


_PLAIN = {"str": str, "int": int, "bool": bool, "float": (int, float), "bytes": str}


def _decode_dc(cls: type, data: object) -> Any:
    if not isinstance(data, dict):
        raise StateError(f"{cls.__name__}: expected an object")
    nested = _NESTED[cls]
    known = {name for name, _, _ in _fields(cls)}
    extra = sorted(k for k in data if k not in known)
    if extra:
        raise StateError(f"{cls.__name__}: unknown fields {extra}")
    kwargs: dict[str, Any] = {}
    for name, ann, default in _fields(cls):
        if name not in data:
            if default is _MISSING:
                raise StateError(f"{cls.__name__}: missing {name}")
            continue
        v = data[name]
        kinds = [a.strip() for a in str(ann).split("|")]
        if v is None:
            if "None" not in kinds:
                raise StateError(f"{cls.__name__}.{name}: may not be null")
            kwargs[name] = None
            continue
        sub = nested.get(name)
        if isinstance(sub, list):
            if not isinstance(v, list):
                raise StateError(f"{cls.__name__}.{name}: expected a list")
            kwargs[name] = [_decode_dc(sub[0], x) for x in v]
        elif sub is not None:
            kwargs[name] = _decode_dc(sub, v)
        else:
            kwargs[name] = _plain(cls, name, kinds[0], v)
    return cls(**kwargs)


def _plain(cls: type, name: str, ann: str, v: object) -> object:
    """A JSON value checked against a plain annotation (str, int, bool, float, bytes,
    dict[str, str], dict[str, list[str]])."""
    if ann.startswith("dict["):
        if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
            raise StateError(f"{cls.__name__}.{name}: expected an object")
        lists = ann.endswith("list[str]]")
        for x in v.values():
            ok = (
                isinstance(x, list) and all(isinstance(y, str) for y in x)
                if lists
                else isinstance(x, str)
            )
            if not ok:
                raise StateError(f"{cls.__name__}.{name}: unexpected value {x!r}")
        return dict(v)
    want = _PLAIN.get(ann)
    if want is None or not isinstance(v, want) or (want is int and isinstance(v, bool)):
        raise StateError(f"{cls.__name__}.{name}: expected {ann}, got {type(v).__name__}")
    return v.encode("latin-1") if ann == "bytes" else v  # type: ignore[union-attr]
