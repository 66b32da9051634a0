"""load_config: defaults, files, -E overrides, unknown keys, bad values, YAML errors."""

from __future__ import annotations

import dataclasses
import os
import textwrap

import pytest

from sipcm.config import Config, describe, key_docs, load_config
from sipcm.config.schema import CALL_TIMERS
from sipcm.errors import ConfigError

# calls_timeouts is stored complete: every timer at its default unless set.
TIMERS = load_config(None, []).calls_timeouts


def timers(**changed: float) -> dict[str, float]:
    return {**TIMERS, **changed}


def write(tmp_path, text: str, name: str = "sipcm.yml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def error(path, overrides=()) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides))
    return info.value


def test_defaults():
    cfg = load_config(None, [])
    assert cfg == Config()
    assert (cfg.interfaces, cfg.attach_mode, cfg.egress) == ((), "auto", True)
    assert (cfg.sip_ports, cfg.vxlan_ports, cfg.sip_detect) == ((5060,), (4789,), "port")
    assert (cfg.snap_len, cfg.ring_size, cfg.poll_interval) == (65535, 16 * 1024**2, 0.005)
    assert (cfg.frag_max_datagrams, cfg.frag_timeout, cfg.frag_max_bytes) == (1024, 30.0, 65535)
    assert (cfg.tcp_max_streams, cfg.tcp_max_stream_bytes, cfg.tcp_max_message_bytes) == (
        10000,
        1048576,
        1048576,
    )
    assert (cfg.tcp_max_ooo_segments, cfg.tcp_idle_timeout) == (64, 300.0)
    assert (cfg.calls_timeouts, cfg.reg_exp_delta) == (TIMERS, 30.0)
    assert TIMERS["inv_1st"] == 120.0
    assert TIMERS["dup_window"] == 32.0
    assert list(TIMERS) == list(CALL_TIMERS)
    assert (cfg.calls_max_entries, cfg.regs_max_entries, cfg.replay_end) == (
        100000,
        100000,
        "conclude",
    )
    assert cfg.event_types_blst == ("msg-probe",)
    assert cfg.evr_intervals == (1.0, 60.0, 3600.0)
    # sipcmbeat's 20/240/3600 for every event but the call records, which are never limited
    assert cfg.evr_limits == {"default": (20, 240, 3600)} | {
        name: (0, 0, 0) for name in ("call-start", "call-end", "reg-new", "reg-del", "reg-expired")
    }
    assert (cfg.evr_max_entries, cfg.evr_conseq_report_min, cfg.evr_conseq_report_max) == (
        65536,
        100,
        10000,
    )
    assert (cfg.stats_interval, cfg.observer_name) == (300.0, "")
    assert not any(getattr(cfg, f.name) for f in dataclasses.fields(cfg) if "encrypt" in f.name)
    assert (cfg.outputs.console.enabled, cfg.outputs.console.pretty) == (True, False)
    assert (cfg.outputs.file.enabled, cfg.outputs.file.path) == (False, "")
    assert (cfg.outputs.file.rotate_bytes, cfg.outputs.file.keep) == (100 * 1024**2, 7)
    es = cfg.outputs.elasticsearch
    assert (es.enabled, es.hosts, es.data_stream) == (
        False,
        ("http://127.0.0.1:9200",),
        "logs-sipcm.sip-default",
    )
    assert (es.batch_size, es.flush_interval, es.spool_fsync_interval, es.max_retries) == (
        500, 1.0, 1.0, 5
    )  # fmt: skip
    assert (es.spool_dir, es.spool_max_bytes, es.verify_certs) == (
        "/var/lib/sipcm/spool",
        1024**3,
        True,
    )
    assert (cfg.http_addr, cfg.http_port, cfg.access_token) == ("127.0.0.1", 8080, "")


def test_config_is_frozen():
    cfg = load_config(None, [])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.http_port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.outputs.console.pretty = True  # type: ignore[misc]


def test_full_file(tmp_path):
    path = write(
        tmp_path,
        """\
        sipcm:
          interfaces: [eth0, eth1]
          attach_mode: Generic
          egress: false
          sip_ports: [5060, 5080]
          vxlan_ports: []
          sip_detect: heuristic
          snap_len: 2KiB
          ring_size: 64MiB
          poll_interval: 20ms
          frag_timeout: 10
          tcp_max_stream_bytes: 2MiB
          calls_timeouts: {inv_1st: 1m, inv_established: 2h}
          reg_exp_delta: 0
          replay_end: expire-all
          event_types_blst: [MSG-PROBE, Other-OK]
          evr_intervals: [2s, 2m, 2h]
          evr_limits: [0, 100, 1000]
          stats_interval: 0
          observer_name: sbc-1
          outputs:
            console: {enabled: false}
            file:
              enabled: true
              path: /var/log/sipcm/events.ndjson
              rotate_bytes: 10MB
            elasticsearch:
              enabled: true
              hosts: ["https://es1:9200", "https://es2:9200"]
              username: sipcm
              password: hunter2
              fingerprint: "{FP}"
          http_addr: 0.0.0.0
          http_port: 9090
          access_token: s3cret
        """.replace("{FP}", ":".join(["AB"] * 32)),
    )
    cfg = load_config(path, [])
    assert (cfg.interfaces, cfg.attach_mode, cfg.egress) == (("eth0", "eth1"), "generic", False)
    assert (cfg.sip_ports, cfg.vxlan_ports, cfg.sip_detect) == ((5060, 5080), (), "heuristic")
    assert (cfg.snap_len, cfg.ring_size, cfg.poll_interval) == (2048, 64 * 1024**2, 0.02)
    assert (cfg.frag_timeout, cfg.tcp_max_stream_bytes) == (10.0, 2 * 1024**2)
    assert cfg.calls_timeouts == timers(inv_1st=60.0, inv_established=7200.0)
    assert (cfg.reg_exp_delta, cfg.replay_end) == (0.0, "expire-all")
    assert cfg.event_types_blst == ("msg-probe", "other-ok")
    assert cfg.evr_intervals == (2.0, 120.0, 7200.0)
    assert cfg.evr_limits["default"] == (0, 100, 1000)  # the list form sets the default only
    assert cfg.evr_limits["call-end"] == (0, 0, 0)
    assert (cfg.stats_interval, cfg.observer_name) == (0.0, "sbc-1")
    out = cfg.outputs
    assert (out.console.enabled, out.console.pretty) == (False, False)
    assert (out.file.enabled, out.file.path, out.file.rotate_bytes, out.file.keep) == (
        True,
        "/var/log/sipcm/events.ndjson",
        10_000_000,
        7,
    )
    es = out.elasticsearch
    assert (es.enabled, es.hosts) == (True, ("https://es1:9200", "https://es2:9200"))
    assert (es.username, es.password, es.batch_size) == ("sipcm", "hunter2", 500)
    assert es.fingerprint == ":".join(["AB"] * 32)
    assert (cfg.http_addr, cfg.http_port, cfg.access_token) == ("0.0.0.0", 9090, "s3cret")
    # untouched keys keep their defaults
    assert (cfg.frag_max_datagrams, cfg.tcp_max_message_bytes) == (1024, 1048576)


def test_empty_sipcm_section_means_defaults(tmp_path):
    assert load_config(write(tmp_path, "sipcm:\n"), []) == Config()
    assert load_config(write(tmp_path, "sipcm:\n  outputs:\n"), []) == Config()


@pytest.mark.parametrize(
    ("override", "attr", "value"),
    [
        ("outputs.console.pretty=true", ("outputs", "console", "pretty"), True),
        ("sipcm.outputs.console.pretty=on", ("outputs", "console", "pretty"), True),
        ("sip_ports=[5060,5080]", ("sip_ports",), (5060, 5080)),
        ("sip_ports=[ 5060 , 5080 ]", ("sip_ports",), (5060, 5080)),
        ("calls_timeouts.inv_established=2h", ("calls_timeouts",), timers(inv_established=7200.0)),
        ("calls_timeouts={inv_1st: 5s}", ("calls_timeouts",), timers(inv_1st=5.0)),
        ("calls_timeouts.auth_wait=0", ("calls_timeouts",), TIMERS),  # 0: the default
        ("http_port=0", ("http_port",), 0),
        ("poll_interval=0.001", ("poll_interval",), 0.001),
        ("ring_size=4KiB", ("ring_size",), 4096),
        ("interfaces=[eth0]", ("interfaces",), ("eth0",)),
        ("observer_name=12345", ("observer_name",), "12345"),
        ("observer_name='quoted: name'", ("observer_name",), "quoted: name"),
        ("observer_name=", ("observer_name",), ""),
        ("access_token=a: b@c", ("access_token",), "a: b@c"),
        ("access_token=@start", ("access_token",), "@start"),
        ("outputs.file={enabled: true, path: /tmp/x}", ("outputs", "file", "path"), "/tmp/x"),
        ("event_types_blst=[]", ("event_types_blst",), ()),
    ],
)
def test_override_forms(override, attr, value):
    obj = load_config(None, [override])
    for name in attr:
        obj = getattr(obj, name)
    assert obj == value


def test_overrides_apply_after_file_and_in_order(tmp_path):
    path = write(
        tmp_path,
        """\
        sipcm:
          http_port: 9000
          calls_timeouts: {inv_1st: 1m}
          outputs: {console: {pretty: true}}
        """,
    )
    cfg = load_config(
        path,
        [
            "http_port=9001",
            "http_port=9002",
            "calls_timeouts.inv_established=2h",
            "outputs.console.enabled=false",
        ],
    )
    assert cfg.http_port == 9002
    assert cfg.calls_timeouts == timers(inv_1st=60.0, inv_established=7200.0)
    assert (cfg.outputs.console.enabled, cfg.outputs.console.pretty) == (False, True)


def test_unknown_top_level_key_in_file(tmp_path):
    exc = error(write(tmp_path, "sipcm:\n  sip_prots: [5060]\n"))
    assert exc.message == f"{tmp_path}/sipcm.yml: unknown config key 'sip_prots'"
    assert exc.hint == "did you mean 'sip_ports'?"


def test_unknown_nested_key_in_file(tmp_path):
    exc = error(write(tmp_path, "sipcm:\n  outputs:\n    elasticsearch:\n      host: [x]\n"))
    assert exc.message.endswith("unknown config key 'outputs.elasticsearch.host'")
    assert exc.hint == "did you mean 'outputs.elasticsearch.hosts'?"


def test_unknown_key_suggests_key_from_another_section(tmp_path):
    exc = error(write(tmp_path, "sipcm:\n  pretty: true\n"))
    assert exc.hint == "did you mean 'outputs.console.pretty'?"


def test_unknown_key_without_close_match(tmp_path):
    exc = error(write(tmp_path, "sipcm:\n  zzzzqqq: 1\n"))
    assert exc.message.endswith("unknown config key 'zzzzqqq'")
    assert exc.hint == "run 'sipcm config-keys' to list the valid keys"


def test_cfg_ignore_unknown_is_not_supported(tmp_path):
    exc = error(write(tmp_path, "sipcm:\n  cfg_ignore_unknown: [foo]\n  foo: 1\n"))
    assert exc.message.endswith("unknown config key 'cfg_ignore_unknown'")


@pytest.mark.parametrize(
    ("override", "key", "hint"),
    [
        ("outputs.consol.pretty=true", "outputs.consol", "did you mean 'outputs.console'?"),
        (
            "outputs.console.prety=true",
            "outputs.console.prety",
            "did you mean 'outputs.console.pretty'?",
        ),
        ("sipcm.http_prot=1", "http_prot", "did you mean 'http_port'?"),
        (
            "outputs.console={prety: true}",
            "outputs.console.prety",
            "did you mean 'outputs.console.pretty'?",
        ),
        (
            "encryption_pasphrase=topsecret",
            "encryption_pasphrase",
            "did you mean 'encryption_passphrase'?",
        ),
    ],
)
def test_unknown_key_in_override(override, key, hint):
    exc = error(None, [override])
    assert exc.message == f"-E override: unknown config key '{key}'"
    assert exc.hint == hint
    assert "topsecret" not in str(exc)


@pytest.mark.parametrize(
    ("override", "message", "hint"),
    [
        (
            "http_port",
            "bad -E override 'http_port': expected key=value",
            "e.g. -E http_port=9090 or -E outputs.console.pretty=true",
        ),
        (
            "=5",
            "bad -E override '': expected key=value",
            "e.g. -E http_port=9090 or -E outputs.console.pretty=true",
        ),
        (
            "http_port.x=1",
            "-E override: 'http_port' is a value, not a section: cannot set 'http_port.x'",
            "use -E http_port=VALUE",
        ),
        (
            "calls_timeouts.a.b=1",
            "-E override: 'calls_timeouts' is a value, not a section: "
            "cannot set 'calls_timeouts.a.b'",
            "use -E calls_timeouts=VALUE",
        ),
        (
            "sip_ports=[1",
            "-E override: value of 'sip_ports' is not valid YAML (line 1, "
            "column 3: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence))",
            "quote strings and write lists as [a, b]",
        ),
        (
            "outputs=5",
            "-E override: 'outputs' must be a mapping of keys, got 5",
            "write its keys indented under 'outputs:' or set them as -E outputs.KEY=VALUE",
        ),
    ],
)
def test_malformed_override(override, message, hint):
    exc = error(None, [override])
    assert (exc.message, exc.hint) == (message, hint)


@pytest.mark.parametrize(
    ("override", "key", "shown", "expected"),
    [
        (
            "snap_len=70000",
            "snap_len",
            "70000",
            'a size from 64 to 65535 in bytes (e.g. 65535, "64KiB", "16MiB", "1GiB", "100MB")',
        ),
        ("ring_size=5000", "ring_size", "5000", "a power-of-two size from 4KiB to 1GiB in bytes"),
        ("sip_ports=[5060,0]", "sip_ports[1]", "0", "a port number from 1 to 65535"),
        ("sip_ports=5060", "sip_ports", "5060", "a list, each a port number from 1 to 65535"),
        ("http_port=65536", "http_port", "65536", "a port number from 0 to 65535"),
        ("egress=maybe", "egress", '"maybe"', "true or false"),
        ("egress=1", "egress", "1", "true or false"),
        ("attach_mode=xdp", "attach_mode", '"xdp"', "one of auto, native, generic"),
        ("poll_interval=0", "poll_interval", "0", "a duration greater than 0s and at most 5s"),
        ("frag_timeout=soon", "frag_timeout", '"soon"', "a duration greater than 0s"),
        ("calls_timeouts.inv_1st=-1", "calls_timeouts.inv_1st", "-1", "a duration (0 or more)"),
        ("calls_max_entries=0", "calls_max_entries", "0", "an integer of at least 1"),
        (
            "evr_intervals=[1s, 1m]",
            "evr_intervals",
            '["1s", "1m"]',
            "a list of 3 items, each a duration",
        ),
        ("evr_limits=[1, 2, x]", "evr_limits[2]", '"x"', "an integer (0 or more)"),
        (
            "event_types_blst=[call-strat]",
            "event_types_blst[0]",
            '"call-strat"',
            "one of call-start, call-end",
        ),
        ("interfaces=[eth0:1]", "interfaces[0]", '"eth0:1"', "an interface name"),
        (
            "outputs.elasticsearch.hosts=[localhost:9200]",
            "outputs.elasticsearch.hosts[0]",
            '"localhost:9200"',
            "an http(s)://host[:port] URL",
        ),
        ("outputs.elasticsearch.hosts=[]", "outputs.elasticsearch.hosts", "[]", "a non-empty list"),
        (
            "outputs.elasticsearch.data_stream=Logs",
            "outputs.elasticsearch.data_stream",
            '"Logs"',
            "a lower-case data stream name",
        ),
        ("http_addr=not valid", "http_addr", '"not valid"', "an IP address or host name"),
        ("outputs.file.keep=-1", "outputs.file.keep", "-1", "an integer (0 or more)"),
    ],
)
def test_bad_value_in_override(override, key, shown, expected):
    exc = error(None, [override])
    assert exc.message == f"-E override: invalid value for '{key}': {shown}"
    assert exc.hint.startswith(f"expected {expected}")


def test_bad_value_in_file_names_file_and_key(tmp_path):
    path = write(tmp_path, "sipcm:\n  outputs:\n    file:\n      rotate_bytes: 10 parsecs\n")
    exc = error(path)
    assert exc.message == f"{path}: invalid value for 'outputs.file.rotate_bytes': \"10 parsecs\""
    assert exc.hint.startswith("expected a size of at least 1 in bytes")


def test_error_names_override_when_override_sets_bad_value(tmp_path):
    path = write(tmp_path, "sipcm:\n  http_port: 9000\n")
    exc = error(path, ["calls_timeouts.inv_neg=never"])
    assert exc.message == "-E override: invalid value for 'calls_timeouts.inv_neg': \"never\""


@pytest.mark.parametrize(
    ("overrides", "text", "message", "hint"),
    [
        (["calls_timeouts.inv_1s=5s"], None, "-E override: unknown config key "
         "'calls_timeouts.inv_1s'", "did you mean 'calls_timeouts.inv_1st'?"),
        (["calls_timeouts={auth_wiat: 5s}"], None, "-E override: unknown config key "
         "'calls_timeouts.auth_wiat'", "did you mean 'calls_timeouts.auth_wait'?"),
        ([], "sipcm:\n  calls_timeouts: {dup_windows: 1s}\n", "sipcm.yml: unknown config key "
         "'calls_timeouts.dup_windows'", "did you mean 'calls_timeouts.dup_window'?"),
        (["calls_timeouts.zzzz=5s"], None, "-E override: unknown config key "
         "'calls_timeouts.zzzz'", "valid timers: " + ", ".join(CALL_TIMERS)),
    ],
)  # fmt: skip
def test_unknown_timer_names_the_closest_valid_one(tmp_path, overrides, text, message, hint):
    exc = error(write(tmp_path, text) if text else None, overrides)
    assert exc.message.endswith(message)
    assert exc.hint == hint


def test_null_string_means_empty_but_null_number_is_an_error(tmp_path):
    cfg = load_config(write(tmp_path, "sipcm:\n  observer_name:\n"), [])
    assert cfg.observer_name == ""
    exc = error(write(tmp_path, "sipcm:\n  http_port:\n"))
    assert exc.message.endswith("invalid value for 'http_port': null")


def test_unquoted_number_for_string_key_in_file(tmp_path):
    exc = error(write(tmp_path, "sipcm:\n  observer_name: 12\n"))
    assert exc.message.endswith("invalid value for 'observer_name': 12")
    assert exc.hint == "expected a string, quoted in YAML"


def test_missing_file(tmp_path):
    exc = error(str(tmp_path / "nope.yml"))
    assert (exc.message, exc.hint) == (
        f"config file not found: {tmp_path}/nope.yml",
        "check the -c path",
    )


def test_directory_is_unreadable(tmp_path):
    exc = error(str(tmp_path))
    assert exc.message == f"cannot read config file {tmp_path}: Is a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path):
    path = write(tmp_path, "sipcm:\n")
    os.chmod(path, 0)
    exc = error(path)
    assert exc.message == f"cannot read config file {path}: Permission denied"


def test_permission_denied(tmp_path, monkeypatch):
    from sipcm.config import loader

    def deny(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(loader, "open", deny, raising=False)
    exc = error(write(tmp_path, "sipcm:\n"))
    assert exc.message == f"cannot read config file {tmp_path}/sipcm.yml: Permission denied"
    assert exc.hint == "make it a readable UTF-8 file"


def test_not_utf8(tmp_path):
    path = tmp_path / "bin.yml"
    path.write_bytes(b"sipcm:\n  observer_name: \xff\xfe\n")
    exc = error(str(path))
    assert exc.message.startswith(f"cannot read config file {path}: 'utf-8' codec can't decode")


def test_invalid_yaml_reports_line_without_snippet(tmp_path):
    path = write(tmp_path, "sipcm:\n  access_token: hunter2\n  http_port: [8080\n")
    exc = error(path)
    assert exc.message == (
        f"invalid YAML in {path} at line 4, column 1: expected ',' or ']', but got "
        "'<stream end>' (while parsing a flow sequence)"
    )
    assert exc.hint == "fix the YAML syntax there"
    assert "hunter2" not in str(exc)


def test_invalid_yaml_mapping_value(tmp_path):
    path = write(tmp_path, "sipcm:\n  http_port: 1\n   bad: x: y\n")
    exc = error(path)
    assert exc.message == (
        f"invalid YAML in {path} at line 3, column 7: mapping values are not allowed here"
    )


def test_duplicate_key_is_an_error(tmp_path):
    path = write(tmp_path, "sipcm:\n  http_port: 1\n  http_port: 2\n")
    exc = error(path)
    assert exc.message == f"invalid YAML in {path} at line 3, column 3: duplicate key 'http_port'"


def test_yaml_merge_keys_may_be_overridden(tmp_path):
    path = write(
        tmp_path,
        """\
        sipcm:
          outputs:
            file: {enabled: true, path: /tmp/a, keep: 3}
            console: {enabled: false}
          calls_timeouts:
            <<: {inv_1st: 1s, inv_established: 1h}
            inv_1st: 2s
        """,
    )
    cfg = load_config(path, [])
    assert (cfg.outputs.file.path, cfg.outputs.file.keep) == ("/tmp/a", 3)
    assert cfg.calls_timeouts == timers(inv_1st=2.0, inv_established=3600.0)


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("", "no top-level 'sipcm:' key", "put every setting under 'sipcm:'"),
        ("http_port: 1\n", "no top-level 'sipcm:' key", "put every setting under 'sipcm:'"),
        ("- a\n", "no top-level 'sipcm:' key", "put every setting under 'sipcm:'"),
        (
            "sipcm: {}\nhttp_port: 1\nsip_ports: [1]\n",
            "unexpected top-level key(s) 'http_port', 'sip_ports'",
            "did you mean to put 'http_port', 'sip_ports' under 'sipcm:'?",
        ),
        (
            "sipcm: {}\nsipcmbeat: {}\n",
            "unexpected top-level key(s) 'sipcmbeat'",
            "only 'sipcm:' is allowed at the top level",
        ),
        (
            "sipcm: [1]\n",
            "'sipcm' must be a mapping of keys, got ***",
            "write 'key: value' lines indented under 'sipcm:'",
        ),
        (
            "sipcm:\n  outputs: [console]\n",
            "'outputs' must be a mapping of keys, got [\"console\"]",
            "write its keys indented under 'outputs:' or set them as -E outputs.KEY=VALUE",
        ),
    ],
)
def test_file_shape_errors(tmp_path, text, message, hint):
    path = write(tmp_path, text)
    exc = error(path)
    assert (exc.message, exc.hint) == (f"{path}: {message}", hint)


def test_describe_lists_every_key_once():
    docs = key_docs()
    paths = [d.path for d in docs]
    assert len(paths) == len(set(paths)) == 76 + len(CALL_TIMERS)
    text = describe()
    for doc in docs:
        assert f"{doc.path} (default: {doc.default})\n    {doc.help}; " in text + "\n"
    assert "ring_size (default: 16MiB)\n    BPF ring buffer size" in text
    assert "evr_intervals (default: [1s, 1m, 1h])" in text
    assert "outputs.elasticsearch.password (default: '')" in text
    assert "calls_timeouts.inv_1st (default: 2m)\n    INVITE sent, no reply" in text
    assert "calls_timeouts.auth_wait (default: 1m)\n" in text
    assert "calls_timeouts.dup_window (default: 32s)\n" in text
    assert "\ncalls_timeouts (" not in text  # the timers are listed, not the map


def test_evr_limits_per_event_name() -> None:
    """A map names events; the others keep the default, the call records stay unlimited; a
    dotted override sets one name; a misspelt name is a clear error."""
    confirmed = {
        n: (0, 0, 0) for n in ("call-start", "call-end", "reg-new", "reg-del", "reg-expired")
    }
    cfg = load_config(None, ["evr_limits={auth-failed: [5, 60, 600], call-end: [1, 2, 3]}"])
    assert cfg.evr_limits == {
        "default": (20, 240, 3600),
        **confirmed,
        "auth-failed": (5, 60, 600),
        "call-end": (1, 2, 3),
    }
    cfg = load_config(None, ["evr_limits.other-failed=[1, 0, 0]"])
    assert cfg.evr_limits == {"default": (20, 240, 3600), **confirmed, "other-failed": (1, 0, 0)}
    assert cfg.to_dict()["evr_limits"]["other-failed"] == [1, 0, 0]
    with pytest.raises(ConfigError) as err:
        load_config(None, ["evr_limits={auth-faild: [1, 2, 3]}"])
    assert "evr_limits.auth-faild" in str(err.value)
    assert "did you mean 'auth-failed'?" in err.value.hint
    with pytest.raises(ConfigError) as err:
        load_config(None, ["evr_limits={auth-failed: [1, 2]}"])
    assert "evr_limits.auth-failed" in str(err.value)
