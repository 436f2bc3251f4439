#!/usr/bin/env bash
# Benchmark: the latency a grouped scale set adds before each job, side by
# side in one run on the local stack (goal: 20 ms with the runner checks):
#   job-started, template only (verifyRunner and groupAdmissionPolicy off);
#   job-started with the runner checks;
#   job-started with the claim and the runner checks (the default; each run
#   on a fresh runner pod with its pod-bound token, made outside the timing);
#   verify runner on a repository's own scale set (today's job-started hook);
#   the binary's start alone (--version), the floor of any hook.
#   scripts/bench-job-started.sh [RUNS]     (default 20; mean wall time per run)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench-env.sh
runs=${1:-20}
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/runner-identity
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# shellcheck source=scripts/lib/bench-job.sh
. scripts/lib/bench-job.sh
bench_job_setup "$bin" "$work"

# A group of two repositories in its own namespace, applied (no AWS, no GitHub).
group=g$(date +%s | tail -c 6)
cat >"$work/group.yaml" <<YAML
github:
  owner: $owner
  ownerId: 900
repositories:
  - {name: api, id: 901}
  - {name: web, id: 902}
groups:
  - {name: $group, repositories: [api, web]}
cluster:
  name: bench
  oidcIssuer: $RUNNER_IDENTITY_ISSUER
aws:
  accountId: "123456789012"
  mode: irsa
  permissionsBoundary: arn:aws:iam::123456789012:policy/gha-boundary
kubernetes:
  namespace: "{owner}-{repo}"
YAML
sed 's/^kubernetes:$/kubernetes:\n  verifyRunner: {enabled: false}\n  groupAdmissionPolicy: false/' "$work/group.yaml" >"$work/group-nochecks.yaml"
sed 's/^kubernetes:$/kubernetes:\n  groupAdmissionPolicy: false/' "$work/group.yaml" >"$work/group-noclaim.yaml"
# The claim policy's objects need Kubernetes 1.30: everything else is applied.
"$bin" plan -c "$work/group.yaml" -o json | python3 -c '
import json, sys
for r in json.load(sys.stdin)["repositories"]:
    for o in r["objects"]:
        if not o["kind"].startswith("ValidatingAdmissionPolicy"):
            print("---"); print(json.dumps(o))' >"$work/group-objects.yaml"
kubectl apply --server-side --field-manager=runner-identity -f "$work/group-objects.yaml" >/dev/null
gns=$owner-$group
kubectl create token gha-runner -n "$gns" --duration=1h >"$work/group-runner-token"
mkdir -p "$work/own" "$work/_work/app"

job_started_with() { # configuration
  GITHUB_REPOSITORY=$owner/web GITHUB_REPOSITORY_ID=902 GITHUB_REPOSITORY_OWNER_ID=900 \
    ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER=true RUNNER_WORKSPACE=$work/_work/app \
    ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE=$work/own/hook-template.yaml \
    "$bin" job-started -c "$1" --token-file "$work/group-runner-token" --kubeconfig "$KUBECONFIG" >/dev/null
}
template_only() { job_started_with "$work/group-nochecks.yaml"; }
with_checks() { job_started_with "$work/group-noclaim.yaml"; }
# A fresh runner pod and its pod-bound token (not timed).
fresh_runner() { # index
  local pod=$group-runner-$1
  kubectl -n "$gns" run "$pod" --image=ghcr.io/actions/actions-runner:2.336.0 --restart=Never \
    --overrides='{"spec": {"serviceAccountName": "gha-runner", "nodeName": "bench-node", "automountServiceAccountToken": false}}' >/dev/null
  local uid; uid=$(kubectl -n "$gns" get pod "$pod" -o jsonpath='{.metadata.uid}')
  kubectl create token gha-runner -n "$gns" --duration=1h --bound-object-kind Pod \
    --bound-object-name "$pod" --bound-object-uid "$uid" >"$work/group-runner-token"
}
# mean_fresh_ms: like mean_ms, each run (and the warm-up) on a fresh runner.
mean_fresh_ms() {
  local total=0 start end
  fresh_runner warm; job_started_with "$work/group.yaml"
  for i in $(seq 1 "$runs"); do
    fresh_runner "$i"
    start=$(date +%s%N); job_started_with "$work/group.yaml"; end=$(date +%s%N)
    total=$((total + end - start))
  done
  echo "$((total / runs / 100000))" | sed 's/\(.\)$/.\1/'
}
verify_runner() {
  GITHUB_REPOSITORY=$owner/app ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER=true ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE=$work/hook-template.yaml \
    "$bin" verify runner -c "$work/config.yaml" --kubeconfig "$KUBECONFIG" --token-file "$work/runner-token" >/dev/null
}
start_only() { "$bin" --version >/dev/null; }

printf '%-52s %s\n' "run (mean of $runs)" "wall (ms)"
printf '%-52s %s\n' "runner-identity --version (process start)" "$(mean_ms start_only)"
printf '%-52s %s\n' "job-started, template only" "$(mean_ms template_only)"
printf '%-52s %s\n' "job-started with the runner checks" "$(mean_ms with_checks)"
printf '%-52s %s\n' "job-started with the claim and the runner checks" "$(mean_fresh_ms)"
printf '%-52s %s\n' "verify runner (a repository's own scale set)" "$(mean_ms verify_runner)"
