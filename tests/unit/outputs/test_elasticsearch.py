"""The Elasticsearch output against a fake server: batching, retries, spool, restart, auth."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import BadRequestError, Elasticsearch

from sipcm.errors import SipcmError
from sipcm.outputs.elasticsearch import ElasticsearchOutput, bulk_body, doc_id, encode_event
from tests.fakees import DROP, FakeES, Slow

STREAM = "logs-sipcm.sip-default"


@pytest.fixture
def es() -> Iterator[FakeES]:
    with FakeES() as server:
        yield server


def events(a: int, b: int, pad: int = 0) -> list[dict[str, Any]]:
    return [{"n": i, "pad": "x" * pad} if pad else {"n": i} for i in range(a, b)]


def make(url: str, tmp_path: Path, c: Counter[str], **kw: Any) -> ElasticsearchOutput:
    """An output with test-sized timings: 20 ms flush interval, millisecond backoff, and an
    fsync per batch (so fsync counts are exact)."""
    opts: dict[str, Any] = {
        "spool_fsync_interval_s": 0.0,
        "counters": c,
        "spool_dir": str(tmp_path / "spool"),
        "batch_size": 10,
        "flush_interval_s": 0.02,
        "retry_backoff_s": 0.002,
        "retry_backoff_max_s": 0.01,
        "request_timeout_s": 2.0,
        "flush_timeout_s": 5.0,
        "max_retries": 3,
    }
    opts.update(kw)
    return ElasticsearchOutput([url], **opts)


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            pytest.fail("condition not reached in time")
        time.sleep(0.01)


def segments(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "spool").glob("seg-*.ndjson"))


def ids_of(docs: list[dict[str, Any]]) -> list[str]:
    return [doc_id(encode_event(d)).decode() for d in docs]


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "spool" / "dead-letter.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_happy_path(es: FakeES, tmp_path: Path) -> None:
    c: Counter[str] = Counter()
    out = make(es.url, tmp_path, c)
    out.write(events(0, 25))
    out.flush()
    assert es.sources == events(0, 25)
    assert {idx for idx, _ in es.docs} == {STREAM}
    assert es.bulk_sizes == [10, 10, 5]
    # The schema's template, under the dataset's name, above the built-in logs-*-* (100).
    tpl = es.templates["logs-sipcm.sip"]
    assert tpl["index_patterns"] == ["logs-sipcm.sip-*"]
    assert tpl["priority"] == 200
    assert tpl["composed_of"] == ["logs@settings", "ecs@mappings", "logs-sipcm.sip@custom"]
    assert tpl["ignore_missing_component_templates"] == ["logs-sipcm.sip@custom"]
    assert "sip" in tpl["template"]["mappings"]["properties"]
    out.write(events(25, 28))
    out.close()
    assert es.sources == events(0, 28)
    assert es.ids == ids_of(events(0, 28))
    # Two write() batches: two appends, each fsync'd once (the default policy).
    assert c == Counter(
        published=28, bulk_requests=4, template_installed=1, spooled=28, unspooled=28, fsyncs=2
    )
    assert out.pending == 0
    assert [r.method for r in es.requests if r.path == "/"] == ["GET"]
    # One GET (is there a template?) and one PUT.
    assert [r.method for r in es.requests if r.path.startswith("/_index_template")] == [
        "GET",
        "PUT",
    ]
    bulk = next(r for r in es.requests if r.path.endswith("/_bulk"))
    assert bulk.path == f"/{STREAM}/_bulk"
    assert bulk.body.split(b"\n")[:2] == [
        b'{"create":{"_id":"' + doc_id(b'{"n":0}') + b'"}}',
        b'{"n":0}',
    ]
    assert segments(tmp_path) == []


def test_document_id_is_a_hash_of_the_encoded_bytes() -> None:
    line = encode_event({"@timestamp": "2024-01-01T00:00:00.000000001Z", "n": 1})
    assert doc_id(line) == base64.urlsafe_b64encode(hashlib.blake2b(line, digest_size=15).digest())
    assert len(doc_id(line)) == 20
    assert doc_id(line) == doc_id(bytes(line))
    other = encode_event({"@timestamp": "2024-01-01T00:00:00.000000002Z", "n": 1})
    assert doc_id(other) != doc_id(line)
    assert bulk_body([line]) == b'{"create":{"_id":"' + doc_id(line) + b'"}}\n' + line + b"\n"


def test_write_encodes_at_once(es: FakeES, tmp_path: Path) -> None:
    c: Counter[str] = Counter()
    out = make(es.url, tmp_path, c)
    ev = {"n": 1, "sip": {"method": "INVITE"}}
    odd = {"n": 2, "user": "\udc80bob", "name": "Zoë"}  # a lone surrogate from odd SIP bytes
    out.write([ev, odd, {"obj": object()}, {"n": 3, "x": float("nan")}])
    ev["sip"]["method"] = "BYE"  # the caller may reuse its dicts after write()
    out.close()
    assert es.sources == [
        {"n": 1, "sip": {"method": "INVITE"}},
        {"n": 2, "user": "\udc80bob", "name": "Zoë"},
        {"n": 3, "x": None},
    ]
    assert encode_event(odd) == b'{"n":2,"user":"\\udc80bob","name":"Zo\\u00eb"}'
    assert encode_event({"name": "Zoë"}) == '{"name":"Zoë"}'.encode()
    assert c["dropped"] == 1
    assert c["dropped_unserializable"] == 1


def test_write_returns_once_the_batch_is_on_disk(es: FakeES, tmp_path: Path) -> None:
    es.stop()
    c: Counter[str] = Counter()
    out = make(es.url, tmp_path, c)
    out.write(events(0, 3))
    # Nothing was sent, yet the three documents are already in a segment file, whole.
    (seg,) = segments(tmp_path)
    assert seg.read_bytes() == b'{"n":0}\n{"n":1}\n{"n":2}\n'
    assert out.pending == 3
    assert c["spooled"] == 3
    assert c["fsyncs"] == 1
    out.write_lines([b'{"n":3}'])  # pre-encoded documents take the same path
    assert seg.read_bytes().endswith(b'{"n":3}\n')
    assert out.pending == 4
    out.close()
    assert c["published"] == 0
    assert out.pending == 4
    es.start()
    c2: Counter[str] = Counter()
    make(es.url, tmp_path, c2).close()
    assert es.sources == events(0, 4)
    assert c2["published"] == 4


def test_fsync_interval_policy(es: FakeES, tmp_path: Path) -> None:
    es.stop()
    c: Counter[str] = Counter()
    out = make(es.url, tmp_path, c, spool_fsync_interval_s=3600.0)
    for i in range(5):
        out.write(events(i, i + 1))
    assert c["spooled"] == 5
    assert c["fsyncs"] == 0  # within the interval: written, not yet synced
    out.close()
    assert c["fsyncs"] == 1  # close syncs what is pending
    c2: Counter[str] = Counter()
    out2 = make(es.url, tmp_path / "2", c2, spool_fsync_interval_s=0.05)
    out2.write(events(0, 1))
    assert c2["fsyncs"] == 0
    wait_for(lambda: c2["fsyncs"] == 1)  # the queue's own thread syncs within the interval
    out2.close()


@pytest.mark.parametrize("failure", [429, 500, 503, DROP])
def test_whole_request_failures_are_retried(es: FakeES, tmp_path: Path, failure: Any) -> None:
    c: Counter[str] = Counter()
    es.script_bulk(failure, failure)
    out = make(es.url, tmp_path, c)
    out.write(events(0, 5))
    out.close()
    assert es.sources == events(0, 5)
    assert c["published"] == 5
    assert c["retried"] == 10
    assert c["bulk_requests"] == 3
    assert c["bulk_errors"] == 2
    assert c["dropped"] == 0


def test_per_item_failures(es: FakeES, tmp_path: Path) -> None:
    c: Counter[str] = Counter()
    es.script_bulk([201, 429, 400, 503, 201])
    out = make(es.url, tmp_path, c)
    out.write(events(0, 5))
    out.close()
    # Only the 429 and 503 items went again; the mapping error went to the dead-letter file.
    assert es.sources == [{"n": 0}, {"n": 4}, {"n": 1}, {"n": 3}]
    assert es.bulk_sizes == [5, 2]
    assert c == Counter(
        published=4,
        retried=2,
        dead_lettered=1,
        bulk_requests=2,
        bulk_errors=1,
        template_installed=1,
        spooled=5,
        unspooled=5,
        fsyncs=1,
    )
    (dl,) = dead_letters(tmp_path)
    assert dl["document"] == {"n": 2}


def test_mapping_errors_go_to_the_dead_letter_file(es: FakeES, tmp_path: Path) -> None:
    es.reject = lambda doc: 400 if doc["n"] % 2 else None
    c: Counter[str] = Counter()
    out = make(es.url, tmp_path, c)
    out.write(events(0, 6))
    out.close()
    assert es.sources == [{"n": 0}, {"n": 2}, {"n": 4}]
    assert c["dead_lettered"] == 3
    assert c["dropped"] == 0
    assert c["published"] == 3
    assert c["bulk_requests"] == 1
    assert c["retried"] == 0
    rows = dead_letters(tmp_path)
    for row in rows:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row.pop("@timestamp"))
    assert rows == [
        {
            "status": 400,
            "error": {
                "type": "document_parsing_exception",
                "reason": "failed to parse field [x] of type [long]",
            },
            "index": STREAM,
            "_id": ident,
            "document": doc,
        }
        for doc, ident in zip(
            events(
                1,
                6,
            )[::2],
            ids_of(events(1, 6)[::2]),
            strict=True,
        )
    ]
    assert oct((tmp_path / "spool" / "dead-letter.ndjson").stat().st_mode & 0o777) == "0o600"


def test_dead_letter_cap_counts_the_rest(es: FakeES, tmp_path: Path) -> None:
    es.reject = lambda doc: 400
    c: Counter[str] = Counter()
    out = make(es.url, tmp_path, c, dead_letter_max_bytes=400)
    out.write(events(0, 5))
    out.close()
    kept = len(dead_letters(tmp_path))
    assert 0 < kept < 5
    assert c["dead_lettered"] == kept
    assert c["dropped_rejected"] == c["dropped"] == 5 - kept


def test_whole_request_400_dead_letters_the_batch(es: FakeES, tmp_path: Path) -> None:
    c: Counter[str] = Counter()
    es.script_bulk(400)
    out = make(es.url, tmp_path, c)
    out.write(events(0, 3))
    out.flush()
    out.write(events(3, 4))
    out.close()
    assert es.sources == [{"n": 3}]
    assert c["dead_lettered"] == 3
    assert c["retried"] == 0
    assert [r["document"] for r in dead_letters(tmp_path)] == events(0, 3)
    assert {r["error"]["type"] for r in dead_letters(tmp_path)} == {"bulk_request_rejected"}


def test_answer_after_the_client_timeout_makes_no_duplicate(es: FakeES, tmp_path: Path) -> None:
    # The first bulk is indexed but answered after the client gave up; the resend is all 409s.
    es.script_bulk(Slow(2.5))
    c: Counter[str] = Counter()
    out = make(es.url, tmp_path, c, request_timeout_s=1.0)
    out.write(events(0, 7))
    out.close()
    assert es.sources == events(0, 7)
    assert es.ids == ids_of(events(0, 7))
    assert c["published"] == 7
    assert c["already_indexed"] == 7
    assert c["retried"] == 7
    assert c["bulk_requests"] == 2
    assert out.pending == 0


def test_outage_keeps_events_on_disk_then_delivers_once_in_order(
    es: FakeES, tmp_path: Path
) -> None:
    c: Counter[str] = Counter()
    out = make(es.url, tmp_path, c, batch_size=5, max_retries=1)
    out.write(events(0, 10))
    out.flush()
    assert es.sources == events(0, 10)
    es.stop()
    for i in range(10, 60, 7):
        out.write(events(i, min(i + 7, 60)))
    assert out.pending == 50  # every accepted event is on disk right away
    wait_for(lambda: out._down)
    out.flush()  # returns: Elasticsearch is down
    assert es.sources == events(0, 10)
    es.start()
    wait_for(lambda: len(es.docs) >= 60)
    out.write(events(60, 63))
    out.close()
    assert es.sources == events(0, 63)
    assert es.ids == ids_of(events(0, 63))
    assert c["published"] == 63
    assert c["unspooled"] == c["spooled"] == 63
    assert c["dropped"] == 0
    assert c["retried"] > 0
    assert segments(tmp_path) == []


def test_close_while_down_keeps_the_queue_and_restart_resends(es: FakeES, tmp_path: Path) -> None:
    es.stop()
    c1: Counter[str] = Counter()
    out = make(es.url, tmp_path, c1)
    out.write(events(0, 30))
    out.close()
    assert c1["spooled"] == 30
    assert c1["published"] == 0
    assert out.pending == 30
    assert c1["connect_errors"] >= 1
    assert segments(tmp_path)
    es.start()
    c2: Counter[str] = Counter()
    out2 = make(es.url, tmp_path, c2)
    assert out2.pending == 30
    out2.write(events(30, 35))
    out2.close()
    assert es.sources == events(0, 35)
    assert c2["unspooled"] == 35
    assert c2["published"] == 35
    assert c2["template_installed"] == 1
    assert segments(tmp_path) == []


def test_restart_after_partial_resend_sends_only_the_rest(es: FakeES, tmp_path: Path) -> None:
    es.stop()
    out = make(es.url, tmp_path, Counter())
    out.write(events(0, 30))
    out.close()
    es.start()
    # The first batch is accepted, then Elasticsearch fails until the output closes.
    es.script_bulk([], *[500] * 100)
    c2: Counter[str] = Counter()
    out2 = make(es.url, tmp_path, c2, max_retries=1)
    wait_for(lambda: c2["bulk_requests"] >= 3)
    out2.close()
    assert es.sources == events(0, 10)
    assert c2["unspooled"] == 10
    assert out2.pending == 20
    es.clear_script()
    c3: Counter[str] = Counter()
    make(es.url, tmp_path, c3).close()
    assert es.sources == events(0, 30)
    assert c3["unspooled"] == 20
    assert c3["already_indexed"] == 0
    assert segments(tmp_path) == []


def test_lost_ack_pointer_resends_as_409s(es: FakeES, tmp_path: Path) -> None:
    c: Counter[str] = Counter()
    out = make(es.url, tmp_path, c)
    out.write(events(0, 30))
    out.flush()
    assert es.sources == events(0, 30)
    # A crash before the pointer moved (or a power failure that lost its last update).
    seg = segments(tmp_path)[0]
    data = seg.read_bytes()
    out.close()
    seg.write_bytes(data)
    (tmp_path / "spool" / "ack").unlink()
    c2: Counter[str] = Counter()
    make(es.url, tmp_path, c2).close()
    assert es.sources == events(0, 30)  # not indexed twice
    assert c2["published"] == c2["already_indexed"] == 30


def test_spool_bound_drops_oldest(es: FakeES, tmp_path: Path) -> None:
    es.stop()
    c: Counter[str] = Counter()
    # 100 bytes per line on disk, so the 8000-byte queue holds 80 events in 1000-byte segments.
    out = make(es.url, tmp_path, c, spool_max_bytes=8000)
    docs = events(100, 300, pad=81)
    assert len(b'{"n":100,"pad":""}\n') + 81 == 100
    # Batches of 10: once 8 segments are full, each new batch deletes the oldest segment.
    for i in range(0, 200, 10):
        out.write(docs[i : i + 10])
    out.close()
    assert c["dropped_spool_full"] == 120
    assert c["dropped"] == 120
    assert out.pending == 80
    assert sum(p.stat().st_size for p in segments(tmp_path)) == 8000
    es.start()
    c2: Counter[str] = Counter()
    make(es.url, tmp_path, c2, spool_max_bytes=8000).close()
    assert es.sources == docs[120:]


@pytest.mark.parametrize("version", ["8.15.3", "9.1.0"])
def test_elasticsearch_8_and_9(tmp_path: Path, version: str) -> None:
    with FakeES(version=version) as server:
        # The fake refuses what a real 8.x refuses: the v9 client's default compat-9 headers.
        plain = Elasticsearch([server.url])
        if version.startswith("8"):
            with pytest.raises(BadRequestError, match="media_type_header_exception"):
                plain.info()
        else:
            assert plain.info()["version"]["number"] == version
        plain.close()
        c: Counter[str] = Counter()
        out = make(server.url, tmp_path, c)
        out.write(events(0, 3))
        out.close()
        assert server.sources == events(0, 3)
        assert c["template_installed"] == 1
        accept = {h["accept"] for h in server.headers_of("/logs-sipcm.sip-default/_bulk")}
        assert accept == {"application/vnd.elasticsearch+json; compatible-with=8"}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A throw-away CA and a server certificate for 127.0.0.1 it signed (openssl, EC P-256)."""
    d = tmp_path_factory.mktemp("certs")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    sign = "x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem"
    cmds = [
        ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=t-ca"],
        ["req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1"],
        [*sign.split(), "-days", "2", "-extfile", "san.ext"],
    ]
    for cmd in cmds:
        subprocess.run(["openssl", *cmd], cwd=d, check=True, capture_output=True, timeout=30)
    der = ssl.PEM_cert_to_DER_cert((d / "srv.pem").read_text())
    return {
        "ca": str(d / "ca.pem"),
        "cert": str(d / "srv.pem"),
        "key": str(d / "srv.key"),
        "fingerprint": hashlib.sha256(der).hexdigest(),
    }


@pytest.mark.parametrize(
    ("how", "delivered"),
    [("ca_file", True), ("fingerprint", True), ("wrong_fingerprint", False), ("none", False)],
)
def test_tls(tmp_path: Path, certs: dict[str, str], how: str, delivered: bool) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["cert"], certs["key"])
    fp = certs["fingerprint"]
    kw = {
        "ca_file": {"ca_file": certs["ca"]},
        "fingerprint": {"fingerprint": ":".join(fp[i : i + 2] for i in range(0, 64, 2))},
        "wrong_fingerprint": {"fingerprint": "00" * 32},
        "none": {},  # self-signed CA not in the system store: verification fails
    }[how]
    with FakeES(tls=ctx) as server:
        c: Counter[str] = Counter()
        out = make(server.url, tmp_path, c, max_retries=1, **kw)
        out.write(events(0, 3))
        out.close()
        if delivered:
            assert server.sources == events(0, 3)
            assert c["published"] == 3
        else:
            assert server.docs == []
            assert c["connect_errors"] >= 1
            assert c["spooled"] == 3
            assert out.pending == 3


def test_api_key_reaches_server(es: FakeES, tmp_path: Path) -> None:
    out = make(es.url, tmp_path, Counter(), api_key="Zm9vOmJhcg==")
    out.write(events(0, 1))
    out.close()
    auth = {h.get("authorization") for h in es.headers_of("/")}
    assert auth == {"ApiKey Zm9vOmJhcg=="}
    assert len(es.requests) == 4  # info, template (GET, PUT), bulk


def test_basic_auth_reaches_server(es: FakeES, tmp_path: Path) -> None:
    out = make(es.url, tmp_path, Counter(), username="elastic", password="s3cret")
    out.write(events(0, 1))
    out.close()
    want = "Basic " + base64.b64encode(b"elastic:s3cret").decode()
    assert {h.get("authorization") for h in es.headers_of("/")} == {want}


def test_server_that_is_not_elasticsearch(tmp_path: Path) -> None:
    with FakeES(product_header=False) as server:
        c: Counter[str] = Counter()
        out = make(server.url, tmp_path, c)
        out.write(events(0, 4))
        out.close()
        assert [r.path for r in server.requests] == ["/"] * len(server.requests)
        assert c["connect_errors"] == len(server.requests) >= 1
        assert out.pending == 4
        assert c["published"] == 0


def test_template_without_privilege_still_ships(tmp_path: Path) -> None:
    with FakeES(template_status=403) as server:
        c: Counter[str] = Counter()
        out = make(server.url, tmp_path, c, template={"template": {"mappings": {}}})
        out.write(events(0, 2))
        out.close()
        assert server.sources == events(0, 2)
        assert c["template_errors"] == 1
        assert c["template_installed"] == 0


def test_custom_data_stream_and_template(es: FakeES, tmp_path: Path) -> None:
    out = make(es.url, tmp_path, Counter(), data_stream="logs-voip-lab", template={"x": 1})
    out.write(events(0, 1))
    out.close()
    assert es.templates == {
        "logs-voip": {
            "x": 1,
            "index_patterns": ["logs-voip-*"],
            "data_stream": {"hidden": False, "allow_custom_routing": False},
            "priority": 200,
        }
    }
    assert es.docs == [("logs-voip-lab", {"n": 0})]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"hosts": []}, "no Elasticsearch hosts"),
        ({"hosts": ["ftp://es:9200"]}, "need an http"),
        ({"hosts": ["http://es:99999"]}, "invalid Elasticsearch host"),
        ({"api_key": "k", "username": "u", "password": "p"}, "api_key and username"),
        ({"ca_file": "/nonexistent/ca.pem"}, "cannot use CA file"),
        ({"fingerprint": "ab:cd"}, "invalid certificate fingerprint"),
        ({"data_stream": "Logs-sipcm"}, "invalid data stream"),
        ({"data_stream": "logs sipcm"}, "invalid data stream"),
        ({"batch_size": 0}, "batch_size must be positive"),
    ],
)
def test_bad_settings(tmp_path: Path, kw: dict[str, Any], match: str) -> None:
    hosts = kw.pop("hosts", ["http://127.0.0.1:9"])
    with pytest.raises(SipcmError, match=match):
        ElasticsearchOutput(hosts, counters=Counter(), spool_dir=str(tmp_path), **kw)


def test_ca_file_that_is_not_pem(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(SipcmError, match="cannot use CA file"):
        ElasticsearchOutput(
            ["https://127.0.0.1:9"], counters=Counter(), spool_dir=str(tmp_path), ca_file=str(bad)
        )
