#!/usr/bin/env bash
# Every verb of fedgate-admin through the real binary, and each documented exit status.
. "$(dirname "$0")/lib.sh"

# --- store resolution, init, status ---
expect 2 # no verb
expect 0 help
out_has 'partner new\|set\|get\|remove'
expect 0 version
expect 2 frobnicate
err_has "unknown verb 'frobnicate'"
expect 5 status # no store yet
err_has "does not exist; create it with: fedgate-admin --store .* init"
expect 0 init
out_has "ready"
expect 0 init # idempotent
expect 0 status
out_has '^Store +: '
out_has '^SchemaVersion +: 1'
out_has '^ChangeCounter +: [0-9]+'
out_has '^Partners +: 0'
out_has '^LastChange +: .*init'
out_has '^EnableXmppAccess +: False \(global\)'
expect 0 status --json
out_has '"partners":0'
# $FEDGATE_STORE is used when --store is absent; --store wins over it.
FEDGATE_STORE=$S "$ADMIN" status >"$T/out" 2>"$T/err" && ok || fail "FEDGATE_STORE not used: $(cat "$T/err")"
FEDGATE_STORE=$T/nowhere "$ADMIN" --store "$S" status >"$T/out" 2>&1 && ok || fail "--store did not win over FEDGATE_STORE"
"$ADMIN" status --store="$S" >/dev/null 2>&1 && ok || fail "--store=DIR after the verb"
# An unwritable default is a clear store error, not a crash.
if [ "$(id -u)" -ne 0 ]; then
  mkdir -p "$T/ro" && chmod 0555 "$T/ro"
  "$ADMIN" --store "$T/ro/store" init >"$T/out" 2>"$T/err"; RC=$?
  [ $RC -eq 5 ] && ok || fail "init in unwritable dir exited $RC"
  err_has "writable|ermission"
fi
"$ADMIN" --store /dev/null/store init >"$T/out" 2>"$T/err"; RC=$?
[ $RC -eq 5 ] && ok || fail "init under a file exited $RC"
err_has '/dev/null/store'
D=$T/demo
"$ADMIN" --store "$D" init --demo >/dev/null 2>&1 || fail "init --demo"
"$ADMIN" --store "$D" access get global >"$T/out" 2>&1
out_has 'True'

# --- partner ---
expect 0 partner new fabrikam.com --additional-domains research.fabrikam2.com
err_has '^warning: .*dialback' # row 1: Lync's defaults are a warning configuration
err_clean
out_has '^Identity +: fabrikam.com'
out_has '^PartnerType +: PublicUnverified'
out_has '^TlsNegotiation +: Required'
out_has '^SaslNegotiation +: Required'
out_has '^SupportDialbackNegotiation +: True'
out_has '^EnableKeepAlive +: True'
expect 4 partner new fabrikam.com
err_has 'fabrikam.com'
expect 4 partner new other.example --additional-domains research.fabrikam2.com
err_has 'fabrikam.com' # names the partner that owns the domain
expect 0 partner new gmail.com --tls not-supported --sasl not-supported --keepalive false --dialback true --description "Google Talk"
expect 0 partner new --identity contoso.com --type PublicVerified --sasl optional --connection-limit 50
expect 2 partner new --identity a.example --domain a.example
expect 2 partner new
expect 2 partner new x.example --bogus 1
err_has 'unknown option --bogus'
expect 0 partner get
out_has '^Identity +: contoso.com'
out_has '^Identity +: gmail.com'
expect 0 partner get contoso.com
out_has '^ConnectionLimit +: 50'
out_has '^PartnerType +: PublicVerified'
expect 0 partner get --filter '*.com'
out_has gmail.com
expect 0 partner get --filter 'g*'
out_lacks contoso
expect 0 partner get --filter 'nomatch*'
out_lacks Identity
expect 3 partner get nowhere.example
err_has 'nowhere.example'
expect 3 partner get research.fabrikam2.com
err_has 'additional domain of fabrikam.com'
expect 2 partner get a.example --filter '*'
expect 0 partner get --json
out_has '"partners"'
out_has '"domain": ?"gmail.com"'
expect 0 partner set contoso.com --dialback false --description "set by test"
out_has '^SupportDialbackNegotiation +: False'
expect 0 partner set fabrikam.com --add-domain a.fabrikam.com --add-domain b.fabrikam.com --remove-domain research.fabrikam2.com
out_has 'a.fabrikam.com'
out_lacks 'research.fabrikam2.com'
expect 3 partner set fabrikam.com --remove-domain never.example
err_has 'never.example'
expect 4 partner set fabrikam.com --add-domain gmail.com
expect 0 partner set fabrikam.com --clear-domains
out_lacks 'a.fabrikam.com'
expect 0 partner set fabrikam.com --connection-limit unset
expect 2 partner set fabrikam.com
err_has 'nothing to change'
expect 3 partner set nowhere.example --dialback false
expect 1 partner set gmail.com --sasl required
err_has '^error: .*(tls|sasl)'
expect 0 partner remove contoso.com
expect 3 partner remove contoso.com
expect 3 partner get contoso.com

# --- gateway ---
expect 0 gateway get
out_has '^ConnectionLimit +: 1000'
out_has '^PartnerConnectionLimit +: 20'
out_has '^KeepAliveInterval +: 300'
out_has '^StreamEstablishmentTimeout +: 60'
out_has '^StreamInactivityTimeout +: 600'
out_has '^SubscriptionRefreshInterval +: 28800'
out_has '^EnableLoggingAllMessageBodies +: False'
out_has '^DialbackPassphrase +: \(set\)'
expect 0 gateway get --show-passphrase
out_has '^DialbackPassphrase +: [0-9a-f]{64}'
old=$(grep DialbackPassphrase "$T/out")
expect 0 gateway get --json
out_lacks "$(echo "$old" | sed 's/.*: //')"
expect 0 gateway set --connection-limit 500 --partner-connection-limit 10 --log-message-bodies true
out_has '^ConnectionLimit +: 500'
printf 'shared-secret-of-the-pool\n' >"$T/pass"
expect 0 gateway set --dialback-passphrase-file "$T/pass"
expect 0 gateway get --show-passphrase
out_has 'shared-secret-of-the-pool'
expect 0 gateway set --generate-passphrase
expect 0 gateway get --show-passphrase
out_lacks 'shared-secret-of-the-pool'
expect 2 gateway set --dialback-passphrase-file "$T/missing"
expect 1 gateway set --connection-limit -5
err_has 'connection-limit.*-5'
expect 2 gateway set
expect 3 gateway get site:redmond
expect 2 gateway frob

# --- hosted domains ---
expect 0 domain new chat.example.net --cert /etc/fedgate/chat.pem --key /etc/fedgate/chat.key --secret s3cret
out_has '^Identity +: chat.example.net'
expect 4 domain new chat.example.net --cert /etc/fedgate/chat.pem --key /etc/fedgate/chat.key --secret s3cret
expect 0 domain set chat.example.net --route s2s --target 10.0.0.5:5269
out_has 's2s'
expect 0 domain get
out_has chat.example.net
expect 0 domain get chat.example.net --json
out_has '"hosted"'
out_lacks s3cret
expect 3 domain get nowhere.example
expect 4 partner new chat.example.net # hosted and partner domains never overlap
expect 0 domain remove chat.example.net
expect 3 domain remove chat.example.net

# --- access ---
expect 0 access set global true
expect 0 access set domain:chat.example.net false
expect 0 access set user:alice@chat.example.net true
expect 0 access get
out_has global
out_has 'domain:chat.example.net'
expect 0 access check alice@chat.example.net
out_has 'True'
expect 0 access check bob@chat.example.net
out_has 'False'
expect 0 access remove domain:chat.example.net
expect 3 access remove domain:chat.example.net
expect 3 access get domain:chat.example.net
expect 1 access set global maybe
expect 1 access set 'domain:bad..example' true
expect 2 access set global

# --- export / import / audit ---
expect 0 export
out_has '"partners"'
expect 0 export -o "$T/e.json"
[ -s "$T/e.json" ] && ok || fail "export -o wrote nothing"
expect 0 import "$T/e.json"
"$ADMIN" --store "$S" import - <"$T/e.json" >"$T/out" 2>"$T/err" && ok || fail "import from stdin: $(cat "$T/err")"
expect 2 import "$T/does-not-exist.json"
expect 2 import
expect 0 audit
out_has 'partner new fabrikam.com'
out_has "os:$(id -un)"
out_has '^    .*dialback: true -> false' # what each update changed
out_has '^    connection_limit: 1000 -> 500'
out_has 'gateway'
expect 0 audit --json
out_has '"verb"'
expect 0 audit --since 1h
out_has 'partner'
expect 0 audit --since 2999-01-01
out_lacks 'partner'
expect 2 audit --since yesterday-ish

# --- the control panel's verbs are dispatched with the same store ---
expect 0 user list
expect 2 user
expect 0 serve --help
finish
