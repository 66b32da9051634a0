"""A chunk between the dispatcher and the workers, split between shards by shard key in one
pass (the main process's own part stays as it is), each worker's part packed as columns, so
that it marshals in one C call and unpacks without a marshalled object per payload:

    (data, numbers, objects)

- `data`: every payload's bytes, concatenated (one copy; the worker slices them back out),
- `numbers`: `NUMBERS` integers per payload: sequence number, the clock as its step from the
  part's previous clock, the capture time as its lag behind the clock, the length of its
  data, both ports in one, the IP version, flags and interface index in one, VLAN, frame
  number. Each is small, so marshal writes and reads it as a 32-bit integer (a nanosecond
  timestamp would be a multi-digit long, several hundred instructions each way),
- `objects`: `OBJECTS` per payload: source and destination address, transport, direction
  and tunnel (a tuple or None). The address and transport strings are the decoder's shared
  objects, so marshal writes each once per part and refers back to it after that, and the
  worker gets one shared string per address (its hash computed once).

A tuple of 17 marshalled values per payload cost about 4,200 instructions to build and
marshal and 4,400 to load and turn back into a payload (callgrind, 3,000 generated calls).
"""

from __future__ import annotations

from typing import Any, Final

from sipcm.decode.packet import Payload, Tunnel
from sipcm.shard import Item
from sipcm.sip.message import SipMessage
from sipcm.sip.parser import parse
from sipcm.sip.shardkey import BUCKETS, message_shard_key, shard_in, shard_key

NUMBERS: Final = 8  # per payload: see `_add`
OBJECTS: Final = 5
_NO_VLAN: Final = -1
_ON_SIP_PORT: Final = 16  # flag bits above the IP version (4 or 6)
_REASSEMBLED: Final = 32
_VERSION_MASK: Final = 15

# One part as it is built: (data, numbers, objects) before it is packed.
Columns = tuple[list[bytes], list[int], list[Any]]
# ... and as it is sent.
Part = tuple[bytes, list[int], list[Any]]


def _add(cols: Columns, seq: int, clk: int, prev: int, p: Payload) -> None:
    """Append one payload to a part's columns (`prev`: the part's previous clock, 0 for the
    first)."""
    data = p.data
    cols[0].append(data)
    nums = cols[1]
    nums.append(seq)
    nums.append(clk - prev)
    nums.append(clk - p.ts_ns)
    nums.append(len(data))
    nums.append((p.src_port << 16) | p.dst_port)
    flags = p.ip_version
    if p.on_sip_port:
        flags |= _ON_SIP_PORT
    if p.reassembled:
        flags |= _REASSEMBLED
    nums.append(flags | (p.ifindex << 8))
    vlan = p.vlan
    nums.append(_NO_VLAN if vlan is None else vlan)
    nums.append(p.frame_no)
    objs = cols[2]
    objs.append(p.src_ip)
    objs.append(p.dst_ip)
    objs.append(p.transport)
    objs.append(p.direction)
    t = p.tunnel
    objs.append(None if t is None else (t.kind, t.src_ip, t.dst_ip, t.src_port, t.dst_port, t.vni))


def _columns() -> Columns:
    return ([], [], [])


def _packed(cols: Columns) -> Part:
    return b"".join(cols[0]), cols[1], cols[2]


def pack_items(items: list[Item]) -> Part:
    """(seq, clock, Payload) items -> one packed part (see the module docstring)."""
    cols = _columns()
    prev = 0
    for seq, clk, p in items:
        _add(cols, seq, clk, prev, p)
        prev = clk
    return _packed(cols)


def route(items: list[Item], table: bytes, n: int, local: int) -> tuple[list[Any], int]:
    """Split a chunk between `n` shards by shard key (`table`: sipcm.sip.shardkey.shard_table),
    each part packed (`pack_items`) except shard `local`'s (run in this process; -1: none),
    which keeps the items as they are; also how many payloads needed a full parse for their
    key. A payload with no key at all (not SIP) goes by its sequence number: it only makes
    a parse error."""
    cols = [_columns() for _ in range(n)]
    clocks = [0] * n  # each part's last clock
    mine: list[Item] = []
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
            mine.append(item)
        else:
            _add(cols[i], seq, clk, clocks[i], p)
            clocks[i] = clk
    parts: list[Any] = [mine if i == local else _packed(cols[i]) for i in range(n)]
    return parts, by_parse


def unpack_items(part: Part) -> list[Item]:
    """The inverse of `pack_items`."""
    blob, nums, objs = part
    out: list[Item] = []
    clk = 0
    off = 0
    k = 0
    j = 0
    for _ in range(len(nums) // NUMBERS):
        seq = nums[k]
        clk += nums[k + 1]
        end = off + nums[k + 3]
        ports = nums[k + 4]
        flags = nums[k + 5]
        vlan = nums[k + 6]
        t = objs[j + 4]
        p = Payload(
            blob[off:end], clk - nums[k + 2], objs[j], objs[j + 1], ports >> 16, ports & 0xFFFF,
            objs[j + 2], flags & _VERSION_MASK, (flags & _ON_SIP_PORT) != 0, flags >> 8,
            objs[j + 3], None if vlan == _NO_VLAN else vlan,
            None if t is None else Tunnel(*t), (flags & _REASSEMBLED) != 0, nums[k + 7],
        )  # fmt: skip
        out.append((seq, clk, p))
        off = end
        k += NUMBERS
        j += OBJECTS
    return out
