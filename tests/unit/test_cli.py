"""The command line: help everywhere, one-line user errors, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import CORPUS, REPO


def sipcm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sipcm", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "cmd",
    [
        [], ["replay"], ["attach"], ["detach"], ["doctor"], ["config"], ["config-keys"],
        ["setup"], ["export"], ["export", "template"], ["test"], ["test", "output"], ["flow"],
    ],
)  # fmt: skip
def test_help_everywhere(cmd: list[str]) -> None:
    res = sipcm(*cmd, "--help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("Usage: sipcm")


def test_unknown_override_key_names_the_closest_spelling() -> None:
    res = sipcm("-E", "sip_prots=[5060]", "replay", "never-read.pcap")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1
    assert "sip_prots" in res.stderr
    assert "sip_ports" in res.stderr
    assert res.stdout == ""


def test_config_options_after_the_subcommand(tmp_path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text("sipcm:\n  sip_ports: [5060, 5080]\n  http_port: 0\n")
    res = sipcm("config", "-c", str(cfg), "-E", "outputs.console.pretty=true")
    assert res.returncode == 0, res.stderr
    assert "  sip_ports: [5060, 5080]\n" in res.stdout
    assert "pretty: true" in res.stdout


def test_bad_flag_is_a_usage_error() -> None:
    res = sipcm("replay", "--no-such-flag", "x.pcap")
    assert res.returncode == 2
    assert "No such option" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.needs_shared("corpus")
def test_replay_prints_ndjson_events_on_stdout() -> None:
    import json

    res = sipcm("replay", "--summary", "none", str(CORPUS / "zeek/sip-wireshark.pcap"))
    assert res.returncode == 0, res.stderr
    docs = [json.loads(line) for line in res.stdout.splitlines()]
    assert docs, "no events"
    actions = [d["event"]["action"] for d in docs]
    assert set(actions) == {"auth-failed", "reg-new", "call-attempt", "stats"}
    # 24 min of capture with the default 5 min stats_interval: 4 stats events.
    assert actions.count("stats") == 4
    assert res.stderr == ""


def test_attach_unknown_interface_is_one_line_error() -> None:
    res = sipcm("-E", "http_port=0", "attach", "no-such-if0")
    assert res.returncode != 0
    assert "no-such-if0" in res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1


@pytest.mark.needs_shared("corpus")
def test_anonymized_replay_decrypts_back_to_the_clear_events(tmp_path) -> None:
    key = tmp_path / "key.hex"
    key.write_text("00112233445566778899aabbccddeeff\n")
    key.chmod(0o600)
    pcap = str(CORPUS / "zeek/sip-wireshark.pcap")
    plain = sipcm("replay", "--summary", "none", pcap)
    enc = sipcm(
        "-E", "encrypt_ip_addresses=true", "-E", "encrypt_uris=true",
        "-E", "encrypt_call_ids=true", "-E", "encrypt_ua=true",
        "-E", f"encryption_key_file={key}", "replay", "--summary", "none", pcap,
    )  # fmt: skip
    assert enc.returncode == 0, enc.stderr
    assert "192.168.1.2" not in enc.stdout
    assert "voi18062" not in enc.stdout
    assert "578222729-4665d775" not in enc.stdout
    src = tmp_path / "enc.ndjson"
    src.write_text(enc.stdout)
    dec = sipcm("decrypt", "--key-file", str(key), str(src))
    assert dec.returncode == 0, dec.stderr
    assert dec.stdout == plain.stdout
    other = tmp_path / "other.hex"
    other.write_text("ffeeddccbbaa99887766554433221100\n")
    other.chmod(0o600)
    bad = sipcm("decrypt", "--key-file", str(other), str(src))
    assert bad.returncode != 0
    assert "wrong key" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_attach_needs_an_interface() -> None:
    res = sipcm("-E", "http_port=0", "attach")
    assert res.returncode == 2
    assert "no interface" in res.stderr


def _options_flood(path, n: int) -> str:
    """`n` OPTIONS from one IP within n ms, each answered 200."""
    from tests.sipgen import MS, T0, Capture, Leg

    cap = Capture()
    for i in range(n):
        leg = Leg(f"opt-{i}@example.com")
        req = leg.req("OPTIONS")
        cap.a2b(leg, T0 + i * MS, req.raw)
        cap.b2a(leg, T0 + i * MS + MS, leg.resp(req, 200, "OK"))
    return str(cap.write(path))


def test_summary_says_what_the_rate_limits_held_back(tmp_path) -> None:
    """150 OPTIONS in 150 ms: 20 pass, the 21st and 120th (repeats 1 and 100) are published
    marked, 128 are not published; text and JSON summaries and --pretty all say so."""
    import json

    pcap = _options_flood(tmp_path / "flood.pcap", 150)
    res = sipcm("-E", "stats_interval=0", "replay", "--pretty", pcap)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 22
    assert [ln.rsplit(" ", 2)[-2:] for ln in lines if "[limited" in ln] == [
        ["[limited", "1]"],
        ["[limited", "100]"],
    ]
    per_file = res.stderr.splitlines()[0]  # then one line per output
    assert per_file.endswith(
        "22 events, 128 more not published (rate limits, evr_limits): other-ok 128"
    )
    res = sipcm("-E", "stats_interval=0", "replay", "--summary", "json", pcap)
    per_file = json.loads(res.stderr.splitlines()[0])
    assert per_file["limited"] == {"other-ok": 128}
    assert per_file["events"] == 22


def _two_calls(tmp_path) -> str:
    from tests.sipgen import MS, T0, Capture, Leg, basic_call

    cap = Capture()
    basic_call(cap, Leg("a@example.com"), T0, talk_s=5)
    basic_call(cap, Leg("b@example.com", a_ip="192.0.2.11"), T0 + 100 * MS, talk_s=7)
    return str(cap.write(tmp_path / "calls.pcap"))


def _replay_stdin(stdin, *args: str, data: bytes | None = None):
    """`sipcm replay ARGS` with `stdin` (a file, descriptor or DEVNULL), or `data` piped in."""
    return subprocess.run(
        [sys.executable, "-m", "sipcm", "-E", "stats_interval=0", "replay", *args],
        input=data, stdin=None if data is not None else stdin,
        capture_output=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("how", ["pipe", "redirect"])
def test_replay_dash_reads_standard_input(tmp_path, how) -> None:
    import json

    from tests.ecs import assert_valid

    pcap = _two_calls(tmp_path)
    by_path = _replay_stdin(subprocess.DEVNULL, "--summary", "json", pcap)
    assert by_path.returncode == 0, by_path.stderr
    with open(pcap, "rb") as fh:
        if how == "pipe":
            res = _replay_stdin(None, "--summary", "json", "-", data=fh.read())
        else:
            res = _replay_stdin(fh, "--summary", "json", "-")
    assert res.returncode == 0, res.stderr
    assert res.stdout == by_path.stdout
    docs = [json.loads(line) for line in res.stdout.splitlines()]
    for doc in docs:
        assert_valid(doc)
    assert [(d["event"]["action"], d["sip"]["call_id"]) for d in docs] == [
        ("call-start", "a@example.com"),
        ("call-start", "b@example.com"),
        ("call-end", "a@example.com"),
        ("call-end", "b@example.com"),
    ]
    summary, console = map(json.loads, res.stderr.splitlines())
    assert summary["name"] == "-"
    assert (summary["packets"], summary["messages"], summary["events"]) == (14, 14, 4)
    assert (console["output"], console["delivered"]) == ("console", 4)


def test_replay_dash_twice_is_a_usage_error(tmp_path) -> None:
    res = sipcm("replay", "-", "-")
    assert res.returncode == 2
    assert "standard input (-) can be read only once" in res.stderr


def test_replay_dash_refuses_a_terminal() -> None:
    import os
    import pty

    leader, follower = pty.openpty()
    try:
        res = _replay_stdin(follower, "-")
    finally:
        os.close(leader)
        os.close(follower)
    assert res.returncode == 2
    assert b"standard input, which is a terminal" in res.stderr


def test_config_keys_lists_every_timer_with_its_default() -> None:
    from sipcm.config.schema import CALL_TIMERS

    res = sipcm("config-keys")
    assert res.returncode == 0, res.stderr
    for name, (default, _) in CALL_TIMERS.items():
        assert f"\ncalls_timeouts.{name} (default: {default})\n" in res.stdout
    assert "\ncalls_timeouts.inv_early_dlg (default: 3m)\n" in res.stdout
    assert "\ncalls_timeouts.dup_window (default: 32s)\n" in res.stdout


def test_config_refuses_an_unknown_timer(tmp_path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text("sipcm:\n  calls_timeouts:\n    inv_establshed: 2h\n")
    res = sipcm("config", "-c", str(cfg))
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr == (
        f"sipcm: error: {cfg}: unknown config key 'calls_timeouts.inv_establshed' "
        "(did you mean 'calls_timeouts.inv_established'?)\n"
    )


def test_config_prints_units_and_hides_secrets(tmp_path) -> None:
    res = sipcm("-E", "access_token=tok3n", "-E", "calls_timeouts.inv_1st=90s", "config")
    assert res.returncode == 0, res.stderr
    assert "tok3n" not in res.stdout
    assert "  access_token: null  # set, not shown\n" in res.stdout
    assert "  calls_timeouts:\n    inv_1st: 90s\n    inv_early_dlg: 3m\n" in res.stdout
    assert "  ring_size: 16MiB\n" in res.stdout
    printed = tmp_path / "printed.yml"
    printed.write_text(res.stdout)
    again = sipcm("config", "-c", str(printed))
    assert again.returncode == 0, again.stderr
    assert again.stdout == res.stdout.replace("null  # set, not shown", "''")
