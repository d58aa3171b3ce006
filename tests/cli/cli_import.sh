#!/usr/bin/env bash
# import: all or nothing, every invalid entry reported; the PowerShell Export-Csv migration path.
. "$(dirname "$0")/lib.sh"
F=$FEDGATE_SOURCE_DIR/tests/cli/fixtures
new_store
"$ADMIN" --store "$S" partner new existing.example --dialback false >/dev/null 2>&1
snapshot before

# Five bad entries among good ones: all five are reported, nothing is saved.
cat >"$T/bad.json" <<'J'
{"partners": [
  {"domain": "good1.example", "dialback": false},
  {"domain": "bad domain.example"},
  {"domain": "good2.example", "tls": "Optional", "sasl": "Optional"},
  {"domain": "enum.example", "tls": "Sometimes"},
  {"domain": "neg.example", "connection_limit": -4},
  {"domain": "matrix.example", "tls": "NotSupported", "sasl": "Required", "dialback": false},
  {"domain": "dup.example", "additional_domains": ["existing.example"]}
]}
J
expect 1 import "$T/bad.json"
err_has 'bad domain\.example'
err_has 'Sometimes'
err_has 'connection_limit.*-4'
err_has 'matrix\.example'
err_has 'existing\.example'
err_has 'nothing was saved'
n=$(grep -c '^error: ' "$T/err")
[ "$n" -ge 6 ] && ok || fail "expected every invalid entry reported, got $n error lines"
err_clean
snapshot after
same_file "$T/before.json" "$T/after.json" "a refused import changed the store"

# Duplicates inside one file are reported too.
cat >"$T/dup.json" <<'J'
{"partners": [{"domain": "one.example", "additional_domains": ["shared.example"], "dialback": false},
              {"domain": "two.example", "additional_domains": ["shared.example"], "dialback": false}]}
J
expect 1 import "$T/dup.json"
err_has 'shared\.example'
# Truncated and malformed JSON.
head -c 60 "$T/bad.json" >"$T/trunc.json"
expect 1 import "$T/trunc.json"
err_has '^error: '
printf '{"partners": [}' >"$T/junk.json"
expect 1 import "$T/junk.json"
snapshot after2
same_file "$T/before.json" "$T/after2.json" "a refused import changed the store"

# A good JSON import: created and updated in one go.
cat >"$T/good.json" <<'J'
[{"domain": "existing.example", "dialback": false, "description": "updated"},
 {"domain": "new.example", "type": "Federated", "sasl": "Optional"}]
J
expect 0 import "$T/good.json"
expect 0 partner get existing.example
out_has 'updated'
expect 0 partner get new.example
out_has Federated

# PowerShell 5.1 Export-Csv (#TYPE line, CRLF, quoted fields, "" escapes, a multi-line note).
S=$T/csv
new_store
expect 0 import "$F/lync_partners.csv"
out_has '5 partners created'
err_has '^warning: .*line breaks'
err_has '^warning: line 6: tls: .*row 9' # jabber.example.org: TLS Optional + SASL Optional
err_clean
expect 0 partner get fabrikam.com
out_has '^ConnectionLimit +: 50'
out_has 'research\.fabrikam2\.com'
out_has 'sales\.fabrikam\.com'
out_has '^PartnerType +: Federated'
out_has '^SupportDialbackNegotiation +: False'
out_has 'xmpp-edge\.fabrikam\.com'
out_has '"XMPP team"'
expect 0 partner get gmail.com
out_has '^TlsNegotiation +: NotSupported'
out_has '^EnableKeepAlive +: False'
out_has '^ConnectionLimit +: *$|unset'
expect 0 partner get partner.example.com
out_has '^ConnectionLimit +: 0'
# Importing the same file again updates, creates nothing.
expect 0 import "$F/lync_partners.csv"
out_has '0 partners created, 0 updated'
out_has '5 unchanged'
# PowerShell 7 from a remote session: BOM, LF, no #TYPE, PS columns, "{a, b}" list display.
expect 0 import "$F/lync_partners_ps7.csv"
expect 0 partner get northwind.com
out_has 'chat\.northwind\.com'
out_has 'im\.northwind\.com'
# Export-Csv -UseCulture -Encoding Unicode on a German system: UTF-16LE, ';' separator, umlauts.
expect 0 import "$F/lync_partners_de_utf16.csv"
out_has '1 partner created'
expect 0 partner get 'bücher.example'
out_has 'xn--bcher-kva\.example'
out_has 'verlag\.xn--bcher-kva\.example'
out_has 'shop\.example'
out_has 'Müller & Söhne GmbH; Kontakt'
out_has '^ConnectionLimit +: 25'
# A list exported without -join is refused with the fix.
snapshot csvbefore
expect 1 import "$F/lync_partners_typename.csv"
err_has 'AdditionalDomains|additional_domains'
err_has '-join'
# Several bad rows: every one is reported with its line, nothing saved.
printf '%s\r\n' '"Identity","Domain","TlsNegotiation","SaslNegotiation","SupportDialbackNegotiation","ConnectionLimit","PartnerType"' \
  '"ok.example","ok.example","Required","Required","False","","Federated"' \
  '"bad_name.example","bad_name.example","Required","Required","False","","Federated"' \
  '"x.example","y.example","Required","Required","False","","Federated"' \
  '"lim.example","lim.example","Required","Required","False","-1","Federated"' \
  '"enum.example","enum.example","Mandatory","Required","False","","Federated"' \
  '"type.example","type.example","Required","Required","False","","Trusted"' \
  '"gmail.com","gmail.com","Required","Required","False","","Federated"' \
  '"ok.example","ok.example","Required","Required","False","","Federated"' >"$T/badrows.csv"
expect 1 import "$T/badrows.csv"
for l in 'line 3' 'line 4' 'line 5' 'line 6' 'line 7' 'line 9'; do err_has "$l"; done
err_has 'nothing was saved'
printf '"Identity","Domain"\r\n"open.example' >"$T/trunc.csv"
expect 1 import "$T/trunc.csv"
err_has 'line 2'
printf '"Name","Value"\r\n"a","b"\r\n' >"$T/nocols.csv"
expect 1 import "$T/nocols.csv"
err_has 'Identity or Domain'
snapshot csvafter
same_file "$T/csvbefore.json" "$T/csvafter.json" "a refused CSV import changed the store"
finish
