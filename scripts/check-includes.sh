#!/usr/bin/env bash
# Enforces the dependency rules of DESIGN.md §3: third-party headers stay in their folder and no
# folder includes one it may not depend on. Exits 1 and names each offending line.
set -u
root=${1:-$(dirname "$0")/..}
cd "$root" || exit 2
fail=0
bad() { echo "include rule: $1"; fail=1; }

# folder -> project folders it must not include
declare -A forbid=(
  [core]="policy tls io admin"
  [policy]="tls io admin"
  [tls]="policy io admin"
  [io]="admin"
  [admin]="io tls"
)
for f in "${!forbid[@]}"; do
  for other in ${forbid[$f]}; do
    hits=$(grep -rn --include='*.[ch]' -E "#include[[:space:]]*\"$other/" "$f" 2>/dev/null)
    [ -n "$hits" ] && bad "$f may not include $other/: $hits"
  done
done

third() { # header-regex allowed-path-regex
  hits=$(grep -rln --include='*.[ch]' -E "#include[[:space:]]*<$1" core io tls policy admin 2>/dev/null \
         | grep -v -E "$2")
  [ -n "$hits" ] && bad "<$1> outside its folder: $hits"
}
third 'liburing\.h' '^io/'
third 'ares\.h' '^io/'
third 'wolfssl/' '^tls/'
third 'lmdb\.h' '^(policy/store|admin/)'
third 'expat\.h' '^core/xml\.c$'
third 'microhttpd\.h' '^admin/'
third 'sodium\.h' '^admin/'
third 'idn2\.h' '^policy/'
[ $fail -eq 0 ] && echo "include rules: ok"
exit $fail
