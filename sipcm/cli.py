"""Command line: `sipcm replay|attach|detach|doctor|config|setup|export|test`.

User errors (SipcmError, bad flags) print one line naming the problem and the fix and exit
non-zero; no traceback reaches the user.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sipcm import __version__
from sipcm.errors import CaptureFileError, SipcmError
from sipcm.gcpolicy import freeze_survivors, tune_gc
from sipcm.signals import set_soon

tune_gc()  # before click and the rest of start-up (see sipcm.gcpolicy)

import click  # noqa: E402

END_MODES = ("conclude", "expire-all", "none")
STDIN = "-"  # a replay FILE naming standard input
STDIN_PATH = "/dev/stdin"  # read through its path: the reader maps a regular file, streams a pipe
# Set by `console` (the `sipcm` command, which ends the process when the command returns): the
# replay then hands its state here instead of freeing it object by object (see `console`).
_kept: list[object] | None = None


class DeliveryError(SipcmError):
    """Events remain undelivered at exit (queued on disk, dropped or dead-lettered)."""

    exit_code = 3


class StopSignal(threading.Event):
    """Set by the first SIGINT/SIGTERM; `signum` says which."""

    signum = 0


@contextmanager
def stop_on_signals() -> Iterator[StopSignal]:
    """SIGINT and SIGTERM set the yielded event instead of killing the process, so the command
    stops between batches and closes its outputs; a second signal acts as it normally does."""
    stop = StopSignal()
    signals = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    old = {s: signal.getsignal(s) for s in signals}

    def handler(signum: int, _frame: object) -> None:
        stop.signum = signum
        set_soon(stop)
        for s, h in old.items():
            signal.signal(s, h)

    for s in signals:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _say(msg: str) -> None:
    click.echo(msg, err=True)


def config_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """-c/-E accepted on the group and on every subcommand (after the subcommand too)."""
    fn = click.option(
        "-E",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a config key (repeatable), e.g. -E 'sip_ports=[5060,5080]' "
        "(quote values with [ ] { } or spaces for the shell).",
    )(fn)
    return click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        help="YAML configuration file (keys under `sipcm:`).",
    )(fn)


def _load(ctx: click.Context, config_path: str | None, overrides: tuple[str, ...]):
    """The configuration from the group's and the subcommand's -c/-E; applies its logging."""
    from sipcm import logs
    from sipcm.config import load_config

    root = ctx.find_root().params
    path = config_path or root.get("config_path")
    ovr = list(root.get("overrides") or ()) + list(overrides)
    cfg = load_config(path, ovr)
    logs.setup(
        _verbosity(root),
        json_lines=cfg.logging.json,
        repeat_interval_s=cfg.logging.repeat_interval,
    )
    return cfg


def _verbosity(params: dict[str, Any]) -> int:
    from sipcm.logs import DEFAULT_VERBOSITY

    return DEFAULT_VERBOSITY + (params.get("verbose") or 0) - (params.get("quiet") or 0)


def version_report() -> str:
    """sipcm, Python, BCC and kernel versions, and whether the hot modules run compiled, one
    per line (`sipcm --version`)."""
    import platform

    from sipcm import accel
    from sipcm.capture.program import bcc_version

    found = bcc_version()
    bcc = f"BCC {found}" if found else "BCC not importable (live capture needs python3-bpfcc)"
    uname = platform.uname()
    return "\n".join(
        [
            f"sipcm {__version__}",
            f"Python {platform.python_version()} ({sys.executable})",
            bcc,
            f"kernel {uname.system} {uname.release} {uname.machine}",
            f"hot modules: {accel.status()}",
        ]
    )


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(version_report())
        ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@config_options
@click.option("-v", "--verbose", count=True, help="More log detail on stderr (-v: debug messages).")
@click.option("-q", "--quiet", count=True, help="Less log output (-q: warnings only, -qq: errors).")
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Show sipcm, Python, BCC and kernel versions and exit.",
)
def cli(config_path: str | None, overrides: tuple[str, ...], verbose: int, quiet: int) -> None:
    """Passive SIP monitoring sensor: captures SIP with BPF (or reads pcap files), follows
    calls, registrations and transactions, and emits ECS events.

    \b
    Examples:
      sudo sipcm attach eth0                 live capture, NDJSON events on stdout
      sipcm replay trace.pcap --pretty       one readable line per event
      sipcm -c sipcm.yml -E http_port=0 attach eth0 eth1
      sipcm config-keys                      every configuration key with its default

    Diagnostics (time, level, component) go to stderr; `logging.json: true` makes them ECS
    JSON lines. Events go to the configured outputs (stdout by default).
    """
    from sipcm import logs

    logs.setup(_verbosity({"verbose": verbose, "quiet": quiet}))


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--pretty", is_flag=True, help="One readable line per event instead of NDJSON.")
@click.option(
    "--end",
    type=click.Choice(END_MODES),
    default=None,
    help="At end of input: conclude pending transactions (default), expire-all (also end "
    "calls and registrations), or none.",
)
@click.option("--realtime", is_flag=True, help="Pace the replay by capture timestamps.")
@click.option("--speed", type=float, default=None, help="Pace at X times real time (e.g. 10).")
@click.option(
    "--summary",
    type=click.Choice(("text", "json", "none")),
    default="text",
    help="Per-file and per-output counts on stderr after the replay (default text).",
)
@click.option(
    "--serve",
    is_flag=True,
    help="After the replay, keep serving the dashboard, call pages and API (http_addr, "
    "http_port) over the replayed state until Ctrl-C.",
)
@config_options
@click.pass_context
def replay(
    ctx: click.Context,
    files: tuple[str, ...],
    pretty: bool,
    end: str | None,
    realtime: bool,
    speed: float | None,
    summary: str,
    serve: bool,
    config_path: str | None,
    overrides: tuple[str, ...],
) -> None:
    """Replay pcap/pcapng FILES (Ethernet, Linux SLL/SLL2, raw IP, loopback) as fast as
    possible, or paced with --realtime/--speed. Events go to the configured outputs.

    The summary counts, per output, the events delivered, still queued on disk (the
    Elasticsearch output sends them on its next start), dropped and dead-lettered. Exit status:
    0 when everything was delivered, 3 when events remain undelivered, 2 on a user error (or a
    truncated file), 128+N after signal N (SIGINT/SIGTERM stop between batches and close the
    outputs). With --serve, Ctrl-C or SIGTERM after the replay ends the serving normally.

    FILES may be - for standard input (e.g. tcpdump -U -w - | sipcm replay -). A long replay
    shows its progress (percent, rate, ETA) on one redrawn stderr line when stderr is a
    terminal that events are not printed on, as a log line every 30 s otherwise."""
    from sipcm import run
    from sipcm.progress import ReplayProgress

    cfg = _load(ctx, config_path, overrides)
    if speed is not None and speed <= 0:
        raise click.BadParameter("must be > 0", param_hint="--speed")
    pace = speed if speed is not None else (1.0 if realtime else None)
    if files.count(STDIN) > 1:
        raise click.BadParameter("standard input (-) can be read only once", param_hint="FILES")
    if STDIN in files and sys.stdin.isatty():
        raise click.BadParameter(
            "- reads a capture from standard input, which is a terminal here; pipe one in "
            "(tcpdump -U -w - ... | sipcm replay -) or redirect it (< trace.pcap)",
            param_hint="FILES",
        )
    paths = tuple(STDIN_PATH if f == STDIN else f for f in files)
    # The redrawn line needs a terminal of its own: not one that events are printed on too.
    events_on_tty = cfg.outputs.console.enabled and sys.stdout.isatty()
    tty = sys.stderr if sys.stderr.isatty() and not events_on_tty else None
    progress = ReplayProgress(paths, tty=tty)
    outputs: list[Any] = []

    def make_outputs(c: Any) -> list[Any]:
        outputs.extend(run.build_outputs(cfg, c, pretty=True if pretty else None))
        return outputs

    if serve and not cfg.http_port:
        raise click.BadParameter("needs the web interface (http_port is 0)", param_hint="--serve")
    served = threading.Event()

    def serve_state(pipe: Any) -> None:
        from sipcm.compose import build_web

        if stop.is_set():
            return  # stopped during the replay: nothing to serve
        web = build_web(cfg, pipe)
        assert web is not None
        served.set()
        _say(f"sipcm: replay done; serving the replayed state at {web.url} (Ctrl-C stops)")
        try:
            stop.wait()
        finally:
            web.stop()

    with stop_on_signals() as stop:
        results = run.replay(
            cfg, paths, make_outputs, end=end or cfg.replay_end, speed=pace, progress=progress,
            stop=stop, after=serve_state if serve else None, keep=_kept,
        )  # fmt: skip
    truncated = []
    for t in results:
        if t.name == STDIN_PATH:
            t.name = STDIN
        if summary == "json":
            _say(json.dumps(vars_of(t)))
        elif summary == "text":
            _say(
                f"{t.name}: {t.packets} packets, {t.messages} SIP messages, "
                f"{t.parse_errors} parse errors, {t.probes} probes, "
                f"{t.reassembled} reassembled, {t.events} events{_limited_text(t.limited)}"
            )
        if t.skipped:
            truncated.append(f"{t.name}: {t.skipped} unreadable record(s) skipped, the first "
                             f"{t.skip_note}")  # fmt: skip
        if t.truncated:
            truncated.append(f"{t.name}: {t.truncated}")
    undelivered = []
    for d in map(delivery_of, outputs):
        if summary == "json":
            _say(json.dumps(d))
        elif summary == "text":
            dup = f" ({d['already_indexed']} already indexed)" if d["already_indexed"] else ""
            _say(
                f"output {d['output']}: {d['delivered']} delivered{dup}, {d['queued']} queued "
                f"on disk, {d['dropped']} dropped, {d['dead_lettered']} dead-lettered"
            )
        lost = {k: d[k] for k in ("queued", "dropped", "dead_lettered") if d[k]}
        if lost:
            undelivered.append(
                f"{d['output']}: "
                + ", ".join(f"{n} {k.replace('_', '-')}" for k, n in lost.items())
            )
    if stop.signum and not served.is_set():
        name = signal.Signals(stop.signum).name
        _say(f"sipcm: stopped by {name}; outputs flushed and closed")
        sys.exit(128 + stop.signum)
    if truncated:
        raise CaptureFileError("; ".join(truncated), "everything else was replayed")
    if undelivered:
        raise DeliveryError(
            "events not delivered: " + "; ".join(undelivered),
            "queued events are sent by the next run with the same spool_dir; see the "
            "dead-letter file for rejected ones",
        )


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.argument("call_id")
@click.option(
    "--end",
    type=click.Choice(END_MODES),
    default=None,
    help="At end of input (as for replay; default: the replay_end key).",
)
@config_options
@click.pass_context
def flow(
    ctx: click.Context,
    files: tuple[str, ...],
    call_id: str,
    end: str | None,
    config_path: str | None,
    overrides: tuple[str, ...],
) -> None:
    """Replay pcap/pcapng FILES (events go nowhere) and print the message ladder of the call
    CALL_ID: one column per host (ip:port), one arrow per message with its UTC clock time,
    seconds since the call's first message, transport and first line; retransmissions and
    proxy copies are marked. With encrypt_call_ids on, give the Call-ID the events show.
    Exit status 2 when the files hold no message of CALL_ID (or the flow store is off,
    flow_max_calls: 0)."""
    from sipcm import ladder, run

    cfg = _load(ctx, config_path, overrides)
    if not cfg.flow_max_calls:
        raise SipcmError("the flow store is off (flow_max_calls: 0)", "set flow_max_calls > 0")
    found: list[dict | None] = []
    with stop_on_signals() as stop:
        run.replay(
            cfg, files, lambda _c: [], end=end or cfg.replay_end, stop=stop,
            after=lambda pipe: found.append(pipe.flow(call_id)),
        )  # fmt: skip
    if stop.signum:
        sys.exit(128 + stop.signum)
    got = found[0] if found else None
    if got is None:
        raise SipcmError(
            f"no message with Call-ID {call_id!r} in {', '.join(files)}",
            "`sipcm replay FILE --pretty` shows the Call-IDs",
        )
    for line in ladder.text(ladder.view(got)):
        click.echo(line)


def delivery_of(out: Any) -> dict[str, Any]:
    """An output's delivery counts: delivered (including resent documents Elasticsearch
    already had), queued (on disk), dropped, dead-lettered."""
    c = out.counters
    return {
        "output": getattr(out, "name", type(out).__name__),
        "delivered": c["published"],
        "queued": getattr(out, "pending", 0),
        "dropped": c["dropped"],
        "dead_lettered": c["dead_lettered"],
        "already_indexed": c["already_indexed"],
    }


def _limited_text(limited: dict[str, int]) -> str:
    """`, N more not published (rate limits, evr_limits): auth-failed 40, ...` or ""."""
    if not limited:
        return ""
    per = ", ".join(f"{name} {n}" for name, n in sorted(limited.items()))
    return f", {sum(limited.values())} more not published (rate limits, evr_limits): {per}"


def vars_of(obj: object) -> dict[str, Any]:
    """Fields of a slotted dataclass as a dict."""
    return {k: getattr(obj, k) for k in obj.__slots__}  # type: ignore[attr-defined]


@cli.command()
@click.argument("ifaces", nargs=-1)
@click.option("--pretty", is_flag=True, help="One readable line per event instead of NDJSON.")
@config_options
@click.pass_context
def attach(
    ctx: click.Context,
    ifaces: tuple[str, ...],
    pretty: bool,
    config_path: str | None,
    overrides: tuple[str, ...],
) -> None:
    """Capture SIP on IFACES (XDP ingress + TC egress) until SIGINT/SIGTERM, then detach.

    IFACES add to the `interfaces` config key. Events go to the configured outputs (NDJSON
    on stdout by default); the web interface runs on http_addr:http_port unless http_port is
    0. SIGHUP re-reads the configuration and applies sip_ports, vxlan_ports and
    event_types_blst without detaching. On stop, open calls, registrations and pending
    transactions are saved to state_file (default /var/lib/sipcm/state.json, "" disables)
    and the next attach restores them when younger than state_max_age (5m). Needs root and
    BPF; `sipcm doctor` checks the machine."""
    from sipcm import run

    cfg = _load(ctx, config_path, overrides)
    names = list(dict.fromkeys([*cfg.interfaces, *ifaces]))
    if not names:
        raise click.UsageError("no interface: name one (sipcm attach eth0) or set `interfaces`")
    run.live(
        cfg,
        names,
        lambda c: run.build_outputs(cfg, c, pretty=True if pretty else None),
        reload=lambda: _load(ctx, config_path, overrides),
    )


@cli.command()
@click.argument("iface")
def detach(iface: str) -> None:
    """Remove a sipcm program left on IFACE by a sensor that was killed."""
    from sipcm.capture.attach import detach as do_detach

    _say(do_detach(iface))


@cli.command()
def doctor() -> None:
    """Check kernel, privileges, BPF, BCC and kernel headers; say how to fix what fails."""
    from sipcm.capture.doctor import run_checks

    failed = 0
    for chk in run_checks():
        mark = "ok  " if chk.ok else "FAIL"
        click.echo(f"[{mark}] {chk.name}: {chk.detail}")
        if not chk.ok:
            failed += 1
            if chk.fix:
                click.echo(f"       fix: {chk.fix}")
    if failed:
        raise SipcmError(f"{failed} check(s) failed", "apply the fixes above, then run again")


@cli.command()
@click.argument("file", default="-", type=click.File("rb"))
@click.option("--key-file", type=click.Path(dir_okay=False), help="File holding the hex key.")
@click.option(
    "--passphrase-env",
    metavar="VAR",
    help="Environment variable holding the passphrase (never pass it on the command line).",
)
@click.option("--salt", default=None, help="Salt used with the passphrase.")
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-")
@config_options
@click.pass_context
def decrypt(
    ctx: click.Context,
    file: Any,
    key_file: str | None,
    passphrase_env: str | None,
    salt: str | None,
    output: Any,
    config_path: str | None,
    overrides: tuple[str, ...],
) -> None:
    """Restore the anonymized fields of NDJSON events read from FILE (default stdin).

    The key comes from --key-file, from --passphrase-env with --salt, or else from the
    encryption_* settings of the configuration (-c). A wrong key is an error, not garbage."""
    import os

    from sipcm.decrypt import decrypt_stream

    if key_file or passphrase_env:
        passphrase = None
        if passphrase_env:
            passphrase = os.environ.get(passphrase_env)
            if not passphrase:
                raise SipcmError(
                    f"environment variable {passphrase_env} is not set",
                    "export it before running sipcm decrypt",
                )
        n = decrypt_stream(file, output, passphrase=passphrase, key_file=key_file, salt=salt or "")
    else:
        cfg = _load(ctx, config_path, overrides)
        n = decrypt_stream(
            file,
            output,
            passphrase=cfg.encryption_passphrase or None,
            key_hex=cfg.encryption_key or None,
            key_file=cfg.encryption_key_file or None,
            salt=salt if salt is not None else cfg.encryption_salt,
        )
    _say(f"decrypted {n} events")


@cli.command("config")
@click.option(
    "--check",
    is_flag=True,
    help="Only validate: exit 0 if the configuration loads, else print the error and exit 1 "
    "(for ExecStartPre/ExecReload).",
)
@config_options
@click.pass_context
def show_config(
    ctx: click.Context, check: bool, config_path: str | None, overrides: tuple[str, ...]
) -> None:
    """Print the effective configuration after -c and -E, as YAML that loads back with -c.

    Durations and sizes are shown in units ("5m", "16MiB"); a secret that is set shows as
    `null  # set, not shown` (give it again with -E or in the file)."""
    from sipcm.config.dump import dump_yaml

    if check:
        try:
            _load(ctx, config_path, overrides)
        except SipcmError as exc:
            _say(f"sipcm: error: {exc}")
            sys.exit(1)
        path = config_path or ctx.find_root().params.get("config_path")
        _say(f"configuration OK ({path or 'defaults'})")
        return
    click.echo(dump_yaml(_load(ctx, config_path, overrides)), nl=False)


@cli.command("config-keys")
def config_keys() -> None:
    """List every configuration key with its default and meaning."""
    from sipcm.config import describe

    click.echo(describe())


@cli.command()
@click.option(
    "--force", is_flag=True, help="Replace the installed template whatever its version or edits."
)
@config_options
@click.pass_context
def setup(
    ctx: click.Context, force: bool, config_path: str | None, overrides: tuple[str, ...]
) -> None:
    """Install the Elasticsearch index template (with its data stream lifecycle, retention
    from outputs.elasticsearch.retention) for the configured outputs.elasticsearch settings,
    whether or not that output is enabled. `sipcm export template` prints it.

    \b
    An installed template is kept, unless --force is given, when:
      - sipcm did not install it (its _meta.managed_by is not sipcm);
      - it was edited after sipcm installed it (its content no longer matches
        _meta.content_hash; put your own changes in logs-sipcm.sip@custom instead,
        which the template includes and sipcm never touches);
      - its `version` is higher than this sipcm's (a newer sipcm installed it).
    An older, unedited sipcm template is upgraded; an identical one is left as it is.
    The Elasticsearch output applies the same rules when it connects.
    Needs the manage_index_templates cluster privilege."""
    from elasticsearch import ApiError, TransportError

    from sipcm.outputs.es_setup import client_from_config, install_template, template_from_config

    es = _load(ctx, config_path, overrides).outputs.elasticsearch
    name, body = template_from_config(es)
    client = client_from_config(es)
    try:
        result = install_template(client, name, body, force=force)
    except ApiError as e:
        raise SipcmError(
            f"cannot install index template {name}: HTTP {e.meta.status} {e.message}",
            "the user or API key needs the manage_index_templates privilege"
            if e.meta.status in (401, 403)
            else "check `sipcm test output`",
        ) from None
    except TransportError as e:
        raise SipcmError(
            f"cannot reach Elasticsearch: {e.message}", "check outputs.elasticsearch.hosts"
        ) from None
    finally:
        client.close()
    click.echo(f"index template {name}: {result.reason}")


@cli.group()
def export() -> None:
    """Print what sipcm would install in Elasticsearch."""


@export.command("template")
@config_options
@click.pass_context
def export_template(
    ctx: click.Context, config_path: str | None, overrides: tuple[str, ...]
) -> None:
    """Print the index template (JSON, the body of PUT _index_template/NAME) for the
    configured data stream and retention."""
    from sipcm.outputs.es_setup import template_from_config

    es = _load(ctx, config_path, overrides).outputs.elasticsearch
    _, body = template_from_config(es)
    click.echo(json.dumps(body, indent=2))


@cli.group("test")
def test_group() -> None:
    """Check the configured outputs."""


@test_group.command("output")
@config_options
@click.pass_context
def test_output(ctx: click.Context, config_path: str | None, overrides: tuple[str, ...]) -> None:
    """Check the Elasticsearch output: connection (and TLS), authentication, the privileges
    it needs (create_doc and auto_configure on the data stream; manage_index_templates unless
    the template is already installed), and the index template. One line per step, OK or
    ERROR; exit status 2 when a step fails."""
    from sipcm.outputs.es_settings import display_url
    from sipcm.outputs.es_setup import check_output, client_from_config

    es = _load(ctx, config_path, overrides).outputs.elasticsearch
    client = client_from_config(es)
    failed = 0
    try:
        for step in check_output(client, es, ", ".join(display_url(h) for h in es.hosts)):
            click.echo(f"{step.name}... {'OK' if step.ok else 'ERROR'} {step.detail}")
            failed += not step.ok
    finally:
        client.close()
    if failed:
        raise SipcmError(f"{failed} check(s) failed", "fix the errors above, then run again")


def console() -> None:
    """The `sipcm` command: `main`, then an exit that does not free the heap.

    When a command has returned, its outputs are flushed and closed; tearing the interpreter
    down would then free every object the run still holds, one at a time (a replay's calls,
    flows and caches: tens of millions of instructions after a long one), for a process that
    ends anyway. So the replay keeps its state (`_kept`), and once `main` is done this runs
    the atexit handlers and flushes the standard streams, as Python's own exit does, then
    ends the process with `os._exit` and the same status. Python's normal exit is used when a
    non-daemon thread still runs (it would wait for it)."""
    global _kept
    _kept = []
    freeze_survivors()  # this process's state is the pipeline's (see sipcm.gcpolicy)
    code: object = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    os._exit(_exit_status(code))


def _exit_status(code: object) -> int:
    """The status Python's exit gives for `SystemExit(code)`, after the atexit handlers and
    the flush of the standard streams (120 when that fails, as Python's)."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            status = 120
    return status


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into one line and an exit status."""
    try:
        cli.main(args=argv, prog_name="sipcm", standalone_mode=False)
    except click.exceptions.Abort:
        _say("sipcm: aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SipcmError as exc:
        _say(f"sipcm: error: {exc}")
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    except KeyboardInterrupt:
        sys.exit(130)
