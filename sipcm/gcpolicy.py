"""The cycle collector's thresholds for a sipcm process (the CLI, a pipeline, a worker).

Nothing here imports more than `gc`: the CLI raises the threshold before it imports click and
the rest of start-up, which otherwise ran about ten collections at the default gen0 threshold
over the objects that start-up keeps (22,000 at a replay's `gc.freeze`): 8 M instructions, 2%
of a one-call replay.
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
