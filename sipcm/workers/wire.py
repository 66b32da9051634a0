"""A chunk between the dispatcher and the workers: payloads as plain tuples, so a whole part
marshals in one C call (no pickling), split between shards by shard key in one pass (the
main process's own part stays as it is).

Times go as differences that fit marshal's 32-bit integers: the clock as the step from the
previous payload's clock in the part (the clock never goes back), the capture time as how
far it is behind the clock. A nanosecond timestamp itself is a multi-digit long, several
hundred instructions more to write and to read back, twice per payload."""

from __future__ import annotations

from sipcm.decode.packet import Payload, Tunnel
from sipcm.shard import Item
from sipcm.sip.message import SipMessage
from sipcm.sip.parser import parse
from sipcm.sip.shardkey import BUCKETS, message_shard_key, shard_in, shard_key


def _packed(seq: int, clk: int, prev: int, p: Payload) -> tuple:
    """One payload, `prev` the clock of the part's previous one (0 for the first)."""
    t = p.tunnel
    return (
        seq, clk - prev, p.data, clk - p.ts_ns, p.src_ip, p.dst_ip, p.src_port, p.dst_port,
        p.transport, p.ip_version, p.on_sip_port, p.ifindex, p.direction, p.vlan,
        None if t is None else (t.kind, t.src_ip, t.dst_ip, t.src_port, t.dst_port, t.vni),
        p.reassembled, p.frame_no,
    )  # fmt: skip


def pack_items(items: list[Item]) -> list[tuple]:
    """(seq, clock, Payload) items -> flat tuples (one part)."""
    out: list[tuple] = []
    prev = 0
    for seq, clk, p in items:
        out.append(_packed(seq, clk, prev, p))
        prev = clk
    return out


def route(items: list[Item], table: bytes, n: int, local: int) -> tuple[list[list[tuple]], int]:
    """Split a chunk between `n` shards by shard key (`table`: sipcm.sip.shardkey.shard_table),
    each part packed except shard `local`'s (run in this process; -1: none), which keeps
    the items as they are; also how many payloads needed a full parse for their key. A
    payload with no key at all (not SIP) goes by its sequence number: it only makes a
    parse error."""
    parts: list[list[tuple]] = [[] for _ in range(n)]
    clocks = [0] * n  # each part's last clock
    by_parse = 0
    for item in items:
        seq, clk, p = item
        data = p.data
        key = shard_key(data)
        if key is None:
            by_parse += 1
            msg = parse(data)
            key = message_shard_key(msg) if isinstance(msg, SipMessage) else None
        i = shard_in(key, table) if key is not None else table[seq % BUCKETS]
        if i == local:
            parts[i].append(item)
        else:
            parts[i].append(_packed(seq, clk, clocks[i], p))
            clocks[i] = clk
    return parts, by_parse


def unpack_items(rows: list[tuple]) -> list[Item]:
    """The inverse of `pack_items`."""
    out: list[Item] = []
    clk = 0
    for r in rows:
        clk += r[1]
        t = r[14]
        p = Payload(
            r[2], clk - r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
            None if t is None else Tunnel(*t), r[15], r[16],
        )  # fmt: skip
        out.append((r[0], clk, p))
    return out
