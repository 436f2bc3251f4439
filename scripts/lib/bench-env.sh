# Sourced by the benchmark scripts: the cache and target directories, and the
# running local stack's environment (KUBECONFIG, AWS_ENDPOINT_URL, issuer…).
CACHE=${RUNNER_IDENTITY_CACHE:-$HOME/.cache/runner-identity}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
[ -f "$CACHE/stack/env" ] || { echo "start the stack first: scripts/stack.sh up" >&2; exit 2; }
set -a
# shellcheck disable=SC1091
. "$CACHE/stack/env"
set +a
