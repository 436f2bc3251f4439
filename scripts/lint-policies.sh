#!/usr/bin/env bash
# Reviews what runner-identity hands to administrators and AWS as a security
# reviewer would: parliament (with its community auditors) on every IAM
# identity policy `bootstrap` and `plan` print, checkov on every Kubernetes
# object they print, for both example configurations. Any finding fails,
# except the ones listed in docs/security.md with the reason they do not
# apply. The linters come from PyPI, cached under $RUNNER_IDENTITY_CACHE.
# checkov runs in a network namespace of its own: it would otherwise try to
# fetch its guideline mappings from its vendor.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${RUNNER_IDENTITY_CACHE:-$HOME/.cache/runner-identity}
venv=$cache/policy-venv
if [ ! -x "$venv/bin/parliament" ] || [ ! -x "$venv/bin/checkov" ]; then
  echo "[policies] installing parliament and checkov into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check parliament==1.6.4 checkov==3.3.30
fi
bin=${CARGO_TARGET_DIR:-target}/debug/runner-identity
cargo build --locked --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for example in examples/org-irsa.yaml examples/pod-identity.yaml; do
  name=$(basename "$example" .yaml)
  "$bin" bootstrap -c "$example" --out-dir "$out/$name/bootstrap" --github-repository acme/platform >/dev/null
  "$bin" plan -c "$example" --out-dir "$out/$name/plan" >/dev/null
  "$bin" plan -c "$example" >"$out/$name/plan/all-manifests.yaml"
done

# Identity policies only: parliament has no mode for trust (resource) policies.
# PERMISSIONS_MANAGEMENT_ACTIONS is what the apply identity is for (it manages
# roles); docs/security.md says how each of those actions is confined.
status=0
while IFS= read -r policy; do
  findings=$("$venv/bin/parliament" --include-community-auditors --json --string "$(cat "$policy")" |
    grep -v '"issue": "PERMISSIONS_MANAGEMENT_ACTIONS"' || true)
  if [ -n "$findings" ]; then
    echo "[policies] parliament: ${policy#"$out"/}:" >&2
    echo "$findings" >&2
    status=1
  fi
  echo "[policies] parliament ${policy#"$out"/}: no finding that applies"
done < <(find "$out" -name 'iam-policy*.json' -o -name 'permissions-policy.json' | sort)

echo "[policies] checkov on every Kubernetes object bootstrap and plan print"
if ! unshare --net -- env BC_SKIP_MAPPING=TRUE "$venv/bin/checkov" -d "$out" --framework kubernetes \
  --compact --quiet --skip-download; then
  status=1
fi
exit $status
