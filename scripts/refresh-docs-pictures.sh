#!/usr/bin/env bash
# Refresh the screenshots in docs/ (call-page.png, dashboard.png, dashboard-egress.png).
# The tests that take them write under build/screenshots/ only; this runs those
# tests and copies their pictures over the tracked ones. Review `git diff --stat docs`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export MEDIAPLANE_ENV=test
: "${MEDIASOUP_WORKER_BIN:=${MEDIAPLANE_CACHE_DIR:-/var/cache/mediaplane}/worker/current/mediasoup-worker}"
export MEDIASOUP_WORKER_BIN
rm -f build/screenshots/*.png
.venv/bin/pytest -q -p no:cacheprovider \
  "tests/integration/test_web_call.py::test_admin_records_from_the_dashboard" \
  "tests/integration/test_web_dashboard_media.py"
for name in call-page.png dashboard.png dashboard-egress.png; do
  cp "build/screenshots/$name" "docs/$name"
  echo "docs/$name refreshed"
done
