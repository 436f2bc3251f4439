#!/usr/bin/env bash
# Builds the runner-identity image without a daemon and writes it, as an OCI
# image layout, to DIR: one image per architecture, tagged with its
# architecture (`DIR:amd64`), from the static binary, the CA bundle, busybox
# (sh, env, tail: the hooks start a step with `sh -e` and `exec env … `),
# the job-started hook script and an SPDX SBOM (scripts/sbom.py) at
# /usr/share/doc/runner-identity/sbom.spdx.json. User 1001, the OCI annotations, and every
# timestamp from SOURCE_DATE_EPOCH (default: the last commit's time), so the
# same inputs give the same digest. umoci writes the layout; nothing here
# writes a tar by hand. action/Dockerfile describes the same image for
# engines that have one.
#
#   scripts/build-image.sh DIR [ARCH...]      # ARCH: amd64, arm64 (default both)
#
# DIR:amd64 and DIR:arm64 are the platform images; DIR:index is the
# multi-arch image index over them (buildah manifest, pushed with --all), the
# reference to publish. Each architecture needs its static binary
# (scripts/build-image-binary.sh TARGET; RUNNER_IDENTITY_IMAGE_BINARY and
# RUNNER_IDENTITY_IMAGE_BINARY_ARM64 name prebuilt ones) and a static busybox
# of that architecture: Debian's busybox-static (/bin/busybox for amd64; the
# arm64 package, which scripts/stack.sh install fetches into the cache;
# RUNNER_IDENTITY_BUSYBOX and RUNNER_IDENTITY_BUSYBOX_ARM64 name others).
# umoci unpacks and repacks as root (file owners are kept as they are).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "[build-image] $*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: scripts/build-image.sh DIR [ARCH...]"
out=$1
shift
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(amd64 arm64)

for tool in umoci buildah; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install $tool (scripts/stack.sh install does)"
done
cache=${RUNNER_IDENTITY_CACHE:-$HOME/.cache/runner-identity}

epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
revision=${RUNNER_IDENTITY_REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
source_url=${RUNNER_IDENTITY_SOURCE:-https://github.com/runner-identity/runner-identity}

binary_for() {
  case $1 in
    amd64) echo "${RUNNER_IDENTITY_IMAGE_BINARY:-$(scripts/build-image-binary.sh x86_64-unknown-linux-musl)}" ;;
    arm64) echo "${RUNNER_IDENTITY_IMAGE_BINARY_ARM64:-$(scripts/build-image-binary.sh aarch64-unknown-linux-musl)}" ;;
    *) die "architecture $1 is not one this image is built for (amd64, arm64)" ;;
  esac
}

busybox_for() {
  # Debian's busybox-static is one static binary; a dynamic one would not
  # start in an image without a libc.
  case $1 in
    amd64) file=${RUNNER_IDENTITY_BUSYBOX:-/bin/busybox} ;;
    arm64) file=${RUNNER_IDENTITY_BUSYBOX_ARM64:-$cache/busybox/arm64/busybox} ;;
  esac
  [ -x "$file" ] || die "$file is missing: scripts/stack.sh install fetches Debian's busybox-static"
  if [ "$1" = amd64 ] && ldd "$file" >/dev/null 2>&1; then
    die "$file is dynamically linked: apt-get install busybox-static"
  fi
  echo "$file"
}

ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca_bundle" ] || die "$ca_bundle is missing: apt-get install ca-certificates"

rm -rf "$out"
umoci init --layout "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for arch in "${arches[@]}"; do
  binary=$(binary_for "$arch")
  busybox=$(busybox_for "$arch")
  image="$out:$arch"
  umoci new --image "$image"
  bundle="$work/$arch"
  umoci unpack --image "$image" "$bundle" >/dev/null
  root="$bundle/rootfs"
  install -D -m 0755 "$binary" "$root/usr/local/bin/runner-identity"
  install -D -m 0755 "$busybox" "$root/bin/busybox"
  for applet in sh env tail cat; do
    ln -s busybox "$root/bin/$applet"
  done
  install -D -m 0644 "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
  install -D -m 0755 action/job-started.sh "$root/opt/runner-identity/bin/job-started.sh"
  # The SBOM travels inside the image: the loopback test registry (the
  # distribution registry 2.8) has no referrers API to attach it beside.
  case $arch in amd64) triple=x86_64-unknown-linux-musl ;; arm64) triple=aarch64-unknown-linux-musl ;; esac
  sbom="$root/usr/share/doc/runner-identity/sbom.spdx.json"
  mkdir -p "$(dirname "$sbom")"
  SOURCE_DATE_EPOCH=$epoch RUNNER_IDENTITY_REVISION=$revision scripts/sbom.py "$triple" \
    /usr/local/bin/runner-identity="$root/usr/local/bin/runner-identity" \
    /bin/busybox="$root/bin/busybox" \
    /etc/ssl/certs/ca-certificates.crt="$root/etc/ssl/certs/ca-certificates.crt" \
    /opt/runner-identity/bin/job-started.sh="$root/opt/runner-identity/bin/job-started.sh" \
    >"$sbom"
  # The same bytes and times every build: the layer's digest follows.
  find "$root" -exec touch -h -d "@$epoch" {} +
  umoci repack --image "$image" --history.created "$created" \
    --history.created_by "scripts/build-image.sh" "$bundle" >/dev/null
  umoci config --image "$image" \
    --os linux --architecture "$arch" \
    --created "$created" --history.created "$created" \
    --history.created_by "scripts/build-image.sh (config)" \
    --config.user 1001:1001 \
    --config.entrypoint /usr/local/bin/runner-identity \
    --config.cmd action \
    --config.env PATH=/usr/local/bin:/bin \
    --config.label org.opencontainers.image.title=runner-identity \
    --manifest.annotation org.opencontainers.image.source="$source_url" \
    --manifest.annotation org.opencontainers.image.revision="$revision" \
    --manifest.annotation org.opencontainers.image.version="$version" \
    --manifest.annotation org.opencontainers.image.licenses=Apache-2.0 \
    --manifest.annotation org.opencontainers.image.created="$created"
done
# The multi-arch index: buildah's manifest list, written into the layout
# as an OCI image index (`DIR:index`), in a storage of its own.
store="$work/buildah"
bah() { buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs "$@"; }
bah manifest create runner-identity-index >/dev/null
for arch in "${arches[@]}"; do
  bah manifest add --os linux --arch "$arch" runner-identity-index "oci:$out:$arch" >/dev/null
done
bah manifest push --quiet --all --format oci runner-identity-index "oci:$out:index"
umoci gc --layout "$out"
echo "$out"
