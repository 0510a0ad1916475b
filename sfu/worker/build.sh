#!/usr/bin/env bash
# Builds the mediasoup worker from the sources in mediasoup's npm tarball,
# against Debian 12's own libraries, with our patches (see docs/worker-build.md).
#
# Why: mediasoup's install step downloads a prebuilt worker and its source
# build downloads its C++ dependencies through meson wraps; neither host is
# reachable here. The result is cached outside the work tree, keyed by the
# mediasoup version and a hash of the patches and of this script, so later
# runs (and CI on the same machine) reuse it.
#
# Prints the path of the worker binary on the last line of stdout.
# Env: MEDIAPLANE_CACHE_DIR (default /var/cache/mediaplane).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
sfu_dir=$(cd "$here/.." && pwd)
cache_root=${MEDIAPLANE_CACHE_DIR:-/var/cache/mediaplane}
cache=$cache_root/worker
jobs=${MEDIAPLANE_BUILD_JOBS:-$(nproc)}

log() { printf '[worker-build] %s\n' "$*" >&2; }

version=$(sed -n 's/^[[:space:]]*"mediasoup":[[:space:]]*"\([0-9.]*\)".*/\1/p' "$sfu_dir/package.json")
[[ -n $version ]] || { log "cannot read the mediasoup version from $sfu_dir/package.json"; exit 1; }

key_hash=$(cat "$here"/patches/*.patch "$here/build.sh" | sha256sum | cut -c1-12)
key="$version-$key_hash"
out_dir=$cache/$key
bin=$out_dir/mediasoup-worker

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

if [[ -x $bin ]]; then
  ln -sfn "$key" "$cache/current"
  log "cached worker $key"
  echo "$bin"
  exit 0
fi

need=()
for tool in pkg-config g++ flatc patch; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
for pc in libuv openssl libsrtp2 flatbuffers absl_strings absl_optional absl_flat_hash_map; do
  pkg-config --exists "$pc" 2>/dev/null || need+=("pkg-config:$pc")
done
if ((${#need[@]})); then
  log "missing build dependencies: ${need[*]}"
  log "install: apt-get install build-essential pkg-config python3-venv libssl-dev libuv1-dev libsrtp2-dev libabsl-dev flatbuffers-compiler libflatbuffers-dev"
  exit 1
fi

# meson and ninja from PyPI in a private venv (Debian 12's meson is too old).
tools=$cache_root/buildtools
if [[ ! -x $tools/bin/meson || ! -x $tools/bin/ninja ]]; then
  log "installing meson and ninja into $tools"
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check 'meson>=1.1' ninja
fi

work=$(mktemp -d "$cache/build-$key.XXXXXX")
trap 'rm -rf "$work"' EXIT

log "fetching mediasoup $version sources (npm pack)"
(cd "$work" && npm pack --silent "mediasoup@$version" >/dev/null)
tar -xzf "$work/mediasoup-$version.tgz" -C "$work"

for p in "$here"/patches/*.patch; do
  log "applying $(basename "$p")"
  patch --quiet --forward -p1 -d "$work/package" <"$p"
done

log "building (about 4 minutes on 2 cores)"
(
  cd "$work/package/worker"
  "$tools/bin/meson" setup --buildtype release -Db_ndebug=true --wrap-mode=nodownload "$work/build" >&2
  "$tools/bin/ninja" -C "$work/build" -j "$jobs" mediasoup-worker >&2
)

mkdir -p "$out_dir.tmp"
cp "$work/build/mediasoup-worker" "$out_dir.tmp/"
rm -rf "$out_dir"
mv "$out_dir.tmp" "$out_dir"
ln -sfn "$key" "$cache/current"
log "built $bin"
echo "$bin"
