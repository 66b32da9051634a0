"""How the key space is split between shards: the main process's own shard gets less.

With `workers: N` there are N shards: N - 1 worker processes and one in the main process,
which also reads, decodes, keys, merges and writes. Equal shards would leave the main
process the bottleneck, so its shard is given the share `f` of the keys at which it is as
busy as each worker, from the costs per message measured on the compiled build
(`python -m bench.workers`, README "Workers"):

    main:   DISPATCH_US + f * SHARD_US
    worker: (1 - f) / (N - 1) * (SHARD_US + CHANNEL_US)

    f = (SHARD_US + CHANNEL_US - (N - 1) * DISPATCH_US) / (N * SHARD_US + CHANNEL_US)

that is 41% of the keys with 2 shards, 21% with 3, 11% with 4, 4% with 5 and none from 6
on, where dispatching alone keeps the main process as busy as a worker.
The split is a fixed table of hash buckets (sipcm.sip.shardkey.shard_table), so the same
input and worker count always map a key to the same shard; which shard holds a key never
changes what is published, only which process does the work.
"""

from __future__ import annotations

from sipcm.sip.shardkey import BUCKETS

# Main-process CPU per message besides its shard: pcap or ring read, decode, shard key,
# packing the workers' parts, merge, rates, NDJSON output.
DISPATCH_US = 4.3
# The shard stage per message (parse, track, build, encode), in whichever process.
SHARD_US = 20.0
# What a worker adds per message: unpacking, the channel, the notices.
CHANNEL_US = 1.5


def local_share(shards: int) -> float:
    """The share of the keys the main process's shard owns among `shards` (the rest split
    evenly between the workers)."""
    if shards <= 1:
        return 1.0
    remote = SHARD_US + CHANNEL_US
    f = (remote - (shards - 1) * DISPATCH_US) / (shards * SHARD_US + CHANNEL_US)
    return max(0.0, f)


def weights(shards: int, *, local: bool) -> list[int]:
    """Buckets per shard: `local`, the last shard is the main process's (`local_share`) and
    the others split the rest as evenly as the buckets allow; else all get equal shares."""
    own = round(BUCKETS * local_share(shards)) if local else 0
    remote = shards - 1 if local else shards
    if remote == 0:
        return [BUCKETS]
    per, extra = divmod(BUCKETS - own, remote)
    out = [per + (1 if i < extra else 0) for i in range(remote)]
    return [*out, own] if local else out
