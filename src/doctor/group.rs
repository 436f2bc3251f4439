//! A grouped scale set (docs/security.md: grouped scale sets), with the
//! configuration that plans it: its wiring (the organisation's scale set in
//! the group's runner group, job-started before every job, the hook
//! template in the runner container's own emptyDir), and the check outside
//! the runner process: every pod that runs as a member's job ServiceAccount
//! must be the workflow pod of a runner whose job, as ARC recorded it from
//! GitHub's job message (`EphemeralRunner.status.jobRepositoryName`), is that
//! member's.

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};

use super::{Finding, Severity, object};
use crate::names::RepoNames;

/// The label runner-container-hooks put on the pods they start: the runner
/// pod's name (v0.7.0 and v0.8.1 `RunnerInstanceLabel`).
pub const RUNNER_POD_LABEL: &str = "runner-pod";

/// ARC's EphemeralRunner (one per runner pod, named like it).
pub fn ephemeral_runner() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "actions.github.com",
        "v1alpha1",
        "EphemeralRunner",
    ))
}

/// The members of the group whose scale set `scale_set` in `namespace` is.
pub fn members_of(all: &[RepoNames], namespace: &str, scale_set: &str) -> Vec<RepoNames> {
    all.iter()
        .filter(|n| n.group.is_some() && n.namespace == namespace && n.scale_set == scale_set)
        .cloned()
        .collect()
}

/// The group's wiring, from its AutoscalingRunnerSet.
pub fn wiring(set: &DynamicObject, members: &[RepoNames]) -> Vec<Finding> {
    let Some(group) = members.first().and_then(|m| m.group.clone()) else {
        return Vec::new();
    };
    let namespace = set.namespace().unwrap_or_default();
    let here = object("AutoscalingRunnerSet", &namespace, &set.name_any());
    let mut out = Vec::new();
    let runner_group = set
        .data
        .pointer("/spec/runnerGroup")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if runner_group != group {
        out.push(Finding::new(
            Severity::Error,
            "group",
            here.clone(),
            format!(
                "spec.runnerGroup is `{runner_group}`, not the group's runner group `{group}`: \
                 repositories outside the group may send jobs here, and job-started refuses them"
            ),
            "install the group's values (`runner-identity plan`), which set runnerGroup",
        ));
    }
    let pod: Option<PodSpec> = set
        .data
        .pointer("/spec/template/spec")
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    let runner = pod
        .as_ref()
        .and_then(|p| p.containers.iter().find(|c| c.name == "runner"));
    let env = |name: &str| {
        runner
            .and_then(|r| r.env.as_ref())
            .and_then(|env| env.iter().rfind(|e| e.name == name))
            .and_then(|e| e.value.clone())
    };
    if env("ACTIONS_RUNNER_HOOK_JOB_STARTED").is_none() {
        out.push(Finding::new(
            Severity::Error,
            "group",
            here.clone(),
            "the runner container sets no ACTIONS_RUNNER_HOOK_JOB_STARTED: nothing writes the \
             job's repository's hook template, so workflow pods start with whatever template is \
             there",
            "install the group's values (`runner-identity plan`)",
        ));
    }
    let own_empty_dir = env("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE").is_some_and(|path| {
        let mount = runner
            .and_then(|r| r.volume_mounts.as_ref())
            .and_then(|mounts| {
                mounts
                    .iter()
                    .filter(|m| {
                        path.starts_with(&format!("{}/", m.mount_path.trim_end_matches('/')))
                    })
                    .max_by_key(|m| m.mount_path.len())
            });
        mount.is_some_and(|m| {
            m.read_only != Some(true)
                && pod
                    .as_ref()
                    .and_then(|p| p.volumes.as_ref())
                    .and_then(|v| v.iter().find(|v| v.name == m.name))
                    .is_some_and(|v| v.empty_dir.is_some())
        })
    });
    if !own_empty_dir {
        out.push(Finding::new(
            Severity::Error,
            "group",
            here,
            "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE is not in a writable emptyDir of the runner \
             container: job-started cannot write the job's template there, or a volume the \
             workflow pod shares could hold it",
            "install the group's values (`runner-identity plan`)",
        ));
    }
    out
}

/// Every pod of the namespace that runs as a member's job ServiceAccount or
/// that the hooks started, against its runner's job as ARC recorded it.
pub async fn jobs(client: &Client, namespace: &str, members: &[RepoNames]) -> Vec<Finding> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = match pods.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => return vec![unread("Pod", namespace, "pods", &e)],
    };
    let runners: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &ephemeral_runner());
    let runners = match runners.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => return vec![unread("EphemeralRunner", namespace, "ephemeralrunners", &e)],
    };
    let mut out = Vec::new();
    for pod in &pods {
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref())
            .unwrap_or("default");
        let member = members.iter().find(|m| m.job_service_account == account);
        let runner_pod = pod.labels().get(RUNNER_POD_LABEL);
        let here = object("Pod", namespace, &pod.name_any());
        match (member, runner_pod) {
            (None, None) => {}
            (None, Some(runner)) => out.push(Finding::new(
                Severity::Error,
                "group-jobs",
                here,
                format!(
                    "runner {runner} started this pod as ServiceAccount `{account}`, which is no \
                     member's job ServiceAccount"
                ),
                format!(
                    "kubectl delete pod {} -n {namespace}, and find out what wrote the runner's \
                     hook template",
                    pod.name_any()
                ),
            )),
            (Some(member), None) => out.push(Finding::new(
                Severity::Error,
                "group-jobs",
                here,
                format!(
                    "runs as {}'s job ServiceAccount `{account}` but is no runner's workflow pod \
                     (no `{RUNNER_POD_LABEL}` label)",
                    member.repository
                ),
                format!(
                    "kubectl delete pod {} -n {namespace}, and find out who created it (the audit \
                     log)",
                    pod.name_any()
                ),
            )),
            (Some(member), Some(runner)) => {
                out.extend(against_runner(namespace, pod, member, runner, &runners));
            }
        }
    }
    out
}

/// A member's workflow pod against the record of its runner's job.
fn against_runner(
    namespace: &str,
    pod: &Pod,
    member: &RepoNames,
    runner: &str,
    runners: &[DynamicObject],
) -> Option<Finding> {
    let here = object("Pod", namespace, &pod.name_any());
    let Some(record) = runners.iter().find(|r| r.name_any() == runner) else {
        return Some(Finding::new(
            Severity::Error,
            "group-jobs",
            here,
            format!(
                "runs as {}'s job ServiceAccount for runner {runner}, which is no EphemeralRunner \
                 here: no job of GitHub's stands behind it",
                member.repository
            ),
            format!(
                "kubectl delete pod {} -n {namespace}, and find out who created it",
                pod.name_any()
            ),
        ));
    };
    let job = record
        .data
        .pointer("/status/jobRepositoryName")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if job.is_empty() {
        // ARC records the job after the runner takes it; the workflow pod
        // may exist first.
        return Some(Finding::new(
            Severity::Info,
            "group-jobs",
            here,
            format!(
                "runs as {}'s identity; EphemeralRunner {runner} has no jobRepositoryName yet",
                member.repository
            ),
            "run doctor again in a minute",
        ));
    }
    if job.eq_ignore_ascii_case(&member.repository) {
        return None;
    }
    Some(Finding::new(
        Severity::Error,
        "group-jobs",
        here,
        format!(
            "runs as {}'s job ServiceAccount `{}`, but its runner {runner} runs a job of {job} \
             (EphemeralRunner status.jobRepositoryName): a job has another repository's identity",
            member.repository, member.job_service_account
        ),
        format!(
            "kubectl delete pod {} -n {namespace}; revoke the active sessions of IAM role {} \
             (IAM: Revoke active sessions); find out what wrote the runner's hook template",
            pod.name_any(),
            member.iam_role
        ),
    ))
}

fn unread(kind: &str, namespace: &str, resource: &str, e: &kube::Error) -> Finding {
    Finding::new(
        Severity::Warning,
        "group-jobs",
        object(kind, namespace, "*"),
        format!(
            "cannot list {resource}: {e}; the group's jobs were not compared with ARC's record"
        ),
        format!(
            "grant doctor list on {resource} in {namespace} (`runner-identity bootstrap` prints it)"
        ),
    )
}
