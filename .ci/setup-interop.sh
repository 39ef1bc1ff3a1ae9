#!/usr/bin/env bash
# Installs the real strongSwan peer and the network tools used by the interop tests
# (test/interop). Debian 12, run as root. Safe to run again: when everything is already
# installed it only re-checks that no strongSwan service is enabled and exits.
#
# No strongSwan service is started or enabled by this script:
#  - package installation runs behind a policy-rc.d that refuses every service start
#    (the existing one is kept if the machine has one);
#  - the units the packages enable for boot are disabled again, but only for packages this
#    script installed itself, and only with `systemctl disable` (never --now): a charon that
#    is already running on the machine is left alone.
set -euo pipefail

PACKAGES=(
  strongswan-charon strongswan-swanctl charon-systemd strongswan-pki
  libstrongswan-standard-plugins libstrongswan-extra-plugins libcharon-extra-plugins
  iproute2 socat tcpdump
)
# systemd units shipped by the packages above that Debian enables on install
UNITS=(strongswan-starter.service strongswan.service)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-interop: must run as root" >&2
  exit 1
fi

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done
# charon-systemd / strongswan-starter are the packages that bring the units
fresh_services=0
if ! installed charon-systemd || ! installed strongswan-starter; then
  fresh_services=1
fi

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-interop: all packages already installed"
else
  echo "setup-interop: installing ${missing[*]}"
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary: refuse service starts during setup-interop.sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
    trap 'rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
  apt-get "${apt_opts[@]}" update -qq
  apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${PACKAGES[@]}"
  if [ "$own_policy" -eq 1 ]; then
    rm -f "$policy"
    trap - EXIT
  fi
fi

# Keep strongSwan from starting at the next boot, for units this script brought in.
if [ "$fresh_services" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
  for u in "${UNITS[@]}"; do
    if [ -e "/lib/systemd/system/$u" ] || [ -e "/usr/lib/systemd/system/$u" ]; then
      systemctl --no-reload disable "$u" >/dev/null 2>&1 || true
    fi
  done
fi

# Sanity check: the binaries and plugins the test harness uses.
need=(
  /usr/lib/ipsec/charon /usr/sbin/swanctl
  /usr/lib/ipsec/plugins/libstrongswan-kdf.so
  /usr/lib/ipsec/plugins/libstrongswan-gcm.so
  /usr/lib/ipsec/plugins/libstrongswan-curve25519.so
  /usr/lib/ipsec/plugins/libstrongswan-openssl.so
  /usr/lib/ipsec/plugins/libstrongswan-vici.so
  /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so
)
for f in "${need[@]}"; do
  if [ ! -e "$f" ]; then
    echo "setup-interop: missing $f after installation" >&2
    exit 1
  fi
done
for c in ip socat tcpdump; do
  command -v "$c" >/dev/null 2>&1 || { echo "setup-interop: missing command $c" >&2; exit 1; }
done
if [ ! -c /dev/net/tun ]; then
  # kernel-libipsec needs a TUN device
  modprobe tun 2>/dev/null || true
  if [ ! -c /dev/net/tun ]; then
    mkdir -p /dev/net && mknod /dev/net/tun c 10 200 2>/dev/null || true
  fi
  [ -c /dev/net/tun ] || echo "setup-interop: warning: /dev/net/tun is not available" >&2
fi
echo "setup-interop: strongSwan $(dpkg-query -W -f='${Version}' strongswan-charon) ready"
