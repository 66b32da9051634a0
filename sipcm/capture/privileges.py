"""Least privilege for live capture: once loaded and attached, run unprivileged.

Loading and attaching BPF programs needs root (or CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON); parsing
packets and serving HTTP does not. `resolve(run_as)` picks the user early (so a typo fails
before anything is attached); `drop()` then switches to that user, empties every capability
set (effective, permitted, inheritable, ambient and, when allowed, the bounding set) and sets
no_new_privs. What stays usable: file descriptors already open (BPF links detach when their
fds close, the ring is mmap'ed, map fds answer lookups and updates on kernels >= 6.5, the web
socket is bound).

Capabilities belong to threads: `drop()` refuses to run while other threads exist, so callers
drop before starting the web server thread, output threads or worker processes.

Attachments made through netlink (kernels without BPF links) outlive their fds and need
CAP_NET_ADMIN to remove. `DetachHelper` forks a small process before the drop that keeps only
CAP_NET_ADMIN, reads nothing but a pipe, and removes those attachments when the pipe closes:
when the sensor exits, however it exits (kill -9 included). The sensor itself keeps nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pwd
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sipcm.errors import CaptureError

if TYPE_CHECKING:
    from sipcm.capture.live import LiveCapture

log = logging.getLogger(__name__)

CAP_SYS_ADMIN = 21
CAP_NET_ADMIN = 12
CAP_SETGID = 6
CAP_SETUID = 7
CAP_SETPCAP = 8
CAP_PERFMON = 38
CAP_BPF = 39
# What loading and attaching needs without root: CAP_SYS_ADMIN stands in for BPF and PERFMON.
LOAD_CAPS = {CAP_BPF: "CAP_BPF", CAP_NET_ADMIN: "CAP_NET_ADMIN", CAP_PERFMON: "CAP_PERFMON"}
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
DEDICATED_USER = "sipcm"
FALLBACK_USER = "nobody"

_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


@dataclass(frozen=True)
class RunAs:
    """The account the sensor switches to."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def _oserror(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


def _prctl(option: int, arg2: int = 0, arg3: int = 0) -> None:
    if _libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), 0, 0) != 0:
        raise _oserror(f"prctl({option})")


def _mask(caps: Iterable[int]) -> int:
    out = 0
    for cap in caps:
        out |= 1 << cap
    return out


def capset(effective: int, permitted: int, inheritable: int = 0) -> None:
    """Set the calling thread's capability sets (64-bit masks) with the raw system call."""
    hdr = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        data[i].effective = (effective >> (32 * i)) & 0xFFFFFFFF
        data[i].permitted = (permitted >> (32 * i)) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> (32 * i)) & 0xFFFFFFFF
    if _libc.capset(ctypes.byref(hdr), data) != 0:
        raise _oserror("capset")


def status(pid: int | str = "thread-self") -> dict[str, str]:
    """The Uid/Gid/Cap*/NoNewPrivs lines of /proc/PID/status (default: the calling thread)."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name.startswith(("Cap", "Uid", "Gid", "NoNewPrivs")):
                out[name] = value.strip()
    return out


def _has_cap(cap: int) -> bool:
    return bool(int(status()["CapEff"], 16) >> cap & 1)


def missing_load_caps() -> list[str]:
    """The capabilities this thread lacks to load and attach the programs ([] if none)."""
    if _has_cap(CAP_SYS_ADMIN) and _has_cap(CAP_NET_ADMIN):
        return []
    return [name for cap, name in LOAD_CAPS.items() if not _has_cap(cap)]


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as f:
            return int(f.read())
    except OSError:
        return 40


def resolve(run_as: str) -> RunAs | None:
    """The account `run_as` names ("auto": sipcm if it exists, else nobody; "": None, stay).

    CaptureError if the user does not exist, or this process could not switch to it."""
    if run_as == "":
        return None
    names = (DEDICATED_USER, FALLBACK_USER) if run_as == "auto" else (run_as,)
    for name in names:
        try:
            pw = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
            break
        except KeyError:
            continue
    else:
        raise CaptureError(
            f"run_as: no user {run_as if run_as != 'auto' else ' or '.join(names)!r} on this host",
            f"create it (useradd --system --no-create-home {DEDICATED_USER}) or set run_as",
        )
    target = RunAs(pw.pw_name, pw.pw_uid, pw.pw_gid, _groups_of(pw))
    if os.getuid() != target.uid and not _has_cap(CAP_SETUID):
        raise CaptureError(
            f"run_as: cannot switch from uid {os.getuid()} to {target.name} (no CAP_SETUID)",
            "set run_as to the user sipcm runs as, or '' to keep it",
        )
    return target


def make_dirs(path: Path, owner: RunAs, mode: int) -> list[Path]:
    """Create directory `path` and its missing parents, outermost first, each with `mode` and
    owned by `owner` (what systemd's `StateDirectory=` does for a service's user); those that
    exist are left as they are. Returns the ones created (OSError as soon as one cannot be)."""
    missing: list[Path] = []
    d = path
    while not d.exists() and d != d.parent:
        missing.append(d)
        d = d.parent
    created: list[Path] = []
    for d in reversed(missing):
        d.mkdir(mode=mode)
        created.append(d)
        os.chown(d, owner.uid, owner.gid)
        os.chmod(d, mode)  # mkdir's mode is masked by the umask
    return created


def _groups_of(pw: pwd.struct_passwd) -> tuple[int, ...]:
    try:
        return tuple(os.getgrouplist(pw.pw_name, pw.pw_gid))
    except OSError:
        return (pw.pw_gid,)


def _threads() -> list[str]:
    """Names of this process's threads (kernel view: includes threads Python did not start)."""
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm", encoding="utf-8") as f:
                names.append(f.read().strip())
        except OSError:
            pass  # exited meanwhile
    return names


def drop(target: RunAs | None, keep: Iterable[int] = ()) -> str:
    """Become `target` holding only the `keep` capabilities, with no_new_privs set.

    Returns a one-line description for the log. Must run while this is the only thread."""
    if target is None:
        return "run_as is '': still root with every capability"
    deadline = time.monotonic() + 1.0
    while len(threads := _threads()) != 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # a joined thread can stay listed for a moment while it exits
    if len(threads) != 1:
        raise RuntimeError(f"privileges.drop() must run before other threads start: {threads}")
    keep_mask = _mask(keep)
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    if _has_cap(CAP_SETPCAP):
        for cap in range(_last_cap() + 1):
            if not keep_mask >> cap & 1:
                _prctl(PR_CAPBSET_DROP, cap)
    if os.getuid() != target.uid or os.getgid() != target.gid:
        _prctl(PR_SET_KEEPCAPS, 1 if keep_mask else 0)
        os.setgroups(list(target.groups))
        os.setresgid(target.gid, target.gid, target.gid)
        os.setresuid(target.uid, target.uid, target.uid)
        _prctl(PR_SET_KEEPCAPS, 0)
    capset(keep_mask, keep_mask, 0)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    st = status()
    if int(st["CapEff"], 16) != keep_mask or int(st["CapPrm"], 16) != keep_mask:
        raise CaptureError(f"capabilities still held after dropping them: {st}", None)
    kept = f"capabilities {keep_mask:#x}" if keep_mask else "no capabilities"
    return f"running as {target.name} (uid {target.uid}) with {kept}, no_new_privs"


def probe_unprivileged(check: Callable[[], object]) -> bool:
    """Whether `check()` (a bpf() call on an open fd) works without any capability.

    Kernels before 6.5 with kernel.unprivileged_bpf_disabled refuse every bpf() command to a
    process without CAP_BPF/CAP_SYS_ADMIN, even on fds it holds. Capabilities belong to
    threads, so a short-lived thread drops its own and tries."""
    result: list[bool] = []

    def run() -> None:
        try:
            capset(0, 0, 0)
            check()
            result.append(True)
        except OSError:
            result.append(False)
        except Exception:  # BCC raises its own exception types for a refused lookup
            result.append(False)

    t = threading.Thread(target=run, name="sipcm-cap-probe")
    t.start()
    t.join()
    return bool(result and result[0])


def bpf_capability() -> int:
    """The capability that lets a process use bpf(): CAP_BPF where the kernel has it."""
    return CAP_BPF if _last_cap() >= CAP_BPF else CAP_SYS_ADMIN


class DetachHelper:
    """A forked process holding only CAP_NET_ADMIN that runs `detach()` once the sensor
    closes the pipe or exits (any way, kill -9 included); `finish()` closes and waits."""

    def __init__(self, detach: Callable[[], None], target: RunAs | None) -> None:
        rfd, self._wfd = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - runs in the child
            self._child(rfd, detach, target)
        os.close(rfd)

    def _child(self, rfd: int, detach: Callable[[], None], target: RunAs | None) -> None:
        code = 1
        try:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)  # the sensor's exit (pipe EOF) ends us
            os.closerange(3, rfd)
            os.closerange(rfd + 1, os.sysconf("SC_OPEN_MAX"))
            drop(target, keep=(CAP_NET_ADMIN,))
            while os.read(rfd, 1):
                pass
            detach()
            code = 0
        except BaseException:
            log.exception("detach helper failed; `sipcm detach IFACE` removes what is left")
        finally:
            os._exit(code)

    def finish(self, timeout_s: float = 10.0) -> bool:
        """Close the pipe (the helper detaches) and wait for it; True if it exited 0."""
        if self._wfd >= 0:
            os.close(self._wfd)
            self._wfd = -1
        deadline = timeout_s
        while deadline > 0:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(st) == 0
            threading.Event().wait(0.05)
            deadline -= 0.05
        log.warning("detach helper %d did not finish in %.0f s", self.pid, timeout_s)
        return False


def secure(capture: LiveCapture, target: RunAs | None) -> DetachHelper | None:
    """After `capture` attached: hand its netlink attachments to a DetachHelper, then drop to
    `target` (keeping the bpf() capability only where the kernel needs it for open maps).

    Returns the helper to `finish()` after the capture closed (None without netlink parts)."""
    if target is None:
        log.warning("run_as is '': capture keeps running as root with every capability")
        return None
    from sipcm.capture.attach import release

    helper = None
    parts = capture.take_netlink()
    if parts:
        helper = DetachHelper(lambda: [release(p) for p in parts], target)
        log.info(
            "netlink attachments on %s: helper process %d (CAP_NET_ADMIN only) removes them "
            "when the sensor exits",
            ", ".join(p.ifname for p in parts),
            helper.pid,
        )
    try:
        keep: tuple[int, ...] = ()
        if not probe_unprivileged(capture.kernel_counters):
            keep = (bpf_capability(),)
            log.warning(
                "this kernel refuses bpf() on open maps without CAP_BPF (kernel < 6.5 with "
                "kernel.unprivileged_bpf_disabled set): keeping that one capability"
            )
        log.info("%s", drop(target, keep))
    except BaseException:
        if helper is not None:
            helper.finish()
        raise
    return helper
