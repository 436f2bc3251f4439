#!/usr/bin/env bash
# Builds the binary the action image ships: static (musl), Cargo profile
# `dist`, as action/Dockerfile does, and prints its path. Installs the musl
# target and musl-gcc (for aws-lc-sys's C code) when missing.
#   scripts/build-image-binary.sh [TARGET]   # default x86_64-unknown-linux-musl
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-x86_64-unknown-linux-musl}
cache=${RUNNER_IDENTITY_CACHE:-$HOME/.cache/runner-identity}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}

if ! rustup target list --installed | grep -qx "$target"; then
  echo "[image-binary] adding the Rust target $target" >&2
  rustup target add "$target" >&2
fi
if ! command -v musl-gcc >/dev/null; then
  echo "[image-binary] installing musl-tools" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo=sudo; fi
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q musl-tools >/dev/null
fi
cargo build --locked --quiet --profile dist --target "$target" --bin runner-identity >&2
echo "$CARGO_TARGET_DIR/$target/dist/runner-identity"
