#!/usr/bin/env bash
# Installs the real strongSwan peer and the network tools used by the interop tests
# (test/interop). Debian 12, run as root. Safe to run again: when everything is already
# installed it installs, enables and disables nothing, and only re-checks the files.
#
# No strongSwan service is started or enabled by this script:
#  - package installation runs behind a policy-rc.d that refuses every service start
#    (the existing one is kept if the machine has one);
#  - the units the packages enable for boot are disabled again, but only units whose package
#    was missing before this run (so this run installed it), and only with `systemctl disable`
#    (never --now). A strongSwan the administrator installed, enabled or runs is left alone.
#
# POLICY_RC_D overrides the path of policy-rc.d (tests run the script with stub commands).
set -euo pipefail

PACKAGES=(
  strongswan-charon strongswan-swanctl charon-systemd strongswan-pki
  libstrongswan-standard-plugins libstrongswan-extra-plugins libcharon-extra-plugins
  iproute2 iputils-ping ethtool socat tcpdump nftables
)
# systemd units that Debian enables on install, and the package that ships each: charon-systemd
# (in PACKAGES) and strongswan-starter (not in PACKAGES, but apt may pull it in as a dependency)
declare -A UNIT_PACKAGE=(
  [strongswan.service]=charon-systemd
  [strongswan-starter.service]=strongswan-starter
)

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
# Units whose package is not installed yet: if this run installs it, this run disables the unit.
new_units=()
for u in "${!UNIT_PACKAGE[@]}"; do
  installed "${UNIT_PACKAGE[$u]}" || new_units+=("$u")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-interop: all packages already installed"
else
  echo "setup-interop: installing ${missing[*]}"
  policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
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

# Keep strongSwan from starting at the next boot, for the units this run brought in (their
# package was missing before and is installed now).
if [ "${#new_units[@]}" -gt 0 ] && command -v systemctl >/dev/null 2>&1; then
  for u in "${new_units[@]}"; do
    if installed "${UNIT_PACKAGE[$u]}"; then
      echo "setup-interop: disabling $u (installed by this run)"
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
for c in ip ping ethtool socat tcpdump nft; do
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
