#!/usr/bin/env bash
# Builds the binary the action image ships: static (musl), Cargo profile
# `dist`, as action/Dockerfile does, and prints its path. Installs the musl
# target and musl-gcc (for aws-lc-sys's C code) when missing.
#   scripts/build-image-binary.sh [TARGET]   # default x86_64-unknown-linux-musl
# aarch64-unknown-linux-musl is cross-built with cargo-zigbuild: zig is one
# self-contained C toolchain and libc for every target (aws-lc-sys's C and
# assembly included), from PyPI (ziglang, cargo-zigbuild) into a venv in the
# cache; Debian's cross gcc would need a musl sysroot it does not ship.
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
case $target in
  x86_64-*)
    cargo build --locked --quiet --profile dist --target "$target" --bin runner-identity >&2 ;;
  *)
    venv=$cache/zig-venv
    if [ ! -x "$venv/bin/cargo-zigbuild" ]; then
      echo "[image-binary] installing ziglang and cargo-zigbuild into $venv" >&2
      python3 -m venv "$venv" >&2
      "$venv/bin/pip" install -q --require-hashes -r scripts/requirements-zig.txt >&2
    fi
    PATH="$venv/bin:$PATH" cargo zigbuild --locked --quiet --profile dist --target "$target" \
      --bin runner-identity >&2 ;;
esac
echo "$CARGO_TARGET_DIR/$target/dist/runner-identity"
