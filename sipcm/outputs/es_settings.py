"""Elasticsearch output settings: client construction, host URLs, validation, template naming.

Input: the `outputs.elasticsearch` settings. Output: a configured official client, or a
`SipcmError` naming the first bad setting. Never contacts the server.
"""

from __future__ import annotations

import logging
import re
import ssl
from typing import Any
from urllib.parse import urlsplit

from elasticsearch import Elasticsearch

from sipcm.errors import SipcmError, redact_url_passwords
from sipcm.events.template import index_template

log = logging.getLogger("sipcm.outputs.elasticsearch")

# The v9 client asks for REST compatibility with 9, which Elasticsearch 8 refuses (400
# media_type_header_exception); 8 is understood by both 8.x and 9.x, so requests pin it.
ACCEPT = {"accept": "application/vnd.elasticsearch+json; compatible-with=8"}
JSON_HEADERS = {
    **ACCEPT,
    "content-type": "application/vnd.elasticsearch+json; compatible-with=8",
}
NDJSON_HEADERS = {
    **ACCEPT,
    "content-type": "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
}


def make_client(
    hosts: list[str],
    api_key: str | None,
    username: str | None,
    password: str | None,
    ca_file: str | None,
    fingerprint: str | None,
    verify_certs: bool,
    timeout: float,
) -> Elasticsearch:
    # Retries are ours (per item, with the spool behind them), so the client's are off.
    kw: dict[str, Any] = {
        "max_retries": 0,
        "retry_on_timeout": False,
        "request_timeout": timeout,
        "verify_certs": verify_certs,
    }
    if api_key:
        kw["api_key"] = api_key
    if username:
        kw["basic_auth"] = (username, password or "")
    if ca_file:
        kw["ca_certs"] = ca_file
    if fingerprint:
        kw["ssl_assert_fingerprint"] = fingerprint
    if not verify_certs:
        kw["ssl_show_warn"] = False
        log.warning("Elasticsearch TLS certificate verification is off")
    try:
        return Elasticsearch(list(hosts), **kw)
    except (ValueError, TypeError) as e:
        raise SipcmError(f"invalid Elasticsearch settings: {redact_url_passwords(str(e))}") from e


def _shown(host: object) -> str:
    return redact_url_passwords(repr(host))


def host_url(host: str) -> str:
    """`http(s)://host[:port][/path]`, with the Elasticsearch port 9200 when none is given."""
    hint = "write hosts as http://host:9200 or https://host:9200"
    try:
        parts = urlsplit(str(host).strip())
        port = parts.port
    except ValueError as e:
        raise SipcmError(f"invalid Elasticsearch host {_shown(host)}: {e}", hint) from e
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SipcmError(f"invalid Elasticsearch host {_shown(host)}: need an http(s) URL", hint)
    if port is None:
        parts = parts._replace(netloc=f"{parts.netloc}:9200")
    return parts.geturl()


def display_url(host: str) -> str:
    """`host_url(host)` with any user:password in it masked, for messages."""
    parts = urlsplit(host_url(host))
    if "@" not in parts.netloc:
        return parts.geturl()
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


def check_settings(
    hosts: list[str],
    data_stream: str,
    api_key: str | None,
    username: str | None,
    ca_file: str | None,
    fingerprint: str | None,
    **numbers: float,
) -> None:
    """Raise SipcmError naming the first bad setting."""
    sec = "outputs.elasticsearch"
    if not hosts:
        raise SipcmError("no Elasticsearch hosts configured", f"set {sec}.hosts")
    if api_key and username:
        raise SipcmError(
            "Elasticsearch api_key and username are both set", "use either an API key or basic auth"
        )
    if not _valid_stream(data_stream):
        raise SipcmError(
            f"invalid data stream name {data_stream!r}",
            'lower case, no spaces or \\/*?"<>|,#:, not starting with -_+.',
        )
    if fingerprint and not re.fullmatch(r"[0-9A-Fa-f]{64}", fingerprint.replace(":", "")):
        raise SipcmError(
            f"invalid certificate fingerprint {fingerprint!r}", "give the SHA-256 as 64 hex digits"
        )
    if ca_file:
        try:
            ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as e:
            raise SipcmError(
                f"cannot use CA file {ca_file}: {getattr(e, 'strerror', None) or e}",
                "give a readable PEM file with the CA certificate(s)",
            ) from e
    for name, value in numbers.items():
        low = 0 if name == "max_retries" else 1e-9
        if value < low:
            raise SipcmError(f"{sec}.{name} must be positive, got {value}")


def _valid_stream(name: str) -> bool:
    return (
        bool(name)
        and name == name.lower()
        and not re.search(r'[\s\\/*?"<>|,#:]', name)
        and name[0] not in "-_+."
        and len(name.encode()) <= 255
    )


def template_for(
    data_stream: str, template: dict[str, Any] | None = None, retention: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Template name and body for `data_stream` (type-dataset-namespace: one per dataset);
    `retention` (an Elasticsearch time unit such as 30d, None to keep forever) goes into the
    data stream lifecycle."""
    parts = data_stream.split("-")
    prefix = "-".join(parts[:-1]) if len(parts) >= 3 else data_stream
    pattern = f"{prefix}-*" if len(parts) >= 3 else data_stream
    if template is None:
        return prefix, index_template(pattern, name=prefix, retention=retention)
    body = dict(template)
    body.setdefault("index_patterns", [pattern])
    body.setdefault("data_stream", {})
    body.setdefault("priority", 200)
    return prefix, body
