//! A grouped scale set (docs/security.md: grouped scale sets), with the
//! configuration that plans it: its wiring (the organisation's scale set in
//! the group's runner group, job-started before every job, the hook
//! template in the runner container's own emptyDir), and the check outside
//! the runner process: every pod that runs as a member's job ServiceAccount
//! must be a workflow or step pod of a runner whose job, as ARC recorded it
//! from GitHub's job message (`EphemeralRunner.status.jobRepositoryName`), is
//! that member's. A detective check: a pod between two runs escapes it.

use k8s_openapi::api::batch::v1::Job;
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
    // The runner container's own: a writable emptyDir (gha-runner-scale-set),
    // or on no mount at all, in its own files (the experimental chart).
    let own_files = env("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE").is_some_and(|path| {
        if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
            // job-started refuses it.
            return false;
        }
        let mount = runner
            .and_then(|r| r.volume_mounts.as_ref())
            .and_then(|mounts| {
                mounts
                    .iter()
                    .filter(|m| {
                        let at = m.mount_path.trim_end_matches('/');
                        path == at || path.starts_with(&format!("{at}/"))
                    })
                    .max_by_key(|m| m.mount_path.len())
            });
        mount.is_none_or(|m| {
            m.read_only != Some(true)
                && pod
                    .as_ref()
                    .and_then(|p| p.volumes.as_ref())
                    .and_then(|v| v.iter().find(|v| v.name == m.name))
                    .is_some_and(|v| v.empty_dir.is_some())
        })
    });
    if !own_files {
        out.push(Finding::new(
            Severity::Error,
            "group",
            here,
            "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE is neither in a writable emptyDir of the \
             runner container nor in its own files: job-started cannot write the job's template \
             there, or a volume the workflow pod shares could hold it",
            "install the group's values (`runner-identity plan`)",
        ));
    }
    out
}

/// How long a workflow pod may run before ARC records its runner's job:
/// the listener writes it when the job starts, before any container.
const RECORD_GRACE_SECONDS: i64 = 120;

/// Every pod of the namespace against what it may be: the group's runner,
/// or a member's workflow or step pod whose runner's job, as ARC recorded
/// it, is that member's.
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
    // Hooks v0.7.0 label a container step's Job, not its pod.
    let batch: Api<Job> = Api::namespaced(client.clone(), namespace);
    let batch = match batch.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => return vec![unread("Job", namespace, "jobs", &e)],
    };
    let runner_account = members
        .first()
        .map(|m| m.runner_service_account.as_str())
        .unwrap_or_default();
    let mut out = Vec::new();
    for pod in &pods {
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref())
            .unwrap_or("default");
        if account == runner_account {
            continue;
        }
        let member = members.iter().find(|m| m.job_service_account == account);
        let runner_pod = runner_of(pod, &batch);
        let here = object("Pod", namespace, &pod.name_any());
        let delete = format!("kubectl delete pod {} -n {namespace}", pod.name_any());
        match (member, runner_pod) {
            (None, None) => out.push(Finding::new(
                Severity::Warning,
                "group-jobs",
                here,
                format!(
                    "runs as ServiceAccount `{account}`, which is neither the group's runner nor a \
                     member's job ServiceAccount (a removed member's identity, or a pod nothing \
                     here should start)"
                ),
                format!("{delete}, and remove what it runs as if nothing needs it"),
            )),
            (None, Some(runner)) => out.push(Finding::new(
                Severity::Error,
                "group-jobs",
                here,
                format!(
                    "runner {runner} started this pod as ServiceAccount `{account}`, which is no \
                     member's job ServiceAccount"
                ),
                format!("{delete}, and find out what wrote the runner's hook template"),
            )),
            (Some(member), None) => out.push(Finding::new(
                Severity::Error,
                "group-jobs",
                here,
                format!(
                    "runs as {}'s job ServiceAccount `{account}` but is no runner's workflow or \
                     step pod (no `{RUNNER_POD_LABEL}` label on it or its Job)",
                    member.repository
                ),
                format!("{delete}, and find out who created it (the audit log)"),
            )),
            (Some(member), Some(runner)) => {
                out.extend(against_runner(namespace, pod, member, &runner, &runners));
            }
        }
    }
    out
}

/// The runner that started `pod`: the hooks' label on the pod, or on the
/// Job that owns it (a v0.7.0 container step).
fn runner_of(pod: &Pod, jobs: &[Job]) -> Option<String> {
    if let Some(runner) = pod.labels().get(RUNNER_POD_LABEL) {
        return Some(runner.clone());
    }
    let owner = pod
        .owner_references()
        .iter()
        .find(|o| o.kind == "Job" && o.controller == Some(true))?;
    jobs.iter()
        .find(|j| j.metadata.uid.as_deref() == Some(owner.uid.as_str()))
        .and_then(|j| j.labels().get(RUNNER_POD_LABEL).cloned())
}

/// Whether `pod` is named as the hooks name the pods of `runner`
/// (`<runner, cut to 54>-workflow`; `<cut to 49>-step-…`, and a v0.7.0
/// step Job's pod after it).
fn named_after(pod: &str, runner: &str) -> bool {
    let cut = |n: usize| runner.get(..n.min(runner.len())).unwrap_or(runner);
    pod == format!("{}-workflow", cut(54)) || pod.starts_with(&format!("{}-step-", cut(49)))
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
    let delete = format!("kubectl delete pod {} -n {namespace}", pod.name_any());
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
            format!("{delete}, and find out who created it"),
        ));
    };
    if !named_after(&pod.name_any(), runner) {
        return Some(Finding::new(
            Severity::Error,
            "group-jobs",
            here,
            format!(
                "runs as {}'s job ServiceAccount with runner {runner}'s label, but is not named \
                 as the hooks name that runner's pods (`{runner}-workflow`, `…-step-…`)",
                member.repository
            ),
            format!("{delete}, and find out who created it (the audit log)"),
        ));
    }
    let job = record
        .data
        .pointer("/status/jobRepositoryName")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if job.is_empty() {
        // ARC records the job when the runner takes it; the workflow pod
        // may exist a moment before.
        let age = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| crate::clock::now() - t.0.as_second());
        return Some(if age <= RECORD_GRACE_SECONDS {
            Finding::new(
                Severity::Info,
                "group-jobs",
                here,
                format!(
                    "runs as {}'s identity; EphemeralRunner {runner} has no jobRepositoryName yet",
                    member.repository
                ),
                "run doctor again in a minute",
            )
        } else {
            Finding::new(
                Severity::Error,
                "group-jobs",
                here,
                format!(
                    "runs as {}'s identity for {age} s, but ARC recorded no job for runner \
                     {runner}: an idle runner's name on a pod it did not start",
                    member.repository
                ),
                format!("{delete}, and find out who created it (the audit log)"),
            )
        });
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
            "{delete}; revoke the active sessions of IAM role {} (IAM: Revoke active sessions); \
             find out what wrote the runner's hook template",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `acme/web` of the group `platform`.
    fn member() -> RepoNames {
        RepoNames {
            repository: "acme/web".into(),
            namespace: "gha-platform".into(),
            own_namespace: true,
            runner_service_account: "gha-runner".into(),
            job_service_account: "gha-job-web-1234abcd".into(),
            role: "gha-runner".into(),
            config_map: "gha-hook-template".into(),
            scale_set: "platform".into(),
            iam_role: "gha-web".into(),
            iam_role_arn: "arn:aws:iam::111122223333:role/gha-web".into(),
            repository_label: "acme.web".into(),
            group: Some("platform".into()),
        }
    }

    #[test]
    fn a_runners_pods_are_named_as_the_hooks_name_them() {
        let runner = "platform-abcde-runner-fghij";
        assert!(named_after(&format!("{runner}-workflow"), runner));
        assert!(named_after(&format!("{runner}-step-1a2b3c4d"), runner));
        assert!(named_after(
            &format!("{runner}-step-1a2b3c4d-x7k2p"),
            runner
        ));
        assert!(!named_after("platform-abcde-runner-other-workflow", runner));
        assert!(!named_after(&format!("{runner}-workflow2"), runner));
        assert!(!named_after("evil", runner));
        // Long runner names are cut as the hooks cut them.
        let long = "a".repeat(70);
        assert!(named_after(&format!("{}-workflow", &long[..54]), &long));
        assert!(named_after(
            &format!("{}-step-00000000", &long[..49]),
            &long
        ));
        assert!(!named_after(&format!("{long}-workflow"), &long));
    }

    #[test]
    fn a_pod_of_an_idle_runner_is_an_error_once_arc_had_time_to_record_the_job() {
        let member = member();
        let runner: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "actions.github.com/v1alpha1", "kind": "EphemeralRunner",
            "metadata": {"name": "platform-r2", "namespace": "gha-platform"}
        }))
        .unwrap();
        let pod_aged = |seconds: i64| -> Pod {
            let created =
                k8s_openapi::jiff::Timestamp::from_second(crate::clock::now() - seconds).unwrap();
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "platform-r2-workflow", "creationTimestamp": created.to_string()}
            }))
            .unwrap()
        };
        let young = against_runner(
            "gha-platform",
            &pod_aged(10),
            &member,
            "platform-r2",
            std::slice::from_ref(&runner),
        )
        .unwrap();
        assert_eq!(young.severity, Severity::Info);
        let old = against_runner(
            "gha-platform",
            &pod_aged(600),
            &member,
            "platform-r2",
            std::slice::from_ref(&runner),
        )
        .unwrap();
        assert_eq!(old.severity, Severity::Error);
        assert!(
            old.evidence.contains("ARC recorded no job"),
            "{}",
            old.evidence
        );
    }

    #[test]
    fn the_template_may_be_in_an_own_empty_dir_or_on_no_mount_never_on_a_shared_volume() {
        let member = member();
        let set = |template: &str| -> DynamicObject {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "actions.github.com/v1alpha1", "kind": "AutoscalingRunnerSet",
                "metadata": {"name": "platform", "namespace": "gha-platform"},
                "spec": {"runnerGroup": "platform", "template": {"spec": {
                    "containers": [{"name": "runner", "image": "r",
                        "env": [
                            {"name": "ACTIONS_RUNNER_HOOK_JOB_STARTED", "value": "/opt/x.sh"},
                            {"name": "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE", "value": template}],
                        "volumeMounts": [
                            {"name": "work", "mountPath": "/home/runner/_work"},
                            {"name": "own", "mountPath": "/run/runner-identity"}]}],
                    "volumes": [
                        {"name": "work", "ephemeral": {}},
                        {"name": "own", "emptyDir": {}}]}}}
            }))
            .unwrap()
        };
        for ok in [
            "/run/runner-identity/hook-template.yaml",
            "/home/runner/runner-identity-hook-template.yaml",
        ] {
            assert!(
                wiring(&set(ok), std::slice::from_ref(&member)).is_empty(),
                "{ok}"
            );
        }
        // The shared work volume; a mount at the path itself (accepted
        // before as on no mount); a way out of the emptyDir.
        for bad in [
            "/home/runner/_work/hook-template.yaml",
            "/home/runner/_work",
            "/run/runner-identity/../../home/runner/_work/t.yaml",
            "relative/hook-template.yaml",
        ] {
            let found = wiring(&set(bad), std::slice::from_ref(&member));
            assert_eq!(found.len(), 1, "{bad}");
            assert_eq!(found[0].severity, Severity::Error, "{bad}");
        }
    }
}
