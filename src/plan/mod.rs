//! Planning: validated [`Settings`] and [`Templates`] in; per repository the
//! typed Kubernetes objects, the Helm values, and the IAM role with its trust
//! and permissions policies out. Pure: no client, no I/O.

mod admission;
mod checks;
mod hook;
mod iam;
mod isolation;
mod objects;
mod rights;

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value;

use crate::config::{
    ChartName, Hooks, KubernetesConfig, Mode, PodSecurityLevel, Repository, RunnerCredentials,
    Settings,
};
use crate::kvp;
use crate::names::{self, RepoNames};
use crate::templates::{self, Context, Templates};
use crate::{Error, Result};

pub use self::checks::check_hook_template;
use self::checks::check_values;
use self::hook::{RunnerConfig, job_started_script};
use self::iam::plan_iam_role;
pub use self::iam::{TARGET_STATEMENT, target_trust_policy, trust_policy};
pub use self::isolation::{
    INSTANCE_METADATA, METADATA_POLICY, POD_IDENTITY_AGENT, instance_metadata_policy,
    pod_security_labels,
};
#[cfg(any(test, feature = "test-support"))]
pub use self::isolation::{baseline_violations, egress_allowed};
pub use self::objects::{CONTENT_DIGEST_ANNOTATION, Kind, Object, redacted};
use self::rights::role_rules;
pub use self::rights::{HookRight, HookVersion, hook_asks, hook_rights, hook_versions};

/// Where the runner container mounts the hook template ConfigMap.
pub const HOOK_TEMPLATE_DIR: &str = "/etc/runner-identity";
/// The ConfigMap key (and file name) of the hook template.
pub const HOOK_TEMPLATE_KEY: &str = "hook-template.yaml";
/// The ConfigMap key `gha-runner-scale-set-experimental` mounts as the hook
/// template (`runner.kubernetesMode.extensionRef`).
pub const EXTENSION_KEY: &str = "extension";
/// Where runner-identity's image keeps the job-started script of the
/// experimental chart's runner image (next to the binary).
pub const IMAGE_JOB_STARTED: &str = "/opt/runner-identity/bin/job-started.sh";
/// ConfigMap key of the configuration `verify runner` reads in the runner pod.
pub const RUNNER_CONFIG_KEY: &str = "runner-identity.yaml";
/// ConfigMap key of the job-started hook script.
pub const JOB_STARTED_KEY: &str = "job-started.sh";
/// Where the init container puts the `runner-identity` binary in the runner pod.
pub const VERIFY_BIN_DIR: &str = "/opt/runner-identity/bin";

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
    /// The Pod Identity target role the association chains to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_role_arn: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// Everything planned for one repository.
#[derive(Debug, Clone)]
pub struct RepoPlan {
    pub names: RepoNames,
    /// Only when the repository owns its namespace.
    pub namespace: Option<Namespace>,
    /// Denies egress to the instance metadata service in the namespace
    /// (`kubernetes.blockInstanceMetadata`; one per namespace).
    pub network_policy: Option<NetworkPolicy>,
    /// The guard of a shared namespace (`kubernetes.sharedNamespace`; with
    /// the first repository planned into it).
    pub admission_policy: Option<(ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding)>,
    pub runner_service_account: ServiceAccount,
    pub job_service_account: ServiceAccount,
    pub role: Role,
    pub role_binding: RoleBinding,
    pub hook_template: ConfigMap,
    /// The scale set's GitHub credentials (`githubConfigSecret`), when
    /// runner-identity manages them ([`Planner::with_credentials`]).
    pub github_secret: Option<Secret>,
    /// Rendered gha-runner-scale-set values (YAML text, comments kept).
    pub values: String,
    pub iam_role: IamRolePlan,
}

/// Namespaces no repository may use: the cluster's own, and ARC's
/// controller's. The runner there would hold the hooks' rights (pods,
/// Secrets) next to the cluster's or the controller's credentials, and so
/// would the identity that runs `apply` (it holds the Roles it writes).
fn refuse_system_namespaces(settings: &Settings, names: &[RepoNames]) -> Result<()> {
    let controller = settings
        .config
        .kubernetes
        .chart
        .controller_service_account
        .as_ref()
        .map(|c| c.namespace.as_str());
    let reserved = |ns: &str| {
        matches!(
            ns,
            "kube-system" | "kube-public" | "kube-node-lease" | "default"
        ) || Some(ns) == controller
    };
    if let Some(n) = names
        .iter()
        .find(|n| n.role.starts_with("runner-identity-"))
    {
        return Err(Error::ConfigInvalid {
            path: settings.source.clone(),
            field: "kubernetes.names.role".into(),
            message: format!(
                "`{}` ({}) is a name `bootstrap` gives the rights of the identity that runs apply \
                 (runner-identity-…); name the runner's Role otherwise",
                n.role, n.repository
            ),
        });
    }
    match names.iter().find(|n| reserved(&n.namespace)) {
        None => Ok(()),
        Some(n) => Err(Error::ConfigInvalid {
            path: settings.source.clone(),
            field: "kubernetes.namespace".into(),
            message: format!(
                "`{}` puts {} in namespace `{}`, which belongs to the cluster or to ARC's \
                 controller: its runner, and the identity that runs apply, would hold pods and \
                 Secrets rights next to their credentials. Use a namespace of its own \
                 (`gha-{{repo}}`, the default)",
                settings.config.kubernetes.namespace, n.repository, n.namespace
            ),
        }),
    }
}

/// In a shared namespace, a scale set whose name starts with another's and
/// `-`: ARC names runner pods `<scale set>-<hash>-runner-<hash>`, and the
/// guard tells a runner's pods by their name's prefix, so one runner could by
/// chance own a prefix of the other's pods' names and reach them.
fn refuse_prefix_scale_sets(
    settings: &Settings,
    by_namespace: &BTreeMap<&str, Vec<&RepoNames>>,
) -> Result<()> {
    for (ns, repos) in by_namespace.iter().filter(|(_, r)| r.len() > 1) {
        for a in repos {
            if let Some(b) = repos
                .iter()
                .find(|b| b.scale_set.starts_with(&format!("{}-", a.scale_set)))
            {
                return Err(Error::ConfigInvalid {
                    path: settings.source.clone(),
                    field: "kubernetes.names.scaleSet".into(),
                    message: format!(
                        "in the shared namespace `{ns}`, scale set `{}` ({}) starts with scale set \
                         `{}` ({}) and `-`: their runner pods' names could share the prefix the \
                         admission policy tells a runner's own pods by. Rename one (or give each \
                         repository its own namespace)",
                        b.scale_set, b.repository, a.scale_set, a.repository
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The refusal of several repositories in one namespace, with the risk.
fn shared_namespace_refused(settings: &Settings, namespace: &str, repos: &[&RepoNames]) -> Error {
    let named: Vec<&str> = repos
        .iter()
        .take(3)
        .map(|n| n.repository.as_str())
        .collect();
    Error::ConfigInvalid {
        path: settings.source.clone(),
        field: "kubernetes.namespace".into(),
        message: format!(
            "`{}` puts {} repositories in namespace `{namespace}` ({}{}). There each repository's \
             runner ServiceAccount may create pods, so it can start a pod as another repository's \
             job ServiceAccount and assume its IAM role, and it may read the Secrets the hooks \
             create for the other repositories' container steps (their `env:`, secrets included). \
             Give each repository its own namespace ({{repo}} in kubernetes.namespace), or set \
             kubernetes.sharedNamespace: true, which adds a ValidatingAdmissionPolicy per shared \
             namespace (Kubernetes 1.30 or later) so a runner starts pods only as its own job \
             ServiceAccount; the step Secrets stay readable across repositories even then",
            settings.config.kubernetes.namespace,
            repos.len(),
            named.join(", "),
            if repos.len() > named.len() {
                ", …"
            } else {
                ""
            }
        ),
    }
}

/// The ConfigMap key of the hook template for `chart`.
pub fn hook_template_key(chart: ChartName) -> &'static str {
    match chart {
        ChartName::Classic => HOOK_TEMPLATE_KEY,
        ChartName::Experimental => EXTENSION_KEY,
    }
}

impl RepoPlan {
    /// The rendered hook template (under the key its chart reads).
    pub fn hook_template_text(&self) -> Option<&str> {
        let data = self.hook_template.data.as_ref()?;
        [HOOK_TEMPLATE_KEY, EXTENSION_KEY]
            .iter()
            .find_map(|k| data.get(*k))
            .map(String::as_str)
    }
}

/// The whole plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub instance: String,
    pub repositories: Vec<RepoPlan>,
}

/// Repository plans by index: a whole [`Plan`] held in memory, or a
/// [`Planner`] that plans a repository each time it is asked (so that a
/// stage working repository by repository holds one plan at a time, and
/// its memory stays flat in the number of repositories).
pub trait Plans: Sync {
    /// The configuration instance the plans belong to.
    fn instance(&self) -> &str;
    /// How many repositories are planned.
    fn count(&self) -> usize;
    /// The names of the repository at `index`, known without planning it.
    fn names(&self, index: usize) -> Option<&RepoNames>;
    /// The plan of the repository at `index` (`0..count()`).
    fn repository(&self, index: usize) -> Result<Cow<'_, RepoPlan>>;
    /// The same plan again, for a stage that already had it from
    /// [`Plans::repository`]: planning is deterministic, so the checks of
    /// the templates' output, which passed then, need not run twice.
    fn repository_again(&self, index: usize) -> Result<Cow<'_, RepoPlan>> {
        self.repository(index)
    }
}

impl Plans for Plan {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn count(&self) -> usize {
        self.repositories.len()
    }

    fn names(&self, index: usize) -> Option<&RepoNames> {
        self.repositories.get(index).map(|r| &r.names)
    }

    fn repository(&self, index: usize) -> Result<Cow<'_, RepoPlan>> {
        self.repositories
            .get(index)
            .map(Cow::Borrowed)
            .ok_or_else(|| Error::Internal {
                message: format!("no repository plan at index {index}"),
            })
    }
}

/// Plans one repository at a time. What spans repositories (name
/// collisions, shared namespaces, the first repository of each namespace)
/// is decided once, by [`Planner::new`]; each [`Plans::repository`] call
/// then plans one repository on its own, the same way every time.
pub struct Planner<'a> {
    settings: &'a Settings,
    templates: &'a Templates,
    names: Vec<RepoNames>,
    /// Per repository: the first planned into its namespace.
    first_in_namespace: Vec<bool>,
    /// The runner ServiceAccounts of each shared namespace.
    shared: BTreeMap<String, BTreeMap<String, String>>,
    /// The GitHub credentials of the scale sets, by `owner/name`.
    credentials: Option<&'a BTreeMap<String, BTreeMap<String, String>>>,
    /// The global part of each runner pod's configuration, serialised once.
    runner_config: RunnerConfig,
}

impl<'a> Planner<'a> {
    /// Checks what spans repositories; refuses colliding names and a shared
    /// namespace that is not opted into.
    pub fn new(settings: &'a Settings, templates: &'a Templates) -> Result<Planner<'a>> {
        let names: Vec<RepoNames> = settings
            .repositories
            .iter()
            .map(|r| RepoNames::new(settings, r))
            .collect();
        refuse_system_namespaces(settings, &names)?;
        names::check_collisions(&names)?;
        let mut by_namespace: BTreeMap<&str, Vec<&RepoNames>> = BTreeMap::new();
        for n in &names {
            by_namespace
                .entry(n.namespace.as_str())
                .or_default()
                .push(n);
        }
        if let Some((ns, repos)) = by_namespace.iter().find(|(_, r)| r.len() > 1)
            && !settings.config.kubernetes.shared_namespace
        {
            return Err(shared_namespace_refused(settings, ns, repos));
        }
        refuse_prefix_scale_sets(settings, &by_namespace)?;
        let shared = by_namespace
            .iter()
            .filter(|(_, repos)| repos.len() > 1)
            .map(|(ns, repos)| ((*ns).to_owned(), admission::runners_of(ns, repos)))
            .collect();
        // Objects of a whole namespace (the egress policy, the guard) go
        // with the first repository planned into it.
        let mut seen = std::collections::BTreeSet::new();
        let first_in_namespace = names
            .iter()
            .map(|n| seen.insert(n.namespace.as_str()))
            .collect();
        Ok(Planner {
            settings,
            templates,
            names,
            first_in_namespace,
            shared,
            credentials: None,
            runner_config: RunnerConfig::new(settings)?,
        })
    }

    /// Adds to every repository that has credentials the Secret
    /// `githubConfigSecret` names, holding ARC's keys (`data`, never
    /// printed: [`Object::shown`]); `credentials` maps `owner/name` to the
    /// Secret's content.
    pub fn with_credentials(
        mut self,
        credentials: &'a BTreeMap<String, BTreeMap<String, String>>,
    ) -> Planner<'a> {
        self.credentials = Some(credentials);
        self
    }

    /// Every repository planned, held at once (for `plan`'s output).
    pub fn plan(&self) -> Result<Plan> {
        Ok(Plan {
            instance: self.settings.instance.clone(),
            repositories: (0..self.count())
                .map(|i| self.repository(i).map(Cow::into_owned))
                .collect::<Result<_>>()?,
        })
    }
}

impl Plans for Planner<'_> {
    fn instance(&self) -> &str {
        &self.settings.instance
    }

    fn count(&self) -> usize {
        self.names.len()
    }

    fn names(&self, index: usize) -> Option<&RepoNames> {
        self.names.get(index)
    }

    fn repository(&self, index: usize) -> Result<Cow<'_, RepoPlan>> {
        self.plan_one(index, OutputChecks::Run)
    }

    fn repository_again(&self, index: usize) -> Result<Cow<'_, RepoPlan>> {
        self.plan_one(index, OutputChecks::Passed)
    }
}

/// Whether the checks of the templates' output run while planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OutputChecks {
    Run,
    /// They passed when this repository was planned before.
    Passed,
}

impl Planner<'_> {
    fn plan_one(&self, index: usize, checks: OutputChecks) -> Result<Cow<'_, RepoPlan>> {
        let settings = self.settings;
        let (Some(repo), Some(names), Some(&first)) = (
            settings.repositories.get(index),
            self.names.get(index),
            self.first_in_namespace.get(index),
        ) else {
            return Err(Error::Internal {
                message: format!("no repository to plan at index {index}"),
            });
        };
        let guard = self
            .shared
            .get(&names.namespace)
            .filter(|_| first)
            .map(|runners| {
                let meta = metadata(settings, repo, names, "");
                admission::guard(&names.namespace, runners, meta)
            });
        let mut plan = self.plan_repository(repo, names.clone(), first, checks)?;
        plan.admission_policy = guard;
        if let Some(data) = self.credentials.and_then(|c| c.get(&plan.names.repository)) {
            plan.github_secret = Some(objects::github_secret(settings, repo, &plan.names, data));
        }
        Ok(Cow::Owned(plan))
    }
}

/// Plans every repository of `settings`.
pub fn plan(settings: &Settings, templates: &Templates) -> Result<Plan> {
    Planner::new(settings, templates)?.plan()
}

impl Planner<'_> {
    fn plan_repository(
        &self,
        repo: &Repository,
        names: RepoNames,
        first_in_namespace: bool,
        checks: OutputChecks,
    ) -> Result<RepoPlan> {
        let (settings, templates) = (self.settings, self.templates);
        let cfg = &settings.config;
        let ctx = context(settings, repo, &names);
        let meta = |name: &str| metadata(settings, repo, &names, name);

        let namespace = names.own_namespace.then(|| {
            let mut metadata = ObjectMeta {
                namespace: None,
                ..meta(&names.namespace)
            };
            if let Some(level) = cfg.kubernetes.pod_security {
                metadata
                    .labels
                    .get_or_insert_with(BTreeMap::new)
                    .extend(pod_security_labels(level));
            }
            Namespace {
                metadata,
                ..Default::default()
            }
        });
        let network_policy = (cfg.kubernetes.block_instance_metadata && first_in_namespace)
            .then(|| instance_metadata_policy(meta(METADATA_POLICY)));
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
        if checks == OutputChecks::Run {
            check_hook_template(&hook_text, &names).map_err(|message| Error::TemplateOutput {
                template: templates.describe(templates::HOOK_TEMPLATE),
                repository: names.repository.clone(),
                message,
            })?;
        }
        let chart = cfg.kubernetes.chart.name;
        let mut data = BTreeMap::from([(hook_template_key(chart).to_owned(), hook_text)]);
        let hook = &cfg.kubernetes.verify_runner;
        let mut ctx = ctx;
        if ctx.verify_runner {
            let runner_config = self.runner_config.render(repo)?;
            match chart {
                // The runner container mounts the whole ConfigMap.
                ChartName::Classic => {
                    data.insert(RUNNER_CONFIG_KEY.to_owned(), runner_config);
                    data.insert(JOB_STARTED_KEY.to_owned(), job_started_script(hook.strict));
                }
                // The chart mounts the `extension` key alone: the configuration
                // goes in a variable, the script is in the runner image.
                ChartName::Experimental => ctx.runner_config = runner_config,
            }
        }
        let hook_template = ConfigMap {
            metadata: meta(&names.config_map),
            data: Some(data),
            ..Default::default()
        };

        let values_template = match chart {
            ChartName::Classic => templates::VALUES,
            ChartName::Experimental => templates::VALUES_EXPERIMENTAL,
        };
        let values = templates.render(values_template, &ctx)?;
        if checks == OutputChecks::Run {
            check_values(&values, &names, &ctx).map_err(|message| Error::TemplateOutput {
                template: templates.describe(values_template),
                repository: names.repository.clone(),
                message,
            })?;
        }

        let iam_role = plan_iam_role(settings, templates, repo, &names, &ctx, checks)?;
        Ok(RepoPlan {
            names,
            namespace,
            runner_service_account,
            job_service_account,
            role,
            role_binding,
            hook_template,
            network_policy,
            admission_policy: None,
            github_secret: None,
            values,
            iam_role,
        })
    }
}

/// The standard metadata of every object: the ownership labels (written only
/// here), the repository annotation, and the configured extras.
pub(super) fn metadata(
    settings: &Settings,
    repo: &Repository,
    names: &RepoNames,
    name: &str,
) -> ObjectMeta {
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

/// `ACTIONS_RUNNER_CONTAINER_HOOKS` of a flavour, as the runner image ships them.
pub fn hook_path(hooks: Hooks) -> &'static str {
    match hooks {
        Hooks::Kubernetes => "/home/runner/k8s/index.js",
        Hooks::KubernetesNovolume => "/home/runner/k8s-novolume/index.js",
    }
}

/// Whether the values run `verify runner` as the job-started hook: always
/// when enabled on `gha-runner-scale-set` (an init container brings the
/// binary); on the experimental chart only with a runner image that carries
/// it ([`planning_warnings`] says so otherwise).
pub fn verify_runner_in_values(k8s: &KubernetesConfig) -> bool {
    let verify = &k8s.verify_runner;
    verify.enabled && (k8s.chart.name == ChartName::Classic || verify.runner_image.is_some())
}

/// What `plan` and `apply` should say about a configuration that plans fine
/// but not as the user may think.
pub fn planning_warnings(settings: &Settings) -> Vec<String> {
    let k8s = &settings.config.kubernetes;
    let mut warnings = Vec::new();
    if k8s.verify_runner.enabled && !verify_runner_in_values(k8s) {
        warnings.push(format!(
            "kubernetes.verifyRunner: the values have no job-started hook, so `verify runner` does not \
             run before jobs: {} cannot mount runner-identity into the runner container. Build a \
             runner image that carries it (two lines, see docs/reference.md: FROM {} / COPY --from=<the \
             runner-identity image> /usr/local/bin/runner-identity {IMAGE_JOB_STARTED} {VERIFY_BIN_DIR}/) \
             and set kubernetes.verifyRunner.runnerImage, or set verifyRunner.enabled: false",
            k8s.chart.name.as_str(),
            k8s.runner_image
        ));
    }
    warnings.extend(credential_warnings(settings));
    if k8s.shared_namespace && !k8s.namespace.contains("{repo}") {
        warnings.push(format!(
            "kubernetes.sharedNamespace: in `{}` the admission policy keeps each runner to its own \
             pods, Jobs and Secrets for every write, exec, attach and port-forward, but admission \
             never sees reads: every runner there can read the other runners' pods (their \
             environment), logs and the Secrets the hooks create for container steps (their \
             `env:`, secrets included). A shared namespace cannot isolate what runners read; give \
             each repository its own namespace ({{repo}} in kubernetes.namespace) where that matters",
            k8s.namespace
        ));
    }
    if floating_tag(&k8s.runner_image) {
        warnings.push(format!(
            "kubernetes.runnerImage: `{}` can change under you: the runner-container-hooks it \
             ships decide which rights the runner needs and how the workflow pod is named, which \
             `verify` and the planned Role depend on. Pin a release (the default is {}), or a \
             digest (`image:tag@sha256:…`), and move it deliberately",
            k8s.runner_image,
            crate::config::DEFAULT_RUNNER_IMAGE
        ));
    }
    if let Err(e) = crate::bootstrap::requirements(settings) {
        warnings.push(format!(
            "bootstrap and apply will refuse this configuration until it is fixed: {e}"
        ));
    }
    match k8s.pod_security {
        Some(PodSecurityLevel::Privileged) => warnings.push(
            "kubernetes.podSecurity: privileged lets any pod of a repository namespace use \
             hostPath, host namespaces and privileged containers, which reach the node and every \
             repository's credentials on it; use baseline (the default)"
                .to_owned(),
        ),
        Some(PodSecurityLevel::Restricted) => warnings.push(
            "kubernetes.podSecurity: restricted admits the hooks' workflow pods only when the hook \
             template makes them non-root (runAsNonRoot, seccompProfile RuntimeDefault, \
             allowPrivilegeEscalation false, capabilities drop ALL on every container); the \
             planned template does not"
                .to_owned(),
        ),
        _ => {}
    }
    warnings
}

/// Whether an image reference floats: no tag, or `latest`, and no digest.
fn floating_tag(image: &str) -> bool {
    if image.contains("@sha256:") {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => true,
        Some((_, tag)) => tag == "latest",
    }
}

/// Credentials that reach further than one repository, placed where that
/// repository's runner can read them (the hooks need secrets get/list in the
/// namespace, and ARC needs the Secret there).
fn credential_warnings(settings: &Settings) -> Vec<String> {
    let mut warnings = Vec::new();
    let shared: Vec<&str> = settings
        .repositories
        .iter()
        .filter(|r| r.github_credentials.is_some() && !r.own_github_credentials)
        .map(|r| r.name.as_str())
        .collect();
    let global = settings
        .repositories
        .iter()
        .filter(|r| !r.own_github_credentials)
        .find_map(|r| r.github_credentials.as_ref());
    if let (Some(c), false) = (global, shared.is_empty()) {
        let named: Vec<&str> = shared.iter().take(3).copied().collect();
        warnings.push(format!(
            "kubernetes.githubCredentials: the same {} goes into the namespace of {} repositories \
             ({}{}), where each runner ServiceAccount can read it (the hooks need secrets \
             get/list there): a job's runner could take a credential that reaches beyond its \
             repository. Prefer a fine-grained token per repository, limited to that repository \
             (repositories[].kubernetes.githubCredentials), or a GitHub App installation limited \
             to the selected repositories (docs/reference.md: Threat model)",
            c.kind(),
            shared.len(),
            named.join(", "),
            if shared.len() > named.len() {
                ", …"
            } else {
                ""
            },
        ));
    }
    for repo in settings
        .repositories
        .iter()
        .filter(|r| r.own_github_credentials)
    {
        if let Some(c) = repo
            .github_credentials
            .as_ref()
            .filter(|c| !matches!(c, RunnerCredentials::Token(_)))
        {
            warnings.push(format!(
                "repositories[{}].kubernetes.githubCredentials: a {} in the namespace, readable \
                 by the runner ServiceAccount, acts for every repository its installation \
                 covers; limit the installation to the selected repositories, or use a \
                 fine-grained token limited to {}",
                repo.name,
                c.kind(),
                repo.full_name()
            ));
        }
    }
    warnings
}

pub(super) fn context(settings: &Settings, repo: &Repository, names: &RepoNames) -> Context {
    let cfg = &settings.config;
    let chart = cfg.kubernetes.chart.name;
    let verify = &cfg.kubernetes.verify_runner;
    let partition = cfg.aws.partition.as_str();
    Context {
        repository: names.repository.clone(),
        owner: repo.owner.clone(),
        repo: repo.name.clone(),
        cluster: cfg.cluster.name.clone(),
        cluster_arn: cfg.cluster.region.as_ref().map(|region| {
            format!(
                "arn:{partition}:eks:{region}:{}:cluster/{}",
                cfg.aws.account_id, cfg.cluster.name
            )
        }),
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
        runner_container_image: match (chart, &verify.runner_image) {
            (ChartName::Experimental, Some(image)) if verify.enabled => image.clone(),
            _ => cfg.kubernetes.runner_image.clone(),
        },
        runner_fs_group: cfg.kubernetes.runner_fs_group,
        chart_name: chart.as_str().to_owned(),
        chart_version: cfg.kubernetes.chart.version.clone(),
        controller_versions: crate::chart::controller_versions(&cfg.kubernetes.chart.version),
        chart_reference: crate::chart::oci_reference(chart),
        controller_service_account: cfg.kubernetes.chart.controller_service_account.clone(),
        hook_path: hook_path(cfg.kubernetes.hooks).to_owned(),
        runner_config: String::new(),
        hook_template_dir: HOOK_TEMPLATE_DIR.to_owned(),
        hook_template_path: format!("{HOOK_TEMPLATE_DIR}/{HOOK_TEMPLATE_KEY}"),
        verify_runner: verify_runner_in_values(&cfg.kubernetes),
        verify_image: verify.image.clone(),
        verify_bin_dir: VERIFY_BIN_DIR.to_owned(),
        job_started_path: match chart {
            ChartName::Classic => format!("{HOOK_TEMPLATE_DIR}/{JOB_STARTED_KEY}"),
            ChartName::Experimental => IMAGE_JOB_STARTED.to_owned(),
        },
        work_volume_size: cfg.kubernetes.work_volume_size.clone(),
        work_volume_storage_class: cfg.kubernetes.work_volume_storage_class.clone(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_image_without_a_pinned_tag_or_digest_floats() {
        use super::floating_tag;
        assert!(floating_tag("ghcr.io/actions/actions-runner:latest"));
        assert!(floating_tag("ghcr.io/actions/actions-runner"));
        assert!(floating_tag("registry.example.com:5000/runner"));
        assert!(!floating_tag("registry.example.com:5000/runner:2.336.0"));
        assert!(!floating_tag("ghcr.io/actions/actions-runner:2.336.0"));
        assert!(!floating_tag("ghcr.io/actions/actions-runner@sha256:0123"));
    }
}
