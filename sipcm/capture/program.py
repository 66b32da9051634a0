"""Load the kernel program (bpf/sipcm.bpf.c) with BCC and talk to its maps.

Input: compile-time choices (snap length, ring size) and run-time port sets. Output: loaded
program fds for attach.py, the ring map fd for ring.py, summed per-CPU counters. This is the
only module that imports BCC, and it does so lazily so that replay never needs it. It never
attaches anything (attach.py does) and never edits the C source: choices are cflags.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sipcm.capture.privileges import missing_load_caps
from sipcm.errors import CaptureError


def _bpf_dir() -> Path:
    """bpf/ of the checkout, else the copy `make install` puts inside the installed package."""
    package = Path(__file__).resolve().parent.parent
    for d in (package.parent / "bpf", package / "bpf"):
        if (d / "sipcm.bpf.c").is_file():
            return d
    return package.parent / "bpf"  # missing: loading says which file


BPF_DIR = _bpf_dir()
SOURCE = BPF_DIR / "sipcm.bpf.c"

# Mirrors enum sipcm_counter in bpf/sipcm.h (same order).
COUNTER_NAMES = (
    "seen",
    "selected",
    "copied",
    "truncated",
    "ring_full_lost",
    "load_failed",
    "vxlan_inner",
    "frag_first",
    "frag_matched",
    "frag_unmatched",
    "heuristic",
    "short",
)
CFG_HEURISTIC = 0
MAX_SNAP_LEN = 65535
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
XDP_PROG = "sipcm_xdp"
EGRESS_PROG = "sipcm_egress"


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """Compile-time choices; each becomes one -D flag."""

    snap_len: int = MAX_SNAP_LEN
    ring_size: int = 16 << 20
    frag_entries: int = 16384


def possible_cpus() -> int:
    """Number of possible CPU ids (highest id + 1), as the kernel sizes per-CPU maps."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    highest = 0
    for part in text.split(","):
        highest = max(highest, int(part.split("-")[-1]))
    return highest + 1


def cflags(opts: BuildOptions) -> list[str]:
    """The compiler flags for `opts` (validated)."""
    if not 64 <= opts.snap_len <= MAX_SNAP_LEN:
        raise CaptureError(
            f"snap length {opts.snap_len} out of range", "use 64..65535 (default 65535)"
        )
    pages, rem = divmod(opts.ring_size, PAGE_SIZE)
    if rem or pages < 2 or pages & (pages - 1):
        raise CaptureError(
            f"ring size {opts.ring_size} is not a power-of-two number of pages",
            "use e.g. 16777216 (16 MiB)",
        )
    mask = (1 << opts.snap_len.bit_length()) - 1
    return [
        f"-I{BPF_DIR}",
        f"-DSIPCM_SNAP_LEN={opts.snap_len}",
        f"-DSIPCM_SNAP_MASK={mask:#x}",
        f"-DSIPCM_NSLOTS={2 * possible_cpus()}",
        f"-DSIPCM_RING_PAGES={pages}",
        f"-DSIPCM_FRAG_ENTRIES={opts.frag_entries}",
        "-Wno-unused-function",
    ]


def print_bpf(opts: BuildOptions | None = None) -> str:
    """The C source as compiled, preceded by the cflags used (for `--print-bpf`)."""
    opts = opts or BuildOptions()
    parts = [f"// cflags: {' '.join(cflags(opts))}\n"]
    for name in ("sipcm.h", "parsing.h", "sipcm.bpf.c"):
        parts.append(f"// ===== bpf/{name} =====\n{(BPF_DIR / name).read_text()}")
    return "\n".join(parts)


def _import_bcc() -> Any:
    try:
        import bcc  # Debian python3-bpfcc; imported here only
    except ImportError as exc:
        raise CaptureError(
            "BCC Python bindings not importable",
            "apt-get install python3-bpfcc (not PyPI's 'bcc'); run `sipcm doctor`",
        ) from exc
    return bcc


def bcc_version() -> str | None:
    """The version of BCC's Python bindings, None when they do not import."""
    try:
        from bcc.version import __version__
    except ImportError:
        return None
    return str(__version__)


class Program:
    """The loaded XDP + egress programs and their maps."""

    def __init__(self, opts: BuildOptions | None = None) -> None:
        self.opts = opts or BuildOptions()
        missing = missing_load_caps()
        if missing:
            raise CaptureError(
                f"live capture needs root or {', '.join(missing)}",
                "run with sudo (or as root), or grant the capabilities (the systemd unit does)",
            )
        flags = cflags(self.opts)
        bcc = _import_bcc()
        release = os.uname().release
        if not Path(f"/lib/modules/{release}/build").exists() and not os.environ.get(
            "BCC_KERNEL_SOURCE"
        ):
            raise CaptureError(
                f"kernel headers missing at /lib/modules/{release}/build",
                "apt-get install linux-headers-amd64 and link build/source (make system)",
            )
        try:
            self.bpf = bcc.BPF(src_file=str(SOURCE).encode(), cflags=flags)
            self.xdp_fn = self.bpf.load_func(XDP_PROG.encode(), bcc.BPF.XDP)
            self.egress_fn = self.bpf.load_func(EGRESS_PROG.encode(), bcc.BPF.SCHED_CLS)
        except Exception as exc:  # BCC raises plain Exception for compile/verify errors
            raise CaptureError(
                f"cannot load the BPF program: {str(exc).splitlines()[0]}",
                "run `sipcm doctor`",
            ) from exc
        self._ports = self.bpf[b"sip_ports"]
        self._vxlan = self.bpf[b"vxlan_ports"]
        self._config = self.bpf[b"config"]
        self._counters = self.bpf[b"counters"]
        self._sip_set: set[int] = set()
        self._vxlan_set: set[int] = set()

    @property
    def xdp_fd(self) -> int:
        return int(self.xdp_fn.fd)

    @property
    def egress_fd(self) -> int:
        return int(self.egress_fn.fd)

    @property
    def ring_fd(self) -> int:
        """File descriptor of the ringbuf map."""
        return int(self.bpf[b"events"].map_fd)

    @property
    def ring_size(self) -> int:
        return self.opts.ring_size

    def _set(self, table: Any, old: set[int], ports: Iterable[int]) -> set[int]:
        new = {int(p) for p in ports}
        bad = [p for p in new if not 0 < p < 65536]
        if bad:
            raise CaptureError(f"invalid port {bad[0]}", "ports are 1..65535")
        for p in new - old:
            table[ctypes.c_int(p)] = ctypes.c_uint8(1)
        for p in old - new:
            table[ctypes.c_int(p)] = ctypes.c_uint8(0)
        return new

    def set_ports(self, sip_ports: Iterable[int], vxlan_ports: Iterable[int] = ()) -> None:
        """Replace the SIP and VXLAN port sets (takes effect for the next packet)."""
        self._sip_set = self._set(self._ports, self._sip_set, sip_ports)
        self._vxlan_set = self._set(self._vxlan, self._vxlan_set, vxlan_ports)

    def set_heuristic(self, on: bool) -> None:
        """Switch the payload-prefix selection on or off."""
        self._config[ctypes.c_int(CFG_HEURISTIC)] = ctypes.c_uint32(1 if on else 0)

    def counters(self) -> dict[str, int]:
        """Kernel counters summed over CPUs, by name."""
        out = {}
        for i, name in enumerate(COUNTER_NAMES):
            out[name] = int(sum(self._counters[ctypes.c_int(i)]))
        return out

    def close(self) -> None:
        """Unload the programs and free the maps."""
        bpf, self.bpf = self.bpf, None
        if bpf is not None:
            bpf.cleanup()
