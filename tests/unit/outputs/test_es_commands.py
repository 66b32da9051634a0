"""`sipcm setup`, `sipcm export template` and `sipcm test output` against the fake Elasticsearch:
which templates are kept or replaced, what each check reports, exit statuses."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sipcm.cli import main
from sipcm.events.template import content_hash, index_template, template_version
from sipcm.outputs.elasticsearch import ElasticsearchOutput
from tests.fakees import FakeES, _as_stored

NAME = "logs-sipcm.sip"
OURS = index_template(name=NAME)


@pytest.fixture
def es() -> Iterator[FakeES]:
    with FakeES() as server:
        yield server


def sipcm(capsys: pytest.CaptureFixture[str], es: FakeES, *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process against `es`; (exit status, stdout, stderr)."""
    argv = ["-E", f"outputs.elasticsearch.hosts=[{es.url}]", *args]
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def variant(**changes: Any) -> dict[str, Any]:
    """Our template with `changes` applied and a consistent content hash (as sipcm built it)."""
    body = copy.deepcopy(OURS)
    body.update(changes)
    body["_meta"]["content_hash"] = content_hash(body)
    return body


def test_export_template_prints_the_template(es: FakeES, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = sipcm(capsys, es, "export", "template")
    assert code == 0
    assert json.loads(out) == OURS
    code, out, _ = sipcm(
        capsys, es, "export", "template", "-E", "outputs.elasticsearch.retention=30d"
    )
    body = json.loads(out)
    assert body["template"]["lifecycle"] == {"enabled": True, "data_retention": "30d"}
    assert body["_meta"]["content_hash"] == content_hash(body) != OURS["_meta"]["content_hash"]
    assert body["version"] == template_version()
    assert body["_meta"]["sipcm_version"]
    assert es.requests == []  # export never contacts Elasticsearch


def test_template_conventions() -> None:
    assert OURS["composed_of"] == ["logs@settings", "ecs@mappings", "logs-sipcm.sip@custom"]
    assert OURS["ignore_missing_component_templates"] == ["logs-sipcm.sip@custom"]
    assert OURS["template"]["settings"] == {"index": {"lifecycle": {"prefer_ilm": False}}}
    assert OURS["template"]["lifecycle"] == {"enabled": True}
    # What Elasticsearch may do to a stored template does not look like a user's edit.
    stored = copy.deepcopy(_as_stored(OURS))
    stored["template"]["mappings"]["dynamic"] = "false"
    stored["priority"] = "200"
    assert content_hash(stored) == OURS["_meta"]["content_hash"]
    stored["template"]["mappings"]["dynamic"] = "true"
    assert content_hash(stored) != OURS["_meta"]["content_hash"]
    assert template_version("1.2.3") == 1_002_003
    assert template_version("0.10.0rc1") == 10_000


def test_setup_installs_then_is_up_to_date(es: FakeES, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = sipcm(capsys, es, "setup")
    assert (code, out) == (0, f"index template {NAME}: installed (version {OURS['version']})\n")
    # Stored the way Elasticsearch stores it, the hash still matches: no false "edited".
    assert es.templates[NAME] == _as_stored(OURS)
    assert content_hash(es.templates[NAME]) == OURS["_meta"]["content_hash"]
    code, out, _ = sipcm(capsys, es, "setup")
    assert (code, out) == (0, f"index template {NAME}: up to date (version {OURS['version']})\n")
    assert [r.method for r in es.requests if r.path.startswith("/_index_template")] == [
        "GET", "PUT", "GET",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("existing", "why"),
    [
        (
            variant(version=OURS["version"] + 1),
            f"is newer (version {OURS['version'] + 1}, from sipcm "
            f"{OURS['_meta']['sipcm_version']}) than version {OURS['version']}",
        ),
        ({**variant(), "priority": 300}, "was changed after sipcm installed it"),
        ({"index_patterns": ["logs-sipcm.sip-*"], "priority": 500}, "was not installed by sipcm"),
    ],
    ids=["newer", "edited", "foreign"],
)
def test_setup_keeps_a_template_it_must_not_replace(
    es: FakeES, capsys: pytest.CaptureFixture, existing: dict[str, Any], why: str
) -> None:
    es.templates[NAME] = _as_stored(existing)
    code, out, _ = sipcm(capsys, es, "setup")
    assert code == 0
    assert (
        out
        == f"index template {NAME}: kept: the installed template {why}"
        + (f" (put your changes in {NAME}@custom)" if why.startswith("was changed") else "")
        + "; --force replaces it\n"
    )
    assert es.templates[NAME] == _as_stored(existing)
    code, out, _ = sipcm(capsys, es, "setup", "--force")
    assert (code, out) == (
        0, f"index template {NAME}: overwritten with version {OURS['version']} (--force)\n"
    )  # fmt: skip
    assert es.templates[NAME] == _as_stored(OURS)


def test_setup_upgrades_an_older_unedited_template(
    es: FakeES, capsys: pytest.CaptureFixture
) -> None:
    es.templates[NAME] = _as_stored(variant(version=OURS["version"] - 1))
    code, out, _ = sipcm(capsys, es, "setup")
    assert (code, out) == (
        0, f"index template {NAME}: upgraded from version {OURS['version'] - 1} "
        f"to version {OURS['version']}\n",
    )  # fmt: skip
    assert es.templates[NAME] == _as_stored(OURS)


def test_output_keeps_a_newer_template(es: FakeES, tmp_path: Path) -> None:
    newer = _as_stored(variant(version=OURS["version"] + 1))
    es.templates[NAME] = newer
    c: Counter[str] = Counter()
    out = ElasticsearchOutput([es.url], counters=c, spool_dir=str(tmp_path), flush_interval_s=0.02)
    out.write([{"n": 1}])
    out.close()
    assert es.templates[NAME] == newer
    assert c["template_kept"] == 1
    assert es.sources == [{"n": 1}]


def test_setup_without_privilege(capsys: pytest.CaptureFixture) -> None:
    with FakeES(template_status=403) as es:
        code, out, err = sipcm(capsys, es, "setup")
    assert code == 2
    assert out == ""
    assert err == (
        f"sipcm: error: cannot install index template {NAME}: HTTP 403 security_exception "
        "(the user or API key needs the manage_index_templates privilege)\n"
    )


def test_setup_when_elasticsearch_is_down(es: FakeES, capsys: pytest.CaptureFixture) -> None:
    es.stop()
    code, _, err = sipcm(capsys, es, "setup")
    assert code == 2
    assert err.startswith("sipcm: error: cannot reach Elasticsearch: ")
    assert err.endswith("(check outputs.elasticsearch.hosts)\n")


ALL = {"create_doc", "auto_configure", "manage_index_templates"}
AUTH = ["-E", "outputs.elasticsearch.username=sensor", "-E", "outputs.elasticsearch.password=pw"]


def test_test_output_all_ok(capsys: pytest.CaptureFixture) -> None:
    with FakeES(security=True, users={"sensor": "pw"}, granted=ALL) as es:
        code, out, _ = sipcm(capsys, es, *AUTH, "test", "output")
    assert code == 0
    assert out.splitlines() == [
        f"connection... OK {es.url}, Elasticsearch 9.1.0",
        "authentication... OK as sensor (realm default_native)",
        "privileges... OK create_doc, auto_configure on logs-sipcm.sip-default",
        f"index template... OK {NAME} not installed yet; the output installs it",
    ]


def test_test_output_missing_privileges(capsys: pytest.CaptureFixture) -> None:
    with FakeES(security=True, users={"sensor": "pw"}, granted={"create_doc"}) as es:
        code, out, err = sipcm(capsys, es, *AUTH, "test", "output")
    assert code == 2
    assert out.splitlines()[2:] == [
        "privileges... ERROR missing auto_configure on logs-sipcm.sip-default; "
        "grant them to sensor",
        f"index template... ERROR {NAME} is not installed and this user lacks "
        "manage_index_templates: run `sipcm setup` once as a user who has it",
    ]
    assert err == "sipcm: error: 2 check(s) failed (fix the errors above, then run again)\n"


def test_test_output_template_installed_needs_no_template_privilege(
    capsys: pytest.CaptureFixture,
) -> None:
    granted = {"create_doc", "auto_configure"}
    with FakeES(security=True, users={"sensor": "pw"}, granted=granted) as es:
        es.templates[NAME] = _as_stored(OURS)
        code, out, _ = sipcm(capsys, es, *AUTH, "test", "output")
    assert code == 0
    assert out.splitlines()[-1] == f"index template... OK {NAME} up to date"


def test_test_output_wrong_password(capsys: pytest.CaptureFixture) -> None:
    with FakeES(security=True, users={"sensor": "other"}) as es:
        code, out, _ = sipcm(capsys, es, *AUTH, "test", "output")
    assert code == 2
    assert out.splitlines() == [
        f"connection... OK {es.url} answers",
        "authentication... ERROR credentials refused (HTTP 401): security_exception",
    ]


def test_test_output_unreachable_and_no_security(es: FakeES, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = sipcm(capsys, es, "test", "output")
    assert code == 0
    assert out.splitlines()[1:3] == [
        "authentication... OK security is not enabled (exception)",
        "privileges... OK not checked: security is not enabled",
    ]
    es.stop()
    code, out, _ = sipcm(capsys, es, "test", "output")
    assert code == 2
    (line,) = out.splitlines()
    assert line.startswith(f"connection... ERROR cannot reach {es.url}: ")
