# Sourced by the benchmark scripts: `baseline_binary REV` builds revision REV
# of this repository (release profile) in a temporary git worktree, with its
# own target directory under $CARGO_TARGET_DIR/baseline, and prints the
# binary's path, so a benchmark runs the old and the new code side by side.
baseline_binary() {
  local rev=$1 tree sha cached
  sha=$(git rev-parse --verify "$rev^{commit}")
  cached=$CARGO_TARGET_DIR/baseline/bin/$sha/runner-identity
  # Built once per revision.
  if [ -x "$cached" ]; then echo "$cached"; return; fi
  tree=$(mktemp -d)/baseline
  git worktree add --detach "$tree" "$rev" >/dev/null 2>&1
  (cd "$tree" && CARGO_TARGET_DIR=$CARGO_TARGET_DIR/baseline cargo build --release --quiet) >&2
  git worktree remove --force "$tree" >/dev/null 2>&1
  mkdir -p "$(dirname "$cached")"
  cp "$CARGO_TARGET_DIR/baseline/release/runner-identity" "$cached"
  echo "$cached"
}
