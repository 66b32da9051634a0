#!/usr/bin/env bash
# `make install`: a venv-based sipcm under PREFIX, `sipcm` on PATH, a hardened systemd unit and
# a configuration file that is never overwritten. Run as root from the checkout, after
# `scripts/setup-system.sh runtime`. Settings (environment or make variables):
#   PREFIX=/usr/local            venv in $PREFIX/lib/sipcm, command $PREFIX/bin/sipcm
#   SYSCONFDIR=/etc              configuration $SYSCONFDIR/sipcm/sipcm.yml
#   UNITDIR=/etc/systemd/system  where sipcm.service goes
#   SIPCM_USER=sipcm             the service user (created as a system user unless CREATE_USER=0)
#   SIPCM_ACCEL=1                0: do not compile the hot modules (sipcm then runs pure Python)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-/etc/systemd/system}
SIPCM_USER=${SIPCM_USER:-sipcm}
CREATE_USER=${CREATE_USER:-1}
venv=$PREFIX/lib/sipcm
bindir=$PREFIX/bin

if [ "$CREATE_USER" = 1 ] && ! id "$SIPCM_USER" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /var/lib/sipcm --shell /usr/sbin/nologin \
    "$SIPCM_USER"
  echo "install: created system user $SIPCM_USER"
fi

# BCC's bindings come from Debian's python3-bpfcc: the venv sees system site packages.
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install -q --upgrade "$repo[accel]"
site=$(cd / && "$venv/bin/python" -c 'import sipcm, os; print(os.path.dirname(sipcm.__file__))')
# The compiled hot modules (sipcm/accel.py); SIPCM_ACCEL=0 installs pure Python only.
if [ "${SIPCM_ACCEL:-1}" != 0 ]; then
  "$venv/bin/python" "$repo/scripts/build_accel.py" --package-root "$(dirname "$site")"
fi
# Bytecode for every module (pip writes it too, unless told not to: PIP_NO_COMPILE). The
# service user cannot write into the package, so without it every start compiles every module.
"$venv/bin/python" -m compileall -q "$site"
install -d "$site/bpf"
install -m 0644 "$repo"/bpf/*.c "$repo"/bpf/*.h "$site/bpf/"
install -d "$bindir"
ln -sfn "$venv/bin/sipcm" "$bindir/sipcm"

conf=$SYSCONFDIR/sipcm/sipcm.yml
install -d -m 0750 "$SYSCONFDIR/sipcm"
if [ ! -e "$conf" ]; then
  sed -e "s|^  run_as: auto\$|  run_as: $SIPCM_USER|" "$repo/sipcm/config/example.yml" >"$conf"
  chmod 0640 "$conf"
  echo "install: wrote $conf (every key at its default): set \`interfaces\` before starting"
else
  echo "install: kept the existing $conf"
fi
group=$SIPCM_USER
if id "$SIPCM_USER" >/dev/null 2>&1; then
  group=$(id -gn "$SIPCM_USER")
  chgrp "$group" "$SYSCONFDIR/sipcm" "$conf"  # the sensor re-reads it on SIGHUP
fi

# CAP_BPF and CAP_PERFMON exist from Linux 5.8; older kernels need CAP_SYS_ADMIN for BPF.
if [ "$(cat /proc/sys/kernel/cap_last_cap)" -ge 39 ]; then
  caps="CAP_BPF CAP_NET_ADMIN CAP_PERFMON CAP_SYS_RESOURCE"
  note="CAP_SYS_RESOURCE raises RLIMIT_MEMLOCK on kernels before 5.11."
else
  caps="CAP_SYS_ADMIN CAP_NET_ADMIN CAP_SYS_RESOURCE"
  note="This kernel has no CAP_BPF (Linux < 5.8): CAP_SYS_ADMIN stands in for it."
fi
install -d "$UNITDIR"
sed -e "s|@BINDIR@|$bindir|g" -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" \
    -e "s|@USER@|$SIPCM_USER|g" -e "s|@GROUP@|$group|g" \
    -e "s|@CAPS@|$caps|g" -e "s|@CAPS_NOTE@|$note|g" \
    "$repo/scripts/sipcm.service.in" >"$UNITDIR/sipcm.service"
chmod 0644 "$UNITDIR/sipcm.service"

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
echo "install: $bindir/sipcm -> $venv; unit $UNITDIR/sipcm.service"
echo "install: next: edit $conf, then systemctl enable --now sipcm"
