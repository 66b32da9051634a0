"""The cycle collector's policy for a sipcm process (the CLI, a pipeline, a worker).

Nothing here imports more than `gc`: the CLI raises the threshold before it imports click and
the rest of start-up, which otherwise ran about ten collections at the default gen0 threshold
over the objects that start-up keeps (22,000 at a replay's `gc.freeze`): 8 M instructions, 2%
of a one-call replay.

Survivors are frozen (`SurvivorFreezer`) in a `sipcm` process (the command's entry point
calls `freeze_survivors`; its forked workers inherit it; a program that only imports sipcm
keeps its own objects' collection as it was): after each collection, the batch loop moves
every object then alive to the permanent generation, so no later collection scans it again.
At high message rates the state that outlives a collection is large (33,000 calls up at
47,000 msgs/s: 180,000 tracked objects in gen1 at its first collection, calls' messages,
payloads, name-addrs, legs), and the older generations' passes over it cost 16-18% of a
replay's CPU with pauses of 0.39-0.58 s (live, such a pause fills the kernel's ring). Frozen
objects are still freed by reference counting; what the collector no longer does is find
reference cycles among them, and the pipeline makes none (a replay with the collector off
leaves no cyclic garbage: tests/unit/test_gcpolicy.py).
"""

from __future__ import annotations

import gc

# The hot path makes no reference cycles: its ~30 containers per message die by reference
# counting, while dialogs, slim messages and fingerprints live for seconds. At the default
# gen0 threshold (700) the cycle collector ran ~16 times per 1,000 messages and its gen1/gen2
# passes re-scanned that live set: about 20% of replay time, growing with the active entries.
# A large young generation keeps collection (still on, for rare cycles) to a few passes.
_GC_GEN0 = 100_000


def tune_gc() -> None:
    """Raise the cycle collector's gen0 threshold once per process (never lowers it)."""
    gen0, gen1, gen2 = gc.get_threshold()
    if 0 < gen0 < _GC_GEN0:
        gc.set_threshold(_GC_GEN0, gen1, gen2)


_freezing = False


def freeze_survivors() -> None:
    """Let every `SurvivorFreezer` in this process (and in the workers it forks) freeze."""
    global _freezing
    _freezing = True


def freezing() -> bool:
    """Whether `freeze_survivors` was called in this process."""
    return _freezing


def _collections() -> int:
    return sum(int(g["collections"]) for g in gc.get_stats())


class SurvivorFreezer:
    """Call `after_batch()` after each batch (or chunk) is processed: if the collector ran
    since the last call, what is alive now is frozen (`gc.freeze`)."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen = _collections()

    def after_batch(self) -> bool:
        """Freeze if a collection ran since the last call; whether it froze."""
        if not _freezing:
            return False
        n = _collections()
        if n == self._seen:
            return False
        self._seen = n
        gc.freeze()
        return True
