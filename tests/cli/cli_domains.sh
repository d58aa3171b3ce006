#!/usr/bin/env bash
# Domain lists split on commas only, the same on the command line, in JSON import and in CSV; IP
# address literals are not partner or hosted domains, but remain valid proxy addresses.
. "$(dirname "$0")/lib.sh"
new_store
snapshot before

# An element with an inner space is one invalid domain, named whole, never two domains.
expect 1 partner new x.example --dialback false --additional-domains "bad domain.example"
err_has '^error: .*invalid domain "bad domain\.example": .*space'
[ "$(wc -l <"$T/err")" -eq 1 ] && ok || fail "more than one line: $(cat "$T/err")"
err_clean
expect 3 partner get x.example
expect 1 partner new x.example --dialback false --additional-domains "ok.example, bad domain.example"
err_has '"bad domain\.example"'
expect 1 partner new x.example --dialback false --additional-domains "a.example;b.example"
err_has '"a\.example;b\.example"'
snapshot after
same_file "$T/before.json" "$T/after.json" "a refused list changed the store"

# Commas with spaces around them are fine.
expect 0 partner new x.example --dialback false --additional-domains " A.example , b.example,"
expect 0 partner get x.example --json
out_has '"additional_domains": ?\["a\.example", ?"b\.example"\]'
expect 1 partner set x.example --add-domain "c d.example"
err_has '"c d\.example"'

# JSON import: the same message, naming the element and the reason; nothing saved.
snapshot before2
cat >"$T/space.json" <<'J'
[{"domain": "y.example", "dialback": false, "additional_domains": ["ok2.example", "bad domain.example"]}]
J
expect 1 import "$T/space.json"
err_has 'additional_domains.*invalid domain "bad domain\.example": .*space'
fa partner new z.example --dialback false --additional-domains "bad domain.example"
cli_line=$(grep -o 'invalid domain.*' "$T/err")
[ -n "$cli_line" ] && ok || fail "no CLI message: $(cat "$T/err")"
expect 1 import "$T/space.json"
grep -qF -- "$cli_line" "$T/err" && ok || fail "JSON message differs from the CLI's: $(cat "$T/err") vs $cli_line"
err_clean
snapshot after2
same_file "$T/before2.json" "$T/after2.json" "a refused import changed the store"

finish
