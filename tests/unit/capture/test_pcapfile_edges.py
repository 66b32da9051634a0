"""PcapReader on hostile input: out-of-range timestamps, endless devices, live pipes."""

from __future__ import annotations

import os
import struct
import threading

import pytest

import sipcm.capture.pcapfile as pcapfile
from sipcm.capture.pcapfile import PcapReader
from sipcm.errors import CaptureFileError
from tests.unit.capture.test_pcapfile import (
    PKTS,
    epb,
    frames,
    idb,
    pcap,
    reader_mode,  # noqa: F401  (both ways here too)
    shb,
)

T1 = 1_700_000_000_000_000_000  # ns


def test_overflowing_epb_timestamp_is_one_skipped_record(tmp_path) -> None:
    e = "<"
    data = b"".join(
        [
            shb(e),
            idb(e, 1, (9, b"\x09")),  # ns resolution
            epb(e, 0, T1, PKTS[0]),
            epb(e, 0, (0xFFFFFFFF << 32) | 5, PKTS[1]),  # about 1.8e19 ns: past int64
            epb(e, 0, T1 + 1, PKTS[2]),
        ]
    )
    f = tmp_path / "x.pcapng"
    f.write_bytes(data)
    r = PcapReader(f)
    rows = frames(r)
    assert [(n, ts, pkt) for n, _, pkt, _, _, ts, _, _ in rows] == [
        (1, T1, PKTS[0]),
        (3, T1 + 1, PKTS[2]),
    ]
    at = len(shb(e)) + len(idb(e, 1, (9, b"\x09"))) + len(epb(e, 0, T1, PKTS[0]))
    assert (r.skipped, r.records, r.truncated) == (1, 2, None)
    assert r.skip_note == (
        f"record 2 at byte offset {at}: timestamp outside the representable range (1970 to 2262)"
    )


@pytest.mark.parametrize("offset_s", [2**62, -(2**62)])
def test_huge_tsoffset_skips_that_interface_only(tmp_path, offset_s: int) -> None:
    e = ">"
    data = b"".join(
        [
            shb(e),
            idb(e, 1, (14, struct.pack(e + "q", offset_s))),
            idb(e, 113),
            epb(e, 0, 1, PKTS[0]),
            epb(e, 1, 1_700_000_000_000_000, PKTS[1]),
            epb(e, 0, 2, PKTS[2]),
        ]
    )
    f = tmp_path / "x.pcapng"
    f.write_bytes(data)
    r = PcapReader(f)
    assert [(n, lt, pkt) for n, lt, pkt, *_ in frames(r)] == [(2, 113, PKTS[1])]
    assert (r.skipped, r.records, r.truncated) == (2, 1, None)
    assert r.skip_note is not None
    assert r.skip_note.startswith("record 1 at byte offset ")


def test_dev_zero_is_refused_at_once() -> None:
    with pytest.raises(CaptureFileError) as ei:
        PcapReader("/dev/zero")
    assert ei.value.message == "/dev/zero: not a pcap or pcapng file (magic 0x00000000)"


def test_pipe_yields_batches_as_data_arrives(tmp_path) -> None:
    """The first frames come out while the writer is still holding the pipe open."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    data = pcap()
    first = 24 + 16 + len(PKTS[0])
    go_on = threading.Event()

    def write() -> None:
        with open(fifo, "wb", buffering=0) as w:
            w.write(data[:first])
            go_on.wait(10)
            w.write(data[first:])

    t = threading.Thread(target=write)
    t.start()
    try:
        r = PcapReader(fifo)
        it = r.batches()
        b = next(it)
        assert (b.first_frame, len(b)) == (1, 1)
        go_on.set()
        rest = list(it)
    finally:
        go_on.set()
        t.join(5)
    assert [(x.first_frame, len(x)) for x in rest] == [(2, 4)]
    assert (r.records, r.truncated) == (5, None)
    r.close()


def test_stream_window_stays_bounded(tmp_path, monkeypatch) -> None:
    """A long stream is read in windows of about CHUNK bytes, never whole."""
    monkeypatch.setattr(pcapfile, "CHUNK", 4096)
    pkts = [bytes([i % 251]) * 300 for i in range(400)]  # about 126 KB
    data = pcap(pkts=pkts)
    rfd, wfd = os.pipe()
    t = threading.Thread(target=lambda: (os.write(wfd, data), os.close(wfd)))
    t.start()
    r = PcapReader(f"/dev/fd/{rfd}")
    os.close(rfd)
    got, biggest = [], 0
    for b in r.batches():
        biggest = max(biggest, len(r._buf))
        got.extend(
            bytes(b.data[int(o) : int(o) + int(n)]) for o, n in zip(b.offset, b.caplen, strict=True)
        )
    t.join(5)
    assert got == pkts
    assert biggest <= 4096 + 316
    assert r.truncated is None


def test_stream_cut_short_is_reported(tmp_path) -> None:
    data = pcap()[:-10]
    rfd, wfd = os.pipe()
    os.write(wfd, data)
    os.close(wfd)
    r = PcapReader(f"/dev/fd/{rfd}")
    os.close(rfd)
    assert len(frames(r)) == 4
    at = len(data) - (16 + len(PKTS[4]) - 10)
    assert r.truncated == f"stopped at byte offset {at} (record 5): partial record (54 of 64 bytes)"


def test_stream_with_a_short_file_header(tmp_path) -> None:
    rfd, wfd = os.pipe()
    os.write(wfd, pcap()[:20])
    os.close(wfd)
    r = PcapReader(f"/dev/fd/{rfd}")
    os.close(rfd)
    assert frames(r) == []
    assert (
        r.truncated
        == "stopped at byte offset 20 (record 1): truncated pcap file header (20 of 24 bytes)"
    )


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_pcapng_stream_in_small_chunks_reads_like_the_file(tmp_path, monkeypatch, chunk) -> None:
    from tests.unit.capture.test_pcapfile import ng_file

    data = ng_file("<") + ng_file(">")  # two sections, both byte orders
    f = tmp_path / "x.pcapng"
    f.write_bytes(data)
    want = frames(PcapReader(f))
    monkeypatch.setattr(pcapfile, "CHUNK", chunk)
    rfd, wfd = os.pipe()
    t = threading.Thread(target=lambda: (os.write(wfd, data), os.close(wfd)))
    t.start()
    r = PcapReader(f"/dev/fd/{rfd}")
    os.close(rfd)
    got = frames(r)
    t.join(5)
    # Batches split where the window moved; frame by frame (numbers included) nothing differs.
    assert got == want
    assert (r.records, r.truncated, r.skipped) == (10, None, 0)
