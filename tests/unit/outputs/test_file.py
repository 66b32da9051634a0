"""File output: NDJSON lines, size-based rotation, error counting."""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest

from sipcm.errors import SipcmError
from sipcm.outputs.base import Output
from sipcm.outputs.file import FileOutput


def ev(n: int) -> dict:
    """`{"n":N,"p":"xxxxxxxxxx"}\\n` is exactly 25 bytes for a one-digit N."""
    return {"n": n, "p": "x" * 10}


def numbers(path) -> list[int]:
    return [json.loads(line)["n"] for line in path.read_text().splitlines()]


def test_appends_ndjson_and_counts(tmp_path) -> None:
    p = tmp_path / "events.ndjson"
    out = FileOutput(p)
    assert isinstance(out, Output)
    out.write([ev(1), ev(2)])
    out.write([])
    out.flush()
    out.close()
    assert p.read_bytes() == b'{"n":1,"p":"xxxxxxxxxx"}\n{"n":2,"p":"xxxxxxxxxx"}\n'
    assert out.counters == {"published": 2}
    assert stat.S_IMODE(p.stat().st_mode) == 0o640
    out2 = FileOutput(p)  # reopening appends
    out2.write([ev(3)])
    out2.close()
    assert numbers(p) == [1, 2, 3]


def test_rotation_by_size_keeps_n_files(tmp_path) -> None:
    p = tmp_path / "ev.json"
    out = FileOutput(p, rotate_bytes=100, keep=2)
    out.write([ev(i) for i in range(10)])  # 4 lines (100 bytes) fit in one file
    assert numbers(tmp_path / "ev.json.2") == [0, 1, 2, 3]
    assert numbers(tmp_path / "ev.json.1") == [4, 5, 6, 7]
    assert numbers(p) == [8, 9]
    assert out.counters == {"published": 10, "rotations": 2}
    out.write([ev(i) for i in range(4)])
    out.close()
    assert numbers(tmp_path / "ev.json.2") == [4, 5, 6, 7]
    assert numbers(tmp_path / "ev.json.1") == [8, 9, 0, 1]
    assert numbers(p) == [2, 3]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["ev.json", "ev.json.1", "ev.json.2"]
    assert out.counters == {"published": 14, "rotations": 3}


def test_existing_size_counts_and_keep_zero_discards(tmp_path) -> None:
    p = tmp_path / "ev.json"
    p.write_bytes(b"y" * 90 + b"\n")
    out = FileOutput(p, rotate_bytes=100, keep=0)
    out.write([ev(1)])  # 91 + 25 > 100: rotate first, and nothing is kept
    out.close()
    assert numbers(p) == [1]
    assert [f.name for f in tmp_path.iterdir()] == ["ev.json"]
    assert out.counters["rotations"] == 1


def test_oversized_line_gets_its_own_file(tmp_path) -> None:
    p = tmp_path / "ev.json"
    out = FileOutput(p, rotate_bytes=30, keep=3)
    out.write([ev(1), {"n": 2, "p": "x" * 50}, ev(3)])
    out.close()
    assert numbers(tmp_path / "ev.json.2") == [1]
    assert numbers(tmp_path / "ev.json.1") == [2]
    assert numbers(p) == [3]


def test_write_error_is_counted_and_file_reopened(tmp_path, monkeypatch) -> None:
    p = tmp_path / "ev.json"
    out = FileOutput(p)
    out.write([ev(1)])
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        monkeypatch.setattr(os, "write", real_write)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    out.write([ev(2), ev(3)])
    assert out.counters == {"published": 1, "write_errors": 1, "dropped": 2}
    out.write([ev(4)])
    out.close()
    assert numbers(p) == [1, 4]
    assert out.counters["published"] == 2


def test_unopenable_path_is_a_user_error(tmp_path) -> None:
    with pytest.raises(SipcmError, match=r"cannot open .*missing/ev\.json"):
        FileOutput(tmp_path / "missing" / "ev.json")
    with pytest.raises(SipcmError, match="rotate_bytes must be positive"):
        FileOutput(tmp_path / "ev.json", rotate_bytes=0)


def test_symlink_at_the_path_is_refused(tmp_path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    link = tmp_path / "ev.json"
    link.symlink_to(target)
    with pytest.raises(SipcmError) as ei:
        FileOutput(link)
    assert (ei.value.message, ei.value.hint) == (
        f"file output: {link} is a symbolic link; refusing to follow it",
        "set the file output path to the real file, or remove the link",
    )
    assert target.read_text() == "precious\n"


def test_symlink_planted_after_rotation_is_not_followed(tmp_path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    p = tmp_path / "ev.json"
    out = FileOutput(p, rotate_bytes=1, keep=1)
    out.write([{"n": 1}])
    os.unlink(p)
    p.symlink_to(target)  # planted while the sensor runs: the next open refuses it
    out._close_fd(sync=False)
    out.write([{"n": 2}])
    assert target.read_text() == ""
    assert (out.counters["write_errors"], out.counters["dropped"]) == (1, 1)


def test_fifo_at_the_path_is_refused(tmp_path) -> None:
    fifo = tmp_path / "ev.json"
    os.mkfifo(fifo)
    with pytest.raises(SipcmError, match=r"cannot open .*ev\.json: not a regular file"):
        FileOutput(fifo)


def test_terminal_controls_in_sip_text_are_written_as_json_escapes(tmp_path) -> None:
    """As on the console: a `tail -f` of the file must not hand a terminal a C1 control or a
    bidi override taken from a SIP message; the documents read back unchanged."""
    from sipcm.outputs.base import ndjson_bytes

    docs = [{"a": "\x9b31m\u202e\u2067"}, {"b": "caf\u00e9 \u2019"}, {"c": 1}]
    out = FileOutput(tmp_path / "e.ndjson")
    out.write_lines([ndjson_bytes(d) for d in docs])
    out.write([{"d": "\u200e"}])
    out.close()
    data = (tmp_path / "e.ndjson").read_bytes()
    assert data == (
        b'{"a":"\\u009b31m\\u202e\\u2067"}\n{"b":"caf\xc3\xa9 \xe2\x80\x99"}\n{"c":1}\n'
        b'{"d":"\\u200e"}\n'
    )
    assert [json.loads(x) for x in data.splitlines()] == [*docs, {"d": "\u200e"}]
