#!/usr/bin/env bash
# Builds the runner-identity image without a daemon and writes it, as an OCI
# image layout, to DIR: one image per architecture, tagged with its
# architecture (`DIR:amd64`), from the static binary, the CA bundle, busybox
# (sh, env, tail: the hooks start a step with `sh -e` and `exec env … `) and
# the job-started hook script. User 1001, the OCI annotations, and every
# timestamp from SOURCE_DATE_EPOCH (default: the last commit's time), so the
# same inputs give the same digest. umoci writes the layout; nothing here
# writes a tar by hand. action/Dockerfile describes the same image for
# engines that have one.
#
#   scripts/build-image.sh DIR [ARCH...]      # ARCH: amd64 (default)
#
# Each architecture needs its static binary (scripts/build-image-binary.sh
# for amd64) and a static busybox of that architecture: amd64 uses Debian's
# busybox-static (/bin/busybox). Other architectures are refused with what
# is missing: arm64 is not built yet.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "[build-image] $*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: scripts/build-image.sh DIR [ARCH...]"
out=$1
shift
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(amd64)

for tool in umoci; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install umoci (scripts/stack.sh install does)"
done

epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
source_url=${RUNNER_IDENTITY_SOURCE:-https://github.com/runner-identity/runner-identity}

binary_for() {
  case $1 in
    amd64) echo "${RUNNER_IDENTITY_IMAGE_BINARY:-$(scripts/build-image-binary.sh x86_64-unknown-linux-musl)}" ;;
    *) die "architecture $1 is not built yet (amd64 only): the static cross build and its busybox are issue 22's next step" ;;
  esac
}

busybox_for() {
  case $1 in
    amd64)
      # Debian's busybox-static is one static binary; a dynamic one would
      # not start in an image without a libc.
      file=${RUNNER_IDENTITY_BUSYBOX:-/bin/busybox}
      [ -x "$file" ] || die "$file is missing: apt-get install busybox-static"
      if ldd "$file" >/dev/null 2>&1; then
        die "$file is dynamically linked: apt-get install busybox-static"
      fi
      echo "$file" ;;
  esac
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
umoci gc --layout "$out"
echo "$out"
