#!/usr/bin/env bash
# Sets everything up, builds, creates a demo store on first run, and runs the gateway on it with
# the control panel beside it.
#   scripts/run.sh      store in ./var/store (or $FEDGATE_STORE); Ctrl-C stops both
#
# First run creates: a hosted domain gateway.localhost with a self-signed certificate and an
# XEP-0114 component route (secret in var/component.secret), loopback listeners (s2s 5269,
# direct TLS 5270, components 5347, metrics 9269), EnableXmppAccess on, and a control panel
# account "admin" (password in var/admin-password).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
var=$PWD/var
export FEDGATE_STORE=${FEDGATE_STORE:-$var/store}
admin=$PWD/build/admin/fedgate-admin
domain=gateway.localhost
mkdir -p "$var"

if [ ! -f "$FEDGATE_STORE/data.mdb" ]; then
  mkdir -p "$FEDGATE_STORE"
  "$admin" init --demo
  if [ ! -f "$var/$domain.crt" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
      -subj "/CN=$domain" -addext "subjectAltName=DNS:$domain" \
      -addext extendedKeyUsage=serverAuth,clientAuth \
      -keyout "$var/$domain.key" -out "$var/$domain.crt" 2>/dev/null
    chmod 600 "$var/$domain.key"
  fi
  [ -f "$var/component.secret" ] || (umask 077; head -c 18 /dev/urandom | base64 > "$var/component.secret")
  "$admin" domain new "$domain" --cert "$var/$domain.crt" --key "$var/$domain.key" \
    --route component --secret-file "$var/component.secret"
  "$admin" gateway set --listen-s2s 127.0.0.1:5269 --listen-s2s-tls 127.0.0.1:5270 \
    --listen-component 127.0.0.1:5347 --listen-metrics 127.0.0.1:9269
fi
if ! "$admin" user list 2>/dev/null | grep -q '^admin '; then
  (umask 077; "$admin" user add admin --role admin --generate > "$var/admin-password")
fi

"$admin" serve --listen 127.0.0.1:8443 &
panel=$!
trap 'kill $panel 2>/dev/null || true' EXIT
echo "control panel: http://127.0.0.1:8443/  account admin, password in var/admin-password"
echo "component:     $domain on 127.0.0.1:5347, secret in var/component.secret"
echo "partners:      build/admin/fedgate-admin partner new DOMAIN ...   (docs/admin.md)"
build/io/fedgate --store "$FEDGATE_STORE"
