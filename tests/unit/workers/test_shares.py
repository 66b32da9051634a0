"""The main process's shard gets the share of the keys at which it is as busy as a worker."""

from __future__ import annotations

import pytest

from sipcm.sip.shardkey import BUCKETS
from sipcm.workers import shares
from sipcm.workers.shares import balanced_share, local_share, weights


def test_local_share_balances_the_measured_costs() -> None:
    for mode in (shares.REPLAY, shares.LIVE):
        for n in (2, 3):
            f = local_share(n, mode)
            main = shares.DISPATCH_US[mode] + f * shares.SHARD_US[mode]
            worker = (1 - f) / (n - 1) * (shares.SHARD_US[mode] + shares.CHANNEL_US[mode])
            assert main == pytest.approx(worker)
    assert 0.40 < local_share(2) < 0.42
    # Live, reading the ring costs the main process more, and so does each message's shard
    # stage (the web interface's flow store and history): about the same share.
    assert 0.40 < local_share(2, shares.LIVE) < 0.42
    assert 0.0 < local_share(5) < 0.03
    assert local_share(6) == local_share(16) == 0.0  # dispatching is a worker's load already
    assert local_share(6, shares.LIVE) == 0.0
    assert local_share(1) == local_share(1, shares.LIVE) == 1.0


def test_balanced_share_of_free_dispatching_is_an_equal_one() -> None:
    assert balanced_share(4, 0.0, 10.0, 0.0) == pytest.approx(0.25)
    # a worker's message costs more than the main process's own: the main process takes more
    assert balanced_share(2, 0.0, 10.0, 2.0) > 0.5
    # the main process's reading and merging leave it fewer keys, down to none
    assert balanced_share(2, 4.0, 10.0, 0.0) == pytest.approx(0.3)
    assert balanced_share(3, 20.0, 10.0, 0.0) == 0.0


def test_weights_cover_every_bucket_once() -> None:
    assert weights(2, local=True) == [599, 425]
    assert weights(3, local=True) == [409, 409, 206]
    assert weights(2, local=True, mode=shares.LIVE) == [606, 418]
    assert weights(6, local=True)[-1] == 0
    assert weights(3, local=False) == [342, 341, 341]
    for n in range(1, 17):
        for local, mode in ((True, shares.REPLAY), (True, shares.LIVE), (False, shares.REPLAY)):
            w = weights(n, local=local, mode=mode)
            assert len(w) == n
            assert sum(w) == BUCKETS
