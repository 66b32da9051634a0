"""Run drivers: replay of capture files and live capture, both feeding one Pipeline."""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sipcm.capture.pcapfile import PcapReader
from sipcm.compose import build_capture, build_outputs, ifindexes, reserve_web, web_state
from sipcm.counters import Counters
from sipcm.errors import SipcmError
from sipcm.outputs.base import Output
from sipcm.pipeline import NS, FileTotals, Pipeline
from sipcm.signals import set_soon

if TYPE_CHECKING:
    from sipcm.capture.live import LiveCapture
    from sipcm.capture.privileges import RunAs
    from sipcm.config import Config
    from sipcm.progress import ReplayProgress

__all__ = ["build_outputs", "live", "replay"]

Progress = Callable[[str], None]
log = logging.getLogger(__name__)


def _delta(before: dict[str, int], after: dict[str, int], key: str) -> int:
    return after.get(key, 0) - before.get(key, 0)


def without_flows(cfg: Config) -> Config:
    """`cfg` with the flow store off (flow_max_calls 0), for a run in which nothing can read
    the stored messages (call pages and per-call pcaps are served by the web interface;
    `sipcm ladder` reads them after its replay). Kept, they would hold up to flow_max_calls
    calls' payloads for nothing: on 20,000 generated calls ~8% of a replay's time, in
    copies and cycle-collector passes over them, and 44 MB."""
    return dataclasses.replace(cfg, flow_max_calls=0) if cfg.flow_max_calls else cfg


def replay(
    cfg: Config,
    files: Sequence[str],
    make_outputs: Callable[[Counters], list[Output]],
    *,
    end: str,
    speed: float | None = None,
    progress: ReplayProgress | None = None,
    stop: threading.Event | None = None,
    after: Callable[[Pipeline], None] | None = None,
    keep: list[object] | None = None,
) -> list[FileTotals]:
    """Replay `files` in order through one pipeline (state carries over, as for a rotated
    capture); `speed` paces by capture timestamps (1.0 = real time). Returns per-file totals.
    Once `stop` is set (a signal) it stops between batches, publishes what is already decided
    (as a live stop does) and closes the outputs (which flush). `after` gets the pipeline
    once the input is concluded, before it is closed (to read its state: flows, calls, the
    dashboard history, which is sampled only when `after` is given). `keep`, when given,
    receives the closed pipeline: a caller that ends the process next keeps its state
    rather than spend the time to free it (and start-up's objects are frozen, gc.freeze)."""
    readers = [PcapReader(f) for f in files]  # open all first: a bad file fails before output
    if after is None:
        cfg = without_flows(cfg)  # only `after` (--serve, `sipcm ladder`) can read them
    # Dashboard history only when `after` may serve it: sampling drains the workers.
    pipe = Pipeline(
        cfg, [], hostname=socket.gethostname(), heuristic=True, history=after is not None
    )
    pipe.outputs = make_outputs(pipe.counters)
    if keep is not None:
        # The process ends after this replay: what start-up built lives until then, so the
        # cycle collector need never look at it again (its count of new objects restarts).
        gc.freeze()
    results: list[FileTotals] = []
    try:
        for path, reader in zip(files, readers, strict=True):
            results.append(_replay_one(pipe, path, reader, speed, progress, stop))
            if stop is not None and stop.is_set():
                break
        pipe.totals = results[-1]  # what the end of input concludes belongs to the last file
        pipe.finish("decided" if stop is not None and stop.is_set() else end)
        pipe.totals = None
        if after is not None:
            after(pipe)
    finally:
        if progress is not None:
            progress.finish()
        pipe.close()
        for reader in readers:
            reader.close()
        if keep is not None:
            keep.append(pipe)
    return results


def _replay_one(
    pipe: Pipeline,
    path: str,
    reader: PcapReader,
    speed: float | None,
    progress: ReplayProgress | None,
    stop: threading.Event | None = None,
) -> FileTotals:
    totals = FileTotals(path)
    pipe.totals = totals
    sip_before = pipe.snapshot().get("sip", {})
    pacer = _Pacer(speed, stop) if speed else None
    for batch in reader.batches(1 if pacer else 4096):
        if stop is not None and stop.is_set():
            break
        if pacer is not None and len(batch):
            pacer.wait(int(batch.ts_ns[0]))
        pipe.feed(batch)
        if progress is not None:
            progress.advance(len(batch.data), len(batch), totals.events)
    pipe.sync()  # every event of this file is published before the next one starts
    if progress is not None:
        progress.file_done()
    sip_after = pipe.snapshot().get("sip", {})
    totals.messages = _delta(sip_before, sip_after, "messages")
    totals.parse_errors = _delta(sip_before, sip_after, "parse_errors")
    totals.probes = _delta(sip_before, sip_after, "probes")
    totals.reassembled = _delta(sip_before, sip_after, "reassembled")
    totals.payloads = totals.messages + totals.parse_errors + totals.probes
    totals.payloads += _delta(sip_before, sip_after, "heuristic_not_sip")
    totals.truncated = reader.truncated
    totals.skipped, totals.skip_note = reader.skipped, reader.skip_note
    pipe.totals = None
    return totals


class _Pacer:
    """Sleeps so that capture time advances at `speed` times wall time."""

    def __init__(self, speed: float, stop: threading.Event | None = None) -> None:
        self.speed = speed
        self.sleep = stop.wait if stop is not None else time.sleep  # a signal cuts a long gap
        self.t0_cap: int | None = None
        self.t0_wall = 0.0

    def wait(self, ts_ns: int) -> None:
        if self.t0_cap is None:
            self.t0_cap, self.t0_wall = ts_ns, time.monotonic()
            return
        due = self.t0_wall + (ts_ns - self.t0_cap) / NS / self.speed
        delay = due - time.monotonic()
        if delay > 0:
            self.sleep(delay)


def live(
    cfg: Config,
    ifaces: Sequence[str],
    make_outputs: Callable[[Counters], list[Output]],
    *,
    reload: Callable[[], Config] | None = None,
) -> int:
    """Capture on `ifaces` until SIGINT/SIGTERM; always detaches. Returns the exit status.

    Once attached (and the web port bound), the process drops to the `run_as` user with no
    capabilities (sipcm/capture/privileges.py) before any thread or worker starts: the
    pipeline (and its worker processes), the outputs and the web server's thread all start
    after that, as that user. SIGHUP calls `reload` (re-reading the configuration) and applies
    what can change while attached: sip_ports, vxlan_ports (kernel maps and decoder) and
    event_types_blst."""
    from sipcm.capture import privileges

    run_as = privileges.resolve(cfg.run_as)  # an unknown user fails before attaching
    stop = threading.Event()
    counters = Counters()

    hup = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        set_soon(stop)

    def _hup(signum: int, _frame: object) -> None:
        set_soon(hup)

    ifnames = ifindexes(ifaces)
    capture = build_capture(cfg, ifaces, counters)
    web = reserve_web(cfg)  # bound now: a privileged port still works after the drop
    if web is None:
        cfg = without_flows(cfg)  # no web interface: no call page can show them
    pipe: Pipeline | None = None
    helper = None
    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    old[signal.SIGHUP] = signal.signal(signal.SIGHUP, _hup if reload else signal.SIG_IGN)
    try:
        with capture:
            make_run_as_dirs(cfg, run_as, _state_log)  # still root: where run_as will write
            helper = privileges.secure(capture, run_as)
            pipe = Pipeline(
                cfg,
                [],
                hostname=socket.gethostname(),
                ifnames=ifnames,
                heuristic=cfg.sip_detect == "heuristic",
                counters=counters,
                live=True,
            )
            pipe.gauges["kernel"] = capture.kernel_counters
            pipe.outputs = _outputs_as(make_outputs, pipe, run_as)
            restore_state(cfg, pipe, _state_log)
            if web is not None:
                web.start(web_state(cfg, pipe, live=True))
            where = f"; dashboard at {web.url}" if web is not None else ""
            log.info("attached to %s%s; Ctrl-C to stop", ", ".join(ifaces), where)
            for batch in capture.batches(stop):
                if hup.is_set() and reload is not None:
                    hup.clear()
                    _apply_reload(reload, capture, pipe)
                if len(batch):
                    pipe.feed(batch)
                else:
                    pipe.tick(time.time_ns())
        # Stopping: publish what a final reply already decided (other-ok lingering in
        # non_inv_fin, negative replies no retry can continue), then flush the outputs; what
        # is still open is saved for the next start.
        if pipe is not None:
            pipe.finish("decided")
            save_state(cfg, pipe, _state_log)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if web is not None:
            web.stop()
        if pipe is not None:
            pipe.close()
        if helper is not None:
            helper.finish()
    log.info("detached")
    return 0


def _state_log(msg: str) -> None:
    if msg.startswith("warning: "):
        log.warning("%s", msg.removeprefix("warning: "))
    else:
        log.info("%s", msg)


def _kinds(kinds: Counter) -> str:
    return f"{kinds['call']} calls, {kinds['binding']} registrations, {kinds['trans']} transactions"


def make_run_as_dirs(cfg: Config, run_as: RunAs | None, progress: Progress) -> None:
    """Create the missing directories the sensor writes in once it runs as `run_as` (the
    state file's, the Elasticsearch spool, the event file's), owned by that user, while this
    process is still root: the defaults under /var/lib/sipcm do not exist on a fresh host, and
    after the drop the sensor could not create them there. Directories that exist are never
    changed. A failure is one warning line (the output or the state file then says why it
    cannot write)."""
    from sipcm.capture.privileges import make_dirs

    if run_as is None:
        return
    es, file = cfg.outputs.elasticsearch, cfg.outputs.file
    wanted = [
        (cfg.state_file, Path(cfg.state_file).parent, 0o750, "the state file"),
        (es.enabled, Path(es.spool_dir), 0o700, "the Elasticsearch spool"),
        (file.enabled and file.path, Path(file.path).parent, 0o750, "the event file"),
    ]
    for on, path, mode, what in wanted:
        if not on:
            continue
        try:
            created = make_dirs(path, run_as, mode)
        except OSError as exc:
            why = exc.strerror or str(exc)
            if exc.filename:
                why += f": {exc.filename}"
            progress(f"warning: could not create {path} for {what}: {why}")
            continue
        if created:
            dirs = ", ".join(map(str, created))
            progress(f"created {dirs} for {what} (owner {run_as.name}, mode {mode:04o})")


def restore_state(cfg: Config, pipe: Pipeline, progress: Progress) -> None:
    """Restore the tracker state saved by the previous `attach` (state_file), if any and
    younger than state_max_age; any problem is one warning line and a clean start."""
    from sipcm.track import snapshot

    if not cfg.state_file:
        return
    why = snapshot.unwritable(cfg.state_file)
    if why is not None:  # said now rather than when the sensor stops
        progress(
            f"warning: state file {cfg.state_file} cannot be written as {_user()} ({why}): "
            "open calls and registrations will not be saved on stop"
        )
    now = time.time_ns()
    got = snapshot.load(cfg.state_file, max_age_ns=int(cfg.state_max_age * NS), now_ns=now)
    track = pipe.counters.group("track")
    where = f"state file {cfg.state_file}"
    if got.problem is not None:
        track["state_discarded"] += got.count
        progress(f"warning: {where} is not usable, starting clean: {got.problem}")
        return
    if got.saved_ns is None:
        return  # no file: nothing was saved
    age = (now - got.saved_ns) / NS
    if got.too_old:
        track["state_discarded"] += got.count
        progress(
            f"{where} was saved {age:.0f} s ago, more than state_max_age "
            f"({cfg.state_max_age:g} s): {got.count} entries discarded"
        )
        return
    kinds: Counter[str] = Counter()

    def counted() -> Iterator[dict]:
        for rec in got.records:
            kinds[rec.get("kind")] += 1
            yield rec

    try:
        restored, discarded = pipe.import_state(counted(), now)
    except (TypeError, ValueError) as exc:  # persist.StateError, snapshot.CorruptFile
        track["state_discarded"] += got.count
        progress(f"warning: {where} is not usable, starting clean: {exc}")
        return
    progress(
        f"restored {_kinds(kinds)} from {where} (saved {age:.1f} s ago): "
        f"{restored} entries restored, {discarded} discarded"
    )


def _user() -> str:
    """This process's user name (its uid when it has none)."""
    import pwd

    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def save_state(cfg: Config, pipe: Pipeline, progress: Progress) -> None:
    """Write the open calls, registrations and pending transactions to state_file."""
    from sipcm.track import snapshot

    if not cfg.state_file:
        return
    records = pipe.export_state()
    try:
        snapshot.save(cfg.state_file, records, time.time_ns())
    except OSError as exc:
        why = exc.strerror or str(exc)
        if exc.filename and str(exc.filename) != cfg.state_file:
            why += f": {exc.filename}"
        progress(f"warning: could not save state to {cfg.state_file}: {why}")
        return
    progress(f"saved {_kinds(Counter(r['kind'] for r in records))} to state file {cfg.state_file}")


def _outputs_as(
    make_outputs: Callable[[Counters], list[Output]], pipe: Pipeline, run_as: RunAs | None
) -> list[Output]:
    """The outputs, opened after the privilege drop: an error names the user they run as."""
    try:
        return make_outputs(pipe.counters)
    except SipcmError as exc:
        if run_as is None:
            raise
        hint = f"{exc.hint}; " if exc.hint else ""
        raise SipcmError(
            exc.message, f"{hint}outputs run as {run_as.name} (run_as) once attached"
        ) from exc


def _apply_reload(reload: Callable[[], Config], capture: LiveCapture, pipe: Pipeline) -> None:
    """Re-read the configuration and apply the keys that can change while attached."""
    try:
        new = reload()
    except SipcmError as exc:
        log.error("reload failed, keeping the running configuration: %s", exc)
        return
    capture.set_ports(new.sip_ports, new.vxlan_ports)
    pipe.set_ports(new.sip_ports, new.vxlan_ports)
    with pipe.lock:
        pipe.set_blacklist(new.event_types_blst)
    log.info(
        "reloaded: sip_ports=%s vxlan_ports=%s event_types_blst=%s",
        list(new.sip_ports), list(new.vxlan_ports), list(new.event_types_blst),
    )  # fmt: skip
