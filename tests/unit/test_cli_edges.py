"""The command line at the edges: secrets in URLs, hostile input files, unsafe paths."""

from __future__ import annotations

from tests.unit.test_cli import sipcm

URL_WITH_PASSWORD = 'outputs.elasticsearch.hosts=["https://elastic:hunter2pw@es.example:9200"]'


def test_config_masks_the_password_of_a_url() -> None:
    res = sipcm("config", "-E", URL_WITH_PASSWORD)
    assert res.returncode == 0, res.stderr
    assert "- https://elastic:***@es.example:9200\n" in res.stdout
    assert "hunter2pw" not in res.stdout


def test_bad_url_error_masks_its_password() -> None:
    res = sipcm("config", "-E", 'outputs.elasticsearch.hosts=["ftp://elastic:hunter2pw@es"]')
    assert res.returncode == 2
    assert "ftp://elastic:***@es" in res.stderr
    assert "hunter2pw" not in res.stderr + res.stdout
