# Helpers sourced by the cli_*.sh tests. Each test gets its own temporary directory, removed on exit.
set -u
ADMIN=${FEDGATE_ADMIN:?FEDGATE_ADMIN must name the fedgate-admin binary}
T=$(mktemp -d "${TMPDIR:-/tmp}/fedgate-cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
FAILS=0
CHECKS=0
S=$T/store # the default store of a test

fail() {
  echo "FAIL: $*" >&2
  FAILS=$((FAILS + 1))
}
ok() { CHECKS=$((CHECKS + 1)); }

# fa ARGS...: fedgate-admin on $S; stdout in $T/out, stderr in $T/err, exit status in $RC.
fa() {
  "$ADMIN" --store "$S" "$@" >"$T/out" 2>"$T/err"
  RC=$?
}

# expect CODE ARGS...: run fa and check the exit status.
expect() {
  local want=$1
  shift
  fa "$@"
  if [ "$RC" -ne "$want" ]; then
    fail "fedgate-admin $* exited $RC, expected $want; stderr: $(head -c 600 "$T/err")"
  else
    ok
  fi
}

# err_has REGEX: the last command's stderr matches (grep -E).
err_has() {
  if grep -qE -- "$1" "$T/err"; then ok; else fail "stderr lacks /$1/: $(head -c 600 "$T/err")"; fi
}
out_has() {
  if grep -qE -- "$1" "$T/out"; then ok; else fail "stdout lacks /$1/: $(head -c 600 "$T/out")"; fi
}
out_lacks() {
  if grep -qE -- "$1" "$T/out"; then fail "stdout has /$1/"; else ok; fi
}
# Every stderr line starts with "error:" or "warning:" (the documented diagnostics format).
err_clean() {
  if grep -vqE '^(error|warning): ' "$T/err"; then fail "stray stderr line: $(grep -vE '^(error|warning): ' "$T/err" | head -3)"; else ok; fi
}

# snapshot NAME: export of $S into $T/NAME.json (exact bytes, compared with same_file).
snapshot() {
  "$ADMIN" --store "$S" export -o "$T/$1.json" 2>"$T/snap.err" || fail "export for snapshot $1 failed: $(cat "$T/snap.err")"
}
same_file() {
  if cmp -s "$1" "$2"; then ok; else fail "$3: $(diff "$1" "$2" | head -20)"; fi
}

new_store() {
  rm -rf "$S"
  "$ADMIN" --store "$S" init >/dev/null 2>"$T/init.err" || { fail "init: $(cat "$T/init.err")"; exit 1; }
}

finish() {
  echo "$(basename "$0"): $CHECKS checks, $FAILS failures"
  [ "$FAILS" -eq 0 ]
  exit $?
}
