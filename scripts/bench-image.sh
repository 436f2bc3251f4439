#!/usr/bin/env bash
# Benchmark: the image, per architecture, in one run: the time
# scripts/build-image.sh takes to build it from the prebuilt static binary
# (mean of RUNS), its sizes (binary, files unpacked, compressed layer), and
# the wall time of `verify job` on the local stack with the image's binary,
# natively (amd64) and under qemu-aarch64-static (arm64).
#   scripts/bench-image.sh [RUNS]     (default 3)
# The static binaries come from scripts/build-image-binary.sh (cached).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench-env.sh
runs=${1:-3}
amd64=${RUNNER_IDENTITY_IMAGE_BINARY:-$(scripts/build-image-binary.sh x86_64-unknown-linux-musl)}
arm64=${RUNNER_IDENTITY_IMAGE_BINARY_ARM64:-$(scripts/build-image-binary.sh aarch64-unknown-linux-musl)}
export RUNNER_IDENTITY_IMAGE_BINARY=$amd64 RUNNER_IDENTITY_IMAGE_BINARY_ARM64=$arm64
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# shellcheck source=scripts/lib/bench-job.sh
. scripts/lib/bench-job.sh

build_amd64() { scripts/build-image.sh "$work/layout-amd64" amd64 >/dev/null; }
build_arm64() { scripts/build-image.sh "$work/layout-arm64" arm64 >/dev/null; }
printf '%-52s %s\n' "build (mean of $runs)" "wall (ms)"
printf '%-52s %s\n' "scripts/build-image.sh DIR amd64" "$(mean_ms build_amd64)"
printf '%-52s %s\n' "scripts/build-image.sh DIR arm64" "$(mean_ms build_arm64)"

echo
printf '%-8s %14s %18s %22s\n' arch "binary (B)" "files unpacked (B)" "layer compressed (B)"
for arch in amd64 arm64; do
  layout=$work/layout-$arch
  umoci unpack --image "$layout:$arch" "$work/bundle-$arch" >/dev/null
  files=$(du -sb --apparent-size "$work/bundle-$arch/rootfs" | cut -f1)
  binary=$(stat -c %s "$work/bundle-$arch/rootfs/usr/local/bin/runner-identity")
  manifest=$(python3 -c '
import json, sys
layout = sys.argv[1]
index = json.load(open(f"{layout}/index.json"))
ref = [m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == sys.argv[2]][0]
manifest = json.load(open(f"{layout}/blobs/" + ref["digest"].replace(":", "/")))
print(sum(layer["size"] for layer in manifest["layers"]))' "$layout" "$arch")
  printf '%-8s %14s %18s %22s\n' "$arch" "$binary" "$files" "$manifest"
done

bench_job_setup "$amd64" "$work"
job_with() { AWS_ROLE_ARN=$role AWS_WEB_IDENTITY_TOKEN_FILE=$work/job-token "$@" verify job \
  -c "$work/config.yaml" --kubernetes-token /nonexistent >/dev/null; }
job_amd64() { job_with "$amd64"; }
job_arm64() { job_with qemu-aarch64-static "$arm64"; }
runs=$((runs * 5))
echo
printf '%-52s %s\n' "verify job (mean of $runs)" "wall (ms)"
printf '%-52s %s\n' "amd64 binary, native" "$(mean_ms job_amd64)"
printf '%-52s %s\n' "arm64 binary, qemu-aarch64-static" "$(mean_ms job_arm64)"
