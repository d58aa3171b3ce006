#!/usr/bin/env bash
# Fails when a tracked or new C file is not formatted with the project's .clang-format.
set -u
cd "${1:-$(dirname "$0")/..}" || exit 2
files=$(git ls-files --cached --others --exclude-standard -- '*.c' '*.h' 2>/dev/null)
[ -n "$files" ] || files=$(find core io tls policy admin bench tests -name '*.[ch]' -not -path '*/node_modules/*')
bad=0
for f in $files; do
  [ -f "$f" ] || continue
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || { echo "not formatted: $f"; bad=1; }
done
[ $bad -eq 0 ] && echo "format: ok"
exit $bad
