"""Crafted frames and a BPF_PROG_TEST_RUN runner for the kernel program tests."""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import struct


class RunOpts(ctypes.Structure):
    """struct bpf_test_run_opts (libbpf 1.x)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


_libbpf = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
_libbpf.bpf_prog_test_run_opts.argtypes = [ctypes.c_int, ctypes.POINTER(RunOpts)]


def prog_run(prog_fd: int, frame: bytes, repeat: int = 1) -> tuple[int, int]:
    """Run the program once (or `repeat` times) on `frame`: (verdict, mean duration ns)."""
    buf = ctypes.create_string_buffer(frame, len(frame))
    out = ctypes.create_string_buffer(len(frame) + 256)
    opts = RunOpts(
        sz=ctypes.sizeof(RunOpts),
        data_in=ctypes.cast(buf, ctypes.c_void_p),
        data_out=ctypes.cast(out, ctypes.c_void_p),
        data_size_in=len(frame),
        data_size_out=len(out),
        repeat=repeat,
    )
    rc = _libbpf.bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts))
    if rc != 0:
        raise OSError(ctypes.get_errno(), f"bpf_prog_test_run_opts failed: {rc}")
    if out.raw[: opts.data_size_out] != frame:
        raise AssertionError("program modified the frame")
    return opts.retval, opts.duration


def mac(n: int) -> bytes:
    return bytes([2, 0, 0, 0, 0, n])


def eth(ethertype: int, payload: bytes, vlans: tuple[int, ...] = ()) -> bytes:
    """Ethernet frame; `vlans` are the TPIDs of the tags, outer first (0x88a8, 0x8100)."""
    tags = b"".join(struct.pack("!HH", tpid, 100 + i) for i, tpid in enumerate(vlans))
    return mac(1) + mac(2) + tags + struct.pack("!H", ethertype) + payload


def ipv4(
    src: str, dst: str, proto: int, payload: bytes, ident: int = 1, frag: int = 0, mf: bool = False
) -> bytes:
    """IPv4 header (no options) + payload; `frag` is the offset in 8-octet units."""
    flags = (0x2000 if mf else 0) | frag
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        ident,
        flags,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return hdr + payload


def ipv6(src: str, dst: str, nh: int, payload: bytes) -> bytes:
    hdr = struct.pack(
        "!IHBB16s16s",
        0x60000000,
        len(payload),
        nh,
        64,
        ipaddress.IPv6Address(src).packed,
        ipaddress.IPv6Address(dst).packed,
    )
    return hdr + payload


def v6_ext(nh: int, body_len8: int = 0) -> bytes:
    """A hop-by-hop/dest-options style extension header of (body_len8 + 1) * 8 octets."""
    return bytes([nh, body_len8]) + bytes(6 + 8 * body_len8)


def v6_frag(nh: int, offset8: int, more: bool, ident: int) -> bytes:
    return struct.pack("!BBHI", nh, 0, (offset8 << 3) | (1 if more else 0), ident)


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x18, 65535, 0, 0) + payload


def vxlan(vni: int, inner: bytes) -> bytes:
    return struct.pack("!II", 0x08000000, vni << 8) + inner


INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
    b"Call-ID: abc@10.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)
