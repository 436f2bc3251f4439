//! Checks of rendered output: the hook template, the Helm values and the
//! trust policy must be what the product requires, whatever the templates.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use crate::config::{KubernetesConfig, Mode, Settings};
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
    if pod
        .security_context
        .as_ref()
        .and_then(|s| s.fs_group)
        .is_none()
    {
        return Err("`spec.securityContext.fsGroup` is missing: a non-root job could not read the \
                    projected token (a template securityContext replaces the hooks' default fsGroup)"
            .into());
    }
    Ok(spec)
}

pub(super) fn check_values(
    text: &str,
    names: &RepoNames,
    k8s: &KubernetesConfig,
) -> std::result::Result<(), String> {
    let flavour = k8s.hooks;
    let v: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let get = |path: &[&str]| {
        path.iter()
            .try_fold(&v, |node, key| node.get(*key))
            .and_then(serde_yaml::Value::as_str)
            .map(str::to_owned)
    };
    let expect = |path: &[&str], want: &str| match get(path) {
        Some(got) if got == want => Ok(()),
        got => Err(format!(
            "`{}` must be `{want}`, found {got:?}",
            path.join(".")
        )),
    };
    expect(
        &["template", "spec", "serviceAccountName"],
        &names.runner_service_account,
    )?;
    expect(&["containerMode", "type"], flavour.as_str())?;
    expect(&["runnerScaleSetName"], &names.scale_set)?;
    if names.scale_set.len() > 45 {
        return Err("`runnerScaleSetName` is longer than the chart's 45 characters".into());
    }
    let containers = v
        .get("template")
        .and_then(|t| t.get("spec"))
        .and_then(|s| s.get("containers"))
        .and_then(serde_yaml::Value::as_sequence)
        .ok_or("`template.spec.containers` is missing")?;
    let runner = containers
        .iter()
        .find(|c| c.get("name").and_then(serde_yaml::Value::as_str) == Some("runner"))
        .ok_or("`template.spec.containers` has no container named `runner`")?;
    let has_env = |name: &str| {
        runner
            .get("env")
            .and_then(serde_yaml::Value::as_sequence)
            .is_some_and(|env| {
                env.iter()
                    .any(|e| e.get("name").and_then(serde_yaml::Value::as_str) == Some(name))
            })
    };
    let mut required = vec!["ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE"];
    if k8s.verify_runner.enabled {
        required.push("ACTIONS_RUNNER_HOOK_JOB_STARTED");
    }
    for name in required {
        if !has_env(name) {
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
