#!/usr/bin/env bash
# Sets up everything (packages, wolfSSL, Prosody, ejabberd, Chromium), builds, and runs every test:
# unit, transcript, fuzz-corpus, interop with real servers and browser tests.
#   scripts/test.sh [-L LABEL] [-R REGEX]   (extra arguments go to ctest)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --all
scripts/build.sh
cd "${BUILD_DIR:-build}"
# Interop and browser tests hold a RESOURCE_LOCK, so -j2 only overlaps the unit tests. A test
# without its own TIMEOUT gets 300 s: a hung test fails instead of eating the CI budget.
ctest --output-on-failure -j2 --timeout 300 "$@"
