#!/usr/bin/env bash
# Installs the runtime libraries of the real VPP that test/integration/real-vpp-*.test.ts run
# (shared/vpp: a VPP 26.10 build for Debian 12, started by shared/vpp/run-vpp.sh). Debian 12, run
# as root. Safe to run again: installs nothing when the libraries are there. The VPP tarball itself
# is unpacked by run-vpp.sh on first use (into $VPP_HOME, default /var/tmp/vpp-26.10).
set -euo pipefail

PACKAGES=(libunwind8 libssl3 liblzma5)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-vpp: must run as root" >&2
  exit 1
fi

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-vpp: runtime libraries already installed"
else
  echo "setup-vpp: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
  apt-get "${apt_opts[@]}" update -qq
  apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}"
fi

# The run script and tarball the tests use, unless VPP_PREFIX or VPP_RUN_SCRIPT point elsewhere.
if [ -z "${VPP_PREFIX:-}" ]; then
  script=${VPP_RUN_SCRIPT:-$(cd "$(dirname "$0")/.." && pwd)/../shared/vpp/run-vpp.sh}
  if [ ! -f "$script" ]; then
    echo "setup-vpp: $script not found (set VPP_RUN_SCRIPT or VPP_PREFIX)" >&2
    exit 1
  fi
  echo "setup-vpp: VPP from $script"
else
  for b in bin/vpp bin/vppctl; do
    [ -x "$VPP_PREFIX/$b" ] || { echo "setup-vpp: $VPP_PREFIX/$b not found (VPP_PREFIX)" >&2; exit 1; }
  done
  echo "setup-vpp: VPP from $VPP_PREFIX"
fi
