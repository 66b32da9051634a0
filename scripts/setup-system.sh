#!/usr/bin/env bash
# Installs the system packages sipcm needs on Debian 12 and points BCC at kernel headers.
# Idempotent; run as root. See `sipcm doctor` for what each piece is for.
set -euo pipefail

PKGS=(python3 python3-venv python3-pip python3-bpfcc bpfcc-tools libbpfcc libbpf1
      linux-headers-amd64 iproute2 sip-tester kamailio tshark tcpdump clang util-linux chromium)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system: must run as root (try: sudo $0)" >&2
  exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-system: installing ${missing[*]}"
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
