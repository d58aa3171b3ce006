#!/usr/bin/env bash
# Two fedgate-admin processes committing at once lose no update: 2 x 200 partner adds, and
# 2 x 30 read-modify-write edits of the same partner, all in parallel.
. "$(dirname "$0")/lib.sh"
N=${CLI_CONCURRENT_N:-200}
E=30
new_store
"$ADMIN" --store "$S" partner new shared.example --dialback false >/dev/null 2>&1 || fail "seed"
c0=$("$ADMIN" --store "$S" status --json | sed -E 's/.*"change_counter":([0-9]+).*/\1/')

writer() { # writer ID
  local bad=0
  for i in $(seq 1 "$N"); do
    "$ADMIN" --store "$S" partner new "w$1-$i.example" --dialback false >/dev/null 2>>"$T/w$1.err" || bad=$((bad + 1))
    if [ "$i" -le $E ]; then
      "$ADMIN" --store "$S" partner set shared.example --add-domain "e$1-$i.example" >/dev/null 2>>"$T/w$1.err" || bad=$((bad + 1))
    fi
  done
  echo "$bad" >"$T/w$1.bad"
}
writer 1 &
p1=$!
writer 2 &
p2=$!
wait $p1 $p2
for w in 1 2; do
  [ "$(cat "$T/w$w.bad")" = 0 ] && ok || fail "writer $w: $(cat "$T/w$w.bad") commands failed: $(head -3 "$T/w$w.err")"
done
for w in 1 2; do
  n=$("$ADMIN" --store "$S" partner get --filter "w$w-*" | grep -c '^Identity')
  [ "$n" -eq "$N" ] && ok || fail "writer $w: $n of $N partners stored"
done
"$ADMIN" --store "$S" partner get shared.example >"$T/out"
n=$(grep -o 'e[12]-[0-9]*\.example' "$T/out" | sort -u | wc -l)
[ "$n" -eq $((2 * E)) ] && ok || fail "shared.example has $n of $((2 * E)) additional domains: an edit was lost"
c1=$("$ADMIN" --store "$S" status --json | sed -E 's/.*"change_counter":([0-9]+).*/\1/')
[ $((c1 - c0)) -eq $((2 * N + 2 * E)) ] && ok || fail "change counter moved by $((c1 - c0)), expected $((2 * N + 2 * E))"
n=$("$ADMIN" --store "$S" audit --since 1h | grep -c 'partner new w')
[ "$n" -eq $((2 * N)) ] && ok || fail "audit has $n partner new entries, expected $((2 * N))"
finish
