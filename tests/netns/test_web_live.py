"""The web interface of a running `sipcm attach` (SPEC 11), with real sipp calls.

The sensor runs in the namespace of the host it watches (srv, 10.95.0.2 on v1) with its web
interface on 127.0.0.1:18080 of that namespace (a fresh namespace, so the port is free); a
sipp UAC in the peer namespace (10.95.0.1) calls a sipp UAS in srv. Each sipp call is
INVITE, 180, 200, ACK, BYE, 200: on v1 that is 3 frames in (INVITE, ACK, BYE) and 3 out
(180, 200, 200). sipp's Call-ID is `<call number>-<sipp pid>@<local ip>`, so the test knows
each Call-ID before the call starts. Stats events are off so every count is exact.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.netns.conftest import (
    Sensor,
    actions_of,
    http,
    http_json,
    need,
    programs_on,
    prom_samples,
    sipcm_cmd,
    start_sipcm,
    wait_listening,
)

pytestmark = pytest.mark.netns

UAC_IP, SRV_IP = "10.95.0.1", "10.95.0.2"
PORT = 18080
LOCAL = f"http://127.0.0.1:{PORT}"
SIPP = ["-nostdin", "-timeout", "30"]
TOKEN = "s3cret-web-token"
API_PATHS = (
    "/api/counters",
    "/api/events",
    "/api/calls",
    "/api/registrations",
    "/api/blacklist",
    "/api/rates",
    "/api/config",
    "/metrics",
)


class Site:
    """Two namespaces joined by a veth; every process started here is stopped at teardown."""

    def __init__(self, net, uac: str, srv: str) -> None:
        self.net, self.a, self.srv = net, uac, srv
        self.procs: list[Sensor | subprocess.Popen] = []

    def sensor(self, *overrides: str) -> Sensor:
        s = start_sipcm(self.net, self.srv, ["v1"], "stats_interval=0", *overrides)
        self.procs.append(s)
        return s

    def uas(self, calls: int) -> subprocess.Popen:
        p = self.net.popen(
            self.srv, "sipp", "-sn", "uas", "-i", SRV_IP, "-p", "5060", "-m", str(calls), *SIPP
        )
        self.procs.append(p)
        wait_listening(self.net, self.srv, 5060)
        return p

    def uac(self, pause_ms: int = 0) -> tuple[subprocess.Popen, str]:
        """One call from the UAC, holding it up for `pause_ms`; (process, its Call-ID)."""
        p = self.net.popen(
            self.a,
            "sipp",
            "-sn",
            "uac",
            f"{SRV_IP}:5060",
            "-i",
            UAC_IP,
            "-p",
            "5062",
            "-m",
            "1",
            "-d",
            str(pause_ms),
            *SIPP,
        )
        self.procs.append(p)
        # `ip netns exec` execs the command, so this pid is sipp's own.
        return p, f"1-{p.pid}@{UAC_IP}"

    def teardown(self) -> None:
        for p in reversed(self.procs):
            if isinstance(p, Sensor):
                p.kill()  # SIGTERM, then SIGKILL
            elif p.poll() is None:
                p.kill()
                p.wait(10)


@pytest.fixture
def site(net) -> Iterator[Site]:
    need("sipp")
    a, b = net.ns("uac"), net.ns("srv")
    net.veth(a, "v0", (f"{UAC_IP}/24",), b, "v1", (f"{SRV_IP}/24",))
    s = Site(net, a, b)
    try:
        yield s
    finally:
        s.teardown()


def until(fn: Callable[[], Any], what: str, timeout: float = 10) -> Any:
    """Poll `fn` until it returns something true; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def has(action: str, call_id: str) -> Callable[[list[dict]], bool]:
    return lambda evs: any(
        e["event"]["action"] == action and e["sip"]["call_id"] == call_id for e in evs
    )


def sip_messages(ns: str, base: str, n: int, **kw) -> Callable[[], dict | None]:
    """A poller: the counters once the pipeline has parsed `n` SIP messages."""

    def get() -> dict | None:
        c = http_json(ns, f"{base}/api/counters", **kw)
        return c if c["sip"].get("messages") == n else None

    return get


@pytest.mark.usefixtures("workers")
def test_active_call_events_counters_and_metrics(site):
    sensor = site.sensor(f"http_port={PORT}")
    uas = site.uas(1)
    uac, call_id = site.uac(pause_ms=5000)
    started = sensor.wait_events(has("call-start", call_id))

    # While the call is up (the UAC holds it for 5 s after the ACK).
    calls = http_json(site.srv, f"{LOCAL}/api/calls")
    assert calls["count"] == 1
    (row,) = calls["calls"]
    assert row["call_id"] == call_id
    assert row["state"] == "inv_established"
    assert row["client"] == [UAC_IP, 5062]
    assert row["server"] == [SRV_IP, 5060]
    assert row["from"] == f"sip:sipp@{UAC_IP}:5062"
    assert row["to"] == f"sip:service@{SRV_IP}:5060"
    assert row["to_tag"].startswith(f"{uas.pid}SIPpTag")
    assert row["answer_ns"] >= row["invite_ns"] > 0
    assert row["reconstructed_from"] is None

    got = http_json(site.srv, f"{LOCAL}/api/events?action=call-start")
    assert got["count"] == 1
    assert got["events"] == [e for e in started if e["event"]["action"] == "call-start"]
    assert got["events"][0]["sip"]["call_id"] == call_id
    by_id = http_json(site.srv, f"{LOCAL}/api/events?call_id={call_id}")
    assert [e["event"]["action"] for e in by_id["events"]] == ["call-start"]
    assert http_json(site.srv, f"{LOCAL}/api/events?action=call-end")["count"] == 0
    # sipp's From is sip:sipp@<its address>, its To and R-URI sip:service@<the UAS>.
    for query, n in (
        ("user=sipp", 1),
        ("user=service", 1),
        ("user=alice", 0),
        (f"ip={UAC_IP}", 1),
        (f"ip={SRV_IP}&action=call-start", 1),
        ("ip=192.0.2.1", 0),
    ):
        assert http_json(site.srv, f"{LOCAL}/api/events?{query}")["count"] == n, query
    assert uac.poll() is None, "the call ended before the API was read"

    assert uac.wait(30) == 0
    assert uas.wait(30) == 0
    sensor.wait_events(has("call-end", call_id))
    counters = until(sip_messages(site.srv, LOCAL, 6), "6 SIP messages in the pipeline")
    seen_on_stdout = len(sensor.events())
    assert seen_on_stdout == 2

    assert counters["interfaces"] == {"v1": {"ingress": 3, "egress": 3}}
    kernel = counters["kernel"]
    assert kernel["selected"] == kernel["copied"] == 6
    assert kernel["ring_full_lost"] == 0
    assert kernel["truncated"] == 0
    assert kernel["seen"] >= 6
    assert counters["events"] == {"generated": 2, "published": 2}
    assert counters["output_console"]["published"] == 2
    assert counters["capture"]["ring_records"] == 6

    status, headers, body = http(site.srv, "GET", f"{LOCAL}/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    m = prom_samples(body.decode())
    assert m["sipcm_events_published_total"] == seen_on_stdout
    assert m["sipcm_events_generated_total"] == 2
    assert m["sipcm_output_console_published_total"] == seen_on_stdout
    assert m['sipcm_interface_frames_total{direction="ingress",interface="v1"}'] == 3
    assert m['sipcm_interface_frames_total{direction="egress",interface="v1"}'] == 3
    assert m['sipcm_sip_requests_total{method="INVITE"}'] == 1
    assert m['sipcm_sip_requests_total{method="ACK"}'] == 1
    assert m['sipcm_sip_requests_total{method="BYE"}'] == 1
    assert m['sipcm_sip_responses_total{code_class="2xx",method="INVITE"}'] == 1
    assert m['sipcm_events_total{action="call-start"}'] == 1
    assert m['sipcm_events_total{action="reg-new"}'] == 0
    assert m["sipcm_kernel_truncated_total"] == 0
    assert m["sipcm_sip_messages_total"] == 6
    assert m["sipcm_kernel_copied_total"] == 6
    assert m["sipcm_kernel_selected_total"] == 6
    assert m["sipcm_kernel_ring_full_lost_total"] == 0
    assert m["sipcm_kernel_seen_total"] >= 6
    assert m["sipcm_recent_events"] == 2
    assert m["sipcm_blacklisted_event_types"] == 1  # the default: msg-probe

    rc, events, err = sensor.stop()
    assert rc == 0, err[-1500:]
    assert "Traceback" not in err
    assert [(e["event"]["action"], e["sip"]["call_id"]) for e in events] == [
        ("call-start", call_id),
        ("call-end", call_id),
    ]
    assert programs_on(site.net, site.srv, "v1") == {"xdp": False, "tc_egress": "", "tcx": 0}


def put_blacklist(ns: str, body: bytes) -> tuple[int, dict]:
    status, _, raw = http(
        ns,
        "PUT",
        f"{LOCAL}/api/blacklist",
        body=body,
        headers={"Content-Type": "application/json"},
    )
    return status, json.loads(raw)


@pytest.mark.usefixtures("workers")
def test_blacklist_put_stops_call_start_but_not_call_end(site):
    sensor = site.sensor(f"http_port={PORT}")
    bl = http_json(site.srv, f"{LOCAL}/api/blacklist")
    assert bl["blacklist"] == ["msg-probe"]
    assert {"call-start", "call-end", "stats"} <= set(bl["valid"])
    uas = site.uas(2)

    uac1, c1 = site.uac()
    assert uac1.wait(30) == 0
    sensor.wait_events(has("call-end", c1))

    status, doc = put_blacklist(site.srv, b'["call-start", "no-such-event"]')
    assert status == 400
    assert "no-such-event" in doc["error"]
    status, doc = put_blacklist(site.srv, b'["call-start"]')
    assert status == 200
    assert doc["blacklist"] == ["call-start"]
    assert http_json(site.srv, f"{LOCAL}/api/blacklist")["blacklist"] == ["call-start"]

    uac2, c2 = site.uac()
    assert uac2.wait(30) == 0
    assert uas.wait(30) == 0
    sensor.wait_events(has("call-end", c2))
    counters = until(sip_messages(site.srv, LOCAL, 12), "12 SIP messages in the pipeline")
    assert counters["events"] == {"generated": 4, "published": 3, "blacklisted_call-start": 1}
    m = prom_samples(http(site.srv, "GET", f"{LOCAL}/metrics")[2].decode())
    assert m["sipcm_events_published_total"] == 3
    assert m['sipcm_events_blacklisted_total{action="call-start"}'] == 1
    assert m['sipcm_events_total{action="call-start"}'] == 1  # before the blacklist changed
    assert m['sipcm_events_total{action="call-end"}'] == 2
    assert m["sipcm_blacklisted_event_types"] == 1
    assert http_json(site.srv, f"{LOCAL}/api/events?call_id={c2}")["count"] == 1

    rc, events, err = sensor.stop()
    assert rc == 0, err[-1500:]
    assert [(e["event"]["action"], e["sip"]["call_id"]) for e in events] == [
        ("call-start", c1),
        ("call-end", c1),
        ("call-end", c2),
    ]


@pytest.mark.parametrize("addr", [SRV_IP, "0.0.0.0"])
def test_non_loopback_address_without_token_is_refused(site, addr):
    r = site.net.run(
        site.srv, *sipcm_cmd(["v1"], f"http_addr={addr}", f"http_port={PORT}"), timeout=60
    )
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("sipcm: error:")
    assert addr in lines[0]
    assert "access_token" in lines[0]
    assert r.stdout == ""
    assert programs_on(site.net, site.srv, "v1") == {"xdp": False, "tc_egress": "", "tcx": 0}


def test_access_token_required_on_every_api_path(site):
    # With a token a non-loopback address is allowed: the client is the peer host.
    sensor = site.sensor(f"http_addr={SRV_IP}", f"http_port={PORT}", f"access_token={TOKEN}")
    base = f"http://{SRV_IP}:{PORT}"
    ns = site.a
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for path in API_PATHS:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            status, hdrs, body = http(ns, "GET", base + path, headers=headers)
            assert status == 401, (path, headers)
            assert hdrs["www-authenticate"] == 'Bearer realm="sipcm"'
            assert json.loads(body) == {"error": "missing or wrong access token"}
        assert http(ns, "GET", f"{base}{path}?token=wrong")[0] == 401
        assert http(ns, "GET", base + path, headers=bearer)[0] == 200, path
        assert http(ns, "GET", f"{base}{path}?token={TOKEN}")[0] == 200, path

    status, _, _ = http(ns, "PUT", f"{base}/api/blacklist", body=b'["call-start"]')
    assert status == 401
    assert http_json(ns, f"{base}/api/blacklist", headers=bearer)["blacklist"] == ["msg-probe"]
    # The dashboard shell carries no data and loads without the token.
    status, hdrs, _ = http(ns, "GET", base + "/")
    assert status == 200
    assert hdrs["content-type"].startswith("text/html")

    status, _, body = http(ns, "GET", f"{base}/api/config", headers=bearer)
    assert status == 200
    assert TOKEN.encode() not in body
    # The HTTP traffic crossed v1 but is not SIP: the kernel program copied none of it.
    kernel = http_json(ns, f"{base}/api/counters", headers=bearer)["kernel"]
    assert kernel["seen"] > 0
    assert kernel["selected"] == kernel["copied"] == 0
    rc, events, err = sensor.stop()
    assert rc == 0, err[-1500:]
    assert actions_of(events) == []


def test_metrics_rate_table_levels_are_gauges(site):
    site.sensor(f"http_port={PORT}")
    text = http(site.srv, "GET", f"{LOCAL}/metrics")[2].decode()
    assert "# TYPE sipcm_rates_active_rate_entries gauge" in text
    assert "# TYPE sipcm_rates_active_rate_max_entries gauge" in text
