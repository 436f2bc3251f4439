#!/usr/bin/env bash
# Benchmark: N repositories as 4 grouped scale sets against N scale sets of
# their own, side by side in one run on the local stack: `plan` (wall time,
# peak RSS, planned objects, scale sets) and `apply` (first run on an empty
# cluster and a no-change re-run: wall time, peak RSS, and the requests and
# writes the API server received, from its audit log, user `admin`).
#
#   scripts/bench-groups.sh [N]      (default: 2000)
#
# Both configurations have a fresh owner. No AWS and no GitHub (--skip-aws
# --skip-github); the groups' admission policies are off (the local v1.20
# server serves none).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench-env.sh
[ -x /usr/bin/time ] || { echo "GNU time is needed (apt-get install time)" >&2; exit 2; }
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/runner-identity
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
audit=$RUNNER_IDENTITY_AUDIT_LOG
n=${1:-2000}
run_id=$(date +%s | tail -c 6)

config() { # owner groups(0|4)
  printf 'github:\n  owner: %s\n  ownerId: 900\nrepositories:\n' "$1"
  for i in $(seq 1 "$n"); do printf '  - {name: svc-%05d, id: %d}\n' "$i" "$((100000 + i))"; done
  if [ "$2" -gt 0 ]; then
    printf 'groups:\n'
    for g in $(seq 1 "$2"); do
      printf '  - name: team-%d\n    repositories: [' "$g"
      seq "$g" "$2" "$n" | awk '{printf "%s%s", (NR>1?", ":""), sprintf("svc-%05d", $1)}'
      printf ']\n'
    done
  fi
  printf 'cluster:\n  name: bench\n  oidcIssuer: https://oidc.example.com/id/BENCH\n'
  printf 'aws:\n  accountId: "111122223333"\n  mode: irsa\n  permissionsBoundary: arn:aws:iam::111122223333:policy/b\n'
  printf 'kubernetes:\n  namespace: "{owner}-{repo}"\n  groupAdmissionPolicy: false\n'
}

# shellcheck source=scripts/lib/bench-measure.sh
. scripts/lib/bench-measure.sh

printf 'N=%s repositories\n' "$n"
printf '%-40s %9s %9s %9s %9s\n' "plan" "wall (s)" "RSS (MB)" "objects" "scale sets"
for layout in "own:0" "groups:4"; do
  name=${layout%%:*}; groups=${layout#*:}
  owner=bg${run_id}${name:0:1}
  config "$owner" "$groups" >"$work/$name.yaml"
  /usr/bin/time -f '%e %M' -o "$work/time" "$bin" plan -c "$work/$name.yaml" -o json >"$work/plan.json" 2>/dev/null
  read -r wall rss <"$work/time"
  read -r objects sets < <(python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))["repositories"]
print(sum(len(r["objects"]) for r in p), sum(1 for r in p if r["helmValues"] is not None))' "$work/plan.json")
  printf '%-40s %9s %9s %9s %9s\n' "$name ($groups groups)" "$wall" "$((rss / 1024))" "$objects" "$sets"
done
printf '%-40s %9s %9s %9s %7s\n' "apply" "wall (s)" "RSS (MB)" "requests" "writes"
for name in own groups; do
  measure "$name: first apply" "$bin" apply -c "$work/$name.yaml" --skip-aws --skip-github
  measure "$name: re-run" "$bin" apply -c "$work/$name.yaml" --skip-aws --skip-github
  grep -q 'no changes: 0 write requests sent' "$work/out" || { echo "$name: re-run was not a no-op" >&2; cat "$work/out" >&2; exit 1; }
done
