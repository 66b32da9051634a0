"""`attach`'s state file glue (sipcm.run.save_state / restore_state): messages, counters, and
a clean start on any problem. The restore itself is tested in tests/unit/track/test_persist.py
and end to end in tests/netns/test_restart.py."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from sipcm.config import load_config
from sipcm.pipeline import Pipeline
from sipcm.run import restore_state, save_state
from tests.unit.track.msgs import invite, resp

NS = 1_000_000_000


def pipeline(state_file: Path | str, *more: str) -> Pipeline:
    cfg = load_config(None, [f"state_file={state_file}", "stats_interval=0", "workers=1", *more])
    return Pipeline(cfg, [], hostname=socket.gethostname())


def established(pipe: Pipeline) -> None:
    now = time.time() - 1.0
    inv = invite("live-1", "f", 1, now)
    pipe.tracker.process(inv)
    pipe.tracker.process(resp(inv, 200, now + 0.1, "t"))


def test_saved_on_stop_and_restored_on_start(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first, said = pipeline(path), []
    established(first)
    save_state(first.cfg, first, said.append)
    assert said == [f"saved 1 calls, 0 registrations, 0 transactions to state file {path}"]
    second, said = pipeline(path), []
    restore_state(second.cfg, second, said.append)
    assert len(said) == 1
    assert said[0].startswith(
        f"restored 1 calls, 0 registrations, 0 transactions from state file {path} (saved "
    )
    assert said[0].endswith(" s ago): 1 entries restored, 0 discarded")
    assert [c["call_id"] for c in second.tracker.active_calls()] == ["live-1"]
    assert second.counters.group("track")["state_restored"] == 1
    assert not path.exists()  # read once
    restore_state(second.cfg, second, said.append)  # nothing saved since: silent
    assert len(said) == 1


def test_corrupt_file_is_a_warning_and_a_clean_start(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first = pipeline(path)
    established(first)
    save_state(first.cfg, first, lambda _m: None)
    path.write_text(path.read_text().replace('"call"', '"call', 1))
    second, said = pipeline(path), []
    restore_state(second.cfg, second, said.append)
    assert said == [
        f"warning: state file {path} is not usable, starting clean: line 2 is not valid JSON"
    ]
    assert second.tracker.active_calls() == []
    assert second.counters.group("track")["state_discarded"] == 1


def test_record_of_another_shape_is_a_warning_and_a_clean_start(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first = pipeline(path)
    established(first)
    save_state(first.cfg, first, lambda _m: None)
    head, rec = path.read_text().splitlines()
    data = json.loads(rec)
    data["legs"][0]["colour"] = "red"
    path.write_text(f"{head}\n{json.dumps(data)}\n")
    second, said = pipeline(path), []
    restore_state(second.cfg, second, said.append)
    assert said == [
        f"warning: state file {path} is not usable, starting clean: Leg: missing [], "
        "unknown ['colour']"
    ]
    assert second.tracker.active_calls() == []
    assert second.counters.group("track")["state_discarded"] == 1


def test_too_old_is_discarded_and_said(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first = pipeline(path)
    established(first)
    save_state(first.cfg, first, lambda _m: None)
    second, said = pipeline(path, "state_max_age=1ms"), []
    time.sleep(0.01)
    restore_state(second.cfg, second, said.append)
    assert len(said) == 1
    assert said[0].startswith(f"state file {path} was saved ")
    assert said[0].endswith(" s ago, more than state_max_age (0.001 s): 1 entries discarded")
    assert second.tracker.active_calls() == []
    assert second.counters.group("track")["state_discarded"] == 1


def test_unwritable_state_file_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    pipe, said = pipeline(tmp_path / "file" / "state.json"), []
    save_state(pipe.cfg, pipe, said.append)
    assert said == [
        f"warning: could not save state to {tmp_path / 'file' / 'state.json'}: "
        f"File exists: {tmp_path / 'file'}"
    ]


def test_off_with_an_empty_path(tmp_path: Path) -> None:
    pipe, said = pipeline(""), []
    established(pipe)
    save_state(pipe.cfg, pipe, said.append)
    restore_state(pipe.cfg, pipe, said.append)
    assert said == []


def _capture(tmp_path: Path, name: str, legs: list, part: str) -> Path:
    """Calls answered at T0+2 s ("start": INVITE..ACK) or hung up at T0+12 s ("end")."""
    from tests.sipgen import MS, SDP, T0, Capture, S

    cap = Capture()
    for i, leg in enumerate(legs):
        t = T0 + i * MS
        if part == "start":
            leg.to_tag = None
            inv = leg.req("INVITE", body=SDP, headers=("Content-Type: application/sdp",))
            cap.a2b(leg, t, inv.raw)
            leg.to_tag = f"tt{i}"
            cap.b2a(leg, t + 2 * S, leg.resp(inv, 200, "OK"))
            cap.a2b(leg, t + 2 * S + 10 * MS, leg.req("ACK", cseq=inv.cseq).raw)
        else:
            cap.a2b(leg, t + 12 * S, leg.req("BYE").raw)
    return cap.write(tmp_path / name)


@pytest.mark.parametrize(("before", "after"), [(2, 2), (2, 1), (1, 3)])
def test_state_moves_between_worker_counts(tmp_path: Path, before: int, after: int) -> None:
    """Calls answered under `before` workers, saved, restored under `after` workers (records
    split again by shard key): each BYE gives the call-end one process would have given."""
    from sipcm.capture.pcapfile import PcapReader
    from tests.replayutil import Collect
    from tests.sipgen import Leg

    legs = [Leg(f"w{i}@test", a_ip=f"192.0.2.{10 + i}", from_tag=f"f{i}") for i in range(6)]
    start = _capture(tmp_path, "start.pcap", legs, "start")
    end = _capture(tmp_path, "end.pcap", legs, "end")
    path = tmp_path / "state.json"

    def run(workers: int, files: list[Path], *, restore: bool, save: bool) -> list[dict]:
        out = Collect()
        cfg = load_config(None, [f"state_file={path}", "stats_interval=0", f"workers={workers}"])
        pipe = Pipeline(cfg, [out], hostname="sensor")
        said: list[str] = []
        try:
            if restore:
                restore_state(cfg, pipe, said.append)
                assert said[0].startswith("restored 6 calls, 0 registrations")
            for f in files:
                for batch in PcapReader(str(f)).batches(64):
                    pipe.feed(batch)
            pipe.finish("none")
            if save:
                save_state(cfg, pipe, said.append)
                assert (
                    said[-1]
                    == f"saved 6 calls, 0 registrations, 0 transactions to state file {path}"
                )
        finally:
            pipe.close()
        return out.docs

    whole = run(1, [start, end], restore=False, save=False)
    first = run(before, [start], restore=False, save=True)
    second = run(after, [end], restore=True, save=False)
    assert sorted(d["event"]["action"] for d in first) == ["call-start"] * 6
    assert sorted(d["event"]["action"] for d in second) == ["call-end"] * 6
    key = lambda d: (d["@timestamp"], d["sip"]["call_id"])  # noqa: E731
    assert sorted(first + second, key=key) == sorted(whole, key=key)
    for d in second:
        assert d["event"]["duration"] == 10_000_000_000
        assert d["sip"]["call"]["reconstructed"] is False


def test_a_state_file_that_cannot_be_written_is_said_at_start(tmp_path: Path) -> None:
    """Not only when the sensor stops: where `save` would create the directory is a file."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    path = blocker / "sub" / "state.json"
    pipe, said = pipeline(path), []
    restore_state(pipe.cfg, pipe, said.append)
    assert said[0].startswith(f"warning: state file {path} cannot be written as ")
    assert said[0].endswith(
        f"({blocker} is not a directory): open calls and registrations will not be saved on stop"
    )
    # and, as before, that it cannot be read either
    assert said[1:] == [
        f"warning: state file {path} is not usable, starting clean: cannot read it: Not a directory"
    ]
    ok, said = pipeline(tmp_path / "new-dir" / "state.json"), []
    restore_state(ok.cfg, ok, said.append)  # a directory save will create: nothing to say
    assert said == []


def test_the_directories_run_as_writes_in_are_made_for_it(tmp_path: Path) -> None:
    """`attach` creates the missing directories of the state file, the Elasticsearch spool
    and the event file before dropping to run_as, owned by that user (the defaults under
    /var/lib/sipcm do not exist on a fresh host), and leaves those that exist as they were."""
    import os
    import pwd

    from sipcm.capture.privileges import RunAs
    from sipcm.run import make_run_as_dirs

    uid, gid = os.getuid(), os.getgid()
    if uid == 0:  # as root, hand them to another account, as attach does
        pw = pwd.getpwnam("nobody")
        uid, gid = pw.pw_uid, pw.pw_gid
    user = RunAs("someone", uid, gid, (gid,))
    tmp_path.chmod(0o711)
    before = tmp_path.stat()
    lib = tmp_path / "lib"
    cfg = pipeline(
        lib / "sipcm" / "state.json",
        "outputs.elasticsearch.enabled=true",
        f"outputs.elasticsearch.spool_dir={lib / 'sipcm' / 'spool'}",
        "outputs.file.enabled=true",
        f"outputs.file.path={tmp_path / 'log' / 'events.ndjson'}",
    ).cfg
    said: list[str] = []
    make_run_as_dirs(cfg, user, said.append)
    assert said == [
        f"created {lib}, {lib / 'sipcm'} for the state file (owner someone, mode 0750)",
        f"created {lib / 'sipcm' / 'spool'} for the Elasticsearch spool (owner someone, mode 0700)",
        f"created {tmp_path / 'log'} for the event file (owner someone, mode 0750)",
    ]
    for d, mode in ((lib, 0o750), (lib / "sipcm", 0o750), (lib / "sipcm" / "spool", 0o700)):
        st = d.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (uid, gid, mode)
    after = tmp_path.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (
        before.st_uid,
        before.st_gid,
        before.st_mode,
    )
    said.clear()
    make_run_as_dirs(cfg, user, said.append)  # there now: nothing to do, nothing said
    make_run_as_dirs(pipeline(tmp_path / "other" / "state.json").cfg, None, said.append)
    assert said == []  # run_as '': the sensor stays root and creates what it needs itself
    assert not (tmp_path / "other").exists()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    make_run_as_dirs(pipeline(blocker / "sub" / "state.json").cfg, user, said.append)
    assert said == [
        f"warning: could not create {blocker / 'sub'} for the state file: "
        f"Not a directory: {blocker / 'sub'}"
    ]
