"""Command line: `sipcm replay|attach|detach|doctor|config`.

User errors (SipcmError, bad flags) print one line naming the problem and the fix and exit
non-zero; no traceback reaches the user.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from sipcm import __version__
from sipcm.errors import CaptureFileError, SipcmError

END_MODES = ("conclude", "expire-all", "none")


def _say(msg: str) -> None:
    click.echo(msg, err=True)


def config_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """-c/-E accepted on the group and on every subcommand (after the subcommand too)."""
    fn = click.option(
        "-E",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a config key (repeatable), e.g. -E sip_ports=[5060,5080].",
    )(fn)
    return click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        help="YAML configuration file (keys under `sipcm:`).",
    )(fn)


def _load(ctx: click.Context, config_path: str | None, overrides: tuple[str, ...]):
    from sipcm.config import load_config

    root = ctx.find_root().params
    path = config_path or root.get("config_path")
    ovr = list(root.get("overrides") or ()) + list(overrides)
    return load_config(path, ovr)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@config_options
@click.version_option(__version__, prog_name="sipcm")
def cli(config_path: str | None, overrides: tuple[str, ...]) -> None:
    """Passive SIP monitoring sensor: captures SIP with BPF (or reads pcap files), follows
    calls, registrations and transactions, and emits ECS events.

    \b
    Examples:
      sudo sipcm attach eth0                 live capture, NDJSON events on stdout
      sipcm replay trace.pcap --pretty       one readable line per event
      sipcm -c sipcm.yml -E http_port=0 attach eth0 eth1
      sipcm config-keys                      every configuration key with its default
    """


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
    help="Per-file counts on stderr after the replay (default text).",
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
    config_path: str | None,
    overrides: tuple[str, ...],
) -> None:
    """Replay pcap/pcapng FILES (Ethernet, Linux SLL/SLL2, raw IP, loopback) as fast as
    possible, or paced with --realtime/--speed. Events go to the configured outputs."""
    from sipcm import run

    cfg = _load(ctx, config_path, overrides)
    if speed is not None and speed <= 0:
        raise click.BadParameter("must be > 0", param_hint="--speed")
    pace = speed if speed is not None else (1.0 if realtime else None)
    progress = _say if sys.stderr.isatty() else None
    results = run.replay(
        cfg,
        files,
        lambda c: run.build_outputs(cfg, c, pretty=True if pretty else None),
        end=end or cfg.replay_end,
        speed=pace,
        progress=progress,
    )
    truncated = []
    for t in results:
        if summary == "json":
            _say(json.dumps(vars_of(t)))
        elif summary == "text":
            _say(
                f"{t.name}: {t.packets} packets, {t.messages} SIP messages, "
                f"{t.parse_errors} parse errors, {t.probes} probes, "
                f"{t.reassembled} reassembled, {t.events} events"
            )
        if t.truncated:
            truncated.append(f"{t.name}: {t.truncated}")
    if truncated:
        raise CaptureFileError(
            "; ".join(truncated), "the file was cut short; the rest was replayed"
        )


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
    event_types_blst without detaching. Needs root and BPF; `sipcm doctor` checks the
    machine."""
    from sipcm import run

    cfg = _load(ctx, config_path, overrides)
    names = list(dict.fromkeys([*cfg.interfaces, *ifaces]))
    if not names:
        raise click.UsageError("no interface: name one (sipcm attach eth0) or set `interfaces`")
    run.live(
        cfg,
        names,
        lambda c: run.build_outputs(cfg, c, pretty=True if pretty else None),
        progress=_say,
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
@click.argument("file", default="-", type=click.File("r", encoding="utf-8"))
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
@config_options
@click.pass_context
def show_config(ctx: click.Context, config_path: str | None, overrides: tuple[str, ...]) -> None:
    """Print the effective configuration (YAML, secrets masked) after -c and -E."""
    import yaml

    cfg = _load(ctx, config_path, overrides)
    click.echo(yaml.safe_dump({"sipcm": cfg.to_dict(mask_secrets=True)}, sort_keys=False), nl=False)


@cli.command("config-keys")
def config_keys() -> None:
    """List every configuration key with its default and meaning."""
    from sipcm.config import describe

    click.echo(describe())


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
