"""Anonymization of built event documents, and its reversal (SPEC section 9).

Input: nested ECS documents from `EventBuilder.build`. `Anonymizer.apply` encrypts, in place,
the values its switches select (replacing, not changing, the sections below the top level:
the builder shares some between documents); `Anonymizer.value` does the same for one value of
a named field (the web API's rows, `rows.py`); `decrypt_doc` restores them for whoever holds
the key. All are deterministic. None logs, and no key material appears in any repr, str or
error message.

Which fields are transformed is derived from the `sensitive` declaration of each field in
`schema.py` (through `KINDS`), so a new field is anonymized by declaring what it holds. Today
that gives (every listed field that is present; lists element by element):
- ip (`encrypt_ip_addresses`): source.ip, destination.ip, client.ip, server.ip,
  sipcm.tunnel.source.ip, sipcm.tunnel.destination.ip, related.ip. IPv4 keeps prefixes
  (Crypto-PAn) unless `ipcipher`; IPv6 always uses ipcipher. `ipcipher` alone implies `ip`.
  network.community_id is then recomputed from the encrypted addresses (and again from the
  restored ones on decryption): a hash of the clear 5-tuple would confirm a guessed address.
- uris (`encrypt_uris`): the URIs sip.{from,to,contact}.uri.original, sip.uri.original,
  url.original, sip.pai, sip.reg.aor (scheme and port kept; user, host and parameters each
  encrypted); their parts sip.*.uri.username and sip.*.uri.host (the same tokens as inside the
  URIs, so they still correlate); the identities derived from them: user.name (the digest user
  name, encrypted like a URI user part), related.user, related.hosts, sip.auth.realm (like a
  host), and the display names sip.{from,to,contact}.display_info. IP literals in URI hosts
  are encrypted with the IP method, so related.ip (which lists them) is encrypted too.
- call_ids (`encrypt_call_ids`): sip.call_id.
- ua (`encrypt_ua`): user_agent.original, sip.user_agent.original.
Not changed: tags, methods, codes, reason phrases, ports, times, observer fields, counters.
A document where something changed gets `sipcm.anon.fields` (sorted dotted names),
`sipcm.anon.key_check` and, when IPs may be involved, `sipcm.anon.ipv4` ("prefix" or
"ipcipher": how IPv4 addresses were encrypted). A value that cannot be encrypted (an IP field
holding something that is not an address, or a non-text value) is removed, never left in clear,
and counted as `invalid_values_dropped`; a document that already has markers is left alone
(`already_anonymized`). Encryption results are cached per value, so a value seen before costs
one dict lookup.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sipcm.errors import SipcmError
from sipcm.events import schema
from sipcm.events.community_id import rehash

if TYPE_CHECKING:
    # Imported where a key is used: the ciphers load `cryptography`, which a sensor without
    # anonymization never needs (start-up time).
    from sipcm.events.anon.codec import Codec
    from sipcm.events.anon.keys import AnonKey

# sensitivity (schema.SENSITIVE) -> (switch, cipher kind). "ip|uris": either switch.
KINDS: dict[str, tuple[str, str]] = {
    "ip": ("ip", "ip"),
    "uri_ip": ("ip|uris", "ip"),
    "uri": ("uris", "uri"),
    "user": ("uris", "user"),
    "host": ("uris", "host"),
    "display": ("uris", "display"),
    "call_id": ("call_ids", "call_id"),
    "ua": ("ua", "ua"),
}

# field -> (switch, cipher kind), for every field the schema declares sensitive.
FIELDS: dict[str, tuple[str, str]] = {
    f.name: KINDS[f.sensitive] for f in schema.FIELDS if f.sensitive is not None
}

_Fn = Callable[[str], str]


def _encrypters(c: Codec) -> dict[str, _Fn]:
    def text(kind: str) -> _Fn:
        return lambda v: c.text(kind, v)

    return {"ip": c.ip, "host": c.host, "uri": c.uri, "user": text("user"),
            "display": text("display"), "call_id": text("call_id"), "ua": text("ua")}  # fmt: skip


def _decrypters(c: Codec) -> dict[str, _Fn]:
    def text(kind: str) -> _Fn:
        return lambda v: c.text_decrypt(kind, v)

    return {"ip": c.ip_decrypt, "host": c.host_decrypt, "uri": c.uri_decrypt,
            "user": text("user"), "display": text("display"), "call_id": text("call_id"),
            "ua": text("ua")}  # fmt: skip


def _parent(doc: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = doc
    for p in path:
        node = node.get(p)
        if not isinstance(node, dict):
            return None
    return node


def _prune(doc: dict[str, Any], path: tuple[str, ...]) -> None:
    """Remove the dicts along `path` that became empty (documents never hold empty values)."""
    for depth in range(len(path), 0, -1):
        parent = _parent(doc, path[: depth - 1])
        if parent is None or parent.get(path[depth - 1]):
            return
        del parent[path[depth - 1]]


def _own(doc: dict[str, Any], path: tuple[str, ...], owned: set[tuple[str, ...]]) -> dict[str, Any]:
    """The dict at `path` in `doc`, after replacing each dict along the path by a copy, except
    those already copied for this document (listed in `owned`, which this extends): documents
    may share sections with other documents, so a change must not reach them."""
    node = doc
    for depth in range(1, len(path) + 1):
        key = path[depth - 1]
        child = node[key]
        prefix = path[:depth]
        if prefix not in owned:
            child = node[key] = dict(child)
            owned.add(prefix)
        node = child
    return node


class Anonymizer:
    """Encrypts the configured fields of event documents in place (see the module docstring)."""

    def __init__(
        self,
        *,
        ip: bool,
        ipcipher: bool,
        uris: bool,
        call_ids: bool,
        ua: bool,
        passphrase: str | None = None,
        key_hex: str | None = None,
        key_file: str | None = None,
        salt: str = "",
        counters: Counter[str] | None = None,
    ) -> None:
        self.ip = ip or ipcipher
        self.ipcipher = ipcipher
        self.uris, self.call_ids, self.ua = uris, call_ids, ua
        self.enabled = self.ip or uris or call_ids or ua
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self.key_check = ""
        # (parent path, [(leaf, dotted name, encryption cache, encrypt function)]), so each
        # parent object is looked up once and a cached value costs one dict lookup.
        self._plan: list[tuple[tuple[str, ...], list[tuple[str, str, dict[str, str], _Fn]]]] = []
        self._ipv4 = ""
        self._by_name: dict[str, tuple[dict[str, str], _Fn]] = {}
        if not self.enabled:
            return
        from sipcm.events.anon.codec import Codec
        from sipcm.events.anon.keys import AnonKey

        key = AnonKey.from_settings(
            passphrase=passphrase, key_hex=key_hex, key_file=key_file, salt=salt
        )
        self.key_check = key.check
        codec = Codec(key, ipcipher4=ipcipher)
        enc = _encrypters(codec)
        on = {"ip": self.ip, "uris": uris, "call_ids": call_ids, "ua": ua}
        on["ip|uris"] = self.ip or uris
        groups: dict[tuple[str, ...], list[tuple[str, str, dict[str, str], _Fn]]] = {}
        for name, (switch, kind) in FIELDS.items():
            if on[switch]:
                *parents, last = name.split(".")
                item = (last, name, codec.cache_for(kind), enc[kind])
                groups.setdefault(tuple(parents), []).append(item)
                self._by_name[name] = (item[2], item[3])
        self._plan = list(groups.items())
        if on["ip|uris"]:
            self._ipv4 = "ipcipher" if ipcipher else "prefix"

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Encrypt the selected fields of `doc`, add the markers, return `doc`.

        `doc` itself is changed, but no dict below it: one the builder shares between documents
        (a URI's `uri` section, see build.py) is replaced by a changed copy (`_own`)."""
        if not self.enabled:
            return doc
        sipcm = doc.get("sipcm")
        if sipcm is not None and "anon" in sipcm:
            self.counters["already_anonymized"] += 1  # twice would need two decryptions
            return doc
        changed: list[str] = []
        owned: set[tuple[str, ...]] = set()
        for parents, items in self._plan:
            node: Any = doc
            for p in parents:
                node = node.get(p)
                if node.__class__ is not dict:
                    break
            else:
                for last, name, cache, fn in items:
                    v = node.get(last)
                    if v is None:
                        continue
                    new = cache.get(v) if v.__class__ is str else None
                    if new is None:
                        new = self._transform(v, fn)
                        if new is None:
                            node = _own(doc, parents, owned)
                            del node[last]
                            _prune(doc, parents)
                            continue
                    if new != v:
                        node = _own(doc, parents, owned)
                        node[last] = new
                        changed.append(name)
        if self.ip:
            rehash(doc)
        if changed:
            anon: dict[str, Any] = {"fields": sorted(changed), "key_check": self.key_check}
            if self._ipv4:
                anon["ipv4"] = self._ipv4
            doc["sipcm"] = {**(doc.get("sipcm") or {}), "anon": anon}
        return doc

    def value(self, name: str, v: Any) -> Any:
        """`v` as the field `name` shows it in documents: encrypted when a switch selects the
        field, unchanged when none does, None when it cannot be encrypted (counted)."""
        plan = self._by_name.get(name)
        if plan is None or v is None:
            return v
        cache, fn = plan
        new = cache.get(v) if v.__class__ is str else None
        return new if new is not None else self._transform(v, fn)

    def _transform(self, v: object, fn: _Fn) -> str | list[str] | None:
        if isinstance(v, list):
            out = [y for y in (self._one(x, fn) for x in v) if y is not None]
            return out or None
        return self._one(v, fn)

    def _one(self, v: object, fn: _Fn) -> str | None:
        if isinstance(v, str):
            try:
                return fn(v)
            except ValueError:
                pass
        self.counters["invalid_values_dropped"] += 1
        return None

    def __repr__(self) -> str:
        return (
            f"Anonymizer(ip={self.ip}, ipcipher={self.ipcipher}, uris={self.uris}, "
            f"call_ids={self.call_ids}, ua={self.ua}, key_check={self.key_check!r})"
        )

    __str__ = __repr__


class Decryptor:
    """Reverses `Anonymizer.apply` with one key (codecs for both IPv4 methods, built lazily)."""

    def __init__(self, key: AnonKey) -> None:
        self.key = key
        self._dec: dict[bool, dict[str, _Fn]] = {}

    def decrypters(self, ipcipher4: bool) -> dict[str, _Fn]:
        """kind -> decrypt function for one IPv4 method."""
        d = self._dec.get(ipcipher4)
        if d is None:
            from sipcm.events.anon.codec import Codec

            d = self._dec[ipcipher4] = _decrypters(Codec(self.key, ipcipher4))
        return d

    def __repr__(self) -> str:
        return f"Decryptor(key_check={self.key.check!r})"


def decrypt_doc(doc: dict[str, Any], key: AnonKey | Decryptor) -> dict[str, Any]:
    """Restore, in place, every field listed in `sipcm.anon.fields` and remove the markers.

    A document without markers is returned unchanged. SipcmError ("wrong key: ...") when the
    key check value differs; SipcmError naming the field when a value does not decrypt.
    """
    sipcm = doc.get("sipcm")
    anon = sipcm.get("anon") if isinstance(sipcm, dict) else None
    if anon is None:
        return doc
    dec = key if isinstance(key, Decryptor) else Decryptor(key)
    check = anon.get("key_check") if isinstance(anon, dict) else None
    names = anon.get("fields") if isinstance(anon, dict) else None
    if not isinstance(check, str) or not isinstance(names, list):
        raise SipcmError("malformed sipcm.anon in an event", "was it written by sipcm?")
    if check != dec.key.check:
        raise SipcmError(
            f"wrong key: the events were encrypted with key check {check}, "
            f"this key's check is {dec.key.check}",
            "give the passphrase and salt, or the key, that the sensor used",
        )
    fns = dec.decrypters(anon.get("ipv4") == "ipcipher")
    for name in names:
        spec = FIELDS.get(name) if isinstance(name, str) else None
        if spec is None:
            raise SipcmError(f"unknown anonymized field {name!r}", "is this sipcm too old?")
        *parents, last = name.split(".")
        node = _parent(doc, tuple(parents))
        if node is None or last not in node:
            continue
        fn = fns[spec[1]]
        v = node[last]
        try:
            node[last] = [fn(x) for x in v] if isinstance(v, list) else fn(v)
        except (ValueError, TypeError):
            raise SipcmError(
                f"cannot decrypt {name}: not encrypted with this key", "is the event altered?"
            ) from None
    if "source.ip" in names or "destination.ip" in names:
        rehash(doc)
    del sipcm["anon"]
    if not sipcm:
        del doc["sipcm"]
    return doc
