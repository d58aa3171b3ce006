#!/usr/bin/env bash
# Installs everything fedgate needs to build and test on Debian 12, then builds wolfSSL with
# AES-NI and assembly into build/deps (cached). Safe to run any number of times.
#
#   scripts/setup.sh [--system-wolfssl] [--interop] [--browser] [--all]
#
#   --system-wolfssl  use Debian's libwolfssl-dev instead of building it (slower crypto)
#   --interop         also Prosody, ejabberd, dnsmasq, slixmpp, openssl (real federation peers)
#   --browser         also Chromium and playwright-core (control panel tests)
#   --all             --interop and --browser
set -euo pipefail
cd "$(dirname "$0")/.."

system_wolfssl=0 interop=0 browser=0
for a in "$@"; do
  case "$a" in
    --system-wolfssl) system_wolfssl=1 ;;
    --interop) interop=1 ;;
    --browser) browser=1 ;;
    --all) interop=1 browser=1 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

pkgs=(build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
      libexpat1-dev liblmdb-dev lmdb-utils libidn2-dev liburing-dev libc-ares-dev
      libmicrohttpd-dev libsodium-dev libjemalloc-dev libcmocka-dev openssl curl dnsmasq-base
      dpkg-dev autoconf automake libtool)
[ $system_wolfssl -eq 1 ] && pkgs+=(libwolfssl-dev)
[ $interop -eq 1 ] && pkgs+=(prosody lua-unbound ejabberd python3-slixmpp dnsmasq-base iproute2 python3-lmdb)
[ $browser -eq 1 ] && pkgs+=(chromium nodejs)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  # Package scripts must not start system prosody/ejabberd/dnsmasq on their default ports.
  made_rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    made_rc=1
  fi
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ $made_rc -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
fi

if [ $browser -eq 1 ]; then
  command -v npm >/dev/null || { $SUDO apt-get update -q; $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm; }
  if [ -f tests/browser/package.json ]; then
    (cd tests/browser && { [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund; })
  fi
fi

if [ $system_wolfssl -eq 0 ]; then
  scripts/build-wolfssl.sh
fi
echo "setup: done"
