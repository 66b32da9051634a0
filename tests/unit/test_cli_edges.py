"""The command line at the edges: secrets in URLs, hostile input files, unsafe paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ecs import assert_valid
from tests.unit.test_cli import sipcm

URL_WITH_PASSWORD = 'outputs.elasticsearch.hosts=["https://elastic:hunter2pw@es.example:9200"]'


def test_config_masks_the_password_of_a_url() -> None:
    res = sipcm("config", "-E", URL_WITH_PASSWORD)
    assert res.returncode == 0, res.stderr
    # removed, not masked: "***" would load back as the password
    hosts = "      hosts: ['https://elastic@es.example:9200']  # URL password set, not shown\n"
    assert hosts in res.stdout
    assert "hunter2pw" not in res.stdout


def test_bad_url_error_masks_its_password() -> None:
    res = sipcm("config", "-E", 'outputs.elasticsearch.hosts=["ftp://elastic:hunter2pw@es"]')
    assert res.returncode == 2
    assert "ftp://elastic:***@es" in res.stderr
    assert "hunter2pw" not in res.stderr + res.stdout


def test_replay_dev_zero_is_a_one_line_error() -> None:
    res = sipcm("replay", "/dev/zero")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1
    assert "/dev/zero: not a pcap or pcapng file (magic 0x00000000)" in res.stderr


def _options_pcapng(path: Path, bad_units: int) -> Path:
    """OPTIONS, a record with timestamp `bad_units` (ns), then the 200 OK."""
    from sipcm.capture.pcapwriter import udp_frame
    from tests.sipgen import T0, Leg
    from tests.unit.capture.test_pcapfile import epb, idb, shb

    leg = Leg("bad-ts@example.com")
    req = leg.req("OPTIONS")
    a, b = (leg.a_ip, leg.a_port), (leg.b_ip, leg.b_port)
    out = udp_frame(*a, *b, req.raw)
    back = udp_frame(*b, *a, leg.resp(req, 200, "OK"))
    e = "<"
    path.write_bytes(
        shb(e)
        + idb(e, 1, (9, b"\x09"))
        + epb(e, 0, T0, out)
        + epb(e, 0, bad_units, back)
        + epb(e, 0, T0 + 5_000_000, back)
    )
    return path


def test_replay_skips_a_record_with_an_overflowing_timestamp(tmp_path) -> None:
    f = _options_pcapng(tmp_path / "bad.pcapng", 0xFFFFFFFF << 32)
    res = sipcm("-E", "http_port=0", "replay", str(f))
    assert res.returncode == 2
    # The per-file summary, the per-output delivery line, then the one-line error.
    summary, delivery, error = res.stderr.splitlines()
    assert summary.startswith(f"{f}: 2 packets, 2 SIP messages")
    assert delivery.startswith("output console: 1 delivered")
    assert f"{f}: 1 unreadable record(s) skipped, the first record 2 at byte offset " in error
    assert error.endswith(
        "timestamp outside the representable range (1970 to 2262) (everything else was replayed)"
    )
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(e["event"]["action"], e["sip"]["code"]) for e in events] == [("other-ok", 200)]
    for e in events:
        assert_valid(e)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b'{"a": 1}\n{"b": "\xff\xfe"}\n', "line 2 is not UTF-8 text (byte 0xff at column 8)"),
        (b"[" * 200_000 + b"\n", "line 1 is nested too deeply to be an event"),
        (b'{"a":' * 200_000 + b"\n", "line 1 is nested too deeply to be an event"),
    ],
)
def test_decrypt_hostile_input_is_a_one_line_error(tmp_path, content: bytes, error: str) -> None:
    f = tmp_path / "in.ndjson"
    f.write_bytes(content)
    key = tmp_path / "k.hex"
    key.write_text("00112233445566778899aabbccddeeff\n")
    key.chmod(0o600)
    res = sipcm("decrypt", "--key-file", str(key), str(f))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr == (
        f"sipcm: error: {error} (give the NDJSON written by the console or file output)\n"
    )


def test_file_output_refuses_a_symlink(tmp_path) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    link = tmp_path / "events.ndjson"
    link.symlink_to(target)
    pcap = _options_pcapng(tmp_path / "x.pcapng", 1_700_000_000_000_000_000)
    res = sipcm(
        "-E", "outputs.file.enabled=true", "-E", f"outputs.file.path={link}",
        "-E", "outputs.console.enabled=false", "replay", str(pcap),
    )  # fmt: skip
    assert res.returncode == 2
    assert res.stderr == (
        f"sipcm: error: file output: {link} is a symbolic link; refusing to follow it "
        "(set the file output path to the real file, or remove the link)\n"
    )
    assert target.read_text() == "keep me\n"


def test_decrypt_dev_zero_is_a_one_line_error(tmp_path) -> None:
    key = tmp_path / "k.hex"
    key.write_text("00112233445566778899aabbccddeeff\n")
    key.chmod(0o600)
    res = sipcm("decrypt", "--key-file", str(key), "/dev/zero")
    assert res.returncode == 2
    assert res.stderr == (
        f"sipcm: error: line 1 is longer than {16 << 20} bytes "
        "(give the NDJSON written by the console or file output)\n"
    )
