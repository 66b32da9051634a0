"""Community ID v1 flow hashes (https://github.com/corelight/community-id-spec), ECS
`network.community_id`: the same value for both directions of a 5-tuple, so an event pivots to
the flow logs (Zeek, Suricata, Packetbeat) of the connection that carried it.

Input: IP protocol name ("udp", "tcp") or number, addresses as text (IPv4 or IPv6) and ports.
Output: "1:" + base64(SHA-1(seed, smaller endpoint, larger endpoint, protocol, padding, ports)).
Only the port-carrying protocols sipcm sees (UDP, TCP; SCTP works the same) are hashed; others
return None. It never reads packets or clocks.
"""

from __future__ import annotations

import hashlib
import importlib
import ipaddress
import socket
import struct
from binascii import b2a_base64
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

VERSION: Final = "1:"
PROTOCOLS: Final = {"tcp": 6, "udp": 17, "sctp": 132}  # IANA protocol numbers with ports


_DOT: Final = ord(".")
_ZERO: Final = ord("0")

# Address text -> bytes, emptied when full (a dict: an lru_cache call is a generic call).
_PACKED: Final[dict[str, bytes]] = {}
_PACKED_ENTRIES: Final = 8192


def _packed(ip: str) -> bytes:
    """The address's bytes (ValueError if `ip` is not an address), cached."""
    b = _PACKED.get(ip)
    if b is None:
        b = _pack(ip)
        if len(_PACKED) >= _PACKED_ENTRIES:
            _PACKED.clear()
        _PACKED[ip] = b
    return b


def _pack(ip: str) -> bytes:
    """`_packed` uncached. A canonical dotted quad is read here; inet_pton is ~10x cheaper
    than ipaddress, and its result is taken only for text in the canonical form it prints
    back, which ipaddress reads the same way; anything else goes to ipaddress."""
    if ":" not in ip:
        n = ipv4_value(ip)
        if n >= 0:
            return n.to_bytes(4, "big")
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        packed = socket.inet_pton(family, ip)
    except OSError:
        packed = b""
    if packed and socket.inet_ntop(family, packed) == ip:
        return packed
    return ipaddress.ip_address(ip).packed


def ipv4_value(text: str) -> int:
    """The 32-bit value of an IPv4 address in canonical text (four decimal octets of at most
    255 without leading zeros: what ipaddress prints), or -1 for any other text. One pass
    over the bytes: compiled, several times cheaper than split and int() or a regex."""
    if not text.isascii():
        return -1
    data = text.encode("ascii")
    n = 0
    octet = 0
    digits = 0
    dots = 0
    for i in range(len(data)):
        c = data[i]
        if c == _DOT:
            if digits == 0 or dots == 3:
                return -1
            n = (n << 8) | octet
            octet = digits = 0
            dots += 1
            continue
        d = c - _ZERO
        if d < 0 or d > 9 or (digits > 0 and octet == 0):  # not a digit, or a leading zero
            return -1
        octet = octet * 10 + d
        if octet > 255:
            return -1
        digits += 1
    if dots != 3 or digits == 0:
        return -1
    return (n << 8) | octet


def _sha1_function() -> Callable[[bytes], Any]:
    """Python's own SHA-1 (`_sha1`): it hashes one short record in about half the instructions
    of hashlib's OpenSSL one, which sets up a context per hash; hashlib's when the interpreter
    was built without it."""
    try:
        new: Callable[[bytes], Any] = importlib.import_module("_sha1").sha1
    except ImportError:
        return lambda data: hashlib.sha1(data, usedforsecurity=False)
    return new


_SHA1: Final = _sha1_function()

# The hashed record: seed, the two addresses (smaller endpoint first), protocol, a zero pad
# byte and the two ports; one pack per address family.
_RECORD: Final = {4: struct.Struct("!H4s4sBBHH"), 16: struct.Struct("!H16s16sBBHH")}
_WITH_PORTS: Final = frozenset(PROTOCOLS.values())


def community_id(
    proto: str | int, src_ip: str, src_port: int, dst_ip: str, dst_port: int, seed: int = 0
) -> str | None:
    """Community ID v1 of a flow, or None for a protocol without ports or a bad address.
    Not cached: the event builder keeps its own per-flow cache (`rehash` uses `cached_id`)."""
    num = PROTOCOLS.get(proto) if isinstance(proto, str) else proto
    if num not in _WITH_PORTS:
        return None
    try:
        a, b = _packed(src_ip), _packed(dst_ip)
    except ValueError:
        return None
    record = _RECORD.get(len(a))
    if record is None or len(a) != len(b):
        return None
    # The endpoint ordered first is the smaller address, or for equal addresses the smaller
    # port (spec: "is_one_way" aside, which only concerns ICMP).
    if a > b or (a == b and src_port > dst_port):
        a, b, src_port, dst_port = b, a, dst_port, src_port
    data = record.pack(seed, a, b, num, 0, src_port, dst_port)
    digest = _SHA1(data).digest()
    return VERSION + b2a_base64(digest, newline=False).decode()


@lru_cache(maxsize=16384)  # the documents of a call or a binding share one flow
def cached_id(
    proto: str | int, src_ip: str, src_port: int, dst_ip: str, dst_port: int
) -> str | None:
    """`community_id` with seed 0, cached."""
    return community_id(proto, src_ip, src_port, dst_ip, dst_port)


def rehash(doc: dict) -> None:
    """Recompute a document's `network.community_id` from its `source`/`destination` and
    `network.transport` (after anonymization changed the addresses, or decryption restored
    them): a hash of the clear 5-tuple would let anyone confirm a guessed address. Removed
    when the document no longer has a hashable flow. `network` is replaced by a changed
    copy, never changed (documents may share sections)."""
    net = doc.get("network")
    if not isinstance(net, dict) or "community_id" not in net:
        return
    src, dst = doc.get("source") or {}, doc.get("destination") or {}
    cid = None
    if all(k in src and k in dst for k in ("ip", "port")):
        cid = cached_id(net.get("transport", ""), src["ip"], src["port"], dst["ip"], dst["port"])
    if cid == net["community_id"]:
        return
    net = dict(net)
    if cid is None:
        del net["community_id"]
    else:
        net["community_id"] = cid
    doc["network"] = net
