"""Builders of crafted frames (every header by hand) and batches for decoder tests."""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter

import numpy as np

from sipcm.capture.records import LINKTYPE_ETHERNET, RecordBatch
from sipcm.decode.decoder import Decoder

MAC_D = b"\x02\x00\x00\x00\x00\x02"
MAC_S = b"\x02\x00\x00\x00\x00\x01"
INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"
    b"Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)
OK = b"SIP/2.0 200 OK\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
T0 = 1_700_000_000_000_000_000


def addr(a: str) -> bytes:
    return ipaddress.ip_address(a).packed


def eth(
    etype: int, payload: bytes, vlans: tuple[int, ...] = (), tpids: tuple[int, ...] = ()
) -> bytes:
    """Ethernet II with optional VLAN tags (outermost first); TPIDs default to 802.1Q."""
    tags = b""
    for i, vid in enumerate(vlans):
        tpid = tpids[i] if i < len(tpids) else 0x8100
        tags += struct.pack("!HH", tpid, vid)
    return MAC_D + MAC_S + tags + struct.pack("!H", etype) + payload


def ip4(src: str, dst: str, proto: int, payload: bytes, *, ident: int = 1, frag: int = 0,
        options: bytes = b"", tot: int | None = None) -> bytes:  # fmt: skip
    """IPv4 header (checksum left zero: the decoder never checks it)."""
    ihl = 5 + len(options) // 4
    length = ihl * 4 + len(payload) if tot is None else tot
    hdr = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, 0, length, ident, frag, 64, proto, 0, addr(src), addr(dst)
    )
    return hdr + options + payload


def ip6(src: str, dst: str, nh: int, payload: bytes, plen: int | None = None) -> bytes:
    """IPv6 fixed header."""
    n = len(payload) if plen is None else plen
    return struct.pack("!IHBB16s16s", 6 << 28, n, nh, 64, addr(src), addr(dst)) + payload


def ext8(nh: int, body_len: int = 6) -> bytes:
    """A hop-by-hop/routing/destination-options style header: (len + 1) * 8 bytes."""
    total = 2 + body_len
    assert total % 8 == 0
    return bytes([nh, total // 8 - 1]) + b"\x01" * body_len


def frag6(nh: int, off: int, more: bool, ident: int) -> bytes:
    return struct.pack("!BBHI", nh, 0, off | int(more), ident)


def udp(sport: int, dport: int, payload: bytes, length: int | None = None) -> bytes:
    n = 8 + len(payload) if length is None else length
    return struct.pack("!HHHH", sport, dport, n, 0) + payload


def tcp(sport: int, dport: int, seq: int, payload: bytes, flags: int = 0x18, doff: int = 5,
        options: bytes = b"") -> bytes:  # fmt: skip
    return (
        struct.pack("!HHIIBBHHH", sport, dport, seq, 0, doff << 4, flags, 65535, 0, 0)
        + options
        + payload
    )


def udp4(src: str = "10.0.0.1", dst: str = "10.0.0.2", sport: int = 5060, dport: int = 5060,
         payload: bytes = INVITE) -> bytes:  # fmt: skip
    """An IPv4 packet with one UDP datagram."""
    return ip4(src, dst, 17, udp(sport, dport, payload))


def vxlan(vni: int, inner: bytes) -> bytes:
    return struct.pack("!BxxxI", 0x08, vni << 8) + inner


def gtp(teid: int, inner: bytes, exts: tuple[bytes, ...] = ()) -> bytes:
    """GTP-U T-PDU; `exts` are extension header contents (each padded to 4n-2 bytes)."""
    if not exts:
        return struct.pack("!BBHI", 0x30, 0xFF, len(inner), teid) + inner
    body = b""
    types = [0x85] * len(exts)
    for i, content in enumerate(exts):
        nxt = types[i + 1] if i + 1 < len(exts) else 0
        ln = (len(content) + 2) // 4
        body += bytes([ln]) + content + bytes([nxt])
    opt = struct.pack("!HBB", 0, 0, types[0]) + body
    return struct.pack("!BBHI", 0x34, 0xFF, len(opt) + len(inner), teid) + opt + inner


def batch(
    frames: list[bytes],
    linktype: int = LINKTYPE_ETHERNET,
    *,
    first_frame: int = 1,
    ts: list[int] | None = None,
    ifindex: int = 0,
    direction: int = 0,
) -> RecordBatch:
    n = len(frames)
    lens = [len(f) for f in frames]
    return RecordBatch(
        data=b"".join(frames),
        offset=np.array([sum(lens[:i]) for i in range(n)], np.int64),
        caplen=np.array(lens, np.uint32),
        origlen=np.array(lens, np.uint32),
        ts_ns=np.array(ts if ts is not None else [T0 + i for i in range(n)], np.int64),
        ifindex=np.full(n, ifindex, np.uint32),
        direction=np.full(n, direction, np.uint8),
        linktype=linktype,
        first_frame=first_frame,
    )


def run(frames: list[bytes], linktype: int = LINKTYPE_ETHERNET, **kw):
    """Decode `frames` with a fresh decoder; return (payloads, counters without `frames`)."""
    c: Counter[str] = Counter()
    d = Decoder(c, **kw)
    out = d.decode(batch(frames, linktype))
    counts = {k: v for k, v in c.items() if v and k != "frames"}
    return out, counts
