#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang and fuzzes each for a few seconds, starting from the
# committed corpus (which it never modifies: new inputs go to a scratch folder).
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
build=${BUILD_DIR:-build-fuzz}
CC=clang cmake -S . -B "$build" -DFEDGATE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc)" --target $targets >/dev/null
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail=0
for t in $targets; do
  mkdir -p "$scratch/$t"
  if "$build/tests/fuzz/$t" -max_total_time="$secs" -print_final_stats=0 -close_fd_mask=3 \
       -artifact_prefix="$scratch/" "$scratch/$t" "tests/fuzz/$t.in" >"$scratch/$t.log" 2>&1; then
    echo "fuzz $t: ok ($(grep -c . "$scratch/$t.log" || true) log lines, ${secs}s)"
  else
    echo "fuzz $t: FAILED"; tail -40 "$scratch/$t.log"; fail=1
    ls "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-* 2>/dev/null || true
  fi
done
exit $fail
