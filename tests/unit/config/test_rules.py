"""Cross-key rules, secret masking, to_dict round trip and the annotated example file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import sipcm.config
from sipcm.config import Config, is_loopback, key_docs, load_config
from sipcm.errors import ConfigError

SECRET = "Tr0ub4dor&3-not-for-logs"
HEXKEY = "00112233445566778899aabbccddeeff"
EXAMPLE = Path(sipcm.config.__file__).parent / "example.yml"


def error(overrides) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    return info.value


# ---- encryption ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "switch",
    ["encrypt_ip_addresses", "encrypt_ipcipher", "encrypt_uris", "encrypt_call_ids", "encrypt_ua"],
)
def test_encryption_switch_needs_a_key(switch):
    exc = error([f"{switch}=true"])
    assert exc.message == f"{switch} is on but no encryption key is configured"
    assert exc.hint == (
        "set exactly one of encryption_passphrase (with encryption_salt), encryption_key "
        "or encryption_key_file"
    )


@pytest.mark.parametrize(
    "source",
    [
        [f"encryption_passphrase={SECRET}", "encryption_salt=pepper"],
        [f"encryption_key={HEXKEY}"],
        ["encryption_key_file=/etc/sipcm/key"],
    ],
)
def test_encryption_with_exactly_one_key_source(source):
    cfg = load_config(None, ["encrypt_uris=true", "encrypt_ip_addresses=true", *source])
    assert (cfg.encrypt_uris, cfg.encrypt_ip_addresses, cfg.encrypt_ua) == (True, True, False)


def test_two_key_sources_are_an_error():
    exc = error(
        [
            "encrypt_uris=true",
            f"encryption_key={HEXKEY}",
            f"encryption_passphrase={SECRET}",
            "encryption_salt=pepper",
        ]
    )
    assert exc.message == (
        "encryption key given more than once: encryption_passphrase and encryption_key are all set"
    )
    assert SECRET not in str(exc)
    assert HEXKEY not in str(exc)


def test_passphrase_needs_salt():
    exc = error(["encrypt_call_ids=true", f"encryption_passphrase={SECRET}"])
    assert exc.message == "encryption_passphrase is set but encryption_salt is empty"
    assert SECRET not in str(exc)


def test_key_without_switches_is_allowed_for_decrypt():
    cfg = load_config(None, [f"encryption_key={HEXKEY}"])
    assert cfg.encryption_key == HEXKEY


def test_bad_hex_key_value_is_masked():
    exc = error([f"encryption_key={SECRET}"])
    assert exc.message == "-E override: invalid value for 'encryption_key': ***"
    assert exc.hint == "expected 32 hex digits, quoted in YAML"
    assert SECRET not in str(exc)


def test_unquoted_numeric_secret_in_file_is_masked(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("sipcm:\n  encryption_key: 12345678901234567890123456789012\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), [])
    assert info.value.message == f"{path}: invalid value for 'encryption_key': ***"
    assert "1234567890" not in str(info.value)


# ---- web -------------------------------------------------------------------------------


@pytest.mark.parametrize("addr", ["0.0.0.0", "::", "192.0.2.10", "sensor.example.net", ""])
def test_non_loopback_http_addr_needs_token(addr):
    exc = error([f"http_addr={addr}"])
    shown = addr or "(all addresses)"
    assert exc.message == f"http_addr {shown} is not a loopback address and no access_token is set"
    assert exc.hint == (
        "set access_token, or bind http_addr to 127.0.0.1, or set http_port: 0 to disable the "
        "web interface"
    )


@pytest.mark.parametrize(
    "overrides",
    [
        ["http_addr=0.0.0.0", f"access_token={SECRET}"],
        ["http_addr=0.0.0.0", "http_port=0"],
        ["http_addr=::1"],
        ["http_addr=127.0.0.53"],
        ["http_addr=localhost"],
    ],
)
def test_web_settings_that_are_allowed(overrides):
    load_config(None, overrides)


def test_is_loopback():
    assert [
        is_loopback(a) for a in ("127.0.0.1", "127.1.2.3", "::1", "LOCALHOST", "localhost.")
    ] == [True] * 5
    assert [is_loopback(a) for a in ("", "0.0.0.0", "::", "10.0.0.1", "::ffff:127.0.0.1x")] == [
        False
    ] * 5


# ---- outputs and limits ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["outputs.file.enabled=true"],
            "outputs.file.enabled is true but outputs.file.path is empty",
        ),
        (
            [
                f"outputs.elasticsearch.api_key={SECRET}",
                "outputs.elasticsearch.username=u",
                f"outputs.elasticsearch.password={SECRET}",
            ],
            "outputs.elasticsearch.api_key and username/password are both set",
        ),
        (
            ["outputs.elasticsearch.username=u"],
            "outputs.elasticsearch.password is empty but the other basic auth key is set",
        ),
        (
            [f"outputs.elasticsearch.password={SECRET}"],
            "outputs.elasticsearch.username is empty but the other basic auth key is set",
        ),
        (["vxlan_ports=[4789, 5060]"], "port 5060 is in both sip_ports and vxlan_ports"),
        (
            ["sip_ports=[]"],
            "sip_ports is empty and sip_detect is 'port': no packet would be captured",
        ),
        (
            ["tcp_max_message_bytes=2MiB"],
            "tcp_max_message_bytes (2097152) is larger than tcp_max_stream_bytes (1048576)",
        ),
        (
            ["evr_conseq_report_min=20000"],
            "evr_conseq_report_min (20000) is larger than evr_conseq_report_max (10000)",
        ),
    ],
)
def test_cross_key_rules(overrides, message):
    exc = error(overrides)
    assert exc.message == message
    assert SECRET not in str(exc)


def test_heuristic_detection_allows_no_ports():
    assert load_config(None, ["sip_ports=[]", "sip_detect=heuristic"]).sip_ports == ()


# ---- to_dict and secrets ---------------------------------------------------------------

ALL_SECRETS = [
    f"encryption_passphrase={SECRET}1",
    "encryption_salt=pepper",
    f"outputs.elasticsearch.api_key={SECRET}2",
    f"access_token={SECRET}3",
]


def test_to_dict_masks_set_secrets_only():
    cfg = load_config(None, ALL_SECRETS)
    data = cfg.to_dict(mask_secrets=True)
    assert SECRET not in json.dumps(data)
    assert data["encryption_passphrase"] == "***"
    assert data["access_token"] == "***"
    assert data["outputs"]["elasticsearch"]["api_key"] == "***"
    assert data["outputs"]["elasticsearch"]["password"] == ""  # unset: shown as unset
    assert data["encryption_key"] == ""
    assert data["encryption_salt"] == "pepper"
    assert cfg.to_dict() == data  # masking is the default
    raw = cfg.to_dict(mask_secrets=False)
    assert raw["access_token"] == f"{SECRET}3"


def test_secret_with_basic_auth_password_masked():
    cfg = load_config(
        None, ["outputs.elasticsearch.username=u", f"outputs.elasticsearch.password={SECRET}"]
    )
    assert cfg.to_dict()["outputs"]["elasticsearch"] == {
        **Config().to_dict()["outputs"]["elasticsearch"],
        "username": "u",
        "password": "***",
    }


def test_to_dict_of_defaults_is_plain_data():
    data = load_config(None, []).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["sip_ports"] == [5060]
    assert data["ring_size"] == 16777216
    assert data["poll_interval"] == 0.005
    assert data["evr_intervals"] == [1.0, 60.0, 3600.0]
    assert data["outputs"]["console"] == {"enabled": True, "pretty": False}
    assert data["calls_timeouts"]["inv_established"] == 3600.0
    assert len(data["calls_timeouts"]) == 12
    assert data["evr_limits"]["default"] == [20, 240, 3600]
    assert data["http_addr"] == "127.0.0.1"
    assert data["http_port"] == 8080


def test_to_dict_round_trips_through_a_file(tmp_path):
    cfg = load_config(
        None,
        [
            *ALL_SECRETS,
            "sip_ports=[5060, 5062]",
            "ring_size=1MiB",
            "calls_timeouts.inv_1st=90s",
            "outputs.console.pretty=true",
        ],
    )
    path = tmp_path / "dump.yml"
    path.write_text(yaml.safe_dump({"sipcm": cfg.to_dict(mask_secrets=False)}))
    assert load_config(str(path), []) == cfg


def test_yaml_dump_of_to_dict_has_sipcm_root_and_loads():
    data = load_config(None, []).to_dict()
    text = yaml.safe_dump({"sipcm": data}, sort_keys=False)
    assert text.startswith("sipcm:\n  interfaces: []\n  attach_mode: auto\n")


# ---- example file ----------------------------------------------------------------------


def _leaf_paths(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for name, value in tree.items():
        if isinstance(value, dict) and name != "evr_limits":
            out |= _leaf_paths(value, f"{prefix}{name}.")
        else:
            out.add(prefix + name)
    return out


def test_example_loads_and_equals_defaults():
    assert load_config(str(EXAMPLE), []) == Config() == load_config(None, [])


def test_example_sets_every_key():
    doc = yaml.safe_load(EXAMPLE.read_text())
    assert _leaf_paths(doc["sipcm"]) == {d.path for d in key_docs()}


def test_example_comments_every_key():
    lines = EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not stripped.endswith(":"):
            # a key line is commented directly above, or belongs to a commented group
            above = [x.strip() for x in lines[max(0, i - 3) : i]]
            assert any(x.startswith("#") for x in above), line


@pytest.mark.parametrize(
    "text",
    [
        f'sipcm:\n  access_token: "{SECRET}\n',
        f"sipcm:\n  access_token: {SECRET}\n  access_token: {SECRET}\n",
        f"sipcm:\n  outputs:\n    elasticsearch:\n      password: [{SECRET}]\n",
        f"sipcm:\n  encryption_passphrase: {{a: {SECRET}}}\n",
        f"sipcm:\n  encryption_passphrase: {SECRET}\n  encrypt_uris: true\n",
    ],
)
def test_secret_never_in_file_errors(tmp_path, text):
    path = tmp_path / "c.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path), [])
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.args)
