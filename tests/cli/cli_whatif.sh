#!/usr/bin/env bash
# --what-if on every changing verb describes the change and changes nothing (export compared
# byte for byte, and the change counter stays put).
. "$(dirname "$0")/lib.sh"
new_store
"$ADMIN" --store "$S" partner new fabrikam.com --dialback false >/dev/null 2>&1
"$ADMIN" --store "$S" domain new chat.example.net --cert /c.pem --key /k.pem --secret x >/dev/null 2>&1
"$ADMIN" --store "$S" access set user:alice@chat.example.net true >/dev/null 2>&1
snapshot before
"$ADMIN" --store "$S" status --json >"$T/status.before"

expect 0 partner new contoso.com --type federated --what-if
out_has 'what-if|what if'
out_has contoso.com
expect 0 partner set fabrikam.com --tls optional --sasl optional --dialback true --what-if
out_has 'what-if|what if'
err_has '^warning:' # the matrix still speaks under --what-if
expect 0 partner remove fabrikam.com --what-if
expect 0 gateway set --connection-limit 7 --what-if
expect 0 gateway set --generate-passphrase --what-if
expect 0 domain new other.example.net --cert /c.pem --key /k.pem --secret y --what-if
expect 0 domain set chat.example.net --enabled false --what-if
expect 0 domain remove chat.example.net --what-if
expect 0 access set global true --what-if
expect 0 access remove user:alice@chat.example.net --what-if
cat >"$T/imp.json" <<'J'
{"partners":[{"domain":"new1.example"},{"domain":"new2.example","tls":"Optional"}]}
J
expect 0 import "$T/imp.json" --what-if
printf 'Identity,Domain,TlsNegotiation,SaslNegotiation,SupportDialbackNegotiation\r\ncsv.example,csv.example,Required,Required,False\r\n' >"$T/imp.csv"
expect 0 import "$T/imp.csv" --what-if
out_has '1 partner would be created'
# --what-if still refuses what would be refused, with the same exit status.
expect 1 partner new bad.example --tls not-supported --sasl required --dialback false --what-if
expect 4 partner new fabrikam.com --what-if
expect 3 partner remove nowhere.example --what-if

snapshot after
same_file "$T/before.json" "$T/after.json" "--what-if changed the store"
"$ADMIN" --store "$S" status --json >"$T/status.after"
same_file "$T/status.before" "$T/status.after" "--what-if moved the change counter"
finish
