"""PcapReader: pcap (both byte orders, us/ns), pcapng blocks and options, truncation, errors."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import sys

import pytest

import sipcm.capture.pcapfile as pcapfile
from sipcm.capture.pcapfile import PcapReader
from sipcm.capture.records import DIR_EGRESS, DIR_INGRESS, DIR_UNKNOWN
from sipcm.errors import CaptureFileError

PKTS = [b"\xaa" * 60, b"\xbb" * 61, b"\xcc" * 1, b"\xdd" * 200, b"\xee" * 64]


@pytest.fixture(autouse=True, params=["by_record", "numpy"])
def reader_mode(request, monkeypatch) -> str:
    """Every test reads classic pcap both ways: header by header (short captures) and with
    numpy's batch gather (long ones; here from the first record)."""
    if request.param == "numpy":
        monkeypatch.setattr(pcapfile, "_NUMPY_RECORDS", 0)
    return request.param


def pcap(endian: str = "<", nano: bool = False, linktype: int = 1, pkts=PKTS) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for i, p in enumerate(pkts):
        out += struct.pack(endian + "IIII", 1_700_000_000 + i, 250 + i, len(p), len(p) + 4) + p
    return out


def frames(reader: PcapReader, size: int = 4096) -> list[tuple]:
    """(first_frame, linktype, frame bytes, caplen, origlen, ts, ifindex, direction) per frame."""
    rows = []
    for b in reader.batches(size):
        for i in range(len(b)):
            o, n = int(b.offset[i]), int(b.caplen[i])
            rows.append(
                (
                    b.first_frame + i,
                    b.linktype,
                    bytes(b.data[o : o + n]),
                    n,
                    int(b.origlen[i]),
                    int(b.ts_ns[i]),
                    int(b.ifindex[i]),
                    int(b.direction[i]),
                )
            )
    return rows


@pytest.mark.parametrize(("endian", "nano"), [("<", False), (">", False), ("<", True), (">", True)])
def test_pcap_byte_orders_and_resolutions(tmp_path, endian, nano):
    f = tmp_path / "x.pcap"
    f.write_bytes(pcap(endian, nano, linktype=113))
    r = PcapReader(f)
    rows = frames(r)
    mul = 1 if nano else 1000
    assert rows == [
        (i + 1, 113, p, len(p), len(p) + 4, (1_700_000_000 + i) * 10**9 + (250 + i) * mul, 0, 0)
        for i, p in enumerate(PKTS)
    ]
    assert (r.records, r.bytes, r.truncated, r.format) == (5, 386, None, "pcap")


def test_batches_respect_batch_size_and_frame_numbers(tmp_path):
    f = tmp_path / "x.pcap"
    f.write_bytes(pcap())
    batches = list(PcapReader(f).batches(2))
    assert [(len(b), b.first_frame) for b in batches] == [(2, 1), (2, 3), (1, 5)]
    assert bytes(batches[1].data[int(batches[1].offset[1]) :][:200]) == PKTS[3]


def test_pcap_truncated_in_file_header(tmp_path):
    f = tmp_path / "x.pcap"
    f.write_bytes(pcap()[:10])
    r = PcapReader(f)
    assert list(r.batches()) == []
    assert (
        r.truncated
        == "stopped at byte offset 10 (record 1): truncated pcap file header (10 of 24 bytes)"
    )


def test_pcap_truncated_in_record_header_and_data(tmp_path):
    whole = pcap()
    rec3 = 24 + (16 + 60) + (16 + 61)  # offset of the third record header
    f = tmp_path / "x.pcap"
    f.write_bytes(whole[: rec3 + 7])
    r = PcapReader(f)
    assert [row[2] for row in frames(r)] == PKTS[:2]
    assert (
        r.truncated
        == f"stopped at byte offset {rec3} (record 3): partial record header (7 of 16 bytes)"
    )
    f.write_bytes(whole[: rec3 + 16 + 1 + 16 + 50])  # inside the data of the fourth record
    r = PcapReader(f)
    assert [row[2] for row in frames(r, 1)] == PKTS[:3]
    assert r.records == 3
    assert (
        r.truncated
        == f"stopped at byte offset {rec3 + 17} (record 4): partial record (50 of 200 bytes)"
    )


def test_pcap_corrupt_record_length(tmp_path):
    data = bytearray(pcap())
    struct.pack_into("<I", data, 24 + 8, 0x7FFFFFFF)
    f = tmp_path / "x.pcap"
    f.write_bytes(bytes(data))
    r = PcapReader(f)
    assert frames(r) == []
    assert r.truncated == "stopped at byte offset 24 (record 1): corrupt record length 2147483647"


# -- pcapng -----------------------------------------------------------------------------------


def pad(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


def opts(e: str, *items: tuple[int, bytes]) -> bytes:
    out = b"".join(struct.pack(e + "HH", c, len(v)) + pad(v) for c, v in items)
    return out + struct.pack(e + "HH", 0, 0) if items else b""


def block(e: str, btype: int, body: bytes) -> bytes:
    body = pad(body)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def shb(e: str) -> bytes:
    return block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(e: str, linktype: int, *options: tuple[int, bytes], snap: int = 0) -> bytes:
    return block(e, 1, struct.pack(e + "HHI", linktype, 0, snap) + opts(e, *options))


def epb(e: str, iface: int, units: int, pkt: bytes, *options) -> bytes:
    hdr = struct.pack(e + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(pkt), len(pkt) + 10)
    return block(e, 6, hdr + pad(pkt) + opts(e, *options))


def ng_file(e: str) -> bytes:
    flags_in = (2, struct.pack(e + "I", 1))
    flags_out = (2, struct.pack(e + "I", 2))
    return b"".join(
        [
            shb(e),
            idb(e, 1, (9, b"\x09")),  # Ethernet, ns resolution
            idb(e, 113, (9, b"\x8a"), (14, struct.pack(e + "q", 100))),  # SLL, 2^-10 s, +100 s
            epb(e, 0, 1_700_000_000_123_456_789, PKTS[0], flags_in),
            block(e, 0x0BAD, b"unknown block body"),
            epb(e, 1, 1024 * 5 + 512, PKTS[1], flags_out),
            block(e, 4, b"\x00\x00\x00\x00"),  # name resolution block: skipped
            epb(e, 0, 1_700_000_000_000_000_000, PKTS[2]),
            block(e, 3, struct.pack(e + "I", len(PKTS[3])) + PKTS[3]),  # SPB: interface 0
            block(  # OPB (obsolete packet block) with pack_flags inbound, interface 1
                e,
                2,
                struct.pack(e + "HHIIII", 1, 0, 0, 2048, len(PKTS[4]), len(PKTS[4]))
                + pad(PKTS[4])
                + opts(e, flags_in),
            ),
        ]
    )


@pytest.mark.parametrize("e", ["<", ">"])
def test_pcapng_blocks_options_and_interfaces(tmp_path, e):
    f = tmp_path / "x.pcapng"
    f.write_bytes(ng_file(e))
    r = PcapReader(f)
    batches = list(r.batches())
    assert [(b.linktype, len(b), b.first_frame) for b in batches] == [
        (1, 1, 1),
        (113, 1, 2),
        (1, 2, 3),
        (113, 1, 5),
    ]
    rows = frames(PcapReader(f))
    t0 = 1_700_000_000_123_456_789
    sll_ts = (5 * 10**9 + 5 * 10**8) + 100 * 10**9  # 5.5 s in 2^-10 units, plus 100 s offset
    assert rows == [
        (1, 1, PKTS[0], 60, 70, t0, 0, DIR_INGRESS),
        (2, 113, PKTS[1], 61, 71, sll_ts, 1, DIR_EGRESS),
        (3, 1, PKTS[2], 1, 11, 1_700_000_000 * 10**9, 0, DIR_UNKNOWN),
        (4, 1, PKTS[3], 200, 200, 1_700_000_000 * 10**9, 0, DIR_UNKNOWN),  # SPB: previous ts
        (5, 113, PKTS[4], 64, 64, 2 * 10**9 + 100 * 10**9, 1, DIR_INGRESS),
    ]
    assert (r.records, r.bytes, r.truncated, r.format) == (5, 386, None, "pcapng")


def test_pcapng_default_resolution_sections_and_unknown_interface(tmp_path):
    e = "<"
    data = b"".join(
        [
            shb(e),
            idb(e, 1),  # default if_tsresol: microseconds
            epb(e, 0, 1_700_000_000_000_001, PKTS[0]),
            epb(e, 3, 1, PKTS[1]),  # no interface 3: skipped, frame number still used
            shb(">"),  # a new section in the other byte order: interfaces restart
            idb(">", 101),
            epb(">", 0, 7, PKTS[2]),
        ]
    )
    f = tmp_path / "x.pcapng"
    f.write_bytes(data)
    r = PcapReader(f)
    rows = frames(r)
    assert [(n, lt, ts) for n, lt, _, _, _, ts, _, _ in rows] == [
        (1, 1, 1_700_000_000_000_001_000),
        (3, 101, 7000),
    ]
    assert (r.skipped, r.records, r.truncated) == (1, 2, None)


def test_pcapng_truncated_block(tmp_path):
    whole = ng_file("<")
    cut = len(shb("<")) + len(idb("<", 1, (9, b"\x09")))
    cut += len(idb("<", 113, (9, b"\x8a"), (14, b"\x00" * 8)))
    first = len(epb("<", 0, 0, PKTS[0], (2, b"\x00" * 4)))
    f = tmp_path / "x.pcapng"
    f.write_bytes(whole[: cut + first + 20])
    r = PcapReader(f)
    assert [row[2] for row in frames(r)] == [PKTS[0]]
    # The next block is the unknown one: 12 + 20 (18-byte body padded) bytes.
    assert r.truncated == (
        f"stopped at byte offset {cut + first} (record 2): partial block (20 of 32 bytes)"
    )
    f.write_bytes(whole[: cut + first + 5])
    r = PcapReader(f)
    assert len(frames(r)) == 1
    assert (
        r.truncated
        == f"stopped at byte offset {cut + first} (record 2): partial block header (5 bytes)"
    )


def test_corpus_file_as_pcap_and_pcapng_agree(corpus, tmp_path):
    import shutil
    import subprocess

    src = corpus / "sngrep" / "ipv6frag.pcap"
    if not shutil.which("editcap"):
        pytest.skip("editcap (tshark) not installed")
    ng = tmp_path / "x.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(src), str(ng)], check=True, capture_output=True)
    a, b = frames(PcapReader(src)), frames(PcapReader(ng))
    assert len(a) == 34
    assert a == b


# -- errors at open ---------------------------------------------------------------------------


def _err(path) -> str:
    with pytest.raises(CaptureFileError) as ei:
        PcapReader(path)
    msg = ei.value.message
    assert "\n" not in msg
    return msg


def test_open_errors(tmp_path):
    assert _err(tmp_path / "nope.pcap") == f"{tmp_path / 'nope.pcap'}: no such file"
    assert _err(tmp_path) == f"{tmp_path}: is a directory"
    text = tmp_path / "notes.txt"
    text.write_text("hello world\n")
    assert _err(text) == f"{text}: not a pcap or pcapng file (magic 0x68656c6c)"
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    assert _err(empty) == f"{empty}: empty file, not a pcap or pcapng capture"
    tiny = tmp_path / "tiny.pcap"
    tiny.write_bytes(b"\xd4\xc3")
    assert _err(tiny) == f"{tiny}: too short for a capture file (2 bytes)"
    gz = tmp_path / "x.pcap.gz"
    gz.write_bytes(gzip.compress(pcap()))
    assert _err(gz) == f"{gz}: gzip-compressed; decompress it first"


def test_reads_from_a_pipe(tmp_path):
    import os
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    data = pcap()

    def write() -> None:
        with open(fifo, "wb") as w:
            w.write(data)

    t = threading.Thread(target=write)
    t.start()
    r = PcapReader(fifo)
    t.join(5)
    assert [row[2] for row in frames(r)] == PKTS


# Frames of pcap(): what both ways of reading must give.
EXPECTED = [
    (i + 1, 1, p, len(p), len(p) + 4, (1_700_000_000 + i) * 10**9 + (250 + i) * 1000, 0, 0)
    for i, p in enumerate(PKTS)
]


def test_numpy_from_the_batch_that_passes_the_record_count(tmp_path, monkeypatch):
    f = tmp_path / "x.pcap"
    f.write_bytes(pcap())
    monkeypatch.setattr(pcapfile, "_NUMPY_RECORDS", 3)
    r = PcapReader(f)
    assert [r._np is not None for _ in r.batches(2)] == [False, True, True]
    assert frames(PcapReader(f), 2) == EXPECTED


def test_numpy_from_the_start_in_a_large_file(tmp_path, monkeypatch):
    f = tmp_path / "x.pcap"
    f.write_bytes(pcap())
    monkeypatch.setattr(pcapfile, "_NUMPY_RECORDS", 1000)
    monkeypatch.setattr(pcapfile, "_NUMPY_BYTES", f.stat().st_size)
    r = PcapReader(f)
    assert [r._np is not None for _ in r.batches(2)] == [True, True, True]
    monkeypatch.setattr(pcapfile, "_NUMPY_BYTES", f.stat().st_size + 1)
    r = PcapReader(f)
    assert [r._np is not None for _ in r.batches(2)] == [False, False, False]
    assert frames(PcapReader(f), 2) == EXPECTED


def test_a_short_replay_does_not_import_numpy(tmp_path):
    f = tmp_path / "x.pcap"
    f.write_bytes(pcap())
    code = (
        "import sys\n"
        "from sipcm.capture.pcapfile import PcapReader\n"
        f"r = PcapReader({str(f)!r})\n"
        "print(sum(len(b) for b in r.batches()), 'numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "5 False\n"


def _mapped_rss_kb(path: str) -> int:
    """Resident kB of this process's mappings of `path` (/proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5:  # a mapping's first line
                inside = len(head) >= 6 and head[-1] == path
            elif inside and head[:1] == ["Rss:"]:
                total += int(head[1])
    return total


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_a_mapped_file_stays_out_of_rss_behind_the_batches(tmp_path, fmt) -> None:
    from tests.sipgen import MS, T0, Capture, Leg, basic_call

    cap = Capture()
    for i in range(400):
        basic_call(cap, Leg(f"rss-{i}@example.com", from_tag=f"r{i}"), T0 + i * 5 * MS)
    path = str(cap.write(tmp_path / "calls.pcap"))
    if fmt == "pcapng":
        editcap = shutil.which("editcap")
        if editcap is None:
            pytest.skip("editcap (wireshark-common) is not installed: no pcapng to read")
        subprocess.run([editcap, "-F", "pcapng", path, path + "ng"], check=True)
        path += "ng"
    size_kb = os.path.getsize(path) // 1024
    reader = PcapReader(path)
    try:
        seen, peak = 0, 0
        for batch in reader.batches(64):
            seen += len(batch)
            peak = max(peak, _mapped_rss_kb(path))
        assert seen == 400 * 7
        assert size_kb > 1000
        # Only the pages of about the last batch stay mapped (64 records, ~40 kB), not the file.
        assert peak < 200, (peak, size_kb)
    finally:
        reader.close()
