#!/usr/bin/env bash
# Builds wolfSSL from Debian's own source package with AES-NI and assembly into build/deps/wolfssl.
# Debian's binary package has neither (about 20x slower AES-GCM). The result is cached: a second
# run with the same version and options does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
deps=${FEDGATE_DEPS_DIR:-$PWD/build/deps}
prefix=$deps/wolfssl
opts="--enable-aesni --enable-intelasm --enable-sp --enable-sp-asm --enable-tls13 --enable-sni
  --enable-alpn --enable-session-ticket --enable-opensslextra --enable-certgen --enable-altcertchains
  --enable-curve25519 --enable-ed25519 --enable-chacha --enable-poly1305 --enable-certext
  --enable-crl --enable-ocsp --enable-static --enable-shared
  --disable-examples --disable-crypttests"
stamp="$(echo "$opts" | tr -s ' \n' ' ' | md5sum | cut -c1-12)"
if [ -f "$prefix/.fedgate-stamp" ] && [ "$(cat "$prefix/.fedgate-stamp")" = "$stamp" ]; then
  echo "wolfssl: cached in $prefix"
  exit 0
fi

src=$deps/wolfssl-src
rm -rf "$src" && mkdir -p "$src/lists/partial"
# A private sources list and state directory: the machine's apt configuration stays untouched.
# The mirror is read from the machine's own sources so nothing here names one.
sources=/etc/apt/sources.list.d/debian.sources
if [ -f "$sources" ]; then
  sed -e 's/^Types:.*/Types: deb-src/' "$sources" > "$src/src.sources"
else
  grep -h '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > "$src/src.list"
fi
o=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$src" -o "Dir::State::Lists=$src/lists")
apt-get "${o[@]}" update -q >/dev/null
(cd "$src" && apt-get "${o[@]}" source -q wolfssl >/dev/null)
dir=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'wolfssl-[0-9]*' | head -1)
[ -n "$dir" ] || { echo "wolfssl: source package not found" >&2; exit 1; }
cd "$dir"
./autogen.sh >/dev/null 2>&1 || autoreconf -fi >/dev/null
# shellcheck disable=SC2086
./configure --prefix="$prefix" $opts CFLAGS="-O2 -g -DWOLFSSL_ALT_NAMES -DWOLFSSL_IP_ALT_NAME" >/dev/null
make -j"$(nproc)" >/dev/null
rm -rf "$prefix"
make install >/dev/null
echo "$stamp" > "$prefix/.fedgate-stamp"
rm -rf "$src"
echo "wolfssl: built $(basename "$dir") into $prefix"
