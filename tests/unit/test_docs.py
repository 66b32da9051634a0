"""docs/: the field reference and configuration pages are generated and up to date."""

from __future__ import annotations

import re

from sipcm import docs
from sipcm.config import key_docs
from sipcm.counterdefs import COUNTERS
from sipcm.events.schema import FIELDS
from tests.conftest import REPO


def test_committed_pages_are_up_to_date() -> None:
    assert docs.stale() == [], "docs/ is stale: run python -m sipcm.docs"


def test_every_field_is_documented_once() -> None:
    text = (REPO / "docs" / "fields.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \|", text, re.M)
    assert rows == [f.name for f in FIELDS]
    assert (
        "| `sip.call.pdd` | float | Post-dial delay: INVITE to first 18x or final reply, ms. |"
        in text
    )
    assert "| `related.ip` | ip[] |" in text
    assert "| `sipcm.counters` | object of long |" in text


def test_every_config_key_is_documented_once_with_its_default() -> None:
    text = (REPO / "docs" / "configuration.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]*)` \|", text, re.M)
    assert rows == [(d.path, d.default) for d in key_docs()]
    assert "| `ring_size` | `16MiB` | BPF ring buffer size (per sensor) |" in text
    assert "| `calls_timeouts.auth_wait` | `1m` |" in text
    assert "| `access_token` | `''` | bearer token for the web API (required off loopback) " \
        "(secret: never printed) |" in text  # fmt: skip
    # a | inside a cell is escaped so the table keeps its columns
    (row,) = [r for r in text.splitlines() if r.startswith("| `outputs.elasticsearch.data_stream`")]
    assert row.count(" | ") == 3
    assert '\\\\/*?"<>\\|,#:' in row


def test_every_counter_is_documented_once_with_its_family() -> None:
    text = (REPO / "docs" / "counters.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \| (counter|gauge) \|", text, re.M)
    assert rows == [
        (
            f"{d.group}.{d.name}",
            d.family + (f"{{{','.join(d.labels)}}}" if d.labels else ""),
            d.kind,
        )
        for d in COUNTERS
        if d.group != "call_times"
    ]
    assert (
        "| `kernel.ring_full_lost` | `sipcm_kernel_ring_full_lost_total` | counter | "
        "Packets lost because the ring buffer was full. | `ring_size` |"
    ) in text
    assert "| `sip_requests.{method}` | `sipcm_sip_requests_total{method}` | counter |" in text
    assert "| `sipcm_call_pdd_seconds` | 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60 |" in text
    assert "[docs/counters.md](docs/counters.md)" in (REPO / "README.md").read_text()


def test_check_reports_stale_pages_and_generation_fixes_them(tmp_path, capsys) -> None:
    assert docs.main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path}/fields.md is stale: run python -m sipcm.docs" in err
    assert f"{tmp_path}/configuration.md is stale" in err
    assert f"{tmp_path}/counters.md is stale" in err
    assert docs.main(["--dir", str(tmp_path)]) == 0
    assert docs.main(["--check", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "fields.md").read_text() == (REPO / "docs" / "fields.md").read_text()


def test_readme_points_to_the_docs_not_to_shared() -> None:
    """User documentation is in the repo; only the Tests section mentions ../shared."""
    readme = (REPO / "README.md").read_text()
    assert "[docs/fields.md](docs/fields.md)" in readme
    assert "[docs/configuration.md](docs/configuration.md)" in readme
    sections = re.split(r"^## ", readme, flags=re.M)
    naming_shared = [s.split("\n", 1)[0] for s in sections if "../shared" in s]
    assert naming_shared == ["Tests"]


def test_readme_quotes_every_override_the_shell_could_change() -> None:
    """An -E value with [ ] { } * ? or a space is quoted in every README example."""
    readme = (REPO / "README.md").read_text()
    values = re.findall(r"-E ('[^']*'|[^\s`'\"]+)", readme)
    assert len(values) >= 4
    unquoted = [v for v in values if not v.startswith("'") and re.search(r"[\[\]{}*?]", v)]
    assert unquoted == []
    assert "'sip_ports=[5060,5080]'" in values
