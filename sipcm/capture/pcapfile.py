"""Reader of pcap and pcapng capture files into `RecordBatch`es.

Input: a file path (classic pcap in either byte order with microsecond or nanosecond
timestamps, or pcapng with any number of sections and interfaces). Output: `RecordBatch`es of
up to `batch_size` frames, each of one link type, timestamps in ns since the epoch.

A regular file is mapped once; a pipe, device or socket is read in bounded windows as data
arrives (at most `CHUNK` bytes beyond the record being completed, which is itself bounded by
`_MAX_RECORD`), and each batch is yielded before the window moves, so `replay -` on a live
pipe shows events as they come and `/dev/zero` fails or runs in constant memory. A batch copies
one contiguous span of the window and records per-frame offsets into it, so there is no read()
per record. It never raises after `__init__`: a file cut short yields every complete record
and sets `truncated`; a record that cannot be placed (an undeclared pcapng interface, a
timestamp outside the int64 nanosecond range) is skipped, counted in `skipped` and described in
`skip_note`, and the rest is read.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from array import array
from collections.abc import Iterator
from typing import Any

from sipcm.capture.pcapwalk import columns, record_starts
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
CHUNK = 1 << 20  # bytes read from a non-regular file at a time
_TS_MAX = (1 << 63) - 1  # timestamps are int64 nanoseconds since the epoch
# epb_flags bits 0-1 (pcapng draft section 4.3.1): 01 inbound, 10 outbound.
_FLAG_DIR = {1: DIR_INGRESS, 2: DIR_EGRESS}
# array.array type codes of the batch columns (records.py): int64, uint32, uint8.
_I64, _U32, _U8 = "q", "I", "B"
# Classic pcap record headers are read one at a time into list columns (compiled:
# pcapwalk.columns) until numpy's batch gather into array columns pays for its import
# (0.17 G): from the record that passes _NUMPY_RECORDS, or from the start in a regular file of
# _NUMPY_BYTES or more. A short replay never loads numpy.
_NUMPY_RECORDS = 65536
_NUMPY_BYTES = 24 << 20


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
        self.skipped = 0  # packet records skipped (see skip_note)
        self.skip_note: str | None = None  # the first skipped record: where and why
        self._frame = 0  # packet records seen (frame numbers, as Wireshark counts them)
        self._fd: int | None = None  # a non-regular file, read in windows
        self._base = 0  # file offset of self._buf[0]
        self._buf: bytes | mmap.mmap = b""
        self._large = False  # a regular file of _NUMPY_BYTES or more
        self._np: Any = None  # numpy, once the reader uses it
        self._read_to = 0  # a mapped file: where the last yielded batch ends
        self._released = 0  # a mapped file: pages before this are dropped from the mapping
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
        """Release the file mapping or descriptor (batches already yielded hold copies)."""
        if isinstance(self._buf, mmap.mmap):
            self._buf.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _more(self, keep: int, need: int) -> bool:
        """Streams: drop the window before `keep` and read until `need` bytes follow it (or
        the input ends). False, with the window unchanged, when nothing more could be read."""
        if self._fd is None:
            return False
        parts = [self._buf[keep:]]
        have = len(parts[0])
        got = False
        while have < need:
            try:
                chunk = os.read(self._fd, max(CHUNK, need - have))
            except OSError as exc:
                self._stop(len(self._buf), f"cannot read ({exc.strerror})")
                chunk = b""
            if not chunk:
                os.close(self._fd)
                self._fd = None
                break
            parts.append(chunk)
            have += len(chunk)
            got = True
        if got:  # otherwise the window stays as it was, so the caller's positions hold
            self._base += keep
            self._buf = b"".join(parts)
        return got

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
            if not stat.S_ISREG(st.st_mode):  # a pipe or device: read as it comes
                self._fd, fd = fd, -1
                self._more(0, 4)
                return self._buf
            if st.st_size == 0:
                self._fail("empty file, not a pcap or pcapng capture")
            self._large = st.st_size >= _NUMPY_BYTES
            return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            self._fail(f"cannot read ({exc.strerror})")
        finally:
            if fd >= 0:
                os.close(fd)
        raise AssertionError("unreachable")

    def batches(self, batch_size: int = 4096) -> Iterator[RecordBatch]:
        """Yield every readable frame in file order, in batches of one link type."""
        batch_size = max(1, batch_size)
        if self.format == "pcap":
            if len(self._buf) < 24:
                self._more(0, 24)  # a stream: read on until the file header is complete
            if len(self._buf) < 24:
                size = len(self._buf)
                self._stop(size, f"truncated pcap file header ({size} of 24 bytes)")
                return
            walk = self._pcap(batch_size)
        else:
            walk = self._pcapng(batch_size)
        for batch in walk:
            yield batch
            self._release()

    def _release(self) -> None:
        """A mapped file: drop the pages before the last yielded batch's end from the mapping,
        so the process's RSS does not grow with the file (the pages stay in the page cache;
        a batch that still views them faults them back in)."""
        buf = self._buf
        upto = self._read_to - self._read_to % mmap.PAGESIZE
        if isinstance(buf, mmap.mmap) and upto > self._released:
            buf.madvise(mmap.MADV_DONTNEED, self._released, upto - self._released)
            self._released = upto

    def _stop(self, pos: int, problem: str) -> None:
        if self.truncated is None:
            at = self._base + pos
            self.truncated = f"stopped at byte offset {at} (record {self._frame + 1}): {problem}"

    def _skip(self, pos: int, problem: str) -> None:
        """Count a record that cannot be replayed (the frame number stays used)."""
        self.skipped += 1
        if self.skip_note is None:
            self.skip_note = f"record {self._frame} at byte offset {self._base + pos}: {problem}"

    def _flush(self, b: _Batch, end: int) -> RecordBatch:
        n = len(b.offs)
        self._read_to = self._base + end
        self.records += n
        self.bytes += sum(b.caps)
        return RecordBatch(
            data=self._buf[b.start : end],
            offset=array(_I64, b.offs),
            caplen=array(_U32, b.caps),
            origlen=array(_U32, b.origs),
            ts_ns=array(_I64, b.tss),
            ifindex=array(_U32, b.ifx) if b.ifx else array(_U32, [0]) * n,
            direction=array(_U8, b.dirs) if b.dirs else array(_U8, [0]) * n,
            linktype=b.linktype,
            first_frame=b.first,
        )

    # -- classic pcap --------------------------------------------------------------------------

    def _pcap(self, batch_size: int) -> Iterator[RecordBatch]:
        # The walk only finds where records start (one length per record, compiled:
        # pcapwalk.py); their header fields are then read for the whole batch at once
        # (`_pcap_batch`).
        linktype = struct.unpack_from(self._endian + "I", self._buf, 20)[0] & 0xFFFF
        big = self._endian == ">"
        pos = 24
        need = 0  # bytes the record at `pos` needs beyond the window, 0 when none is cut
        while True:
            buf = self._buf
            size = len(buf)
            start = pos
            offs, pos, need, corrupt = record_starts(buf, pos, size, batch_size, big, _MAX_RECORD)
            n = len(offs)
            first = self._frame + 1
            self._frame += n
            if n:
                yield self._pcap_batch(buf, offs, start, pos, linktype, first)
            if corrupt >= 0:
                self._stop(pos, f"corrupt record length {corrupt}")
            if self.truncated:
                return
            if n >= batch_size:
                continue
            if not self._more(pos, max(need, 16)):
                left = len(self._buf) - pos
                if left and need == 16:
                    self._stop(pos, f"partial record header ({left} of 16 bytes)")
                elif left:
                    self._stop(pos, f"partial record ({left - 16} of {need - 16} bytes)")
                return
            pos = 0

    def _pcap_batch(
        self, buf: bytes | mmap.mmap, offs: list[int], start: int, end: int, linktype: int,
        first: int,
    ) -> RecordBatch:  # fmt: skip
        """The batch of the classic pcap records at `offs` (header positions in `buf`)."""
        n = len(offs)
        self._read_to = self._base + end
        if self._np is None and (self._large or self.records + n > _NUMPY_RECORDS):
            import numpy

            self._np = numpy
        self.records += n
        if self._np is None:
            data = buf[start:end]
            big = self._endian == ">"
            offset, caps, origs, ts, total = columns(data, offs, start, big, self._mul)
            self.bytes += total
            zeros = [0] * n
            return RecordBatch(data, offset, caps, origs, ts, zeros, zeros[:], linktype, first)
        cols = _pcap_columns_numpy(self._np, buf, offs, start, self._endian, self._mul)
        offset, caps, origs, ts, total = cols
        self.bytes += total
        return RecordBatch(
            data=buf[start:end],
            offset=offset,
            caplen=caps,
            origlen=origs,
            ts_ns=ts,
            ifindex=array(_U32, [0]) * n,
            direction=array(_U8, [0]) * n,
            linktype=linktype,
            first_frame=first,
        )

    # -- pcapng ------------------------------------------------------------------------------

    def _pcapng(self, batch_size: int) -> Iterator[RecordBatch]:
        buf = self._buf
        size = len(buf)
        pos = 0
        e = "<"
        ifaces: list[_Iface] = []
        b: _Batch | None = None
        last_ts = 0
        while True:
            # How many bytes the block at `pos` needs to be whole (0: it is).
            need = 12 if pos + 12 > size else 0
            if not need:
                (btype,) = struct.unpack_from("<I", buf, pos)
                if btype == _SHB and pos + 28 > size:
                    need = 28
            if not need:
                if btype == _SHB:
                    e = "<" if struct.unpack_from("<I", buf, pos + 8)[0] == _BOM else ">"
                    if struct.unpack_from(e + "I", buf, pos + 8)[0] != _BOM:
                        self._stop(pos, "bad section header byte-order magic")
                        break
                else:
                    btype = struct.unpack_from(e + "I", buf, pos)[0]
                blen = struct.unpack_from(e + "I", buf, pos + 4)[0]
                if blen < 12 or blen % 4 or blen > _MAX_RECORD:
                    self._stop(pos, f"corrupt block length {blen}")
                    break
                if pos + blen > size:
                    need = blen
            if need:
                # The window ends inside this block: yield what is ready, then read on.
                if b is not None and b.offs:
                    yield self._flush(b, b.start + b.offs[-1] + b.caps[-1])
                b = None
                if self._more(pos, need):
                    buf, size, pos = self._buf, len(self._buf), 0
                    continue
                left = size - pos
                if left and need == 12:
                    self._stop(pos, f"partial block header ({left} bytes)")
                elif left and need == 28 and btype == _SHB:
                    self._stop(pos, "partial section header block")
                elif left:
                    self._stop(pos, f"partial block ({left} of {need} bytes)")
                break
            if btype == _SHB:
                ifaces = []
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
                ifc = ifaces[iid] if iid < len(ifaces) else None
                ts = last_ts
                if ifc is not None and units >= 0:
                    ts = units * ifc.mul // ifc.div + ifc.off_ns
                problem = None
                if ifc is None:
                    problem = f"no interface {iid} declared in its section"
                elif data + cap > end:
                    problem = f"captured length {cap} overruns its block"
                elif not 0 <= ts <= _TS_MAX:
                    problem = "timestamp outside the representable range (1970 to 2262)"
                if problem is not None:
                    # A packet block we cannot replay: skip it; end the batch so later frames
                    # keep their numbers.
                    self._skip(pos, problem)
                    if b is not None and b.offs:
                        yield self._flush(b, b.start + b.offs[-1] + b.caps[-1])
                    b = None
                    pos += blen
                    continue
                assert ifc is not None
                if b is not None and (b.linktype != ifc.linktype or len(b.offs) >= batch_size):
                    yield self._flush(b, b.start + b.offs[-1] + b.caps[-1])
                    b = None
                if b is None:
                    b = _Batch(pos, ifc.linktype, self._frame)
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


def _pcap_columns_numpy(
    np: Any, buf: bytes | mmap.mmap, offs: list[int], start: int, endian: str, mul: int
) -> tuple[Any, Any, Any, Any, int]:
    """The same as numpy arrays, every header read in one gather. The view of `buf` ends
    here, so a mapped file can be closed afterwards."""
    at = np.array(offs, np.int64)
    raw = np.frombuffer(buf, np.uint8)
    fields = raw[at[:, None] + np.arange(16)].view(endian + "u4").astype(np.uint32)
    del raw
    sec, frac = fields[:, 0].astype(np.int64), fields[:, 1].astype(np.int64)
    caps, origs = fields[:, 2].copy(), fields[:, 3].copy()
    ts = sec * 1_000_000_000 + frac * mul
    return at + (16 - start), caps, origs, ts, int(caps.sum(dtype=np.int64))


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
