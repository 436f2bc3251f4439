#!/usr/bin/env bash
# Benchmark: `runner-identity apply` against `kubectl apply --server-side -f` of
# the same `plan` output, side by side in one run, on the local stack.
#
#   scripts/bench-apply.sh [N...]      (default: 200 1000)
#
# For each N it generates a configuration of N repositories and measures, for
# both tools, a first apply on an empty cluster and a no-change re-run: wall
# time, peak RSS, and the requests the API server received (from its audit
# log, user `admin`; writes = create/update/patch/delete). Each tool gets its
# own owner, so both start from nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench-env.sh
command -v kubectl >/dev/null || { echo "kubectl is needed for the baseline" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "GNU time is needed (apt-get install time)" >&2; exit 2; }

cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/runner-identity
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
audit=$RUNNER_IDENTITY_AUDIT_LOG
run_id=$(date +%s | tail -c 6)

config() { # owner n
  printf 'github:\n  owner: %s\nrepositories:\n' "$1"
  for i in $(seq 1 "$2"); do printf '  - svc-%05d\n' "$i"; done
  printf 'cluster:\n  name: bench\n  oidcIssuer: https://oidc.example.com/id/BENCH\n'
  printf 'aws:\n  accountId: "111122223333"\n  mode: irsa\nkubernetes:\n  namespace: "{owner}-{repo}"\n'
}

# shellcheck source=scripts/lib/bench-measure.sh
. scripts/lib/bench-measure.sh

printf '%-40s %9s %9s %9s %7s\n' "run" "wall (s)" "RSS (MB)" "requests" "writes"
for n in "${@:-200 1000}"; do
  for n1 in $n; do
    ri=ri${run_id}n${n1}; kc=kc${run_id}n${n1}
    config "$ri" "$n1" >"$work/ri.yaml"
    config "$kc" "$n1" >"$work/kc.yaml"
    "$bin" plan -c "$work/kc.yaml" >"$work/kc-plan.yaml"
    measure "N=$n1 runner-identity apply" "$bin" apply -c "$work/ri.yaml" --skip-aws
    measure "N=$n1 kubectl apply --server-side" kubectl apply --server-side --field-manager=bench -f "$work/kc-plan.yaml"
    measure "N=$n1 runner-identity re-run" "$bin" apply -c "$work/ri.yaml" --skip-aws
    grep -q 'no changes: 0 write requests sent' "$work/out" || { echo "re-run was not a no-op" >&2; cat "$work/out" >&2; exit 1; }
    measure "N=$n1 kubectl re-run" kubectl apply --server-side --field-manager=bench -f "$work/kc-plan.yaml"
  done
done
