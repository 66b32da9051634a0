"""Payloads as plain tuples, so a whole chunk marshals in one C call (no pickling)."""

from __future__ import annotations

from sipcm.decode.packet import Payload, Tunnel
from sipcm.shard import Item


def pack_items(items: list[Item]) -> list[tuple]:
    """(seq, clock, Payload) items -> flat tuples."""
    out = []
    for seq, clk, p in items:
        t = p.tunnel
        out.append(
            (
                seq,
                clk,
                p.data,
                p.ts_ns,
                p.src_ip,
                p.dst_ip,
                p.src_port,
                p.dst_port,
                p.transport,
                p.ip_version,
                p.on_sip_port,
                p.ifindex,
                p.direction,
                p.vlan,
                None if t is None else (t.kind, t.src_ip, t.dst_ip, t.src_port, t.dst_port, t.vni),
                p.reassembled,
                p.frame_no,
            )
        )
    return out


def unpack_items(rows: list[tuple]) -> list[Item]:
    """The inverse of `pack_items`."""
    out: list[Item] = []
    for seq, clk, *f in rows:
        if f[12] is not None:
            f[12] = Tunnel(*f[12])
        out.append((seq, clk, Payload(*f)))
    return out
