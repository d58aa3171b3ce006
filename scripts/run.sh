#!/usr/bin/env bash
# Sets everything up, builds, creates a default store on first run, and runs fedgate on it.
#   scripts/run.sh            store in ./var/store (or $FEDGATE_STORE)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
export FEDGATE_STORE=${FEDGATE_STORE:-$PWD/var/store}
admin=build/admin/fedgate-admin
if [ ! -f "$FEDGATE_STORE/data.mdb" ]; then
  mkdir -p "$FEDGATE_STORE"
  "$admin" init --demo
fi
if [ -x build/io/fedgate ]; then
  exec build/io/fedgate --store "$FEDGATE_STORE"
fi
"$admin" status
