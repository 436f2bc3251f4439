//! The scale set's wiring, from its AutoscalingRunnerSet: the runner pod's
//! ServiceAccount, the hooks (flavour, `ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER`),
//! and the hook template (the ConfigMap behind
//! `ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE`), which names the job
//! ServiceAccount.

use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, PodTemplateSpec};
use kube::api::{Api, DynamicObject};
use kube::{Client, ResourceExt};

use super::{Finding, Severity, object};
use crate::config::Hooks;

/// What the wiring tells the later checks.
#[derive(Debug, Clone)]
pub struct Wiring {
    pub namespace: String,
    pub runner_service_account: Option<String>,
    /// The ServiceAccount workflow pods run as (`default` without a template
    /// that names one).
    pub job_service_account: Option<String>,
    pub flavour: Hooks,
    pub findings: Vec<Finding>,
}

/// Reads and checks the wiring of `set`.
pub async fn read(client: &Client, set: &DynamicObject) -> Wiring {
    let namespace = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let here = object("AutoscalingRunnerSet", &namespace, &name);
    let mut w = Wiring {
        namespace: namespace.clone(),
        runner_service_account: None,
        job_service_account: None,
        flavour: Hooks::Kubernetes,
        findings: Vec::new(),
    };
    let pod: Option<PodSpec> = set
        .data
        .pointer("/spec/template/spec")
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    let Some(pod) = pod else {
        w.findings.push(Finding::new(
            Severity::Error,
            "scale-set",
            here,
            "spec.template.spec is missing or not a pod spec",
            "reinstall the scale set with the gha-runner-scale-set chart",
        ));
        return w;
    };
    let runner_account = pod
        .service_account_name
        .clone()
        .unwrap_or_else(|| "default".into());
    w.runner_service_account = Some(runner_account);
    let Some(runner) = pod.containers.iter().find(|c| c.name == "runner") else {
        w.findings.push(Finding::new(
            Severity::Error,
            "scale-set",
            here,
            "the runner pod has no container named `runner`",
            "reinstall the scale set with the gha-runner-scale-set chart",
        ));
        return w;
    };
    let env = |name: &str| {
        runner
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    match env("ACTIONS_RUNNER_CONTAINER_HOOKS") {
        Some(hooks) => {
            if hooks.contains("k8s-novolume") {
                w.flavour = Hooks::KubernetesNovolume;
            }
        }
        None => w.findings.push(Finding::new(
            Severity::Error,
            "container-mode",
            here.clone(),
            "the runner container has no ACTIONS_RUNNER_CONTAINER_HOOKS: the scale set is not in \
             kubernetes mode (or a chart before 0.13 ignored `kubernetes-novolume`), so jobs run \
             in the runner pod",
            "set containerMode.type: kubernetes (or kubernetes-novolume with chart 0.13.0 or later) \
             in the values and helm upgrade",
        )),
    }
    if env("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER").is_some_and(|v| v.trim() == "false") {
        w.findings.push(Finding::new(
            Severity::Error,
            "job-container",
            here.clone(),
            "ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER is false: a job without `container:` runs its \
             steps in the runner container, with the runner's token",
            "remove the variable from the runner's env (the chart sets it to true)",
        ));
    }
    let Some(template_path) = env("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE") else {
        w.job_service_account = Some("default".into());
        w.findings.push(Finding::new(
            Severity::Error,
            "hook-template",
            here,
            "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE is not set: workflow pods run as the \
             namespace's `default` ServiceAccount and never get the job's IAM role (the classic \
             AccessDenied)",
            "mount a hook template that sets spec.serviceAccountName and point the variable at it \
             (`runner-identity plan` writes both)",
        ));
        return w;
    };
    match template(client, &namespace, &pod, runner, &template_path).await {
        Ok((config_map, spec)) => {
            let at = object("ConfigMap", &namespace, &config_map);
            match spec
                .spec
                .as_ref()
                .and_then(|s| s.service_account_name.clone())
            {
                Some(sa) => w.job_service_account = Some(sa),
                None => {
                    w.job_service_account = Some("default".into());
                    w.findings.push(Finding::new(
                        Severity::Error,
                        "hook-template",
                        at.clone(),
                        format!(
                            "the hook template {template_path} sets no spec.serviceAccountName: \
                             workflow pods run as `default` and never get the job's IAM role"
                        ),
                        "add `spec.serviceAccountName: <job ServiceAccount>` to the template",
                    ));
                }
            }
            let fs_group = spec
                .spec
                .as_ref()
                .and_then(|s| s.security_context.as_ref())
                .and_then(|s| s.fs_group);
            if fs_group.is_none() {
                w.findings.push(Finding::new(
                    Severity::Warning,
                    "hook-template",
                    at,
                    "the hook template sets no securityContext.fsGroup: hooks v0.7.0 set none \
                     either, so a non-root job cannot read the projected token",
                    "add `spec.securityContext.fsGroup: 1001` to the template",
                ));
            }
        }
        Err(finding) => {
            w.job_service_account = Some("default".into());
            w.findings.push(*finding);
        }
    }
    w
}

/// The ConfigMap name and the parsed template behind `path`.
async fn template(
    client: &Client,
    namespace: &str,
    pod: &PodSpec,
    runner: &Container,
    path: &str,
) -> Result<(String, PodTemplateSpec), Box<Finding>> {
    let here = object("Pod", namespace, "(runner)");
    let missing = |evidence: String| {
        Box::new(Finding::new(
            Severity::Error,
            "hook-template",
            here.clone(),
            evidence,
            "mount the hook template ConfigMap in the runner container where \
             ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE points",
        ))
    };
    let mount = runner
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| {
            path == m.mount_path
                || path.starts_with(&format!("{}/", m.mount_path.trim_end_matches('/')))
        })
        .max_by_key(|m| m.mount_path.len())
        .ok_or_else(|| missing(format!("no volume of the runner container holds {path}")))?;
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .ok_or_else(|| {
            missing(format!(
                "the runner mounts volume `{}`, which the pod does not define",
                mount.name
            ))
        })?;
    let Some(source) = &volume.config_map else {
        // Another volume kind (an image, an emptyDir filled at start): not readable from outside.
        return Err(Box::new(Finding::new(
            Severity::Info,
            "hook-template",
            here,
            format!(
                "{path} comes from volume `{}`, which is not a ConfigMap: not checked",
                volume.name
            ),
            "keep the hook template in a ConfigMap so it can be checked",
        )));
    };
    let relative = match &mount.sub_path {
        Some(sub) if !sub.is_empty() => sub.clone(),
        _ => path
            .trim_start_matches(mount.mount_path.trim_end_matches('/'))
            .trim_start_matches('/')
            .to_owned(),
    };
    let key = source
        .items
        .iter()
        .flatten()
        .find(|i| i.path == relative)
        .map_or(relative.clone(), |i| i.key.clone());
    let name = source.name.clone();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let at = object("ConfigMap", namespace, &name);
    let config_map = match api.get_opt(&name).await {
        Ok(Some(cm)) => cm,
        Ok(None) => {
            return Err(Box::new(Finding::new(
                Severity::Error,
                "hook-template",
                at,
                "the hook template ConfigMap does not exist: runner pods cannot start",
                "create it (`runner-identity apply`), or fix the volume's configMap name",
            )));
        }
        Err(e) => {
            return Err(Box::new(Finding::new(
                Severity::Warning,
                "hook-template",
                at,
                format!("cannot read the hook template: {e}"),
                "grant doctor get on configmaps (docs/reference.md: doctor)",
            )));
        }
    };
    let text = config_map
        .data
        .as_ref()
        .and_then(|d| d.get(&key))
        .ok_or_else(|| {
            Box::new(Finding::new(
                Severity::Error,
                "hook-template",
                at.clone(),
                format!("the ConfigMap has no key `{key}`, the file {path} the hooks read"),
                "add the template under that key",
            ))
        })?;
    let spec: PodTemplateSpec = serde_yaml::from_str(text).map_err(|e| {
        Box::new(Finding::new(
            Severity::Error,
            "hook-template",
            at.clone(),
            format!("key `{key}` is not a pod template: {e}"),
            "fix the YAML (`runner-identity plan` writes a valid one)",
        ))
    })?;
    Ok((name, spec))
}
