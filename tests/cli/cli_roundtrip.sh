#!/usr/bin/env bash
# export and every `get --json` print what import accepts, and importing it gives the same store.
# Revisions are bookkeeping of the store that holds a record, so they are left out of comparisons.
. "$(dirname "$0")/lib.sh"
strip() { sed -E 's/"revision": ?[0-9]+/"revision":R/g' "$1" >"$1.s"; }

new_store
A=$S
run() { "$ADMIN" --store "$A" "$@" >/dev/null 2>"$T/err" || fail "$*: $(cat "$T/err")"; }
run partner new fabrikam.com --additional-domains research.fabrikam2.com,sales.fabrikam.com \
  --type federated --tls required --sasl optional --dialback true --keepalive false \
  --connection-limit 50 --proxy-fqdn xmpp-edge.fabrikam.com:5269 \
  --description 'Fabrikam, Inc. "XMPP team" <xmpp@fabrikam.com> \ tab	end'
run partner new gmail.com --tls not-supported --sasl not-supported --keepalive false
run partner new contoso.com --type public-verified
run partner new bücher.example --sasl optional --tls optional
run partner set contoso.com --dialback false --connection-limit 0
run gateway set --connection-limit 1234 --keepalive-interval 120 --log-message-bodies true
run domain new chat.example.net --cert /etc/fedgate/chat.pem --key /etc/fedgate/chat.key --secret c0mp
run domain new relay.example.net --route s2s --target 10.1.2.3:5269 --cert /c.pem --key /k.pem
run access set global true
run access set domain:chat.example.net false
run access set user:alice@chat.example.net true

"$ADMIN" --store "$A" export --secrets -o "$T/a.json" || fail "export A"
S=$T/b
new_store
"$ADMIN" --store "$S" import "$T/a.json" >/dev/null 2>"$T/err" || fail "import into B: $(cat "$T/err")"
"$ADMIN" --store "$S" export --secrets -o "$T/b.json" || fail "export B"
strip "$T/a.json"; strip "$T/b.json"
same_file "$T/a.json.s" "$T/b.json.s" "export -> import -> export differs"
grep -q 'xn--bcher-kva.example' "$T/a.json" && ok || fail "IDN not stored as A-label"

# Re-importing a store's own export changes nothing but revisions.
"$ADMIN" --store "$A" import "$T/a.json" >/dev/null 2>"$T/err" || fail "re-import into A: $(cat "$T/err")"
"$ADMIN" --store "$A" export --secrets -o "$T/a2.json"
strip "$T/a2.json"
same_file "$T/a.json.s" "$T/a2.json.s" "re-import of own export changed the store"

# Each get --json on its own.
for what in "partner get" "gateway get --show-passphrase" "domain get --show-secret" "access get"; do
  S=$T/c
  new_store
  "$ADMIN" --store "$A" $what --json >"$T/g.json" 2>"$T/err" || fail "$what --json: $(cat "$T/err")"
  "$ADMIN" --store "$S" import "$T/g.json" >/dev/null 2>"$T/err" || fail "import of $what --json: $(cat "$T/err")"
  "$ADMIN" --store "$S" $what --json >"$T/g2.json" 2>"$T/err" || fail "$what --json on copy"
  strip "$T/g.json"; strip "$T/g2.json"
  same_file "$T/g.json.s" "$T/g2.json.s" "$what --json does not round-trip"
done
# A single partner's --json is importable too.
S=$T/d
new_store
"$ADMIN" --store "$A" partner get fabrikam.com --json >"$T/one.json"
expect 0 import "$T/one.json"
expect 0 partner get fabrikam.com
out_has 'research.fabrikam2.com'

# --replace makes the store equal to a whole export: what the file lacks is removed.
S=$T/z
new_store
expect 0 import "$T/a.json"
expect 0 partner remove fabrikam.com
expect 0 partner remove contoso.com
expect 0 domain remove relay.example.net
"$ADMIN" --store "$S" export --secrets -o "$T/z.json"
S=$A
expect 0 import --replace "$T/z.json"
"$ADMIN" --store "$A" export --secrets -o "$T/a3.json"
strip "$T/a3.json"; strip "$T/z.json"
same_file "$T/z.json.s" "$T/a3.json.s" "import --replace did not make the store equal to the file"
# A fragment (a get --json) replaces only the sections it has (cli_replace.sh has the details).
"$ADMIN" --store "$A" partner get gmail.com --json >"$T/only.json"
expect 0 import --replace "$T/only.json"
"$ADMIN" --store "$A" export --secrets -o "$T/a4.json"
grep -q '"gmail.com"' "$T/a4.json" && ok || fail "the partner of the fragment is gone"
[ "$(grep -c '"hosted"' "$T/a4.json")" -eq 1 ] && ok || fail "no hosted section in the export"
printf 'Identity,Domain\na.example,a.example\n' >"$T/imp.csv"
expect 2 import --replace "$T/imp.csv"
finish
