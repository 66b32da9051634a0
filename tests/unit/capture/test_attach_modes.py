"""XDP attach modes with the kernel calls faked: `auto` falls back from native to generic
when the driver refuses, `native`/`generic` force one mode, and each attachment says which
mode it runs in and why. The real fallback on this VM's virtio NIC is tests/netns/test_eth0.py.
"""

from __future__ import annotations

import errno
import os

import pytest

from sipcm.errors import CaptureError

try:
    from sipcm.capture import attach as A
except CaptureError as exc:  # libbpf missing
    pytest.skip(f"attach module unavailable: {exc}", allow_module_level=True)

from pyroute2.netlink.exceptions import NetlinkError

IFINDEX = 7
PROG_FD = 5
LINK_FD = 42


class FakeKernel:
    """Answers bpf_link_create and IFLA_XDP netlink calls per XDP flags; records each call.

    `link_answers`: XDP flags -> fd or -errno; `netlink_answers`: XDP flags -> 0 or errno."""

    def __init__(self, link_answers: dict[int, int], netlink_answers: dict[int, int]) -> None:
        self.link_answers = link_answers
        self.netlink_answers = netlink_answers
        self.calls: list[tuple[str, str]] = []
        self.attached: list[tuple[str, int, int]] = []

    def link_create(self, prog_fd: int, ifindex: int, attach_type: int, flags: int) -> int:
        assert (prog_fd, ifindex, attach_type) == (PROG_FD, IFINDEX, A.BPF_XDP)
        self.calls.append(("link", _mode_of(flags)))
        rc = self.link_answers[flags]
        if rc >= 0:
            self.attached = [(_mode_of(flags), flags, 99)]
        return rc

    # the IPRoute surface attach() uses
    def __enter__(self) -> FakeKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def link_lookup(self, ifname: str) -> list[int]:
        return [IFINDEX] if ifname == "eth0" else []

    def link(self, cmd: str, index: int, xdp: dict) -> None:
        assert (cmd, index) == ("set", IFINDEX)
        attrs = dict(xdp["attrs"])
        if attrs["IFLA_XDP_FD"] == -1:
            self.calls.append(("netlink-detach", _mode_of(attrs["IFLA_XDP_FLAGS"])))
            self.attached = []
            return
        assert attrs["IFLA_XDP_FLAGS"] & A.XDP_FLAGS_UPDATE_IF_NOEXIST
        flags = attrs["IFLA_XDP_FLAGS"] & ~A.XDP_FLAGS_UPDATE_IF_NOEXIST
        self.calls.append(("netlink", _mode_of(flags)))
        code = self.netlink_answers[flags]
        if code:
            raise NetlinkError(code, "refused")
        self.attached = [(_mode_of(flags), flags, 99)]


def _mode_of(flags: int) -> str:
    return {v: k for k, v in A.XDP_MODE_FLAGS.items()}[flags]


NATIVE, GENERIC = A.XDP_FLAGS_DRV_MODE, A.XDP_FLAGS_SKB_MODE
NO_LINKS = {NATIVE: -errno.EINVAL, GENERIC: -errno.EINVAL}  # kernel < 5.9: no XDP links


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch):
    """Installs a FakeKernel with the given answers in place of libbpf and netlink."""

    def make(link: dict[int, int], netlink: dict[int, int] | None = None) -> FakeKernel:
        k = FakeKernel(link, netlink or {})
        monkeypatch.setattr(A, "_link_create", k.link_create)
        monkeypatch.setattr(A, "IPRoute", lambda: k)
        monkeypatch.setattr(A, "_xdp_progs", lambda ipr, idx: list(k.attached))
        monkeypatch.setattr(A, "_driver", lambda ifname: "virtio_net")
        return k

    return make


@pytest.mark.parametrize("refusal", [errno.EOPNOTSUPP, errno.EINVAL, A.ENOTSUPP, errno.ENOMEM])
def test_auto_falls_back_to_generic_when_native_is_refused(kernel, refusal):
    k = kernel({NATIVE: -refusal, GENERIC: LINK_FD}, {NATIVE: refusal})
    att = A.attach("eth0", PROG_FD, None, "auto")
    assert k.calls == [("link", "native"), ("netlink", "native"), ("link", "generic")]
    assert (att.xdp_mode, att.xdp_via, att.xdp_link_fd) == ("generic", "link", LINK_FD)
    assert att.xdp_netlink_flags is None
    assert att.mode_reason == f"native XDP refused by virtio_net ({os.strerror(refusal)})"


def test_auto_keeps_native_when_the_driver_accepts(kernel):
    k = kernel({NATIVE: LINK_FD})
    att = A.attach("eth0", PROG_FD, None, "auto")
    assert k.calls == [("link", "native")]
    assert (att.xdp_mode, att.xdp_via) == ("native", "link")
    assert att.mode_reason == "the driver accepted native XDP"


def test_native_forced_is_an_error_naming_the_fix(kernel):
    k = kernel({NATIVE: -errno.EOPNOTSUPP}, {NATIVE: errno.EOPNOTSUPP})
    with pytest.raises(CaptureError) as exc:
        A.attach("eth0", PROG_FD, None, "native")
    assert exc.value.message == (
        "cannot attach XDP to eth0: native XDP refused by virtio_net (Operation not supported)"
    )
    assert exc.value.hint == "set attach_mode to auto or generic"
    assert k.calls == [("link", "native"), ("netlink", "native")]  # generic never tried


def test_generic_forced_tries_only_generic(kernel):
    k = kernel({GENERIC: LINK_FD})
    att = A.attach("eth0", PROG_FD, None, "generic")
    assert k.calls == [("link", "generic")]
    assert (att.xdp_mode, att.mode_reason) == ("generic", "attach_mode is generic")


def test_old_kernel_without_links_attaches_native_via_netlink(kernel):
    k = kernel(NO_LINKS, {NATIVE: 0})
    att = A.attach("eth0", PROG_FD, None, "auto")
    assert k.calls == [("link", "native"), ("netlink", "native")]
    assert (att.xdp_mode, att.xdp_via, att.xdp_netlink_flags) == ("native", "netlink", NATIVE)
    A.release(att)
    assert k.calls[-1] == ("netlink-detach", "native")
    assert k.attached == []


def test_old_kernel_and_refusing_driver_fall_back_via_netlink(kernel):
    k = kernel(NO_LINKS, {NATIVE: errno.EOPNOTSUPP, GENERIC: 0})
    att = A.attach("eth0", PROG_FD, None, "auto")
    assert k.calls == [
        ("link", "native"),
        ("netlink", "native"),
        ("link", "generic"),
        ("netlink", "generic"),
    ]
    assert (att.xdp_mode, att.xdp_via, att.xdp_netlink_flags) == ("generic", "netlink", GENERIC)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (errno.EBUSY, "eth0 already has an XDP program"),
        (errno.EPERM, "not permitted to attach BPF programs"),
        (errno.EBADF, "cannot attach XDP (native) to eth0: Bad file descriptor"),
    ],
)
def test_other_errors_do_not_fall_back(kernel, code, message):
    k = kernel({NATIVE: -code})
    with pytest.raises(CaptureError) as exc:
        A.attach("eth0", PROG_FD, None, "auto")
    assert exc.value.message == message
    assert k.calls == [("link", "native")]


def test_both_modes_refused_names_both(kernel):
    k = kernel(
        {NATIVE: -errno.EOPNOTSUPP, GENERIC: -errno.EINVAL},
        {NATIVE: errno.EOPNOTSUPP, GENERIC: errno.EINVAL},
    )
    with pytest.raises(CaptureError) as exc:
        A.attach("eth0", PROG_FD, None, "auto")
    assert exc.value.message == (
        "cannot attach XDP to eth0: native XDP refused by virtio_net (Operation not supported); "
        "generic XDP refused by virtio_net (Invalid argument)"
    )
    assert len(k.calls) == 4
