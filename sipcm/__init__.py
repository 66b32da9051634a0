"""sipcm: passive SIP monitoring sensor (BPF capture, SIP correlation, ECS events)."""

import os

# numpy's OpenBLAS would start an idle worker thread per core at import. sipcm does no linear
# algebra, and `attach` drops its capabilities while it is the only thread (capabilities
# belong to threads; see sipcm/capture/privileges.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"

# Compiled hot modules when a current build is present, else their pure Python sources.
from sipcm import accel

accel.guard()
