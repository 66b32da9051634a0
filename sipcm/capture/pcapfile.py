"""Reader of pcap and pcapng capture files into `RecordBatch`es.

Input: a file path (classic pcap in either byte order with microsecond or nanosecond
timestamps, or pcapng with any number of sections and interfaces). Output: `RecordBatch`es of
up to `batch_size` frames, each of one link type, timestamps in ns since the epoch.

The file is mapped (or, for pipes, read whole) once; a batch copies one contiguous span of the
file and records per-frame offsets into it, so there is no read() per record. It never raises
after `__init__`: a file cut short yields every complete record and sets `truncated`.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections.abc import Iterator

import numpy as np

from sipcm.capture.records import DIR_EGRESS, DIR_INGRESS, DIR_UNKNOWN, RecordBatch
from sipcm.errors import CaptureFileError

_PCAP_US = 0xA1B2C3D4
_PCAP_NS = 0xA1B23C4D
_SHB = 0x0A0D0D0A
_BOM = 0x1A2B3C4D
_IDB, _OPB, _SPB, _EPB = 1, 2, 3, 6
_OPT_TSRESOL, _OPT_TSOFFSET, _OPT_FLAGS = 9, 14, 2
# A record claiming more than this is corrupt, not a packet (pcap snaplens are <= 256 KiB).
_MAX_RECORD = 64 << 20
# epb_flags bits 0-1 (pcapng draft section 4.3.1): 01 inbound, 10 outbound.
_FLAG_DIR = {1: DIR_INGRESS, 2: DIR_EGRESS}


class _Iface:
    """One pcapng interface: link type, snap length and timestamp scaling."""

    __slots__ = ("div", "linktype", "mul", "off_ns", "snaplen")

    def __init__(self, linktype: int, snaplen: int) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.mul = 1000  # default if_tsresol 6: microseconds
        self.div = 1
        self.off_ns = 0


class _Batch:
    """Per-frame lists of the batch being filled."""

    __slots__ = ("caps", "dirs", "first", "ifx", "linktype", "offs", "origs", "start", "tss")

    def __init__(self, start: int, linktype: int, first: int) -> None:
        self.start = start
        self.first = first  # frame number of the first frame
        self.linktype = linktype
        self.offs: list[int] = []
        self.caps: list[int] = []
        self.origs: list[int] = []
        self.tss: list[int] = []
        self.ifx: list[int] = []
        self.dirs: list[int] = []


class PcapReader:
    """Opens a pcap/pcapng file (errors raise CaptureFileError) and yields batches of frames."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.truncated: str | None = None  # why reading stopped early, None when clean
        self.records = 0  # packet records yielded
        self.bytes = 0  # captured packet bytes yielded
        self.skipped = 0  # pcapng packet blocks naming an undeclared interface
        self._frame = 0  # packet records seen (frame numbers, as Wireshark counts them)
        self._buf = self._load()
        magic = self._buf[:4]
        if len(magic) < 4:
            self._fail(f"too short for a capture file ({len(magic)} bytes)")
        if magic == b"\x0a\x0d\x0d\x0a":
            self.format = "pcapng"
        elif magic[:2] == b"\x1f\x8b":
            self._fail("gzip-compressed; decompress it first")
        else:
            for endian in "<>":
                (m,) = struct.unpack(endian + "I", magic)
                if m in (_PCAP_US, _PCAP_NS):
                    self.format = "pcap"
                    self._endian = endian
                    self._mul = 1000 if m == _PCAP_US else 1
                    break
            else:
                self._fail(f"not a pcap or pcapng file (magic 0x{magic.hex()})")

    def close(self) -> None:
        """Release the file mapping (batches already yielded hold their own copies)."""
        if isinstance(self._buf, mmap.mmap):
            self._buf.close()

    def _fail(self, problem: str) -> None:
        raise CaptureFileError(f"{self.path}: {problem}", "give a pcap or pcapng capture file")

    def _load(self) -> bytes | mmap.mmap:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._fail("no such file")
        except PermissionError:
            self._fail("permission denied")
        except OSError as exc:
            self._fail(f"cannot open ({exc.strerror})")
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                self._fail("is a directory")
            if not stat.S_ISREG(st.st_mode):  # a pipe or device: read it whole
                with os.fdopen(os.dup(fd), "rb") as f:
                    return f.read()
            if st.st_size == 0:
                self._fail("empty file, not a pcap or pcapng capture")
            return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            self._fail(f"cannot read ({exc.strerror})")
        finally:
            os.close(fd)
        raise AssertionError("unreachable")

    def batches(self, batch_size: int = 4096) -> Iterator[RecordBatch]:
        """Yield every readable frame in file order, in batches of one link type."""
        batch_size = max(1, batch_size)
        if self.format == "pcap":
            yield from self._pcap(batch_size)
        else:
            yield from self._pcapng(batch_size)

    def _stop(self, pos: int, problem: str) -> None:
        self.truncated = f"stopped at byte offset {pos} (record {self._frame + 1}): {problem}"

    def _flush(self, b: _Batch, end: int) -> RecordBatch:
        n = len(b.offs)
        caps = np.array(b.caps, np.uint32)
        self.records += n
        self.bytes += int(caps.sum())
        return RecordBatch(
            data=self._buf[b.start : end],
            offset=np.array(b.offs, np.int64),
            caplen=caps,
            origlen=np.array(b.origs, np.uint32),
            ts_ns=np.array(b.tss, np.int64),
            ifindex=np.array(b.ifx, np.uint32) if b.ifx else np.zeros(n, np.uint32),
            direction=np.array(b.dirs, np.uint8) if b.dirs else np.zeros(n, np.uint8),
            linktype=b.linktype,
            first_frame=b.first,
        )

    # -- classic pcap --------------------------------------------------------------------------

    def _pcap(self, batch_size: int) -> Iterator[RecordBatch]:
        buf = self._buf
        size = len(buf)
        if size < 24:
            self._stop(size, f"truncated pcap file header ({size} of 24 bytes)")
            return
        linktype = struct.unpack_from(self._endian + "I", buf, 20)[0] & 0xFFFF
        unpack = struct.Struct(self._endian + "IIII").unpack_from
        mul = self._mul
        pos = 24
        while pos < size:
            b = _Batch(pos, linktype, self._frame + 1)
            offs, caps, origs, tss = b.offs, b.caps, b.origs, b.tss
            start = pos
            while len(offs) < batch_size and pos < size:
                if pos + 16 > size:
                    self._stop(pos, f"partial record header ({size - pos} of 16 bytes)")
                    break
                sec, frac, incl, orig = unpack(buf, pos)
                if incl > _MAX_RECORD:
                    self._stop(pos, f"corrupt record length {incl}")
                    break
                if pos + 16 + incl > size:
                    self._stop(pos, f"partial record ({size - pos - 16} of {incl} bytes)")
                    break
                self._frame += 1
                offs.append(pos + 16 - start)
                caps.append(incl)
                origs.append(orig)
                tss.append(sec * 1_000_000_000 + frac * mul)
                pos += 16 + incl
            if offs:
                yield self._flush(b, pos)
            if self.truncated:
                return

    # -- pcapng ------------------------------------------------------------------------------

    def _pcapng(self, batch_size: int) -> Iterator[RecordBatch]:
        buf = self._buf
        size = len(buf)
        pos = 0
        e = "<"
        ifaces: list[_Iface] = []
        b: _Batch | None = None
        last_ts = 0
        while pos < size:
            if pos + 12 > size:
                self._stop(pos, f"partial block header ({size - pos} bytes)")
                break
            (btype,) = struct.unpack_from("<I", buf, pos)
            if btype == _SHB:
                if pos + 28 > size:
                    self._stop(pos, "partial section header block")
                    break
                e = "<" if struct.unpack_from("<I", buf, pos + 8)[0] == _BOM else ">"
                if struct.unpack_from(e + "I", buf, pos + 8)[0] != _BOM:
                    self._stop(pos, "bad section header byte-order magic")
                    break
                ifaces = []
            else:
                btype = struct.unpack_from(e + "I", buf, pos)[0]
            blen = struct.unpack_from(e + "I", buf, pos + 4)[0]
            if blen < 12 or blen % 4:
                self._stop(pos, f"corrupt block length {blen}")
                break
            if pos + blen > size:
                self._stop(pos, f"partial block ({size - pos} of {blen} bytes)")
                break
            end = pos + blen - 4  # options end where the trailing length starts
            rec = None
            if btype == _EPB and blen >= 32:
                iid, hi, lo, cap, orig = struct.unpack_from(e + "IIIII", buf, pos + 8)
                rec = (iid, (hi << 32) | lo, cap, orig, pos + 28)
            elif btype == _OPB and blen >= 32:
                iid, _drops, hi, lo, cap, orig = struct.unpack_from(e + "HHIIII", buf, pos + 8)
                rec = (iid, (hi << 32) | lo, cap, orig, pos + 28)
            elif btype == _SPB and blen >= 16:
                (orig,) = struct.unpack_from(e + "I", buf, pos + 8)
                cap = min(orig, blen - 16)
                if ifaces and ifaces[0].snaplen:
                    cap = min(cap, ifaces[0].snaplen)
                rec = (0, -1, cap, orig, pos + 12)  # SPB has no timestamp
            elif btype == _IDB and blen >= 20:
                lt, _res, snap = struct.unpack_from(e + "HHI", buf, pos + 8)
                ifaces.append(self._idb(_Iface(lt, snap), e, pos + 16, end))
            if rec is not None:
                iid, units, cap, orig, data = rec
                self._frame += 1
                if iid >= len(ifaces) or data + cap > end:
                    # A packet block we cannot place or that overruns its block: skip it; end
                    # the batch so later frames keep their numbers.
                    self.skipped += 1
                    if b is not None and b.offs:
                        yield self._flush(b, b.start + b.offs[-1] + b.caps[-1])
                    b = None
                    pos += blen
                    continue
                ifc = ifaces[iid]
                if b is not None and (b.linktype != ifc.linktype or len(b.offs) >= batch_size):
                    yield self._flush(b, b.start + b.offs[-1] + b.caps[-1])
                    b = None
                if b is None:
                    b = _Batch(pos, ifc.linktype, self._frame)
                ts = last_ts if units < 0 else units * ifc.mul // ifc.div + ifc.off_ns
                last_ts = ts
                direction = DIR_UNKNOWN
                opt = data + ((cap + 3) & ~3)
                if btype != _SPB and opt < end:
                    flags = _find_option(buf, e, opt, end, _OPT_FLAGS, 4)
                    if flags is not None:
                        direction = _FLAG_DIR.get(struct.unpack(e + "I", flags)[0] & 3, 0)
                b.offs.append(data - b.start)
                b.caps.append(cap)
                b.origs.append(orig)
                b.tss.append(ts)
                b.ifx.append(iid)
                b.dirs.append(direction)
            pos += blen
        if b is not None and b.offs:
            yield self._flush(b, b.start + b.offs[-1] + b.caps[-1])

    def _idb(self, ifc: _Iface, e: str, pos: int, end: int) -> _Iface:
        """Apply if_tsresol and if_tsoffset from an IDB's options."""
        res = _find_option(self._buf, e, pos, end, _OPT_TSRESOL, 1)
        if res is not None:
            r = res[0]
            if r & 0x80:  # 2^-n seconds
                ifc.mul, ifc.div = 1_000_000_000, 1 << (r & 0x7F)
            elif r <= 9:
                ifc.mul, ifc.div = 10 ** (9 - r), 1
            else:
                ifc.mul, ifc.div = 1, 10 ** (r - 9)
        off = _find_option(self._buf, e, pos, end, _OPT_TSOFFSET, 8)
        if off is not None:
            ifc.off_ns = struct.unpack(e + "q", off)[0] * 1_000_000_000
        return ifc


def _find_option(buf: bytes | mmap.mmap, e: str, pos: int, end: int, code: int, size: int):
    """The value of option `code` (at least `size` bytes) in [pos, end), or None."""
    fmt = e + "HH"
    while pos + 4 <= end:
        c, ln = struct.unpack_from(fmt, buf, pos)
        if c == 0:  # opt_endofopt
            return None
        if c == code and ln >= size and pos + 4 + size <= end:
            return buf[pos + 4 : pos + 4 + size]
        pos += 4 + ((ln + 3) & ~3)
    return None
