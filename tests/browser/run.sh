#!/usr/bin/env bash
# Runs the control panel browser tests: run.sh PATH-TO-fedgate-admin
# Exit 77 (skipped) when chromium or playwright-core is missing (scripts/setup.sh --browser).
set -euo pipefail
cd "$(dirname "$0")"
export FEDGATE_ADMIN=${1:-${FEDGATE_ADMIN:-../../build/admin/fedgate-admin}}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ] || [ ! -d node_modules/playwright-core ]; then
  echo "browser tests skipped: run scripts/setup.sh --browser (chromium, npm ci)"
  exit 77
fi
mkdir -p artifacts
exec node --test --test-concurrency=1 panel.test.mjs
