"""Attach the loaded programs to interfaces, and detach them (ours only, symmetric).

Input: program fds from program.py and interface names. Output: `Attachment` handles that
detach exactly what they attached. XDP (ingress) and tcx (egress) are attached as BPF links
(libbpf's `bpf_link_create` through ctypes; kernel >= 5.9 for XDP, >= 6.6 for tcx): a link
dies with its file descriptor, so even a killed sensor leaves nothing behind. Older kernels
fall back to netlink (IFLA_XDP, clsact + cls_bpf filter named "sipcm"), which outlives the
process: `detach()` (`sipcm detach IFACE`) removes such leftovers. Never touches programs it
did not load (names not starting with "sipcm"). XDP mode `auto` tries native (driver) mode and
falls back to generic (SKB) mode when the driver refuses; each Attachment records the mode it
got, how (link or netlink) and why.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from dataclasses import dataclass, field

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from sipcm.errors import CaptureError

BPF_XDP = 37
BPF_TCX_EGRESS = 47
BPF_LINK_TYPE_XDP = 6
BPF_LINK_TYPE_TCX = 11
XDP_FLAGS_UPDATE_IF_NOEXIST = 1
XDP_FLAGS_SKB_MODE = 2
XDP_FLAGS_DRV_MODE = 4
XDP_MODE_FLAGS = {"native": XDP_FLAGS_DRV_MODE, "generic": XDP_FLAGS_SKB_MODE}
# attach_mode -> the XDP modes tried, in order: `auto` falls back to generic when the driver
# refuses native mode (virtio_net and many cloud NICs do, depending on their configuration).
XDP_TRIES = {"auto": ("native", "generic"), "native": ("native",), "generic": ("generic",)}
ENOTSUPP = 524  # kernel-internal "operation not supported", seen from some drivers
# What a driver (or an old kernel without XDP links) answers when it will not run a mode.
XDP_REFUSALS = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.ENOMEM,
                          errno.ERANGE, ENOTSUPP})  # fmt: skip
# pyroute2's names for IFLA_XDP_ATTACHED values -> (our mode name, XDP_FLAGS_* to detach).
XDP_ATTACHED = {
    "xdp": ("native", XDP_FLAGS_DRV_MODE),
    "xdpgeneric": ("generic", XDP_FLAGS_SKB_MODE),
    "xdpoffload": ("offload", 8),
}
CLSACT_EGRESS = 0xFFFFFFF3
TC_FILTER_NAME = "sipcm"
PROG_PREFIX = b"sipcm"
FILTER_PRIO = 49152  # fixed, so a leftover is found and replaced predictably


class LinkCreateOpts(ctypes.Structure):
    """The head of struct bpf_link_create_opts: sz + flags (the rest must be zero)."""

    _fields_ = [("sz", ctypes.c_size_t), ("flags", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


def _libbpf() -> ctypes.CDLL:
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise CaptureError("libbpf not found", "apt-get install libbpf1") from exc
    lib.bpf_link_create.argtypes = [
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(LinkCreateOpts),
    ]
    lib.bpf_link_detach.argtypes = [ctypes.c_int]
    lib.bpf_obj_get_info_by_fd.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_uint32),
    ]
    lib.bpf_prog_query.argtypes = [
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_uint32,
        ctypes.POINTER(ctypes.c_uint32),
        ctypes.POINTER(ctypes.c_uint32),
        ctypes.POINTER(ctypes.c_uint32),
    ]
    return lib


LIBBPF = _libbpf()


def _err(rc: int) -> int:
    """libbpf returns -errno (and sets errno); give the positive errno."""
    return -rc if rc < 0 else ctypes.get_errno()


def _info(fd: int, size: int = 256) -> bytes:
    buf = ctypes.create_string_buffer(size)
    n = ctypes.c_uint32(size)
    if LIBBPF.bpf_obj_get_info_by_fd(fd, buf, ctypes.byref(n)) != 0:
        return b""
    return buf.raw[: n.value]


def prog_name(prog_id: int) -> bytes:
    """Name of a loaded program by id (b"" if it is gone)."""
    fd = LIBBPF.bpf_prog_get_fd_by_id(prog_id)
    if fd < 0:
        return b""
    try:
        info = _info(fd)
    finally:
        os.close(fd)
    return info[64:80].split(b"\0", 1)[0]  # struct bpf_prog_info.name


def _links() -> list[tuple[int, int, int, int]]:
    """(link id, link type, prog id, ifindex) of every XDP and tcx link on the system."""
    out, cur, nxt = [], 0, ctypes.c_uint32()
    while LIBBPF.bpf_link_get_next_id(cur, ctypes.byref(nxt)) == 0:
        cur = nxt.value
        fd = LIBBPF.bpf_link_get_fd_by_id(cur)
        if fd < 0:
            continue
        try:
            info = _info(fd, 128)
        finally:
            os.close(fd)
        if len(info) >= 20:
            ltype, lid, pid = (int.from_bytes(info[i : i + 4], "little") for i in (0, 4, 8))
            if ltype in (BPF_LINK_TYPE_XDP, BPF_LINK_TYPE_TCX):
                out.append((lid, ltype, pid, int.from_bytes(info[16:20], "little")))
    return out


def ifindex_of(ipr: IPRoute, ifname: str) -> int:
    """Interface index, or a CaptureError naming the interface."""
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise CaptureError(f"interface {ifname} not found", "see `ip link` for the names")
    return int(found[0])


@dataclass
class Attachment:
    """What was attached to one interface, so that detach undoes exactly that."""

    ifname: str
    ifindex: int
    xdp_link_fd: int = -1
    xdp_netlink_flags: int | None = None
    xdp_mode: str = ""
    mode_reason: str = ""
    xdp_via: str = "link"
    tc_link_fd: int = -1
    tc_filter: bool = False
    created_clsact: bool = False
    notes: list[str] = field(default_factory=list)


def _link_create(prog_fd: int, ifindex: int, attach_type: int, flags: int) -> int:
    opts = LinkCreateOpts(sz=ctypes.sizeof(LinkCreateOpts), flags=flags)
    return int(LIBBPF.bpf_link_create(prog_fd, ifindex, attach_type, ctypes.byref(opts)))


def _xdp_progs(ipr: IPRoute, ifindex: int) -> list[tuple[str, int, int]]:
    """(mode name, XDP_FLAGS_* of that mode, program id) of each XDP program on an interface."""
    xdp = ipr.get_links(ifindex)[0].get_attr("IFLA_XDP")
    if xdp is None:
        return []
    attached = xdp.get_attr("IFLA_XDP_ATTACHED")
    if attached in XDP_ATTACHED:
        name, flags = XDP_ATTACHED[attached]
        return [(name, flags, int(xdp.get_attr("IFLA_XDP_PROG_ID") or 0))]
    out = []
    if attached == "xdpmulti":
        for attr, name, flags in (
            ("IFLA_XDP_DRV_PROG_ID", "native", XDP_FLAGS_DRV_MODE),
            ("IFLA_XDP_SKB_PROG_ID", "generic", XDP_FLAGS_SKB_MODE),
        ):
            if xdp.get_attr(attr):
                out.append((name, flags, int(xdp.get_attr(attr))))
    return out


def _driver(ifname: str) -> str:
    """The kernel driver behind an interface ("virtio_net", "veth", ...), "" if unknown."""
    try:
        return os.path.basename(os.readlink(f"/sys/class/net/{ifname}/device/driver"))
    except OSError:
        try:  # virtual devices (veth, bridge) have no device link; uevent names their kind
            with open(f"/sys/class/net/{ifname}/uevent", encoding="ascii") as f:
                kind = dict(x.split("=", 1) for x in f.read().split() if "=" in x)
            return kind.get("DEVTYPE", "")
        except OSError:
            return ""


def _xdp_once(ipr: IPRoute, att: Attachment, prog_fd: int, mode: str, links: bool) -> int:
    """Attach XDP in exactly `mode` (BPF link, else netlink); 0 or the refusing errno.

    Errors that are not a driver refusing the mode (EBUSY, EPERM, ...) raise CaptureError."""
    flags = XDP_MODE_FLAGS[mode]
    fd = _link_create(prog_fd, att.ifindex, BPF_XDP, flags) if links else -errno.ENOSYS
    if fd >= 0:
        att.xdp_link_fd = fd
        return 0
    code = _err(fd)
    if code == errno.EBUSY:
        raise CaptureError(
            f"{att.ifname} already has an XDP program",
            f"remove it first (`sipcm detach {att.ifname}` removes one left by sipcm)",
        )
    if code == errno.EPERM:
        raise CaptureError("not permitted to attach BPF programs", "run as root")
    if code not in XDP_REFUSALS:
        raise CaptureError(
            f"cannot attach XDP ({mode}) to {att.ifname}: {os.strerror(code)}",
            "run `sipcm doctor`",
        )
    # EINVAL/ENOSYS also mean "no XDP links" on kernels < 5.9: netlink tells the two apart.
    nl_flags = flags | XDP_FLAGS_UPDATE_IF_NOEXIST
    try:
        ipr.link(
            "set",
            index=att.ifindex,
            xdp={"attrs": [("IFLA_XDP_FD", prog_fd), ("IFLA_XDP_FLAGS", nl_flags)]},
        )
    except NetlinkError as exc:
        if exc.code == errno.EBUSY:
            raise CaptureError(
                f"{att.ifname} already has an XDP program",
                f"`sipcm detach {att.ifname}` if a sensor was killed; else remove it first",
            ) from exc
        if exc.code in XDP_REFUSALS:
            return exc.code  # the driver's answer (the link call may not have reached it)
        raise CaptureError(
            f"cannot attach XDP ({mode}) to {att.ifname}: {os.strerror(exc.code)}",
            "run `sipcm doctor`",
        ) from exc
    att.xdp_netlink_flags = flags
    att.xdp_via = "netlink"
    att.notes.append("xdp via netlink (no BPF link support)")
    return 0


def _attach_xdp(ipr: IPRoute, att: Attachment, prog_fd: int, mode: str, links: bool) -> None:
    """`auto` tries native (driver) mode, then generic (SKB) mode if the driver refuses."""
    refused: list[str] = []
    for want in XDP_TRIES[mode]:
        code = _xdp_once(ipr, att, prog_fd, want, links)
        if code == 0:
            break
        driver = _driver(att.ifname)
        refused.append(f"{want} XDP refused by {driver or 'the driver'} ({os.strerror(code)})")
    else:
        raise CaptureError(
            f"cannot attach XDP to {att.ifname}: {'; '.join(refused)}",
            "set attach_mode to auto or generic" if mode == "native" else "run `sipcm doctor`",
        )
    progs = _xdp_progs(ipr, att.ifindex)
    att.xdp_mode = progs[0][0] if len(progs) == 1 else want
    if refused:
        att.mode_reason = "; ".join(refused)
    elif mode == "auto":
        att.mode_reason = "the driver accepted native XDP"
    else:
        att.mode_reason = f"attach_mode is {mode}"


def _attach_egress(ipr: IPRoute, att: Attachment, prog_fd: int, links: bool) -> None:
    fd = _link_create(prog_fd, att.ifindex, BPF_TCX_EGRESS, 0) if links else -errno.ENOSYS
    if fd >= 0:
        att.tc_link_fd = fd
        return
    try:
        ipr.tc("add", "clsact", att.ifindex)
        att.created_clsact = True
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise CaptureError(
                f"cannot add clsact qdisc on {att.ifname}: {os.strerror(exc.code)}",
                "run `sipcm doctor`",
            ) from exc
    try:
        ipr.tc(
            "add-filter",
            "bpf",
            att.ifindex,
            ":1",
            fd=prog_fd,
            name=TC_FILTER_NAME,
            parent=CLSACT_EGRESS,
            classid=1,
            direct_action=True,
            prio=FILTER_PRIO,
        )
    except NetlinkError as exc:
        raise CaptureError(
            f"cannot attach the egress filter on {att.ifname}: {os.strerror(exc.code)}",
            f"`sipcm detach {att.ifname}` removes a filter left by a killed sensor",
        ) from exc
    att.tc_filter = True
    att.notes.append("egress via tc filter (no tcx link support)")


def attach(
    ifname: str, xdp_fd: int, egress_fd: int | None, mode: str = "auto", links: bool = True
) -> Attachment:
    """Attach XDP (and the egress program unless `egress_fd` is None) to `ifname`.

    `links=False` forces the netlink path (what older kernels get), for tests of `detach`.
    On any error, whatever this call attached is detached before the CaptureError propagates.
    """
    if mode not in XDP_TRIES:
        raise CaptureError(f"unknown attach mode {mode!r}", "use auto, native or generic")
    with IPRoute() as ipr:
        att = Attachment(ifname, ifindex_of(ipr, ifname))
        try:
            _attach_xdp(ipr, att, xdp_fd, mode, links)
            if egress_fd is not None:
                _attach_egress(ipr, att, egress_fd, links)
        except BaseException:
            _detach_attachment(ipr, att)
            raise
    return att


def _detach_attachment(ipr: IPRoute, att: Attachment) -> None:
    if att.xdp_link_fd >= 0:
        os.close(att.xdp_link_fd)
        att.xdp_link_fd = -1
    if att.xdp_netlink_flags is not None:
        try:
            ipr.link(
                "set",
                index=att.ifindex,
                xdp={"attrs": [("IFLA_XDP_FD", -1), ("IFLA_XDP_FLAGS", att.xdp_netlink_flags)]},
            )
        except NetlinkError:
            pass  # interface gone
        att.xdp_netlink_flags = None
    if att.tc_link_fd >= 0:
        os.close(att.tc_link_fd)
        att.tc_link_fd = -1
    if att.tc_filter:
        _del_filters(ipr, att.ifindex)
        att.tc_filter = False
    if att.created_clsact:
        try:
            if not ipr.get_filters(index=att.ifindex, parent=CLSACT_EGRESS) and not (
                ipr.get_filters(index=att.ifindex, parent=0xFFFFFFF2)
            ):
                ipr.tc("del", "clsact", att.ifindex)
        except NetlinkError:
            pass
        att.created_clsact = False


def split_netlink(att: Attachment) -> Attachment | None:
    """Move the netlink-attached parts of `att` (which outlive the process and need
    CAP_NET_ADMIN to remove) into a new Attachment; None if everything is a BPF link."""
    if att.xdp_netlink_flags is None and not att.tc_filter and not att.created_clsact:
        return None
    part = Attachment(att.ifname, att.ifindex, xdp_mode=att.xdp_mode, xdp_via=att.xdp_via)
    part.xdp_netlink_flags, att.xdp_netlink_flags = att.xdp_netlink_flags, None
    part.tc_filter, att.tc_filter = att.tc_filter, False
    part.created_clsact, att.created_clsact = att.created_clsact, False
    return part


def release(att: Attachment) -> None:
    """Detach what `attach` attached (idempotent)."""
    with IPRoute() as ipr:
        _detach_attachment(ipr, att)


def _del_filters(ipr: IPRoute, ifindex: int) -> int:
    """Delete cls_bpf egress filters named sipcm*; returns how many."""
    removed = 0
    try:
        filters = ipr.get_filters(index=ifindex, parent=CLSACT_EGRESS)
    except NetlinkError:
        return 0
    for flt in filters:
        opts = flt.get_attr("TCA_OPTIONS")
        name = opts.get_attr("TCA_BPF_NAME") if opts is not None else None
        if flt.get_attr("TCA_KIND") != "bpf" or not (name or "").startswith(TC_FILTER_NAME):
            continue
        prio = (flt["info"] >> 16) & 0xFFFF
        try:
            ipr.tc("del-filter", "bpf", ifindex, parent=CLSACT_EGRESS, prio=prio)
            removed += 1
        except NetlinkError as exc:
            if exc.code != errno.ENOENT:
                raise
    return removed


def _tcx_prog_ids(ifindex: int) -> list[int]:
    ids = (ctypes.c_uint32 * 64)()
    cnt = ctypes.c_uint32(64)
    flags = ctypes.c_uint32()
    rc = LIBBPF.bpf_prog_query(
        ifindex, BPF_TCX_EGRESS, 0, ctypes.byref(flags), ids, ctypes.byref(cnt)
    )
    return list(ids[: cnt.value]) if rc == 0 else []


def _detach_links(prog_ids: set[int], ltype: int, ifindex: int) -> int:
    n = 0
    for lid, lt, pid, lif in _links():
        if lt == ltype and pid in prog_ids and lif == ifindex:
            fd = LIBBPF.bpf_link_get_fd_by_id(lid)
            if fd >= 0:
                try:
                    n += LIBBPF.bpf_link_detach(fd) == 0
                finally:
                    os.close(fd)
    return n


def detach(ifname: str) -> str:
    """Remove sipcm programs from `ifname` (left by a killed sensor, or a running one's links).

    Returns what was removed, or "nothing attached". Other tools' programs are left alone.
    """
    if os.geteuid() != 0:
        raise CaptureError("detach needs root", "run with sudo (or as root)")
    done: list[str] = []
    with IPRoute() as ipr:
        idx = ifindex_of(ipr, ifname)
        for _mode, flags, pid in _xdp_progs(ipr, idx):
            name = prog_name(pid)
            if not name.startswith(PROG_PREFIX):
                done.append(f"(left XDP program {name.decode() or pid} alone: not sipcm)")
            elif _detach_links({pid}, BPF_LINK_TYPE_XDP, idx):
                done.append("XDP link")
            else:
                attrs = [("IFLA_XDP_FD", -1), ("IFLA_XDP_FLAGS", flags)]
                ipr.link("set", index=idx, xdp={"attrs": attrs})
                done.append("XDP program")
        ours = {p for p in _tcx_prog_ids(idx) if prog_name(p).startswith(PROG_PREFIX)}
        if ours and _detach_links(ours, BPF_LINK_TYPE_TCX, idx):
            done.append("egress tcx link")
        n = _del_filters(ipr, idx)
        if n:
            done.append(f"{n} egress tc filter{'s' if n > 1 else ''}")
    removed = [d for d in done if not d.startswith("(")]
    if not removed:
        return " ".join([f"{ifname}: nothing attached", *done])
    return f"{ifname}: removed " + ", ".join(done)
