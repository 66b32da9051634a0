#!/usr/bin/env bash
# Installs the Debian 12 packages sipcm needs and points BCC at kernel headers.
#   setup-system.sh runtime   what the sensor needs (`make run`, `make install`)
#   setup-system.sh test      the runtime set plus the test tools (`make test`, `make test-netns`)
#   --dry-run                 print the packages that would be installed, change nothing
# The package lists are scripts/packages/{runtime,test}.txt. Idempotent; run as root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
set_name=runtime
dry_run=0
for arg in "$@"; do
  case "$arg" in
    runtime|test) set_name=$arg ;;
    --dry-run) dry_run=1 ;;
    *) echo "setup-system: unknown argument $arg (use runtime|test [--dry-run])" >&2; exit 2 ;;
  esac
done

lists=("$here/packages/runtime.txt")
[ "$set_name" = test ] && lists+=("$here/packages/test.txt")
mapfile -t PKGS < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "${lists[@]}" | grep -v '^$')

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "$dry_run" -eq 1 ]; then
  echo "setup-system ($set_name): packages: ${PKGS[*]}"
  echo "setup-system ($set_name): would install: ${missing[*]:-nothing}"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system: must run as root (try: sudo $0 $set_name)" >&2
  exit 1
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-system ($set_name): installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# BCC compiles against /lib/modules/$(uname -r)/{build,source}. The running kernel may have no
# header package (e.g. a VM kernel); the newest Debian headers work because the BPF program only
# uses stable UAPI structures. Debian splits headers into an arch part and a common part, and
# BCC needs both links.
kver=$(uname -r)
moddir=/lib/modules/$kver
if [ ! -e "$moddir/build/include" ]; then
  arch_hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -1)
  common_hdr=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -1)
  if [ -z "$arch_hdr" ] || [ -z "$common_hdr" ]; then
    echo "setup-system: no kernel headers under /usr/src after installing linux-headers-amd64" >&2
    exit 1
  fi
  mkdir -p "$moddir"
  ln -sfn "$arch_hdr" "$moddir/build"
  ln -sfn "$common_hdr" "$moddir/source"
  echo "setup-system: linked $moddir/build -> $arch_hdr and source -> $common_hdr"
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
