"""Elasticsearch management, Beats style: install the index template, check the output.

Input: an official client and the template body (`sipcm.events.template`). Output:
`install_template` decides whether to write the template and says why; `check_output` runs the
steps of `sipcm test output` (connection, authentication, privileges, template), each OK or
ERROR with a one-line detail. The Elasticsearch output uses `install_template` when it connects,
so a running sensor and `sipcm setup` follow the same rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from elasticsearch import ApiError, Elasticsearch, TransportError, UnsupportedProductError

from sipcm.events.template import content_hash
from sipcm.outputs.es_settings import (
    ACCEPT,
    JSON_HEADERS,
    check_settings,
    host_url,
    make_client,
    template_for,
)


class EsConfig(Protocol):
    """The `outputs.elasticsearch` settings these commands read (the config section)."""

    hosts: tuple[str, ...]
    api_key: str
    username: str
    password: str
    ca_file: str
    fingerprint: str
    verify_certs: bool
    data_stream: str
    batch_size: int
    flush_interval: float
    max_retries: int
    retention: str


# What the output needs: write documents (creating the data stream on first use), and, to
# install the template itself, manage_index_templates (else run `sipcm setup` once as a user
# who has it).
WRITE_PRIVILEGES = ("create_doc", "auto_configure")
TEMPLATE_PRIVILEGE = "manage_index_templates"


@dataclass(frozen=True, slots=True)
class InstallResult:
    """What `install_template` did: installed, upgraded, overwritten, up_to_date or kept."""

    action: str
    reason: str


def install_template(
    client: Elasticsearch, name: str, body: dict[str, Any], *, force: bool = False
) -> InstallResult:
    """Write index template `name` unless the one in place must be kept.

    Kept (without `force`): a template sipcm did not install (`_meta.managed_by`), one whose
    content no longer matches its `_meta.content_hash` (edited by a user; their changes belong
    in `<name>@custom`), and one with a higher `version` (installed by a newer sipcm). An older
    unmodified sipcm template is upgraded; an identical one is left alone. Raises the client's
    ApiError/TransportError when Elasticsearch refuses or cannot be reached.
    """
    existing = get_template(client, name)
    ours = f"version {body.get('version')}"
    if existing is None:
        put_template(client, name, body)
        return InstallResult("installed", f"installed ({ours})")
    if force:
        put_template(client, name, body)
        return InstallResult("overwritten", f"overwritten with {ours} (--force)")
    meta = existing.get("_meta") or {}
    have = existing.get("version") or 0
    if meta.get("managed_by") != "sipcm":
        why = "was not installed by sipcm"
    elif meta.get("content_hash") != content_hash(existing):
        why = f"was changed after sipcm installed it (put your changes in {name}@custom)"
    elif have > (body.get("version") or 0):
        why = f"is newer (version {have}, from sipcm {meta.get('sipcm_version', '?')}) than {ours}"
    elif content_hash(existing) == content_hash(body):
        return InstallResult("up_to_date", f"up to date ({ours})")
    else:
        put_template(client, name, body)
        return InstallResult("upgraded", f"upgraded from version {have} to {ours}")
    return InstallResult("kept", f"kept: the installed template {why}; --force replaces it")


def get_template(client: Elasticsearch, name: str) -> dict[str, Any] | None:
    """The stored body of index template `name`, or None when there is none."""
    try:
        resp = client.perform_request(
            "GET", f"/_index_template/{quote(name, safe='')}", headers=ACCEPT
        )
    except ApiError as e:
        if e.meta.status == 404:
            return None
        raise
    for tpl in resp.body.get("index_templates") or []:
        if tpl.get("name") == name:
            return tpl.get("index_template") or {}
    return None


def put_template(client: Elasticsearch, name: str, body: dict[str, Any]) -> None:
    client.perform_request(
        "PUT", f"/_index_template/{quote(name, safe='')}", headers=JSON_HEADERS, body=body
    )


def client_from_config(es: EsConfig) -> Elasticsearch:
    """A client for the `outputs.elasticsearch` settings (validated first)."""
    hosts = [host_url(h) for h in es.hosts]
    check_settings(
        hosts, es.data_stream, es.api_key or None, es.username or None, es.ca_file or None,
        es.fingerprint or None, batch_size=es.batch_size, flush_interval_s=es.flush_interval,
        max_retries=es.max_retries,
    )  # fmt: skip
    return make_client(
        hosts, es.api_key or None, es.username or None, es.password or None,
        es.ca_file or None, es.fingerprint or None, es.verify_certs, 10.0,
    )  # fmt: skip


def template_from_config(es: EsConfig) -> tuple[str, dict[str, Any]]:
    """Template name and body for the configured data stream and retention."""
    return template_for(es.data_stream, None, es.retention or None)


@dataclass(frozen=True, slots=True)
class Step:
    """One line of `sipcm test output`."""

    name: str
    ok: bool
    detail: str


def check_output(client: Elasticsearch, es: EsConfig, url: str) -> Iterator[Step]:
    """Connect, authenticate, check privileges and the template; stops after a failed connect
    or authentication (nothing after them can be checked)."""
    try:
        info = client.perform_request("GET", "/", headers=ACCEPT).body
    except UnsupportedProductError as e:
        yield Step("connection", False, f"{url} is not Elasticsearch: {e.message}")
        return
    except ApiError as e:
        if e.meta.status == 401:
            yield Step("connection", True, f"{url} answers")
            yield Step("authentication", False, f"credentials refused (HTTP 401): {e.message}")
        else:
            yield Step("connection", False, f"{url}: HTTP {e.meta.status} {e.message}")
        return
    except TransportError as e:
        yield Step("connection", False, f"cannot reach {url}: {e.message}")
        return
    version = (info.get("version") or {}).get("number", "?")
    yield Step("connection", True, f"{url}, Elasticsearch {version}")
    try:
        who = client.perform_request("GET", "/_security/_authenticate", headers=ACCEPT).body
    except ApiError as e:
        if e.meta.status in (401, 403):
            yield Step("authentication", False, f"HTTP {e.meta.status}: {e.message}")
            return
        yield Step("authentication", True, f"security is not enabled ({e.message})")
        yield Step("privileges", True, "not checked: security is not enabled")
        yield _template_step(client, es, can_install=True)
        return
    user = who.get("username", "?")
    realm = (who.get("authentication_realm") or {}).get("name", "?")
    yield Step("authentication", True, f"as {user} (realm {realm})")
    granted = _privileges(client, es.data_stream)
    if granted is None:
        yield Step("privileges", True, "not checked: _has_privileges is not available")
        yield _template_step(client, es, can_install=True)
        return
    missing = [p for p in WRITE_PRIVILEGES if not granted.get(p)]
    if missing:
        yield Step(
            "privileges", False,
            f"missing {', '.join(missing)} on {es.data_stream}; grant them to {user}",
        )  # fmt: skip
    else:
        yield Step("privileges", True, f"{', '.join(WRITE_PRIVILEGES)} on {es.data_stream}")
    yield _template_step(client, es, can_install=bool(granted.get(TEMPLATE_PRIVILEGE)))


def _privileges(client: Elasticsearch, data_stream: str) -> dict[str, bool] | None:
    body = {
        "cluster": [TEMPLATE_PRIVILEGE],
        "index": [{"names": [data_stream], "privileges": list(WRITE_PRIVILEGES)}],
    }
    try:
        resp = client.perform_request(
            "POST", "/_security/user/_has_privileges", headers=JSON_HEADERS, body=body
        ).body
    except ApiError:
        return None
    granted = dict(resp.get("cluster") or {})
    granted.update((resp.get("index") or {}).get(data_stream) or {})
    return {k: bool(v) for k, v in granted.items()}


def _template_step(client: Elasticsearch, es: EsConfig, *, can_install: bool) -> Step:
    name, body = template_from_config(es)
    try:
        existing = get_template(client, name)
    except (ApiError, TransportError) as e:
        return Step("index template", False, f"cannot read {name}: {e}")
    if existing is not None:
        have = existing.get("version")
        same = content_hash(existing) == content_hash(body)
        state = "up to date" if same else f"installed (version {have}, ours {body['version']})"
        return Step("index template", True, f"{name} {state}")
    if can_install:
        return Step("index template", True, f"{name} not installed yet; the output installs it")
    return Step(
        "index template", False,
        f"{name} is not installed and this user lacks {TEMPLATE_PRIVILEGE}: "
        "run `sipcm setup` once as a user who has it",
    )  # fmt: skip
