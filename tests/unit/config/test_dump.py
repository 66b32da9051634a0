"""`sipcm config` output: units as users write them, secrets never printed, loads back."""

from __future__ import annotations

import dataclasses

import pytest

from sipcm.config import Config, load_config
from sipcm.config.dump import HIDDEN, dump_yaml

SECRET = "s3cr3t-value"

CHANGED = [
    "poll_interval=2.5ms",
    "frag_timeout=1.25",
    "tcp_idle_timeout=1h30m",
    "stats_interval=0",
    "reg_exp_delta=0.0000001",
    "ring_size=64KiB",
    "snap_len=1500",
    "tcp_max_stream_bytes=100MB",
    "calls_timeouts={inv_established: 2h, auth_wait: 45s}",
    "evr_intervals=[2, 90, 1d]",
    "sip_ports=[5060, 5080]",
    "interfaces=[eth0, 'on']",
    "observer_name='yes'",
    "event_types_blst=[]",
    "outputs.file={enabled: true, path: /tmp/x y.ndjson, rotate_bytes: 1500}",
    "outputs.elasticsearch.hosts=[https://es.example:9200/p]",
    "outputs.elasticsearch.flush_interval=250ms",
    "http_addr=::1",
]
SECRETS = [
    f"access_token={SECRET}1",
    f"outputs.elasticsearch.api_key={SECRET}2",
    f"encryption_passphrase={SECRET}3",
    "encryption_salt=pepper",
]


def reload(text: str, tmp_path, overrides=()) -> Config:
    path = tmp_path / "printed.yml"
    path.write_text(text)
    return load_config(str(path), list(overrides))


def without_secrets(cfg: Config) -> Config:
    es = dataclasses.replace(cfg.outputs.elasticsearch, api_key="")
    return dataclasses.replace(
        cfg,
        access_token="",
        encryption_passphrase="",
        outputs=dataclasses.replace(cfg.outputs, elasticsearch=es),
    )


def test_units_as_written() -> None:
    text = dump_yaml(load_config(None, CHANGED))
    for line in [
        "  poll_interval: 2500us",
        "  frag_timeout: 1250ms",
        "  tcp_idle_timeout: 90m",
        "  stats_interval: 0s",
        "  reg_exp_delta: 0.0000001s",
        "  ring_size: 64KiB",
        "  snap_len: 1500",
        "  tcp_max_stream_bytes: 100MB",
        "  evr_intervals: [2s, 90s, 1d]",
        "  sip_ports: [5060, 5080]",
        "  interfaces: [eth0, 'on']",
        "  observer_name: 'yes'",
        "  event_types_blst: []",
        "  calls_timeouts:\n    inv_1st: 2m\n",
        "    inv_established: 2h\n",
        "    auth_wait: 45s\n",
        "      rotate_bytes: 1500\n",
        "      flush_interval: 250ms\n",
    ]:
        assert line in text


def test_defaults_print_and_load_back(tmp_path) -> None:
    text = dump_yaml(Config())
    assert text.startswith("sipcm:\n  interfaces: []\n  attach_mode: auto\n")
    assert "  ring_size: 16MiB\n" in text
    assert "  stats_interval: 5m\n" in text
    assert "      spool_max_bytes: 1GiB\n" in text
    assert "  access_token: ''\n" in text  # unset secrets show as unset
    assert reload(text, tmp_path) == Config()


def test_changed_values_load_back_exactly(tmp_path) -> None:
    cfg = load_config(None, CHANGED)
    assert cfg != Config()
    assert reload(dump_yaml(cfg), tmp_path) == cfg


def test_set_secrets_are_never_printed_and_load_back_absent(tmp_path) -> None:
    cfg = load_config(None, [*CHANGED, *SECRETS])
    text = dump_yaml(cfg)
    assert SECRET not in text
    assert "***" not in text
    assert f"  access_token: {HIDDEN}\n" in text
    assert f"      api_key: {HIDDEN}\n" in text
    assert f"  encryption_passphrase: {HIDDEN}\n" in text
    assert "  encryption_salt: pepper\n" in text  # not a secret
    assert reload(text, tmp_path) == without_secrets(cfg)
    back = [f"access_token={SECRET}1", f"outputs.elasticsearch.api_key={SECRET}2",
            f"encryption_passphrase={SECRET}3"]  # fmt: skip
    assert reload(text, tmp_path, back) == cfg


@pytest.mark.parametrize(
    "secret",
    ["outputs.elasticsearch.password", "access_token"],
)
def test_secret_needed_by_a_rule_is_given_again_with_E(tmp_path, secret) -> None:
    """Basic auth needs both keys, an off-loopback web API its token: the printed file loads
    once the secret is supplied again, and then equals the original."""
    extra = ["outputs.elasticsearch.username=u"] if "password" in secret else ["http_addr=0.0.0.0"]
    cfg = load_config(None, [*extra, f"{secret}={SECRET}"])
    text = dump_yaml(cfg)
    assert SECRET not in text
    assert reload(text, tmp_path, [f"{secret}={SECRET}"]) == cfg


def test_url_passwords_are_removed_not_masked(tmp_path) -> None:
    hosts = "outputs.elasticsearch.hosts=[https://elastic:pw%40x@es1:9200, http://es2:9200]"
    cfg = load_config(None, [hosts])
    text = dump_yaml(cfg)
    assert "pw%40x" not in text
    assert "***" not in text
    assert (
        "      hosts: ['https://elastic@es1:9200', 'http://es2:9200']"
        "  # URL password set, not shown\n"
    ) in text
    back = reload(text, tmp_path)
    assert back.outputs.elasticsearch.hosts == ("https://elastic@es1:9200", "http://es2:9200")
    assert reload(text, tmp_path, [hosts]) == cfg
