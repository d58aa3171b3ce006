#!/usr/bin/env bash
# import --replace acts per section the file has: what a section lacks is removed, a section the
# file lacks is left alone (a `partner get --json` piped into it keeps hosted domains and access).
. "$(dirname "$0")/lib.sh"
new_store
setup() {
  new_store
  "$ADMIN" --store "$S" partner new a.example --dialback false >/dev/null 2>&1 || fail "setup a"
  "$ADMIN" --store "$S" partner new b.example --dialback false >/dev/null 2>&1 || fail "setup b"
  "$ADMIN" --store "$S" domain new chat.example.net --secret s3cret >/dev/null 2>&1 || fail "setup hosted"
  "$ADMIN" --store "$S" access set global true >/dev/null 2>&1 || fail "setup access global"
  "$ADMIN" --store "$S" access set domain:x.example false >/dev/null 2>&1 || fail "setup access domain"
}
setup
expect 0 access get
out_has 'x\.example'

# partner get --json | import --replace: partners replaced, hosted and access untouched.
"$ADMIN" --store "$S" partner get a.example --json >"$T/a.json"
expect 0 import --replace "$T/a.json"
expect 0 partner get a.example
expect 3 partner get b.example
expect 0 domain get chat.example.net
expect 0 access get
out_has 'x\.example'
out_has 'global'

# Piped through standard input, with what-if first: it says what would go, changes nothing.
setup
snapshot before
"$ADMIN" --store "$S" partner get a.example --json |
  "$ADMIN" --store "$S" import --replace --what-if - >"$T/out" 2>"$T/err"
[ $? -eq 0 ] && ok || fail "what-if replace from stdin: $(cat "$T/err")"
out_has '1 removed'
snapshot after
same_file "$T/before.json" "$T/after.json" "--what-if changed the store"

# A file with only a hosted section: hosted replaced, partners and access untouched.
printf '{"hosted": []}\n' >"$T/h.json"
expect 0 import --replace "$T/h.json"
expect 3 domain get chat.example.net
expect 0 partner get b.example
expect 0 access get
out_has 'x\.example'

# Only access: the scopes the file lacks go, the rest stays.
printf '{"access": {"global": true}}\n' >"$T/acc.json"
expect 0 import --replace "$T/acc.json"
expect 0 access get
out_lacks 'x\.example'
out_has 'global'
expect 0 partner get a.example
expect 0 partner get b.example

# Only settings: nothing is removed.
setup
"$ADMIN" --store "$S" gateway get --json >"$T/gw.json"
snapshot before2
expect 0 import --replace "$T/gw.json"
snapshot after2
same_file "$T/before2.json" "$T/after2.json" "a settings-only replace removed something"

# A refused file with --replace changes nothing, whatever sections it has.
printf '{"partners": [{"domain": "bad domain.example"}]}\n' >"$T/bad.json"
expect 1 import --replace "$T/bad.json"
snapshot after3
same_file "$T/before2.json" "$T/after3.json" "a refused replace changed the store"

# CSV is not sectioned: --replace stays a usage error there.
printf 'Identity,Domain\na.example,a.example\n' >"$T/imp.csv"
expect 2 import --replace "$T/imp.csv"
finish
