#!/bin/sh
# runner-identity's job-started hook for runner images that carry it
# (ARC's gha-runner-scale-set-experimental chart, which cannot mount it):
# the runner sets ACTIONS_RUNNER_HOOK_JOB_STARTED to this file and fails the
# job when it exits non-zero. The configuration comes in
# RUNNER_IDENTITY_CONFIG_TEXT (the chart's runner.env, planned by
# runner-identity); `kubernetes.verifyRunner.strict` in it makes excess
# rights fail. A grouped scale set's runner has RUNNER_IDENTITY_GROUP: the
# job's repository's hook template is written, or no job starts.
if [ -n "${RUNNER_IDENTITY_GROUP:-}" ]; then
  exec /opt/runner-identity/bin/runner-identity job-started
fi
exec /opt/runner-identity/bin/runner-identity verify runner
