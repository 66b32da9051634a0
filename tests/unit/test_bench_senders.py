"""bench.live's senders without a network: the pcap a step is replayed from, tcpreplay's
command line (pacing, bursts) and the reading of its report."""

from __future__ import annotations

import ctypes

import pytest

from bench.live import call_frames
from bench.senders import NICE, Mmsg, Tcpreplay, burst, parse_tcpreplay, write_pcap
from sipcm.capture.pcapfile import PcapReader
from sipcm.capture.records import LINKTYPE_ETHERNET

# tcpreplay 4.4.3's report of one bench.live step (80,000 frames/s asked)
REPORT = """\
Actual: 239988 packets (69127450 bytes) sent in 3.00 seconds
Rated: 23008101.5 Bps, 184.06 Mbps, 79876.63 pps
Statistics for network device: v0
\tSuccessful packets:        239988
\tFailed packets:            0
\tTruncated packets:         0
\tRetried packets (ENOBUFS): 0
\tRetried packets (EAGAIN):  0
"""


def test_pcap_holds_the_step_frames_in_order(tmp_path):
    frames = call_frames("t", 30, 10, 1.0)
    path = tmp_path / "step.pcap"
    write_pcap(path, frames)
    reader = PcapReader(path)
    got = []
    for b in reader.batches():
        assert b.linktype == LINKTYPE_ETHERNET
        got += [bytes(b.data[o : o + c]) for o, c in zip(b.offset, b.caplen, strict=True)]
    reader.close()
    assert got == frames
    assert len(frames) == 2 * 30 * 7  # 7 SIP messages per call, one non-SIP datagram each
    assert reader.truncated is None


@pytest.mark.parametrize(("pps", "frames"), [(80_000, 80), (30_000, 30), (120_000, 120), (400, 1)])
def test_burst_is_a_millisecond_of_traffic_at_least_one_frame(pps, frames):
    assert burst(pps) == frames


def test_mmsg_headers_point_at_each_frame_in_turn():
    frames = [b"first frame", b"", b"3rd", b"x" * 1500]
    data, iov, msgs = Mmsg.messages(frames)
    assert [ctypes.string_at(int(b), int(n)) for b, n in iov] == frames
    assert msgs.shape == (4, 8)  # struct mmsghdr: 64 bytes
    assert [int(m[2]) - iov.ctypes.data for m in msgs] == [0, 16, 32, 48]  # msg_iov
    assert msgs[:, 3].tolist() == [1, 1, 1, 1]  # msg_iovlen
    assert not msgs[:, [0, 1, 4, 5, 6, 7]].any()  # no address, control data, flags or length
    assert bytes(data) == b"".join(frames)


def test_tcpreplay_command_paces_in_the_peer_namespace(tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda tool: f"/usr/bin/{tool}")
    cmd = Tcpreplay("peer7", "v0", tmp_path).command(79_999.6)
    assert cmd == [
        *("nice", "-n", str(NICE), "ip", "netns", "exec", "peer7", "tcpreplay"),
        *("--intf1", "v0", "--pps=80000", "--pps-multi=80", "--timer=nano", "--no-flow-stats"),
        str(tmp_path / "step.pcap"),
    ]


def test_without_tcpreplay_it_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda tool: None)
    with pytest.raises(SystemExit, match=r"tcpreplay not found .* or run with --sender mmsg"):
        Tcpreplay("peer7", "v0", tmp_path)


def test_report_gives_frames_seconds_from_the_pps_figure_and_failures():
    n, seconds, stats = parse_tcpreplay(REPORT)
    assert n == 239988
    assert seconds == pytest.approx(239988 / 79876.63, rel=1e-12)
    assert stats == {"Successful": 239988, "Failed": 0, "Truncated": 0}


def test_report_without_actual_line_is_an_error():
    with pytest.raises(RuntimeError, match="no 'Actual:' line"):
        parse_tcpreplay("Fatal Error: failed to open device v0: No such device\n")
