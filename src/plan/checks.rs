//! Checks of rendered output: the hook template, the Helm values and the
//! trust policy must be what the product requires, whatever the templates.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use crate::chart::{self, ChartName};
use crate::config::{Mode, Settings};
use crate::names::RepoNames;
use crate::policy::{self, Decision, WebIdentityRequest};
use crate::templates::Context;

/// The hook template must parse as a PodTemplateSpec that names the job
/// ServiceAccount and sets an explicit fsGroup.
pub fn check_hook_template(
    text: &str,
    names: &RepoNames,
) -> std::result::Result<PodTemplateSpec, String> {
    let spec: PodTemplateSpec = serde_yaml::from_str(text)
        .map_err(|e| format!("not a pod template (PodTemplateSpec): {e}"))?;
    let pod = spec.spec.as_ref().ok_or("has no `spec`")?;
    match pod.service_account_name.as_deref() {
        Some(sa) if sa == names.job_service_account => {}
        Some(sa) => {
            return Err(format!(
                "`spec.serviceAccountName` is `{sa}`, not the job ServiceAccount `{}`",
                names.job_service_account
            ));
        }
        None => {
            return Err(format!(
                "`spec.serviceAccountName` is missing: the workflow pod would run as `default` \
                 and never get the IAM role; set it to `{}`",
                names.job_service_account
            ));
        }
    }
    if pod.init_containers.as_ref().is_some_and(|c| !c.is_empty()) {
        // Hooks v0.8 assign the template's initContainers over their own
        // `fs-init` (`base[key] = value` in mergePodSpecWithOptions), which
        // breaks the job pod.
        return Err(
            "`spec.initContainers` is set: runner-container-hooks v0.8 replace their own \
                    `fs-init` init container with it and the job pod breaks; remove it"
                .into(),
        );
    }
    if pod
        .security_context
        .as_ref()
        .and_then(|s| s.fs_group)
        .is_none()
    {
        return Err(
            "`spec.securityContext.fsGroup` is missing: a non-root job could not read the \
                    projected token (hooks v0.7.0 set no fsGroup of their own; v0.8 drop theirs \
                    when the template sets a securityContext)"
                .into(),
        );
    }
    Ok(spec)
}

/// The rendered values must wire what runner-identity planned, in the layout
/// of the chart they are for.
pub(super) fn check_values(
    text: &str,
    names: &RepoNames,
    ctx: &Context,
) -> std::result::Result<(), String> {
    let v: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let at = |path: &str| path.split('.').try_fold(&v, |node, key| node.get(key));
    let expect = |path: &str, want: &str| match at(path).and_then(serde_yaml::Value::as_str) {
        Some(got) if got == want => Ok(()),
        got => Err(format!("`{path}` must be `{want}`, found {got:?}")),
    };
    if names.scale_set.len() > 45 {
        return Err("the scale set name is longer than the charts' 45 characters".into());
    }
    let has_env = |env: Option<&serde_yaml::Value>, name: &str| {
        env.and_then(serde_yaml::Value::as_sequence)
            .is_some_and(|env| {
                env.iter()
                    .any(|e| e.get("name").and_then(serde_yaml::Value::as_str) == Some(name))
            })
    };
    let fs_group = |path: &str| match at(path).and_then(serde_yaml::Value::as_i64) {
        Some(_) => Ok(()),
        None => Err(format!(
            "`{path}` is missing: the work volume would be root-owned and the runner could not write it"
        )),
    };
    if ctx.chart_name == ChartName::Experimental.as_str() {
        expect("scaleset.name", &names.scale_set)?;
        expect("runner.mode", "kubernetes")?;
        expect(
            "runner.kubernetesMode.serviceAccountName",
            &names.runner_service_account,
        )?;
        expect("runner.kubernetesMode.hookPath", &ctx.hook_path)?;
        expect("runner.kubernetesMode.extensionRef", &names.config_map)?;
        fs_group("runner.pod.spec.securityContext.fsGroup")?;
        for ignored in chart::EXPERIMENTAL_IGNORED {
            if at(ignored).is_some() {
                return Err(format!(
                    "`{ignored}` is set, but gha-runner-scale-set-experimental ignores it"
                ));
            }
        }
        if ctx.verify_runner && !has_env(at("runner.env"), "ACTIONS_RUNNER_HOOK_JOB_STARTED") {
            return Err("`runner.env` does not set ACTIONS_RUNNER_HOOK_JOB_STARTED".into());
        }
        return Ok(());
    }
    expect(
        "template.spec.serviceAccountName",
        &names.runner_service_account,
    )?;
    expect("containerMode.type", &ctx.hooks)?;
    expect("runnerScaleSetName", &names.scale_set)?;
    fs_group("template.spec.securityContext.fsGroup")?;
    let containers = at("template.spec.containers")
        .and_then(serde_yaml::Value::as_sequence)
        .ok_or("`template.spec.containers` is missing")?;
    let runner = containers
        .iter()
        .find(|c| c.get("name").and_then(serde_yaml::Value::as_str) == Some("runner"))
        .ok_or("`template.spec.containers` has no container named `runner`")?;
    let mut required = vec!["ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE"];
    if ctx.verify_runner {
        required.push("ACTIONS_RUNNER_HOOK_JOB_STARTED");
    }
    for name in required {
        if !has_env(runner.get("env"), name) {
            return Err(format!("the `runner` container does not set {name}"));
        }
    }
    Ok(())
}

pub(super) fn check_trust_policy(
    doc: &Value,
    settings: &Settings,
    names: &RepoNames,
    ctx: &Context,
) -> std::result::Result<(), String> {
    match (
        &ctx.oidc_provider_arn,
        &ctx.issuer,
        settings.config.aws.mode,
    ) {
        (Some(provider_arn), Some(issuer), Mode::Irsa) => {
            let sub = format!(
                "system:serviceaccount:{}:{}",
                names.namespace, names.job_service_account
            );
            let request = |sub: &str, aud: &str| {
                policy::evaluate_web_identity(
                    doc,
                    &WebIdentityRequest {
                        provider_arn,
                        issuer,
                        sub,
                        aud,
                    },
                )
            };
            match request(&sub, &ctx.audience) {
                Decision::Allowed(_) => {}
                Decision::Denied(i) => {
                    return Err(format!("statement {i} denies `{sub}` the role"));
                }
                Decision::NotAllowed(reasons) => {
                    return Err(format!(
                        "it does not let `{sub}` assume the role: {}",
                        reasons.join("; ")
                    ));
                }
            }
            // Pinned: another ServiceAccount, even in the same namespace, must not match.
            let other = format!("system:serviceaccount:{}:default", names.namespace);
            if matches!(request(&other, &ctx.audience), Decision::Allowed(_)) {
                return Err(format!(
                    "it also lets `{other}` assume the role; pin `:sub` to the job ServiceAccount"
                ));
            }
            Ok(())
        }
        _ => {
            let service_ok = policy::statements(doc).iter().any(|st| {
                st.get("Principal")
                    .and_then(|p| p.get("Service"))
                    .and_then(Value::as_str)
                    == Some("pods.eks.amazonaws.com")
            });
            if service_ok {
                Ok(())
            } else {
                Err("no statement trusts the `pods.eks.amazonaws.com` service principal".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Settings};

    fn names() -> RepoNames {
        let config: Config = serde_yaml::from_str(
            "github: {owner: acme}\nrepositories: [api]\ncluster: {name: c, oidcIssuer: https://o.example/id/1}\naws: {accountId: '111122223333', mode: irsa}\n",
        )
        .unwrap();
        let settings: Settings = crate::config::parse(
            &serde_yaml::to_string(&config).unwrap(),
            std::path::Path::new("t"),
        )
        .unwrap();
        RepoNames::new(&settings, &settings.repositories[0])
    }

    #[test]
    fn a_hook_template_with_init_containers_is_refused() {
        let names = names();
        let base = format!(
            "spec:\n  serviceAccountName: {}\n  securityContext: {{fsGroup: 1001}}\n",
            names.job_service_account
        );
        assert!(check_hook_template(&base, &names).is_ok());
        let with_init = format!("{base}  initContainers:\n    - {{name: setup, image: busybox}}\n");
        let e = check_hook_template(&with_init, &names).unwrap_err();
        assert!(e.contains("fs-init"), "{e}");
    }
}
