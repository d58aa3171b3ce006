#!/usr/bin/env bash
# SIGKILL in the middle of a large import, many times: the store is always exactly as before or
# exactly as after (exports compared byte for byte), and still opens.
. "$(dirname "$0")/lib.sh"
ROUNDS=${CLI_KILL_ROUNDS:-25}
P=${CLI_KILL_PARTNERS:-20000}
new_store
"$ADMIN" --store "$S" partner new before.example --dialback false >/dev/null 2>&1
snapshot before
# One big import file (JSON) and the store it produces, made once on a scratch store.
{
  printf '{"partners": [\n'
  for i in $(seq 1 "$P"); do
    printf '{"domain": "k%d.example", "dialback": false, "description": "bulk %d"},\n' "$i" "$i"
  done
  printf '{"domain": "before.example", "dialback": false, "description": "after the import"}\n]}\n'
} >"$T/big.json"
cp -r "$S" "$T/base"
cp -r "$S" "$T/scratch"
start=$(date +%s%N)
"$ADMIN" --store "$T/scratch" import "$T/big.json" >/dev/null 2>"$T/err" || fail "reference import: $(cat "$T/err")"
dur_ms=$((($(date +%s%N) - start) / 1000000))
"$ADMIN" --store "$T/scratch" export -o "$T/after.json"
echo "reference import of $P partners: ${dur_ms} ms"
[ "$dur_ms" -lt 20 ] && dur_ms=20

befores=0 afters=0
for r in $(seq 1 "$ROUNDS"); do
  # Kill points spread over the whole run, including the commit itself.
  delay_ms=$((RANDOM % (dur_ms + dur_ms / 2 + 1)))
  "$ADMIN" --store "$S" import "$T/big.json" >/dev/null 2>&1 &
  pid=$!
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  "$ADMIN" --store "$S" export -o "$T/now.json" 2>"$T/err" || { fail "round $r: store unreadable after SIGKILL: $(cat "$T/err")"; break; }
  if cmp -s "$T/now.json" "$T/before.json"; then
    befores=$((befores + 1)); ok
  elif cmp -s "$T/now.json" "$T/after.json"; then
    afters=$((afters + 1)); ok
    rm -rf "$S" && cp -r "$T/base" "$S" # back to the before state for the next round
  else
    fail "round $r (kill after ${delay_ms} ms): store is neither before nor after: $(diff "$T/before.json" "$T/now.json" | head -5)"
  fi
done
echo "$ROUNDS rounds: $befores left the store as before, $afters as after"
finish
