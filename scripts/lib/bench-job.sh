# Sourced by the benchmark scripts: `bench_job_setup BIN WORK` applies a
# one-repository IRSA configuration with BIN on the local stack and leaves in
# WORK the configuration (config.yaml), the runner's hook template
# (hook-template.yaml), the runner's and the job's tokens (runner-token,
# job-token), and sets $owner, $ns and $role for the runs.
bench_job_setup() {
  local bin=$1 work=$2
  [ -x "$CACHE/venv/bin/aws" ] || "$CACHE/venv/bin/pip" install -q awscli >/dev/null
  owner=bv$(date +%s | tail -c 6)
  cat >"$work/config.yaml" <<EOF
github:
  owner: $owner
repositories: [app]
cluster:
  name: bench
  oidcIssuer: $RUNNER_IDENTITY_ISSUER
aws:
  accountId: "123456789012"
  mode: irsa
  permissionsBoundary: arn:aws:iam::123456789012:policy/gha-boundary
kubernetes:
  namespace: "{owner}-{repo}"
EOF
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  "$CACHE/venv/bin/aws" iam create-open-id-connect-provider --url "$RUNNER_IDENTITY_ISSUER" \
    --client-id-list sts.amazonaws.com --thumbprint-list 9e99a48a9960b14926bb7f3b02e22da2b0ab7280 >/dev/null 2>&1 || true
  "$bin" apply -c "$work/config.yaml" >/dev/null
  ns=$owner-app
  "$bin" plan -c "$work/config.yaml" -o json | python3 -c '
import json, sys
cm = [o for o in json.load(sys.stdin)["repositories"][0]["objects"] if o["kind"] == "ConfigMap"][0]
print(cm["data"]["hook-template.yaml"])' >"$work/hook-template.yaml"
  kubectl create token gha-runner -n "$ns" --duration=1h >"$work/runner-token"
  kubectl create token gha-job -n "$ns" --audience sts.amazonaws.com --duration=1h >"$work/job-token"
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  role=$("$bin" plan -c "$work/config.yaml" -o json | python3 -c 'import json, sys; print(json.load(sys.stdin)["repositories"][0]["iamRole"]["arn"])')
}

# `mean_ms FUNCTION`: one warm-up run (which must pass), then the mean wall
# time of $runs runs, in milliseconds with one decimal.
mean_ms() {
  local start end
  "$1"
  start=$(date +%s%N)
  for _ in $(seq 1 "$runs"); do "$1"; done
  end=$(date +%s%N)
  echo "$(((end - start) / runs / 100000))" | sed 's/\(.\)$/.\1/'
}
