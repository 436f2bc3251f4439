#!/usr/bin/env bash
# Benchmark: `runner-identity doctor -c` over N scale sets on the local stack,
# beside the manual checklist it replaces (kubectl and aws, per scale set),
# in one run.
#
#   scripts/bench-doctor.sh [N]        (default: 200)
#
# It applies a configuration of N repositories (Kubernetes objects and IAM
# roles in moto), installs one AutoscalingRunnerSet per repository as the real
# gha-runner-scale-set chart 0.14.2 renders runner-identity's values
# (tests/data/arc/rendered), then measures doctor's wall time, peak RSS and
# the requests the API server received (audit log, user `admin`). The manual
# sequence (get the scale set, its hook template, the job ServiceAccount, 17
# `kubectl auth can-i --as`, a token, `aws iam get-role`) runs for the first
# 10 scale sets; its time is reported per scale set and for N.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench-env.sh
command -v kubectl >/dev/null || { echo "kubectl is needed for the baseline" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "GNU time is needed (apt-get install time)" >&2; exit 2; }
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
aws_cli=$CACHE/venv/bin/aws
[ -x "$aws_cli" ] || "$CACHE/venv/bin/pip" install -q awscli >/dev/null
n=${1:-200}

cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/runner-identity
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
audit=$RUNNER_IDENTITY_AUDIT_LOG
owner=doc$(date +%s | tail -c 6)

{
  printf 'github:\n  owner: %s\nrepositories:\n' "$owner"
  for i in $(seq 1 "$n"); do printf '  - svc-%05d\n' "$i"; done
  printf 'cluster:\n  name: bench\n  oidcIssuer: %s\n' "$RUNNER_IDENTITY_ISSUER"
  printf 'aws:\n  accountId: "123456789012"\n  mode: irsa\nkubernetes:\n  namespace: "{owner}-{repo}"\n'
} >"$work/config.yaml"
"$aws_cli" iam create-open-id-connect-provider --url "$RUNNER_IDENTITY_ISSUER" \
  --client-id-list sts.amazonaws.com --thumbprint-list 9e99a48a9960b14926bb7f3b02e22da2b0ab7280 >/dev/null 2>&1 || true
"$bin" apply -c "$work/config.yaml" >/dev/null 2>"$work/apply.err" || { cat "$work/apply.err" >&2; exit 1; }
# The CRDs as shipped, and one AutoscalingRunnerSet per repository.
for crd in tests/data/arc/crds/*.yaml; do kubectl apply --server-side --field-manager=bench -f "$crd" >/dev/null; done
kubectl wait --for=condition=Established crd/autoscalingrunnersets.actions.github.com --timeout=60s >/dev/null
python3 - "$owner" "$n" >"$work/sets.yaml" <<'PY'
import copy, sys, yaml
owner, n = sys.argv[1], int(sys.argv[2])
docs = yaml.safe_load_all(open("tests/data/arc/rendered/0.14.2-kubernetes.yaml"))
base = next(d for d in docs if d and d.get("kind") == "AutoscalingRunnerSet")
out = []
for i in range(1, n + 1):
    d = copy.deepcopy(base)
    d["metadata"]["namespace"] = f"{owner}-svc-{i:05d}"
    d["metadata"]["name"] = f"svc-{i:05d}"
    out.append(d)
print(yaml.safe_dump_all(out))
PY
kubectl apply --server-side --field-manager=bench -f "$work/sets.yaml" >/dev/null

requests_since() { # offset
  tail -c +"$(($1 + 1))" "$audit" | python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    try: e = json.loads(line)
    except ValueError: continue
    n += e.get("stage") == "ResponseComplete" and e.get("user", {}).get("username") == "admin"
print(n)'
}

from=$(stat -c %s "$audit")
/usr/bin/time -f '%e %M' -o "$work/time" "$bin" doctor -c "$work/config.yaml" -o json >"$work/doctor.json" 2>"$work/doctor.err" || true
sleep 0.2
read -r wall rss <"$work/time"
requests=$(requests_since "$from")
findings=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["scale_sets"], sum(f["severity"]=="error" for f in d["findings"]))' "$work/doctor.json")

manual() { # i
  local ns; ns=$(printf '%s-svc-%05d' "$owner" "$1")
  kubectl get autoscalingrunnersets -n "$ns" -o json >/dev/null
  kubectl get configmap gha-hook-template -n "$ns" -o yaml >/dev/null
  kubectl get serviceaccount gha-job -n "$ns" -o yaml >/dev/null
  for r in pods pods/exec pods/log secrets jobs.batch; do
    for v in get list create delete; do
      kubectl auth can-i "$v" "$r" -n "$ns" --as "system:serviceaccount:$ns:gha-runner" >/dev/null 2>&1 || true
    done
  done
  kubectl create token gha-job -n "$ns" --audience sts.amazonaws.com >/dev/null 2>&1 || true
  "$aws_cli" iam get-role --role-name "$(printf 'gha-bench-%s-svc-%05d' "$owner" "$1")" >/dev/null 2>&1 || true
}
sample=$(( n < 10 ? n : 10 ))
start=$(date +%s.%N)
for i in $(seq 1 "$sample"); do manual "$i"; done
per=$(python3 -c "import sys; print((float(sys.argv[2]) - float(sys.argv[1])) / int(sys.argv[3]))" "$start" "$(date +%s.%N)" "$sample")

printf '%-44s %10s %9s %9s\n' "run" "wall (s)" "RSS (MB)" "requests"
printf '%-44s %10s %9s %9s\n' "runner-identity doctor, $n scale sets" "$wall" "$((rss / 1024))" "$requests"
printf '%-44s %10.2f\n' "manual checklist, per scale set ($sample run)" "$per"
printf '%-44s %10.1f\n' "manual checklist, $n scale sets (per x N)" "$(python3 -c "print($per * $n)")"
echo "doctor: ${findings% *} scale sets diagnosed, ${findings#* } error-level findings"
