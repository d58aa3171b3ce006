#!/usr/bin/env bash
# Bad input is refused with one clear line naming the field and the value, and nothing is saved.
. "$(dirname "$0")/lib.sh"
new_store
snapshot before
l63=$(printf 'a%.0s' $(seq 63))
n254="$l63.$l63.$l63.$(printf 'b%.0s' $(seq 62))"   # 254 octets: one too many
n253="$l63.$l63.$l63.$(printf 'b%.0s' $(seq 61))"   # 253 octets: the longest valid name
[ ${#n254} -eq 254 ] && [ ${#n253} -eq 253 ] || fail "test names have the wrong length"

for d in 'bad domain.example' 'under_score.example' '-lead.example' 'trail-.example' \
  'a..b.example' '.example' "$l63"x.example 'exa mple' 'ex@mple.com' "$n254" ''; do
  expect 1 partner new --dialback false -- "$d"
  err_has '^error: .*(invalid domain|domain)'
  [ "$(wc -l <"$T/err")" -eq 1 ] && ok || fail "more than one line for '$d': $(cat "$T/err")"
done
expect 1 partner new "$n254" --dialback false
err_has '253|long'
expect 0 partner new "$n253" --dialback false
expect 1 partner new ok.example --dialback false --additional-domains 'good.example,bad_domain.example'
err_has 'bad_domain\.example'
expect 1 partner new ok.example --dialback false --proxy-fqdn 'bad host:99999'
err_has 'proxy'

# IDN: U-labels become A-labels; invalid IDNA is refused naming the name.
expect 0 partner new 'bücher.example' --dialback false
out_has 'xn--bcher-kva\.example'
expect 4 partner new 'XN--BCHER-KVA.example.' --dialback false # same partner, other spelling
expect 0 partner get 'BÜCHER.EXAMPLE'
expect 1 partner new $'\xff\xfe.example' --dialback false
err_has 'invalid domain'
expect 1 partner new 'xn--zz-invalid.example' --dialback false
expect 1 partner new '☃☃☃.example' --dialback false -- # symbols are not IDNA2008 letters
"$ADMIN" --store "$S" partner remove "$n253" >/dev/null 2>&1
"$ADMIN" --store "$S" partner remove xn--bcher-kva.example >/dev/null 2>&1

# Duplicate domains: primary twice, additional listed twice, additional equal to the primary,
# a domain of another partner, case and trailing-dot variants of the same name.
"$ADMIN" --store "$S" partner new taken.example --dialback false --additional-domains alias.example >/dev/null 2>&1
expect 4 partner new TAKEN.example. --dialback false
err_has 'taken\.example'
expect 1 partner new d1.example --dialback false --additional-domains x.example,X.EXAMPLE.
err_has 'x\.example'
expect 1 partner new d2.example --dialback false --additional-domains d2.example
expect 4 partner new d3.example --dialback false --additional-domains alias.example
err_has 'taken\.example'
expect 4 partner new alias.example --dialback false
err_has 'taken\.example'

# Unknown enum values and booleans: each names the option and the value.
expect 1 partner new e.example --tls sometimes
err_has 'tls.*sometimes'
expect 1 partner new e.example --sasl REQUIRE
err_has 'sasl.*REQUIRE'
expect 1 partner new e.example --type trusted
err_has 'type.*trusted'
expect 1 partner new e.example --dialback maybe
err_has 'dialback.*maybe'
expect 1 gateway set --log-message-bodies sure
expect 1 gateway set --unknown-domains perhaps
# Negative, non-numeric and out-of-range limits.
expect 1 partner new e.example --connection-limit -1
err_has 'connection-limit.*-1'
expect 1 partner new e.example --connection-limit 12abc
expect 1 partner new e.example --connection-limit 99999999999
expect 1 gateway set --partner-connection-limit -20
expect 1 gateway set --keepalive-interval 0
expect 1 gateway set --stream-inactivity-timeout 4294967296
# The negotiation matrix error rows: refused, the message says which setting to change.
for combo in 'not-supported required true' 'not-supported required false' 'not-supported optional true' \
  'not-supported optional false' 'required not-supported false' 'optional not-supported false' \
  'not-supported not-supported false'; do
  set -- $combo
  expect 1 partner new m.example --tls "$1" --sasl "$2" --dialback "$3"
  err_has '^error: .*(tls|sasl|dialback)'
done
# Oversized description, bad characters.
expect 1 partner new e.example --dialback false --description "$(head -c 2000 /dev/zero | tr '\0' x)"
expect 1 partner new e.example --dialback false --description $'line1\nline2'
"$ADMIN" --store "$S" partner remove taken.example >/dev/null 2>&1
snapshot after
same_file "$T/before.json" "$T/after.json" "refused input changed the store"

# A corrupt, a truncated, an empty and a foreign store file: exit 5 with one line, never a crash.
for how in truncate junk empty zero; do
  S=$T/st-$how
  new_store
  "$ADMIN" --store "$S" partner new p.example --dialback false >/dev/null 2>&1
  f=$S/data.mdb
  size=$(stat -c %s "$f")
  case $how in
    truncate) truncate -s $((size / 3)) "$f" ;;
    junk) head -c "$size" /dev/urandom >"$f" ;;
    empty) : >"$f" ;;
    zero) dd if=/dev/zero of="$f" bs=4096 count=2 conv=notrunc status=none ;;
  esac
  for verb in "status" "partner get" "export" "partner new q.example --dialback false"; do
    expect 5 $verb
    err_has '^error: '
    err_clean
  done
done

# A store written by a newer schema is refused, naming both versions.
S=$T/newer
new_store
"$ADMIN" --store "$S" partner new p.example --dialback false >/dev/null 2>&1
if command -v mdb_dump >/dev/null && command -v mdb_load >/dev/null; then
  mdb_dump -s meta "$S" >"$T/meta.dump" || fail "mdb_dump meta"
  # meta/schema_version is a 4-byte little-endian integer; make it 99.
  awk -v key=" $(printf schema_version | od -An -tx1 | tr -d ' \n')" \
    'prev == key { $0 = " 63000000" } { print; prev = $0 }' "$T/meta.dump" >"$T/meta.new"
  cmp -s "$T/meta.dump" "$T/meta.new" && fail "schema_version not found in the meta dump"
  mv "$T/meta.new" "$T/meta.dump"
  mdb_load -s meta -f "$T/meta.dump" "$S" 2>/dev/null || fail "mdb_load meta"
  expect 5 status
  err_has 'schema|version|newer'
  expect 5 partner new q.example --dialback false
  err_has 'schema|version|newer'
else
  echo "skip: lmdb-utils (mdb_dump/mdb_load) not installed"
fi
finish
