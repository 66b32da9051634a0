"""The main process's shard gets the share of the keys at which it is as busy as a worker."""

from __future__ import annotations

import pytest

from sipcm.sip.shardkey import BUCKETS
from sipcm.workers import shares
from sipcm.workers.shares import local_share, weights


def test_local_share_balances_the_measured_costs() -> None:
    for n in (2, 3, 4, 5):
        f = local_share(n)
        main = shares.DISPATCH_US + f * shares.SHARD_US
        worker = (1 - f) / (n - 1) * (shares.SHARD_US + shares.CHANNEL_US)
        assert main == pytest.approx(worker)
    assert 0.4 < local_share(2) < 0.42
    assert local_share(6) == local_share(16) == 0.0  # dispatching is a worker's load already
    assert local_share(1) == 1.0


def test_weights_cover_every_bucket_once() -> None:
    assert weights(2, local=True) == [600, 424]
    assert weights(3, local=True) == [405, 404, 215]
    assert weights(6, local=True)[-1] == 0
    assert weights(3, local=False) == [342, 341, 341]
    for n in range(1, 17):
        for local in (True, False):
            w = weights(n, local=local)
            assert len(w) == n
            assert sum(w) == BUCKETS
