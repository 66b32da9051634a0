"""Install paths (issue 11): `make run`/`make install` install only what the sensor needs, the
test tools come with `make test` only (checked through the package lists and the setup script's
--dry-run, never by removing packages), and `scripts/install.sh` builds a venv-based install
under a prefix with `sipcm` on PATH and a hardened systemd unit (`systemd-analyze verify`)."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPTS = REPO / "scripts"
TEST_TOOLS = {"sip-tester", "kamailio", "tshark", "tcpdump", "chromium", "clang", "sipvicious"}
SENSOR_CAPS = "CAP_BPF CAP_NET_ADMIN CAP_PERFMON CAP_SYS_RESOURCE"


def package_list(name: str) -> list[str]:
    lines = (SCRIPTS / "packages" / f"{name}.txt").read_text().splitlines()
    return [x.split("#")[0].strip() for x in lines if x.split("#")[0].strip()]


def dry_run(*args: str) -> tuple[list[str], str]:
    res = subprocess.run(
        ["bash", str(SCRIPTS / "setup-system.sh"), *args, "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    first, second = res.stdout.splitlines()
    prefix = f"setup-system ({args[0] if args else 'runtime'}): "
    assert first.startswith(prefix + "packages: ")
    assert second.startswith(prefix + "would install: ")
    return first.removeprefix(prefix + "packages: ").split(), second


def test_runtime_list_has_no_test_tool():
    runtime = package_list("runtime")
    assert "python3-bpfcc" in runtime
    assert "linux-headers-amd64" in runtime
    assert "libbpf1" in runtime
    assert not TEST_TOOLS & set(runtime)
    assert set(package_list("test")) >= TEST_TOOLS


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian system")
def test_setup_script_installs_runtime_or_runtime_plus_test_tools():
    assert dry_run() == dry_run("runtime")  # runtime is the default
    runtime, _ = dry_run("runtime")
    assert runtime == package_list("runtime")
    full, _ = dry_run("test")
    assert full == package_list("runtime") + package_list("test")


def make_dry(target: str) -> list[str]:
    """The commands `make -n TARGET` would run, with the venv already up to date."""
    res = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", target],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    return res.stdout.splitlines()


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize(
    ("target", "system_step"),
    [
        ("run", "bash scripts/setup-system.sh runtime"),
        ("install", "bash scripts/setup-system.sh runtime"),
        ("test", "bash scripts/setup-system.sh test"),
        ("test-netns", "bash scripts/setup-system.sh test"),
    ],
)
def test_make_targets_pick_their_package_set(target, system_step):
    setup = [x for x in make_dry(target) if "setup-system.sh" in x]
    assert setup == [system_step]


def parse_unit(text: str) -> dict[str, list[str]]:
    """key -> values (in order) of a systemd unit, sections merged."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A real `scripts/install.sh` run into a temporary prefix (no user created)."""
    if os.geteuid() != 0:
        pytest.skip("install.sh runs as root")
    if not Path("/usr/bin/python3").exists():
        pytest.skip("no /usr/bin/python3 to build the venv on")
    root = tmp_path_factory.mktemp("inst")
    env = dict(
        os.environ,
        PREFIX=str(root / "usr"),
        SYSCONFDIR=str(root / "etc"),
        UNITDIR=str(root / "units"),
        SIPCM_USER="nobody",
        CREATE_USER="0",
    )
    res = subprocess.run(
        ["bash", str(SCRIPTS / "install.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return root


def test_install_puts_a_working_sipcm_on_path(installed: Path):
    sipcm = installed / "usr" / "bin" / "sipcm"
    assert sipcm.is_symlink()
    assert os.readlink(sipcm) == str(installed / "usr" / "lib" / "sipcm" / "bin" / "sipcm")
    res = subprocess.run([str(sipcm), "--version"], capture_output=True, text=True, cwd="/")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[1].endswith(f"({installed}/usr/lib/sipcm/bin/python)")
    # the installed package (not this checkout) carries the kernel program's sources
    py = installed / "usr" / "lib" / "sipcm" / "bin" / "python"
    code = "from sipcm.capture.program import SOURCE; print(SOURCE, SOURCE.is_file())"
    res = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd="/")
    site = next((installed / "usr" / "lib" / "sipcm" / "lib").glob("python3*/site-packages"))
    assert res.stdout.split() == [str(site / "sipcm" / "bpf" / "sipcm.bpf.c"), "True"]


def test_install_writes_the_config_once(installed: Path):
    conf = installed / "etc" / "sipcm" / "sipcm.yml"
    assert oct(conf.stat().st_mode & 0o777) == "0o640"
    assert "\n  run_as: nobody\n" in conf.read_text()
    res = subprocess.run(
        [str(installed / "usr" / "bin" / "sipcm"), "-c", str(conf), "config", "--check"],
        capture_output=True,
        text=True,
    )
    assert (res.returncode, res.stderr) == (0, f"configuration OK ({conf})\n")


def test_systemd_unit_is_hardened(installed: Path):
    unit = parse_unit((installed / "units" / "sipcm.service").read_text())
    bindir, etc = installed / "usr" / "bin", installed / "etc"
    run = f"{bindir}/sipcm -c {etc}/sipcm/sipcm.yml"
    assert unit["ExecStartPre"] == [f"{run} config --check"]
    assert unit["ExecStart"] == [f"{run} attach"]
    assert unit["ExecReload"] == [f"{run} config --check", "/bin/kill -HUP $MAINPID"]
    assert unit["User"] == ["nobody"]
    nobody = pwd.getpwnam("nobody")
    assert unit["Group"] == [grp.getgrgid(nobody.pw_gid).gr_name]
    assert unit["Restart"] == ["on-failure"]
    with open("/proc/sys/kernel/cap_last_cap") as f:
        caps = (
            SENSOR_CAPS if int(f.read()) >= 39 else "CAP_SYS_ADMIN CAP_NET_ADMIN CAP_SYS_RESOURCE"
        )
    assert unit["AmbientCapabilities"] == unit["CapabilityBoundingSet"] == [caps]
    for key, value in {
        "NoNewPrivileges": "yes",
        "StateDirectory": "sipcm",
        "ConfigurationDirectory": "sipcm",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelModules": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    }.items():
        assert unit[key] == [value], key
    assert not [k for k in unit if k.startswith("@") or "@" in "".join(unit[k])]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verifies_the_unit(installed: Path):
    res = subprocess.run(
        ["systemd-analyze", "verify", str(installed / "units" / "sipcm.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    # verify only warns about unknown keys and bad values: none may appear
    problems = [x for x in res.stderr.splitlines() if x.strip() and "Special user nobody" not in x]
    assert problems == []
    assert not re.search(r"Unknown key|Failed to parse|ignoring", res.stderr)
