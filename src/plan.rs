//! Planning: validated [`Settings`] and [`Templates`] in; per repository the
//! typed Kubernetes objects, the Helm values, and the IAM role with its trust
//! and permissions policies out. Pure: no client, no I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PodTemplateSpec, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value;

use crate::config::{Hooks, KubernetesConfig, Mode, Repository, RuleConfig, Settings};
use crate::kvp;
use crate::names::{self, RepoNames};
use crate::policy::{self, Decision, WebIdentityRequest};
use crate::templates::{self, Context, Templates};
use crate::{Error, Result};

/// Where the runner container mounts the hook template ConfigMap.
pub const HOOK_TEMPLATE_DIR: &str = "/etc/runner-identity";
/// The ConfigMap key (and file name) of the hook template.
pub const HOOK_TEMPLATE_KEY: &str = "hook-template.yaml";
/// ConfigMap key of the configuration `verify runner` reads in the runner pod.
pub const RUNNER_CONFIG_KEY: &str = "runner-identity.yaml";
/// ConfigMap key of the job-started hook script.
pub const JOB_STARTED_KEY: &str = "job-started.sh";
/// Where the init container puts the `runner-identity` binary in the runner pod.
pub const VERIFY_BIN_DIR: &str = "/opt/runner-identity/bin";

/// One right the runner-container-hooks check with SelfSubjectAccessReview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookRight {
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    pub verbs: &'static [&'static str],
}

impl HookRight {
    /// `resource` or `resource/subresource`, as written in a Role rule.
    pub fn resource_path(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

const CORE_RIGHTS: [HookRight; 4] = [
    HookRight {
        group: "",
        resource: "pods",
        subresource: "",
        verbs: &["get", "list", "create", "delete"],
    },
    HookRight {
        group: "",
        resource: "pods",
        subresource: "exec",
        verbs: &["get", "create"],
    },
    HookRight {
        group: "",
        resource: "pods",
        subresource: "log",
        verbs: &["get", "list", "watch"],
    },
    HookRight {
        group: "",
        resource: "secrets",
        subresource: "",
        verbs: &["get", "list", "create", "delete"],
    },
];
const JOBS_RIGHT: HookRight = HookRight {
    group: "batch",
    resource: "jobs",
    subresource: "",
    verbs: &["get", "list", "create", "delete"],
};

/// The rights the hooks of `flavour` need in the runner's namespace.
pub fn hook_rights(flavour: Hooks) -> Vec<HookRight> {
    let mut rights = CORE_RIGHTS.to_vec();
    if flavour == Hooks::Kubernetes {
        rights.push(JOBS_RIGHT);
    }
    rights
}

/// The IAM role planned for a repository.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IamRolePlan {
    pub name: String,
    pub path: String,
    pub arn: String,
    pub trust_policy: Value,
    pub permissions_policy: Option<Value>,
    pub managed_policy_arns: Vec<String>,
    pub permissions_boundary: Option<String>,
    pub max_session_duration: u32,
    pub tags: BTreeMap<String, String>,
}

/// Everything planned for one repository.
#[derive(Debug, Clone)]
pub struct RepoPlan {
    pub names: RepoNames,
    /// Only when the repository owns its namespace.
    pub namespace: Option<Namespace>,
    pub runner_service_account: ServiceAccount,
    pub job_service_account: ServiceAccount,
    pub role: Role,
    pub role_binding: RoleBinding,
    pub hook_template: ConfigMap,
    /// The scale set's GitHub credentials (`githubConfigSecret`), when
    /// runner-identity manages them ([`attach_github_secret`]).
    pub github_secret: Option<Secret>,
    /// Rendered gha-runner-scale-set values (YAML text, comments kept).
    pub values: String,
    pub iam_role: IamRolePlan,
}

/// A planned Kubernetes object, in apply order.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Object {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    Role(Role),
    RoleBinding(RoleBinding),
    ConfigMap(ConfigMap),
    Secret(Secret),
}

impl Object {
    /// The object's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Namespace(_) => "Namespace",
            Object::ServiceAccount(_) => "ServiceAccount",
            Object::Role(_) => "Role",
            Object::RoleBinding(_) => "RoleBinding",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(o) => &o.metadata,
            Object::ServiceAccount(o) => &o.metadata,
            Object::Role(o) => &o.metadata,
            Object::RoleBinding(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
        }
    }

    /// The object as shown to people (plan, diff): a Secret's values are
    /// replaced by a placeholder; its content digest annotation stays.
    pub fn shown(&self) -> Value {
        redacted(serde_json::to_value(self).unwrap_or(Value::Null))
    }
}

/// A JSON object with Secret values replaced (any other kind is unchanged).
pub fn redacted(mut v: Value) -> Value {
    if v.get("kind").and_then(Value::as_str) == Some("Secret") {
        for field in ["data", "stringData"] {
            if let Some(map) = v.get_mut(field).and_then(Value::as_object_mut) {
                for value in map.values_mut() {
                    *value = Value::String("(redacted)".into());
                }
            }
        }
    }
    v
}

/// Annotation with the SHA-256 of a managed Secret's content.
pub const CONTENT_DIGEST_ANNOTATION: &str = "runner-identity.dev/content-sha256";

/// Adds to every repository the Secret `githubConfigSecret` names, holding
/// ARC's keys (`data`, never printed: [`Object::shown`]).
pub fn attach_github_secret(plan: &mut Plan, settings: &Settings, data: &BTreeMap<String, String>) {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for (k, v) in data {
        hasher.update(k.as_bytes());
        hasher.update([0]);
        hasher.update(v.as_bytes());
        hasher.update([0]);
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let bytes: BTreeMap<String, k8s_openapi::ByteString> = data
        .iter()
        .map(|(k, v)| (k.clone(), k8s_openapi::ByteString(v.as_bytes().to_vec())))
        .collect();
    for repo_plan in &mut plan.repositories {
        let Some(repo) = settings
            .repositories
            .iter()
            .find(|r| r.full_name() == repo_plan.names.repository)
        else {
            continue;
        };
        let mut meta = metadata(
            settings,
            repo,
            &repo_plan.names,
            &settings.config.kubernetes.github_config_secret,
        );
        meta.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(CONTENT_DIGEST_ANNOTATION.into(), digest.clone());
        repo_plan.github_secret = Some(Secret {
            metadata: meta,
            type_: Some("Opaque".into()),
            data: Some(bytes.clone()),
            ..Default::default()
        });
    }
}

impl RepoPlan {
    /// The Kubernetes objects in dependency order (namespace first).
    pub fn objects(&self) -> Vec<Object> {
        let mut out = Vec::with_capacity(6);
        if let Some(ns) = &self.namespace {
            out.push(Object::Namespace(ns.clone()));
        }
        out.push(Object::ServiceAccount(self.runner_service_account.clone()));
        out.push(Object::ServiceAccount(self.job_service_account.clone()));
        out.push(Object::Role(self.role.clone()));
        out.push(Object::RoleBinding(self.role_binding.clone()));
        out.push(Object::ConfigMap(self.hook_template.clone()));
        if let Some(secret) = &self.github_secret {
            out.push(Object::Secret(secret.clone()));
        }
        out
    }
}

/// The whole plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub instance: String,
    pub repositories: Vec<RepoPlan>,
}

/// Plans every repository of `settings`.
pub fn plan(settings: &Settings, templates: &Templates) -> Result<Plan> {
    let all: Vec<RepoNames> = settings
        .repositories
        .iter()
        .map(|r| RepoNames::new(settings, r))
        .collect();
    names::check_collisions(&all)?;
    let repositories = settings
        .repositories
        .iter()
        .zip(all)
        .map(|(repo, names)| plan_repository(settings, templates, repo, names))
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan {
        instance: settings.instance.clone(),
        repositories,
    })
}

fn plan_repository(
    settings: &Settings,
    templates: &Templates,
    repo: &Repository,
    names: RepoNames,
) -> Result<RepoPlan> {
    let cfg = &settings.config;
    let ctx = context(settings, repo, &names);
    let meta = |name: &str| metadata(settings, repo, &names, name);

    let namespace = names.own_namespace.then(|| Namespace {
        metadata: ObjectMeta {
            namespace: None,
            ..meta(&names.namespace)
        },
        ..Default::default()
    });
    let runner_service_account = ServiceAccount {
        metadata: meta(&names.runner_service_account),
        ..Default::default()
    };
    let mut job_meta = meta(&names.job_service_account);
    if cfg.aws.mode == Mode::Irsa {
        let irsa = &cfg.kubernetes.irsa;
        let annotations = job_meta.annotations.get_or_insert_with(BTreeMap::new);
        annotations.insert(
            "eks.amazonaws.com/role-arn".into(),
            names.iam_role_arn.clone(),
        );
        annotations.insert("eks.amazonaws.com/audience".into(), irsa.audience.clone());
        annotations.insert(
            "eks.amazonaws.com/sts-regional-endpoints".into(),
            irsa.sts_regional_endpoints.to_string(),
        );
        annotations.insert(
            "eks.amazonaws.com/token-expiration".into(),
            irsa.token_expiration.to_string(),
        );
    }
    let job_service_account = ServiceAccount {
        metadata: job_meta,
        // The workflow pod needs no Kubernetes API token: IRSA and Pod Identity
        // project their own tokens, so the default one is not mounted.
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    let role = Role {
        metadata: meta(&names.role),
        rules: Some(role_rules(cfg.kubernetes.hooks, &repo.extra_rules)),
    };
    let role_binding = RoleBinding {
        metadata: meta(&names.role),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: names.role.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: names.runner_service_account.clone(),
            namespace: Some(names.namespace.clone()),
            ..Default::default()
        }]),
    };

    let hook_text = templates.render(templates::HOOK_TEMPLATE, &ctx)?;
    check_hook_template(&hook_text, &names).map_err(|message| Error::TemplateOutput {
        template: templates.describe(templates::HOOK_TEMPLATE),
        repository: names.repository.clone(),
        message,
    })?;
    let mut data = BTreeMap::from([(HOOK_TEMPLATE_KEY.to_owned(), hook_text)]);
    let hook = &cfg.kubernetes.verify_runner;
    if hook.enabled {
        data.insert(RUNNER_CONFIG_KEY.to_owned(), runner_config(settings, repo)?);
        data.insert(JOB_STARTED_KEY.to_owned(), job_started_script(hook.strict));
    }
    let hook_template = ConfigMap {
        metadata: meta(&names.config_map),
        data: Some(data),
        ..Default::default()
    };

    let values = templates.render(templates::VALUES, &ctx)?;
    check_values(&values, &names, &cfg.kubernetes).map_err(|message| Error::TemplateOutput {
        template: templates.describe(templates::VALUES),
        repository: names.repository.clone(),
        message,
    })?;

    let iam_role = plan_iam_role(settings, templates, repo, &names, &ctx)?;
    Ok(RepoPlan {
        names,
        namespace,
        runner_service_account,
        job_service_account,
        role,
        role_binding,
        hook_template,
        github_secret: None,
        values,
        iam_role,
    })
}

/// The configuration `verify runner` reads in this repository's runner pod:
/// the global settings and this repository's entry, nothing of the others.
fn runner_config(settings: &Settings, repo: &Repository) -> Result<String> {
    let mut config = settings.config.clone();
    // Discovery and credentials are the bootstrap's business, not the runner's.
    config.select = None;
    config.github.auth = None;
    config.kubernetes.github_credentials = None;
    let name = repo.name.to_lowercase();
    config
        .repositories
        .retain(|e| e.name().to_lowercase() == name);
    let text = serde_yaml::to_string(&config).map_err(|e| Error::Serialize {
        what: format!("the runner configuration of {}", repo.full_name()),
        message: e.to_string(),
    })?;
    // No source path here: the content must not depend on where apply ran.
    Ok(format!(
        "# The configuration `runner-identity verify runner` reads in the runner pod of\n\
         # {}, generated by runner-identity.\n{text}",
        repo.full_name()
    ))
}

/// The runner's job-started hook (`ACTIONS_RUNNER_HOOK_JOB_STARTED`; the
/// runner runs it with `bash -e` and fails the job on a non-zero exit).
fn job_started_script(strict: bool) -> String {
    format!(
        "# runner-identity: verify this runner's identity before the job starts.\n\
         exec {VERIFY_BIN_DIR}/runner-identity verify runner --config {HOOK_TEMPLATE_DIR}/{RUNNER_CONFIG_KEY}{}\n",
        if strict { " --strict" } else { "" }
    )
}

fn plan_iam_role(
    settings: &Settings,
    templates: &Templates,
    repo: &Repository,
    names: &RepoNames,
    ctx: &Context,
) -> Result<IamRolePlan> {
    let cfg = &settings.config;
    let trust_policy = checked_trust_policy(settings, templates, names, ctx)?;
    let permissions_policy = match &repo.inline_policy_template {
        Some(name) => Some(render_json(templates, name, ctx)?),
        None => None,
    };
    let mut tags = repo.tags.clone();
    tags.insert(kvp::MANAGED_BY_LABEL.into(), kvp::MANAGED_BY.into());
    tags.insert(kvp::INSTANCE_LABEL.into(), settings.instance.clone());
    tags.insert(kvp::REPOSITORY_ANNOTATION.into(), names.repository.clone());
    Ok(IamRolePlan {
        name: names.iam_role.clone(),
        path: cfg.aws.role_path.clone(),
        arn: names.iam_role_arn.clone(),
        trust_policy,
        permissions_policy,
        managed_policy_arns: repo.managed_policy_arns.clone(),
        permissions_boundary: repo.permissions_boundary.clone(),
        max_session_duration: repo.max_session_duration,
        tags,
    })
}

/// The trust policy planned for one repository's IAM role (what `verify job`
/// shows when STS refuses the job).
pub fn trust_policy(
    settings: &Settings,
    repo: &Repository,
    names: &RepoNames,
    templates: &Templates,
) -> Result<Value> {
    checked_trust_policy(settings, templates, names, &context(settings, repo, names))
}

fn checked_trust_policy(
    settings: &Settings,
    templates: &Templates,
    names: &RepoNames,
    ctx: &Context,
) -> Result<Value> {
    let trust_name = match settings.config.aws.mode {
        Mode::Irsa => templates::TRUST_IRSA,
        Mode::PodIdentity => templates::TRUST_POD_IDENTITY,
    };
    let trust_policy = render_json(templates, trust_name, ctx)?;
    check_trust_policy(&trust_policy, settings, names, ctx).map_err(|message| {
        Error::TemplateOutput {
            template: templates.describe(trust_name),
            repository: names.repository.clone(),
            message,
        }
    })?;
    Ok(trust_policy)
}

fn render_json(templates: &Templates, name: &str, ctx: &Context) -> Result<Value> {
    let text = templates.render(name, ctx)?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| Error::TemplateOutput {
        template: templates.describe(name),
        repository: ctx.repository.clone(),
        message: format!(
            "not valid JSON at line {} column {}: {e}",
            e.line(),
            e.column()
        ),
    })?;
    if policy::statements(&doc).is_empty() {
        return Err(Error::TemplateOutput {
            template: templates.describe(name),
            repository: ctx.repository.clone(),
            message: "the policy has no `Statement`".into(),
        });
    }
    Ok(doc)
}

/// The standard metadata of every object: the ownership labels (written only
/// here), the repository annotation, and the configured extras.
fn metadata(settings: &Settings, repo: &Repository, names: &RepoNames, name: &str) -> ObjectMeta {
    let mut labels = repo.labels.clone();
    labels.insert(kvp::MANAGED_BY_LABEL.into(), kvp::MANAGED_BY.into());
    labels.insert(kvp::INSTANCE_LABEL.into(), settings.instance.clone());
    labels.insert(kvp::REPOSITORY_LABEL.into(), names.repository_label.clone());
    let mut annotations = repo.annotations.clone();
    annotations.insert(kvp::REPOSITORY_ANNOTATION.into(), names.repository.clone());
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(names.namespace.clone()),
        labels: Some(labels),
        annotations: Some(annotations),
        ..Default::default()
    }
}

fn role_rules(flavour: Hooks, extra: &[RuleConfig]) -> Vec<PolicyRule> {
    let hooks = hook_rights(flavour).into_iter().map(|r| PolicyRule {
        api_groups: Some(vec![r.group.to_owned()]),
        resources: Some(vec![r.resource_path()]),
        verbs: r.verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..Default::default()
    });
    let extra = extra.iter().map(|r| PolicyRule {
        api_groups: Some(r.api_groups.clone()),
        resources: Some(r.resources.clone()),
        verbs: r.verbs.clone(),
        resource_names: (!r.resource_names.is_empty()).then(|| r.resource_names.clone()),
        ..Default::default()
    });
    hooks.chain(extra).collect()
}

fn context(settings: &Settings, repo: &Repository, names: &RepoNames) -> Context {
    let cfg = &settings.config;
    let partition = cfg.aws.partition.as_str();
    Context {
        repository: names.repository.clone(),
        owner: repo.owner.clone(),
        repo: repo.name.clone(),
        cluster: cfg.cluster.name.clone(),
        namespace: names.namespace.clone(),
        runner_service_account: names.runner_service_account.clone(),
        job_service_account: names.job_service_account.clone(),
        config_map: names.config_map.clone(),
        scale_set: names.scale_set.clone(),
        role_name: names.iam_role.clone(),
        role_arn: names.iam_role_arn.clone(),
        account_id: cfg.aws.account_id.clone(),
        partition: partition.to_owned(),
        issuer: settings.issuer_host_path.clone(),
        oidc_provider_arn: settings.issuer_host_path.as_ref().map(|i| {
            format!(
                "arn:{partition}:iam::{}:oidc-provider/{i}",
                cfg.aws.account_id
            )
        }),
        audience: cfg.kubernetes.irsa.audience.clone(),
        fs_group: cfg.kubernetes.fs_group,
        github_url: settings.github_url.clone(),
        config_url: format!("{}/{}", settings.github_url, names.repository),
        github_config_secret: cfg.kubernetes.github_config_secret.clone(),
        hooks: cfg.kubernetes.hooks.as_str().to_owned(),
        runner_image: cfg.kubernetes.runner_image.clone(),
        hook_template_dir: HOOK_TEMPLATE_DIR.to_owned(),
        hook_template_path: format!("{HOOK_TEMPLATE_DIR}/{HOOK_TEMPLATE_KEY}"),
        verify_runner: cfg.kubernetes.verify_runner.enabled,
        verify_image: cfg.kubernetes.verify_runner.image.clone(),
        verify_bin_dir: VERIFY_BIN_DIR.to_owned(),
        job_started_path: format!("{HOOK_TEMPLATE_DIR}/{JOB_STARTED_KEY}"),
        work_volume_size: cfg.kubernetes.work_volume_size.clone(),
        work_volume_storage_class: cfg.kubernetes.work_volume_storage_class.clone(),
    }
}

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

fn check_values(
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

fn check_trust_policy(
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
