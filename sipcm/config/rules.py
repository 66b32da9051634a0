"""Checks that involve more than one key, run on a Config whose values are each valid.

Input: a Config. Output: nothing, or ConfigError naming the keys and the fix. Messages name
secret keys but never contain their values.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from sipcm.errors import ConfigError

if TYPE_CHECKING:
    from sipcm.config.schema import Config

_ENCRYPT = ("encrypt_ip_addresses", "encrypt_ipcipher", "encrypt_uris", "encrypt_call_ids",
            "encrypt_ua")  # fmt: skip
_KEY_SOURCES = ("encryption_passphrase", "encryption_key", "encryption_key_file")


def is_loopback(addr: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"; "" (all addresses) is not loopback."""
    if addr.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def _check_encryption(cfg: Config) -> None:
    on = [name for name in _ENCRYPT if getattr(cfg, name)]
    sources = [name for name in _KEY_SOURCES if getattr(cfg, name)]
    if len(sources) > 1:
        raise ConfigError(
            "encryption key given more than once: " + " and ".join(sources) + " are all set",
            "keep exactly one of encryption_passphrase, encryption_key, encryption_key_file",
        )
    if on and not sources:
        raise ConfigError(
            f"{on[0]} is on but no encryption key is configured",
            "set exactly one of encryption_passphrase (with encryption_salt), encryption_key "
            "or encryption_key_file",
        )
    if cfg.encryption_passphrase and not cfg.encryption_salt:
        raise ConfigError(
            "encryption_passphrase is set but encryption_salt is empty",
            "set encryption_salt to a non-empty string (keep it: the same salt is needed to "
            "decrypt)",
        )


def _check_web(cfg: Config) -> None:
    if cfg.http_port and not cfg.access_token and not is_loopback(cfg.http_addr):
        shown = cfg.http_addr or "(all addresses)"
        raise ConfigError(
            f"http_addr {shown} is not a loopback address and no access_token is set",
            "set access_token, or bind http_addr to 127.0.0.1, or set http_port: 0 to "
            "disable the web interface",
        )


def _check_outputs(cfg: Config) -> None:
    out = cfg.outputs
    if out.file.enabled and not out.file.path:
        raise ConfigError(
            "outputs.file.enabled is true but outputs.file.path is empty",
            "set outputs.file.path to the NDJSON file to write",
        )
    es = out.elasticsearch
    if es.api_key and (es.username or es.password):
        raise ConfigError(
            "outputs.elasticsearch.api_key and username/password are both set",
            "use either api_key or username and password",
        )
    if bool(es.username) != bool(es.password):
        missing = "password" if es.username else "username"
        raise ConfigError(
            f"outputs.elasticsearch.{missing} is empty but the other basic auth key is set",
            "set both outputs.elasticsearch.username and outputs.elasticsearch.password",
        )


def _check_limits(cfg: Config) -> None:
    both = sorted(set(cfg.sip_ports) & set(cfg.vxlan_ports))
    if both:
        raise ConfigError(
            f"port {both[0]} is in both sip_ports and vxlan_ports",
            "a UDP port is either SIP or VXLAN: remove it from one list",
        )
    if cfg.sip_detect == "port" and not cfg.sip_ports:
        raise ConfigError(
            "sip_ports is empty and sip_detect is 'port': no packet would be captured",
            "list the SIP ports, or set sip_detect: heuristic",
        )
    if cfg.tcp_max_message_bytes > cfg.tcp_max_stream_bytes:
        raise ConfigError(
            f"tcp_max_message_bytes ({cfg.tcp_max_message_bytes}) is larger than "
            f"tcp_max_stream_bytes ({cfg.tcp_max_stream_bytes})",
            "a message must fit in a stream's buffer: raise tcp_max_stream_bytes",
        )
    if cfg.evr_conseq_report_min > cfg.evr_conseq_report_max:
        raise ConfigError(
            f"evr_conseq_report_min ({cfg.evr_conseq_report_min}) is larger than "
            f"evr_conseq_report_max ({cfg.evr_conseq_report_max})",
            "make evr_conseq_report_max at least evr_conseq_report_min",
        )


def check_rules(cfg: Config) -> None:
    """Raise ConfigError for the first combination of keys that cannot work."""
    _check_limits(cfg)
    _check_encryption(cfg)
    _check_outputs(cfg)
    _check_web(cfg)
