#!/usr/bin/env bash
# Benchmark: `runner-identity verify runner|job` against the sequence a person
# types today, side by side in one run on the local stack:
#   runner: `kubectl auth can-i` for every right the hooks check;
#   job:    `aws sts get-caller-identity` with the pod's web-identity variables.
#   scripts/bench-verify.sh [RUNS]     (default 10; mean wall time per run)
#   BASELINE=<rev> scripts/bench-verify.sh   also runs revision <rev>'s binary
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench-env.sh
runs=${1:-10}
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/runner-identity
# shellcheck source=scripts/lib/baseline.sh
. scripts/lib/baseline.sh
base=""
if [ -n "${BASELINE:-}" ]; then base=$(baseline_binary "$BASELINE"); fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# shellcheck source=scripts/lib/bench-job.sh
. scripts/lib/bench-job.sh
bench_job_setup "$bin" "$work"

runner_with() { # binary
  GITHUB_REPOSITORY=$owner/app ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER=true ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE=$work/hook-template.yaml \
    "$1" verify runner -c "$work/config.yaml" --kubeconfig "$KUBECONFIG" --token-file "$work/runner-token" >/dev/null
}
runner_ri() { runner_with "$bin"; }
runner_base() { runner_with "$base"; }
# The path a runner pod takes: no kubeconfig, the in-cluster configuration
# (KUBERNETES_SERVICE_HOST/PORT and the service-account CA), in a private
# mount namespace whose /run holds the files a pod would have.
incluster_with() { # binary
  local host=${RUNNER_IDENTITY_ISSUER#https://}
  unshare -m sh -ec '
    mount -t tmpfs tmpfs /run
    d=/run/secrets/kubernetes.io/serviceaccount; mkdir -p "$d"
    cp "$1" "$d/ca.crt"; printf %s "$2" >"$d/namespace"; cp "$3" "$d/token"
    shift 3; exec "$@"' sh "$RUNNER_IDENTITY_STACK/pki/ca.crt" "$ns" "$work/runner-token" \
    env KUBERNETES_SERVICE_HOST="${host%:*}" KUBERNETES_SERVICE_PORT="${host##*:}" \
    GITHUB_REPOSITORY="$owner/app" ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER=true \
    ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE="$work/hook-template.yaml" \
    "$1" verify runner -c "$work/config.yaml" --token-file "$work/runner-token" >/dev/null
}
incluster_ri() { incluster_with "$bin"; }
incluster_base() { incluster_with "$base"; }
runner_kubectl() {
  local t; t=$(cat "$work/runner-token")
  for r in "get pods" "list pods" "create pods" "delete pods" "get pods --subresource=exec" "create pods --subresource=exec" \
           "get pods --subresource=log" "list pods --subresource=log" "watch pods --subresource=log" \
           "get secrets" "list secrets" "create secrets" "delete secrets" \
           "get jobs.batch" "list jobs.batch" "create jobs.batch" "delete jobs.batch"; do
    # shellcheck disable=SC2086
    kubectl --kubeconfig "$KUBECONFIG" --token "$t" auth can-i $r -n "$ns" >/dev/null
  done
}
job_env() { AWS_ROLE_ARN=$role AWS_WEB_IDENTITY_TOKEN_FILE=$work/job-token "$@"; }
job_with() { job_env "$1" verify job -c "$work/config.yaml" --kubernetes-token /nonexistent >/dev/null; }
job_ri() { job_with "$bin"; }
job_base() { job_with "$base"; }
job_aws() { job_env "$CACHE/venv/bin/aws" sts get-caller-identity >/dev/null; }

echo "namespaces on the stack: $(kubectl get namespaces --no-headers | wc -l)"
printf '%-48s %s\n' "run (mean of $runs)" "wall (ms)"
printf '%-48s %s\n' "runner-identity verify runner" "$(mean_ms runner_ri)"
[ -z "$base" ] || printf '%-48s %s\n' "runner-identity verify runner ($BASELINE)" "$(mean_ms runner_base)"
printf '%-48s %s\n' "runner-identity verify runner (in-cluster)" "$(mean_ms incluster_ri)"
[ -z "$base" ] || printf '%-48s %s\n' "runner-identity verify runner (in-cluster, $BASELINE)" "$(mean_ms incluster_base)"
printf '%-48s %s\n' "17 x kubectl auth can-i" "$(mean_ms runner_kubectl)"
printf '%-48s %s\n' "runner-identity verify job" "$(mean_ms job_ri)"
[ -z "$base" ] || printf '%-48s %s\n' "runner-identity verify job ($BASELINE)" "$(mean_ms job_base)"
printf '%-48s %s\n' "aws sts get-caller-identity" "$(mean_ms job_aws)"
