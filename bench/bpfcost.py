"""What the kernel program costs per packet, for `bench.live`.

Two figures, both in ns per packet:
- `RunStats`: the running sensor's programs (found by name among the programs loaded after
  the sensor started), read from the kernel's BPF run-time statistics
  (`kernel.bpf_stats_enabled`, switched on for the benchmark and restored after): total
  `run_time_ns` / `run_cnt` per step, SIP and non-SIP frames mixed as sent. The statistics
  themselves cost two clock reads per run (~20-40 ns), included in the figure.
- `isolated_cost`: a separate copy of the program, loaded and never attached, run by
  `BPF_PROG_TEST_RUN` on one frame many times (the kernel's own loop and clock): the cost of
  one SIP frame (selected and copied to the ring) and of one non-SIP frame (parsed, not
  selected) apart.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

from sipcm.capture.attach import LIBBPF, _info

STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")
# Offsets in struct bpf_prog_info (include/uapi/linux/bpf.h).
_NAME = slice(64, 80)
_RUN_TIME_NS = 192
_RUN_CNT = 200
_INFO_SIZE = 232


def _u64(info: bytes, at: int) -> int:
    return int.from_bytes(info[at : at + 8], "little")


def sipcm_programs() -> dict[int, str]:
    """Id -> name of every loaded program whose name starts with "sipcm"."""
    out: dict[int, str] = {}
    cur, nxt = 0, ctypes.c_uint32()
    while LIBBPF.bpf_prog_get_next_id(cur, ctypes.byref(nxt)) == 0:
        cur = nxt.value
        fd = LIBBPF.bpf_prog_get_fd_by_id(cur)
        if fd < 0:
            continue
        try:
            name = _info(fd, _INFO_SIZE)[_NAME].split(b"\0", 1)[0].decode()
        finally:
            os.close(fd)
        if name.startswith("sipcm"):
            out[cur] = name
    return out


def prog_run_stats(prog_id: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of a loaded program; (0, 0) once it is gone."""
    fd = LIBBPF.bpf_prog_get_fd_by_id(prog_id)
    if fd < 0:
        return 0, 0
    try:
        info = _info(fd, _INFO_SIZE)
    finally:
        os.close(fd)
    if len(info) < _RUN_CNT + 8:
        return 0, 0
    return _u64(info, _RUN_TIME_NS), _u64(info, _RUN_CNT)


class RunStats:
    """The run-time statistics of the programs a sensor loaded after `before` was taken."""

    def __init__(self, before: set[int]) -> None:
        self.progs = {i: n for i, n in sipcm_programs().items() if i not in before}

    def read(self) -> dict[str, tuple[int, int]]:
        """Program name -> (run_time_ns, run_cnt) now."""
        return {name: prog_run_stats(i) for i, name in self.progs.items()}


def enable_stats() -> str | None:
    """Switch the kernel's BPF run-time statistics on; returns the previous setting (None
    when it cannot be changed)."""
    try:
        old = STATS_SYSCTL.read_text().strip()
        STATS_SYSCTL.write_text("1\n")
    except OSError:
        return None
    return old


def restore_stats(old: str | None) -> None:
    if old is not None:
        try:
            STATS_SYSCTL.write_text(old + "\n")
        except OSError:
            pass


def _test_run(prog_fd: int, frame: bytes, repeat: int) -> float:
    """Mean ns per run of the program on `frame`, `repeat` runs in the kernel's loop (the
    kernel program tests' BPF_PROG_TEST_RUN runner)."""
    from tests.unit.capture.bpf_frames import prog_run

    return float(prog_run(prog_fd, frame, repeat)[1])


@dataclass
class IsolatedCost:
    sip_ns: float  # a SIP frame: parsed, selected, copied to the ring
    non_sip_ns: float  # a non-SIP UDP frame: parsed, not selected
    sip_bytes: int


def isolated_cost(sip_frame: bytes, non_sip_frame: bytes, repeat: int = 5000) -> IsolatedCost:
    """The XDP program's cost per frame by `BPF_PROG_TEST_RUN` on an unattached copy (ring
    sized so that every SIP copy fits; the best of three runs of `repeat`)."""
    from sipcm.capture.program import BuildOptions, Program

    need = (len(sip_frame) + 64) * repeat * 3
    ring = 1 << max(need - 1, 4096).bit_length()
    prog = Program(BuildOptions(ring_size=ring))
    try:
        prog.set_ports((5060,), (4789,))
        fd = prog.xdp_fd
        sip = min(_test_run(fd, sip_frame, repeat) for _ in range(3))
        non = min(_test_run(fd, non_sip_frame, repeat) for _ in range(3))
    finally:
        prog.close()
    return IsolatedCost(sip, non, len(sip_frame))
