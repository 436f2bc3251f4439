#!/usr/bin/env bash
# Times `runner-identity plan` (release build) for N generated repositories,
# side by side with a baseline revision built from this repository's history.
#   scripts/bench-plan.sh [N...]             (default: 100 1000 5000)
#   BASELINE=<rev> scripts/bench-plan.sh ... (default baseline: none)
#   FORMATS="yaml json" scripts/bench-plan.sh ... (default: yaml json)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${RUNNER_IDENTITY_CACHE:-$HOME/.cache/runner-identity}/target}
cargo build --release --quiet
bins=("current=$CARGO_TARGET_DIR/release/runner-identity")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# shellcheck source=scripts/lib/baseline.sh
. scripts/lib/baseline.sh
if [ -n "${BASELINE:-}" ]; then bins+=("$BASELINE=$(baseline_binary "$BASELINE")"); fi
[ $# -gt 0 ] || set -- 100 1000 5000
printf '%-12s %-6s %-8s %-12s %-12s %s\n' binary format repos "wall (s)" "max RSS (MB)" "objects"
for n in "$@"; do
  cfg=$work/$n.yaml
  sed -n '1,/^repositories:/p' examples/org-irsa.yaml >"$cfg"
  for i in $(seq 1 "$n"); do printf '  - Service_%05d.api\n' "$i"; done >>"$cfg"
  sed -n '/^cluster:/,$p' examples/org-irsa.yaml >>"$cfg"
  for format in ${FORMATS:-yaml json}; do
    for entry in "${bins[@]}"; do
      name=${entry%%=*}; bin=${entry#*=}
      /usr/bin/time -f '%e %M' -o "$work/time" "$bin" plan -c "$cfg" -o "$format" >"$work/out"
      read -r wall rss <"$work/time"
      objects=$(grep -c -E '^kind:|^ {10}"kind":' "$work/out" || true)
      printf '%-12s %-6s %-8s %-12s %-12s %s\n' "$name" "$format" "$n" "$wall" "$((rss / 1024))" "$objects"
    done
  done
done
