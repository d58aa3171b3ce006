#!/usr/bin/env bash
# status shows the schema version stored in the store, not the one this build writes.
. "$(dirname "$0")/lib.sh"
new_store
expect 0 status
out_has '^SchemaVersion +: 1$'
expect 0 status --json
out_has '"schema_version":1,'
if command -v mdb_dump >/dev/null && command -v mdb_load >/dev/null; then
  # An older store: meta/schema_version is a 4-byte little-endian integer; make it 0.
  mdb_dump -s meta "$S" >"$T/meta.dump" || fail "mdb_dump meta"
  awk -v key=" $(printf schema_version | od -An -tx1 | tr -d ' \n')" \
    'prev == key { $0 = " 00000000" } { print; prev = $0 }' "$T/meta.dump" >"$T/meta.new"
  cmp -s "$T/meta.dump" "$T/meta.new" && fail "schema_version not found in the meta dump"
  mdb_load -s meta -f "$T/meta.new" "$S" 2>/dev/null || fail "mdb_load meta"
  expect 0 status
  out_has '^SchemaVersion +: 0$'
  expect 0 status --json
  out_has '"schema_version":0,'
else
  echo "skip: lmdb-utils (mdb_dump/mdb_load) not installed"
fi
finish
