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

# IP address literals are not domains: partner, additional and hosted domains refuse them.
snapshot before3
for d in 1.2.3.4 10.0.0.1. 127.1 '[2001:db8::1]' 2001:db8::1; do
  expect 1 partner new "$d" --dialback false
  err_has "invalid domain .*an IP address is not a domain; name the partner by its XMPP domain"
  [ "$(wc -l <"$T/err")" -eq 1 ] && ok || fail "more than one line for '$d': $(cat "$T/err")"
done
expect 1 partner new n.example --dialback false --additional-domains ok3.example,192.0.2.1
err_has '"192\.0\.2\.1": an IP address is not a domain'
expect 1 partner new example.123 --dialback false
err_has 'all digits'
expect 1 domain new 192.0.2.9 --route component --secret s3cret
err_has 'IP address'
cat >"$T/ip.json" <<'J'
{"partners": [{"domain": "1.2.3.4", "dialback": false}],
 "hosted": [{"domain": "192.0.2.9", "route": "component", "secret": "x"}]}
J
expect 1 import "$T/ip.json"
err_has 'partners\[0\].*IP address'
err_has 'hosted\[0\].*IP address'
snapshot after3
same_file "$T/before3.json" "$T/after3.json" "a refused address changed the store"
# Looking an address up is not an error about the name: there is just no such partner (a record
# stored under an address before the rule can be shown and removed this way).
expect 3 partner get 1.2.3.4
expect 3 partner remove 1.2.3.4
expect 3 partner set 1.2.3.4 --keepalive false
expect 1 partner get 'bad domain.example'
err_has 'invalid domain "bad domain\.example"'
# A proxy is a connect target: an address with a port is fine.
expect 0 partner new p.example --dialback false --proxy-fqdn 192.0.2.7:5270
expect 0 partner get p.example
out_has '192\.0\.2\.7:5270'
expect 0 partner set p.example --proxy-fqdn '[2001:db8::7]:5269'
expect 0 partner get p.example --json
out_has '"proxy_fqdn": ?"\[2001:db8::7\]:5269"'

finish
