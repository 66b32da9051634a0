"""How the key space is split between shards: the main process's own shard gets less.

With `workers: N` there are N shards: N - 1 worker processes and one in the main process,
which also reads, decodes, keys, merges and writes. Equal shards would leave the main
process the bottleneck, so its shard is given the share `f` of the keys at which it is as
busy as each worker, from the costs per message measured on the compiled build, which
depend on how the input arrives (`mode`):

    main:   DISPATCH_US[mode] + f * SHARD_US
    worker: (1 - f) / (N - 1) * (SHARD_US + CHANNEL_US[mode])

    f = (SHARD_US + CHANNEL_US - (N - 1) * DISPATCH_US) / (N * SHARD_US + CHANNEL_US)

Replay reads a capture file in chunks of thousands of payloads (`python -m bench.workers`):
41% of the keys with 2 shards, 20% with 3, 8% with 4, 1% with 5 and none from 6 on. Live
capture reads the kernel's ring, one small chunk per poll, so both sides pay the per-chunk
costs (notices, wake-ups, the web API's counter reads) on fewer messages (`python -m
bench.live --workers 2` reports each process's CPU per message): 34% with 2 shards, 8%
with 3, none from 4 on.
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
DISPATCH_US: Final = {REPLAY: 4.4, LIVE: 7.9}
# The shard stage per message (parse, track, build, encode), in whichever process.
SHARD_US: Final = 15.9
# What a worker adds per message it handles: unpacking, the channel, the notices.
CHANNEL_US: Final = {REPLAY: 2.9, LIVE: 4.2}


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
    return balanced_share(shards, DISPATCH_US[mode], SHARD_US, CHANNEL_US[mode])


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
