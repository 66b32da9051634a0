"""`sipcm doctor`: can this machine run live capture, and if not, what to do.

Output: a list of `Check`s (name, ok, detail, fix). Checks run in dependency order and skip
what cannot work (no BCC -> no program load). The attach check loads the real program and
attaches it to a veth pair in a temporary network namespace, which it always removes. Never
raises for a failed check; never touches real interfaces.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sipcm.capture.privileges import LOAD_CAPS, missing_load_caps

MIN_KERNEL = (5, 18)  # bpf_xdp_load_bytes, bpf_xdp_get_buff_len
LINK_KERNEL = (5, 9)  # XDP bpf_link
TCX_KERNEL = (6, 6)  # tcx bpf_link for egress
CAPS = {12: "CAP_NET_ADMIN", 21: "CAP_SYS_ADMIN", 38: "CAP_PERFMON", 39: "CAP_BPF"}
HEADERS_FIX = (
    "apt-get install linux-headers-amd64, then link /lib/modules/$(uname -r)/build -> "
    "/usr/src/linux-headers-*-amd64 and source -> /usr/src/linux-headers-*-common "
    "(`make system` does both)"
)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _kernel() -> tuple[int, int]:
    parts = os.uname().release.split("-")[0].split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def check_privileges() -> Check:
    status = Path("/proc/self/status").read_text()
    cap_eff = int(next(ln for ln in status.splitlines() if ln.startswith("CapEff:")).split()[1], 16)
    missing = [name for bit, name in CAPS.items() if not cap_eff >> bit & 1]
    if os.geteuid() == 0 and not missing:
        return Check("privileges", True, "root with CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN")
    if os.geteuid() != 0 and not missing_load_caps():  # e.g. the systemd unit's user
        held = ", ".join(LOAD_CAPS.values())
        return Check("privileges", True, f"uid {os.geteuid()} with {held} (enough to attach)")
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    return Check(
        "privileges", False, f"{who}, missing {', '.join(missing) or 'root'}", "run as root (sudo)"
    )


def check_kernel() -> Check:
    ver = _kernel()
    btf = Path("/sys/kernel/btf/vmlinux").exists()
    detail = f"{os.uname().release}, BTF {'present' if btf else 'absent (not needed by BCC)'}"
    if ver < MIN_KERNEL:
        return Check("kernel", False, detail, "kernel 5.18 or later is needed (bpf_xdp_load_bytes)")
    links = (
        "XDP and egress via BPF links"
        if ver >= TCX_KERNEL
        else (
            "XDP via BPF link, egress via tc filter (use `sipcm detach` after a crash)"
            if ver >= LINK_KERNEL
            else "netlink attach only"
        )
    )
    return Check("kernel", True, f"{detail}; {links}")


def _map_create(map_type: int, key: int, value: int, entries: int) -> int:
    lib = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
    lib.bpf_map_create.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint32,
        ctypes.c_uint32,
        ctypes.c_uint32,
        ctypes.c_void_p,
    ]
    fd = lib.bpf_map_create(map_type, b"sipcm_doctor", key, value, entries, None)
    if fd >= 0:
        os.close(fd)
        return 0
    return -fd if fd < 0 else ctypes.get_errno()


def check_bpf_syscall() -> Check:
    try:
        err = _map_create(2, 4, 4, 1)  # BPF_MAP_TYPE_ARRAY
    except OSError as exc:
        return Check("bpf syscall", False, f"libbpf not loadable: {exc}", "apt-get install libbpf1")
    fs = "mounted" if os.path.ismount("/sys/fs/bpf") else "not mounted (not needed)"
    if err:
        return Check(
            "bpf syscall",
            False,
            f"map create failed: {os.strerror(err)}",
            "run as root; check kernel.unprivileged_bpf_disabled and lockdown",
        )
    return Check("bpf syscall", True, f"map create works; /sys/fs/bpf {fs}")


def check_ringbuf() -> Check:
    try:
        err = _map_create(27, 0, 0, os.sysconf("SC_PAGE_SIZE"))  # BPF_MAP_TYPE_RINGBUF
    except OSError as exc:
        return Check("ringbuf", False, str(exc), "apt-get install libbpf1")
    if err:
        return Check("ringbuf", False, f"ringbuf map: {os.strerror(err)}", "kernel 5.8+ needed")
    return Check("ringbuf", True, "BPF ring buffer maps supported")


def check_bcc() -> Check:
    try:
        import bcc
    except ImportError:
        return Check(
            "bcc",
            False,
            "module bcc not importable",
            "apt-get install python3-bpfcc; a venv needs --system-site-packages",
        )
    if not hasattr(bcc, "BPF"):
        return Check(
            "bcc",
            False,
            f"'bcc' at {bcc.__file__} is not BCC (PyPI's 'bcc' is unrelated)",
            "pip uninstall bcc; apt-get install python3-bpfcc",
        )
    version = getattr(bcc, "__version__", "?")
    return Check("bcc", True, f"BCC {version} from {Path(bcc.__file__).parent}")


def check_headers() -> Check:
    base = Path(f"/lib/modules/{os.uname().release}")
    build, source = base / "build", base / "source"
    if os.environ.get("BCC_KERNEL_SOURCE"):
        return Check("kernel headers", True, f"BCC_KERNEL_SOURCE={os.environ['BCC_KERNEL_SOURCE']}")
    if not (build / "include" / "generated").is_dir():
        return Check("kernel headers", False, f"{build} missing or incomplete", HEADERS_FIX)
    if (
        not (build / "include" / "linux" / "kconfig.h").exists()
        and not (source / "include" / "linux" / "kconfig.h").exists()
    ):
        return Check(
            "kernel headers", False, f"{source} missing (Debian split headers)", HEADERS_FIX
        )
    return Check("kernel headers", True, f"{build.resolve()} + {source.resolve()}")


def check_attach() -> Check:
    """Load the real program and attach it to a veth in a temporary netns."""
    from pyroute2 import NetNS, netns

    from sipcm.capture.attach import attach, release
    from sipcm.capture.program import Program
    from sipcm.errors import SipcmError

    name = f"sipcm-doctor-{os.getpid()}"
    try:
        prog = Program()
    except SipcmError as exc:
        return Check("load + attach", False, str(exc.message), exc.hint or "")
    try:
        netns.create(name)
        with NetNS(name) as ipr:
            ipr.link("add", ifname="d0", kind="veth", peer={"ifname": "d1"})
            ipr.link("set", index=ipr.link_lookup(ifname="d0")[0], state="up")
        netns.pushns(name)
        try:
            att = attach("d0", prog.xdp_fd, prog.egress_fd)
            release(att)
        finally:
            netns.popns()
        detail = f"program verified; XDP {att.xdp_mode} via {att.xdp_via}"
        return Check("load + attach", True, detail)
    except SipcmError as exc:
        return Check("load + attach", False, exc.message, exc.hint or "")
    except OSError as exc:
        return Check("load + attach", False, f"temporary netns/veth: {exc}", "run as root")
    finally:
        prog.close()
        with contextlib.suppress(OSError):
            netns.remove(name)


def check_tools() -> list[Check]:
    out = []
    for tool, pkg in (("sipp", "sip-tester"), ("kamailio", "kamailio")):
        path = shutil.which(tool)
        detail = path or f"not installed; only tests need it (apt-get install {pkg})"
        out.append(Check(f"{tool} (tests only)", True, detail))
    return out


def run_checks(attach_test: bool = True) -> list[Check]:
    """All checks, in order; the attach test runs only when its prerequisites passed."""
    checks = [check_privileges(), check_kernel(), check_bpf_syscall(), check_ringbuf()]
    checks += [check_bcc(), check_headers()]
    if attach_test and all(c.ok for c in checks):
        checks.append(check_attach())
    elif attach_test:
        checks.append(Check("load + attach", False, "skipped: fix the checks above first"))
    return checks + check_tools()
