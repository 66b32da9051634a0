"""A sensor restarted mid-traffic (`state_file`): calls and registrations established under the
first `sipcm attach`, which is stopped with SIGTERM; a second one restores them, and the BYEs
and registration expiries it sees give the call-end and reg-expired events the first one would
have given (durations and lifetimes measured from what the first one saw, nothing
reconstructed)."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

import pytest

from tests.ecs import assert_valid
from tests.netns.conftest import need, wait_listening
from tests.netns.test_cli_scenarios import SCN, SIPP, actions, attach, pair, procs  # noqa: F401

pytestmark = [pytest.mark.netns, pytest.mark.usefixtures("workers")]
CALLS, REGS = 2, 2
TALK_MS = 15000  # sipp's pause between ACK and BYE: longer than a sensor restart
EXPIRES_S, GRACE_S = 8, 1  # the registrar grants 8 s; reg_exp_delta 1 s


def ns_of(text: str) -> int:
    day, frac = text[:-1].split(".")
    sec = dt.datetime.strptime(day, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC).timestamp()
    return int(sec) * 1_000_000_000 + int(frac.ljust(9, "0"))


def by_id(events: list[dict], action: str) -> dict[str, dict]:
    return {e["sip"]["call_id"]: e for e in events if e["event"]["action"] == action}


def test_calls_and_registrations_survive_a_restart(net, procs) -> None:  # noqa: F811
    need("sipp")
    with tempfile.TemporaryDirectory(prefix="sipcm-state-") as d:
        # The sensor saves and restores after dropping to its run_as user, which may not write
        # in `d` (root's, 0755): it creates the state file's directory for that user while it
        # is still root, as it must for the default /var/lib/sipcm on a fresh host.
        os.chmod(d, 0o755)
        restart(net, procs, Path(d) / "sipcm" / "state.json")


def restart(net, procs, state: Path) -> None:  # noqa: F811
    a, b = pair(net, "10.94.7", "fd94:7")
    opts = ("-E", f"state_file={state}", "-E", f"reg_exp_delta={GRACE_S}s")
    opts += ("-E", "sip_ports=[5060,5080]")
    first = attach(net, procs, b, "v1", *opts)

    common = ("-m", str(CALLS), *SIPP)
    uas = net.popen(b, "sipp", "-sn", "uas", "-i", "10.94.7.2", "-p", "5060", *common)
    procs.append(uas)
    reg_uas = net.popen(b, "sipp", "-sf", str(SCN / "uas_registrar.xml"), "-i", "10.94.7.2",
                        "-p", "5080", "-m", str(REGS), *SIPP)  # fmt: skip
    procs.append(reg_uas)
    wait_listening(net, b, 5060)
    wait_listening(net, b, 5080)
    uac = net.popen(a, "sipp", "-sn", "uac", "10.94.7.2:5060", "-i", "10.94.7.1", "-p", "5062",
                    "-d", str(TALK_MS), "-r", "10", *common)  # fmt: skip
    procs.append(uac)
    reg = net.run(a, "sipp", "-sf", str(SCN / "uac_register_once.xml"), "10.94.7.2:5080",
                  "-i", "10.94.7.1", "-p", "5063", "-m", str(REGS), "-r", "10", *SIPP)  # fmt: skip
    assert reg.returncode == 0, reg.stderr[-800:]
    assert reg_uas.wait(30) == 0

    before = first.stop(CALLS + REGS, settle=0.2)
    assert actions(before) == {"call-start": CALLS, "reg-new": REGS}
    assert uac.poll() is None, "the calls ended before the sensor restarted"
    err = first.stderr()
    assert f"created {state.parent} for the state file (owner " in err, err[-800:]
    # The REGISTER transactions were answered (non_inv_fin, decided): concluded at the stop.
    assert f"saved {CALLS} calls, {REGS} registrations, 0 transactions to state file" in err

    second = attach(net, procs, b, "v1", *opts)
    second.wait_for(f"restored {CALLS} calls, {REGS} registrations, 0 transactions")
    assert f"{CALLS + REGS} entries restored, 0 discarded" in second.stderr()
    assert uac.wait(60) == 0, uac.stderr.read().decode()[-800:]
    assert uas.wait(30) == 0
    after = second.stop(CALLS + REGS, timeout=EXPIRES_S + GRACE_S + 15)
    assert actions(after) == {"call-end": CALLS, "reg-expired": REGS}

    starts, ends = by_id(before, "call-start"), by_id(after, "call-end")
    assert sorted(starts) == sorted(ends)
    assert len(starts) == CALLS
    for cid, end in ends.items():
        start = starts[cid]
        call = end["sip"]["call"]
        assert call["reconstructed"] is False
        assert call["originator"] == "caller"
        assert end["event"]["start"] == start["@timestamp"]  # the 200 OK the first sensor saw
        duration = ns_of(end["@timestamp"]) - ns_of(start["@timestamp"])
        assert end["event"]["duration"] == duration
        assert TALK_MS * 1_000_000 <= duration < (TALK_MS + 2000) * 1_000_000
        assert end["client"] == start["client"] == {"ip": "10.94.7.1", "port": 5062}
        assert end["server"] == start["server"] == {"ip": "10.94.7.2", "port": 5060}
        assert end["sip"]["from"] == start["sip"]["from"]
        assert end["url"]["original"] == start["url"]["original"]
        assert end["source"]["ip"] == "10.94.7.1"  # the BYE the second sensor saw

    news, expired = by_id(before, "reg-new"), by_id(after, "reg-expired")
    assert sorted(news) == sorted(expired)
    assert len(news) == REGS
    for cid, gone in expired.items():
        new = news[cid]
        granted = ns_of(new["@timestamp"])  # the 200 OK
        assert gone["@timestamp"] == dt_text(granted + (EXPIRES_S + GRACE_S) * 1_000_000_000)
        assert gone["event"]["start"] == new["@timestamp"]
        assert gone["event"]["duration"] == EXPIRES_S * 1_000_000_000
        assert gone["sip"]["reg"]["expires"] == EXPIRES_S
        assert gone["sip"]["reg"]["aor"] == new["sip"]["reg"]["aor"]
        assert gone["sip"]["contact"]["uri"] == new["sip"]["contact"]["uri"]
        assert gone["client"] == new["client"] == {"ip": "10.94.7.1", "port": 5063}
    for e in before + after:
        assert_valid(e)


def dt_text(ts_ns: int) -> str:
    sec, frac = divmod(ts_ns, 1_000_000_000)
    day = dt.datetime.fromtimestamp(sec, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{day}.{frac:09d}Z"
