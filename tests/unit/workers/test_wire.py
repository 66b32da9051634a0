"""The dispatcher's packed parts come back, after marshal, as the very items that went in."""

from __future__ import annotations

import marshal

from sipcm.decode.packet import Payload, Tunnel
from sipcm.sip.shardkey import shard_table
from sipcm.workers.wire import NUMBERS, OBJECTS, pack_items, route, unpack_items

FIELDS = (
    "data", "ts_ns", "src_ip", "dst_ip", "src_port", "dst_port", "transport", "ip_version",
    "on_sip_port", "ifindex", "direction", "vlan", "reassembled", "frame_no",
)  # fmt: skip
T0 = 1_733_500_000_123_456_789  # a capture time in ns: beyond marshal's 32-bit integers


def _items() -> list:
    tunnel = Tunnel("vxlan", "192.0.2.1", "192.0.2.2", 4789, 4789, 77)
    return [
        (0, T0, Payload(b"INVITE a", T0, "10.0.0.1", "10.0.0.2", 5060, 5060, "udp", 4, True)),
        # a clock ahead of the capture time (a late packet), a gap of hours, every field set
        (7, T0 + 9_000_000_000_000, Payload(
            b"BYE b", T0 + 5, "2001:db8::1", "2001:db8::2", 5070, 5080, "tcp", 6, False,
            3, "ingress", 100, tunnel, True, 42,
        )),
        (8, T0 + 9_000_000_000_000, Payload(b"", T0 - 1, "a", "b", 0, 0, "udp", 4, True)),
    ]  # fmt: skip


def _same(got: list, want: list) -> None:
    assert len(got) == len(want)
    for (seq, clk, p), (seq2, clk2, p2) in zip(got, want, strict=True):
        assert (seq, clk) == (seq2, clk2)
        for name in FIELDS:
            a, b = getattr(p, name), getattr(p2, name)
            assert (type(a), a) == (type(b), b), name
        if p2.tunnel is None:
            assert p.tunnel is None
        else:
            t, t2 = p.tunnel, p2.tunnel
            assert (t.kind, t.src_ip, t.dst_ip, t.src_port, t.dst_port, t.vni) == (
                t2.kind, t2.src_ip, t2.dst_ip, t2.src_port, t2.dst_port, t2.vni,
            )  # fmt: skip


def test_packed_items_round_trip_through_marshal() -> None:
    items = _items()
    _same(unpack_items(marshal.loads(marshal.dumps(pack_items(items)))), items)
    assert unpack_items(marshal.loads(marshal.dumps(pack_items([])))) == []


def test_route_packs_every_part_but_the_local_one() -> None:
    items = _items()
    parts, by_parse = route(items, shard_table([512, 512]), 2, 1)
    assert by_parse == 3  # not SIP enough for the fast key: parsed (and found no key)
    local = parts[1]
    assert all(item in items for item in local)
    back = unpack_items(marshal.loads(marshal.dumps(parts[0])))
    _same(sorted(back + local, key=lambda i: i[0]), items)


def test_a_part_is_three_columns_with_times_as_small_integers() -> None:
    data, nums, objs = pack_items(_items())
    assert data == b"INVITE aBYE b"  # every payload's bytes, concatenated
    assert len(nums) == 3 * NUMBERS
    assert len(objs) == 3 * OBJECTS
    rows = [nums[k : k + NUMBERS] for k in range(0, len(nums), NUMBERS)]
    # the clock as its step from the previous one, the capture time as its lag behind it
    assert [r[1] for r in rows] == [T0, 9_000_000_000_000, 0]
    assert [r[2] for r in rows] == [0, 9_000_000_000_000 - 5, 9_000_000_000_000 + 1]
    assert [r[3] for r in rows] == [8, 5, 0]  # each payload's length
    assert objs[:5] == ["10.0.0.1", "10.0.0.2", "udp", None, None]
    assert objs[8:10] == ["ingress", ("vxlan", "192.0.2.1", "192.0.2.2", 4789, 4789, 77)]
