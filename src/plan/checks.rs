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
        match &ctx.group {
            None => expect("runner.kubernetesMode.extensionRef", &names.config_map)?,
            Some(group) => check_experimental_group_values(&v, group, ctx)?,
        }
        fs_group("runner.pod.spec.securityContext.fsGroup")?;
        for ignored in chart::EXPERIMENTAL_IGNORED {
            if at(ignored).is_some() {
                return Err(format!(
                    "`{ignored}` is set, but gha-runner-scale-set-experimental must not get it: {}",
                    chart::why_refused(ignored)
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
    if let Some(group) = &ctx.group {
        check_group_values(&v, runner, group, ctx)?;
    }
    Ok(())
}

/// The value of the variable `name` in a container's `env` list, as
/// Kubernetes takes it (the last entry of that name).
fn env_value<'a>(env: Option<&'a serde_yaml::Value>, name: &str) -> Option<&'a str> {
    env.and_then(serde_yaml::Value::as_sequence)?
        .iter()
        .rfind(|e| e.get("name").and_then(serde_yaml::Value::as_str) == Some(name))
        .and_then(|e| e.get("value"))
        .and_then(serde_yaml::Value::as_str)
}

/// A group's scale set on the experimental chart: at the organisation, in
/// the group's runner group, every job in a container, no hook extension (the
/// chart would set the template's variable to its read-only mount), and the
/// runner's variables naming the template job-started writes, the image's
/// script, the group and its configuration.
fn check_experimental_group_values(
    v: &serde_yaml::Value,
    group: &str,
    ctx: &Context,
) -> std::result::Result<(), String> {
    let at = |path: &str| {
        path.split('.')
            .try_fold(v, |node, key| node.get(key))
            .and_then(serde_yaml::Value::as_str)
    };
    let kube_mode = v.get("runner").and_then(|r| r.get("kubernetesMode"));
    for (path, want) in [
        ("scaleset.runnerGroup", group),
        ("auth.url", ctx.config_url.as_str()),
    ] {
        if at(path) != Some(want) {
            return Err(format!("`{path}` must be `{want}` in a group's scale set"));
        }
    }
    if kube_mode
        .and_then(|k| k.get("requireJobContainer"))
        .and_then(serde_yaml::Value::as_bool)
        != Some(true)
    {
        return Err(
            "`runner.kubernetesMode.requireJobContainer` must be true: a job without a container \
             would run in the runner container, beside the ServiceAccount that may start every \
             member's pods"
                .into(),
        );
    }
    for key in ["extensionRef", "extension"] {
        if kube_mode.and_then(|k| k.get(key)).is_some() {
            return Err(format!(
                "`runner.kubernetesMode.{key}` is set: the chart would point \
                 ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE at its read-only mount instead of the \
                 template job-started writes"
            ));
        }
    }
    let env = v.get("runner").and_then(|r| r.get("env"));
    for (name, want) in [
        (
            "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE",
            ctx.hook_template_path.as_str(),
        ),
        (
            "ACTIONS_RUNNER_HOOK_JOB_STARTED",
            ctx.job_started_path.as_str(),
        ),
        ("RUNNER_IDENTITY_GROUP", group),
        ("RUNNER_IDENTITY_CONFIG_TEXT", ctx.runner_config.as_str()),
    ] {
        if env_value(env, name) != Some(want) {
            return Err(format!(
                "`runner.env` must set {name} to the planned value in a group's scale set"
            ));
        }
    }
    Ok(())
}

/// A group's scale set: at the organisation, in the group's runner group,
/// every job in a container, the job-started hook on, and the hook template
/// where the hook writes it (the runner container's own emptyDir).
fn check_group_values(
    v: &serde_yaml::Value,
    runner: &serde_yaml::Value,
    group: &str,
    ctx: &Context,
) -> std::result::Result<(), String> {
    fn text(node: Option<&serde_yaml::Value>) -> Option<&str> {
        node.and_then(serde_yaml::Value::as_str)
    }
    if text(v.get("runnerGroup")) != Some(group) {
        return Err(format!(
            "`runnerGroup` must be `{group}`: the runner group limits the scale set to the group's repositories"
        ));
    }
    if text(v.get("githubConfigUrl")) != Some(ctx.config_url.as_str()) {
        return Err(format!(
            "`githubConfigUrl` must be the organisation's, `{}`",
            ctx.config_url
        ));
    }
    for (name, want) in [
        (
            "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE",
            ctx.hook_template_path.as_str(),
        ),
        ("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER", "true"),
        (
            "ACTIONS_RUNNER_HOOK_JOB_STARTED",
            ctx.job_started_path.as_str(),
        ),
    ] {
        if env_value(runner.get("env"), name) != Some(want) {
            return Err(format!(
                "the `runner` container must set {name} to `{want}` in a group's scale set"
            ));
        }
    }
    let mounted_empty_dir = v
        .get("template")
        .and_then(|t| t.get("spec"))
        .and_then(|s| s.get("volumes"))
        .and_then(serde_yaml::Value::as_sequence)
        .is_some_and(|volumes| {
            let name = runner
                .get("volumeMounts")
                .and_then(serde_yaml::Value::as_sequence)
                .and_then(|mounts| {
                    mounts
                        .iter()
                        .find(|m| text(m.get("mountPath")) == Some(ctx.job_template_dir.as_str()))
                })
                .and_then(|m| text(m.get("name")));
            volumes.iter().any(|vol| {
                text(vol.get("name")).is_some()
                    && text(vol.get("name")) == name
                    && vol.get("emptyDir").is_some()
            })
        });
    if !mounted_empty_dir
        || !ctx
            .hook_template_path
            .starts_with(&format!("{}/", ctx.job_template_dir))
    {
        return Err(format!(
            "the `runner` container must mount an emptyDir of its own at {} and keep the hook \
             template there: a template anywhere the workflow pod writes would let a job choose \
             its identity",
            ctx.job_template_dir
        ));
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
        (_, _, Mode::PodIdentity) => check_pod_identity_trust(doc, settings, names, ctx),
        _ => Err("IRSA needs the cluster's OIDC issuer (cluster.oidcIssuer)".into()),
    }
}

/// The Pod Identity trust lets exactly the job ServiceAccount of this
/// repository, on this cluster (by ARN when its region is known), in this
/// account, with session tags, assume the role — judged by the evaluator
/// against the requests EKS Pod Identity makes, and against the ones an
/// attacker could get it to make.
fn check_pod_identity_trust(
    doc: &Value,
    settings: &Settings,
    names: &RepoNames,
    ctx: &Context,
) -> std::result::Result<(), String> {
    let account = settings.config.aws.account_id.as_str();
    let cluster = settings.config.cluster.name.as_str();
    let arn = ctx.cluster_arn.clone().unwrap_or_default();
    let request =
        |account: &str, cluster: &str, arn: &str, namespace: &str, sa: &str, tags: bool| {
            let mut context = vec![("aws:SourceAccount", account)];
            if tags {
                context.extend([
                    ("aws:RequestTag/eks-cluster-name", cluster),
                    ("aws:RequestTag/eks-cluster-arn", arn),
                    ("aws:RequestTag/kubernetes-namespace", namespace),
                    ("aws:RequestTag/kubernetes-service-account", sa),
                ]);
            }
            policy::evaluate_service_assume(
                doc,
                &policy::ServiceRequest {
                    service: "pods.eks.amazonaws.com",
                    context: &context,
                },
            )
        };
    let (ns, sa) = (names.namespace.as_str(), names.job_service_account.as_str());
    match request(account, cluster, &arn, ns, sa, true) {
        Decision::Allowed(_) => {}
        Decision::Denied(i) => return Err(format!("statement {i} denies {ns}/{sa} the role")),
        Decision::NotAllowed(reasons) => {
            return Err(format!(
                "it does not let Pod Identity assume the role for {ns}/{sa}: {}",
                reasons.join("; ")
            ));
        }
    }
    let other_region = arn.replacen(":eks:", ":eks:other-region-", 1);
    let attacks = [
        (
            "another ServiceAccount of the namespace",
            request(account, cluster, &arn, ns, "default", true),
        ),
        (
            "another namespace's ServiceAccount of this name",
            request(account, cluster, &arn, "other", sa, true),
        ),
        (
            "a same-named cluster of another account",
            request("999999999999", cluster, &arn, ns, sa, true),
        ),
        (
            "an association with session tags disabled",
            request(account, cluster, &arn, ns, sa, false),
        ),
    ];
    for (who, decision) in attacks {
        if matches!(decision, Decision::Allowed(_)) {
            return Err(format!(
                "it also lets {who} assume the role; condition on aws:SourceAccount and the \
                 aws:RequestTag/ cluster, namespace and service-account tags"
            ));
        }
    }
    if ctx.cluster_arn.is_some()
        && matches!(
            request(account, cluster, &other_region, ns, sa, true),
            Decision::Allowed(_)
        )
    {
        return Err(format!(
            "it also lets a same-named cluster in another region assume the role; condition on \
             aws:RequestTag/eks-cluster-arn = {arn}"
        ));
    }
    Ok(())
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

    const POD_IDENTITY: &str = "github: {owner: acme}\nrepositories: [api]\ncluster: {name: ci, region: eu-west-1}\naws: {accountId: '111122223333', mode: pod-identity}\n";

    fn plan_with(trust: Option<&str>) -> crate::Result<crate::plan::Plan> {
        let settings = crate::config::parse(POD_IDENTITY, std::path::Path::new("t")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = trust {
            std::fs::write(dir.path().join(crate::templates::TRUST_POD_IDENTITY), text).unwrap();
        }
        let templates = crate::templates::Templates::load(Some(dir.path())).unwrap();
        crate::plan::plan(&settings, &templates)
    }

    #[test]
    fn the_pod_identity_trust_pins_the_cluster_by_arn_and_refuses_what_an_attacker_could_send() {
        let plan = plan_with(None).unwrap();
        let trust = &plan.repositories[0].iam_role.trust_policy;
        assert_eq!(
            trust.pointer("/Statement/0/Condition/StringEquals/aws:RequestTag~1eks-cluster-arn"),
            Some(&serde_json::json!(
                "arn:aws:eks:eu-west-1:111122223333:cluster/ci"
            ))
        );
        // A trust that names the cluster only by name: a same-named cluster
        // in another region could assume the role.
        let by_name = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {"aws:SourceAccount": "111122223333",
              "aws:RequestTag/eks-cluster-name": "ci",
              "aws:RequestTag/kubernetes-namespace": "{{ namespace }}",
              "aws:RequestTag/kubernetes-service-account": "{{ job_service_account }}"}}}]}"#;
        let e = plan_with(Some(by_name)).unwrap_err().to_string();
        assert!(e.contains("another region"), "{e}");
        // No namespace condition: any namespace's ServiceAccount of the name.
        let any_namespace = by_name.replace(
            r#""aws:RequestTag/kubernetes-namespace": "{{ namespace }}","#,
            r#""aws:RequestTag/eks-cluster-arn": "{{ cluster_arn }}","#,
        );
        let e = plan_with(Some(&any_namespace)).unwrap_err().to_string();
        assert!(e.contains("another namespace"), "{e}");
        // Only the service principal (the EKS user guide's first example).
        let open = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]}"#;
        assert!(plan_with(Some(open)).is_err());
    }

    #[test]
    fn pod_identity_without_a_region_is_refused_with_the_fix() {
        let text = POD_IDENTITY.replace(", region: eu-west-1", "");
        let e = crate::config::parse(&text, std::path::Path::new("t"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cluster.region") && e.contains("ARN"), "{e}");
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
