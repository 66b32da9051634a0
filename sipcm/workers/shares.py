"""How the key space is split between shards: the main process's own shard gets less.

With `workers: N` there are N shards: N - 1 worker processes and one in the main process,
which also reads, decodes, keys, merges and writes. Equal shards would leave the main
process the bottleneck, so its shard is given the share `f` of the keys at which it is as
busy as each worker, from the costs per message measured on the compiled build, which
depend on how the input arrives (`mode`):

    main:   DISPATCH_US[mode] + f * SHARD_US[mode]
    worker: (1 - f) / (N - 1) * (SHARD_US[mode] + CHANNEL_US[mode])

    f = (S + C - (N - 1) * D) / (N * S + C)

Replay reads a capture file in chunks of thousands of payloads; `python -m bench.workers`
prints the three costs of each run and the share they give (2026-12-07, after the shard
key's inline name comparison: D 3.6-3.9, S 14.7, C 2.1-2.3 µs): 41% of the keys with 2
shards, 20% with 3, 9% with 4, 2% with 5 and none from 6 on. Live capture reads the
kernel's ring, one chunk per poll interval, with the web interface's flow store and history
on, so a message's shard stage costs more there (`python -m bench.live --workers 2`
reports each process's CPU per message; at its top steps, 48,000-60,000 SIP messages/s,
with and without non-SIP traffic, the workers spent 13-18 µs per message against the main
process's 11-15 at a 34% share, so D 5.2, S 21.8, C 2.0 against 24-26 µs per message in one
process): 41% with 2 shards, 20% with 3, 9% with 4, 3% with 5, none from 6 on.
The split is a fixed table of hash buckets (sipcm.sip.shardkey.shard_table), so the same
input, worker count and mode always map a key to the same shard; which shard holds a key
never changes what is published, only which process does the work.
"""

from __future__ import annotations

from typing import Final

from sipcm.sip.shardkey import BUCKETS

REPLAY: Final = "replay"
LIVE: Final = "live"
# Main-process CPU per message besides its shard: reading (pcap file or kernel ring),
# decode, shard key, packing the workers' parts, merge, rates, NDJSON output.
DISPATCH_US: Final = {REPLAY: 3.8, LIVE: 5.2}
# The shard stage per message (parse, track, build, encode), in whichever process; live
# capture keeps the flow store and the dashboard's history for the web interface.
SHARD_US: Final = {REPLAY: 14.7, LIVE: 21.8}
# What a worker adds per message it handles: unpacking, the channel, the notices.
CHANNEL_US: Final = {REPLAY: 2.2, LIVE: 2.0}


def balanced_share(shards: int, dispatch_us: float, shard_us: float, channel_us: float) -> float:
    """The main process's share of the keys at which it is as busy as each of the
    `shards - 1` workers, given the costs per message (see the module docstring)."""
    if shards <= 1:
        return 1.0
    remote = shard_us + channel_us
    f = (remote - (shards - 1) * dispatch_us) / (shards * shard_us + channel_us)
    return max(0.0, f)


def local_share(shards: int, mode: str = REPLAY) -> float:
    """The share of the keys the main process's shard owns among `shards` (the rest split
    evenly between the workers)."""
    return balanced_share(shards, DISPATCH_US[mode], SHARD_US[mode], CHANNEL_US[mode])


def weights(shards: int, *, local: bool, mode: str = REPLAY) -> list[int]:
    """Buckets per shard: `local`, the last shard is the main process's (`local_share`) and
    the others split the rest as evenly as the buckets allow; else all get equal shares."""
    own = round(BUCKETS * local_share(shards, mode)) if local else 0
    remote = shards - 1 if local else shards
    if remote == 0:
        return [BUCKETS]
    per, extra = divmod(BUCKETS - own, remote)
    out = [per + (1 if i < extra else 0) for i in range(remote)]
    return [*out, own] if local else out
