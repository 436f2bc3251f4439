//! The configuration file as the user writes it: serde types (unknown keys
//! rejected, camelCase keys) that the JSON Schema is generated from, with
//! their defaults. Nothing here is validated; [`super::Settings`] is.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

pub use crate::arn::Partition;
use crate::chart;
pub use crate::chart::ChartName;

/// The configuration file as written by the user.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The GitHub host and the owner (organization or user) of the repositories.
    pub github: GithubConfig,
    /// Repositories under `github.owner`: a name, or a mapping with `name` and overrides.
    #[serde(default)]
    pub repositories: Vec<RepositoryEntry>,
    /// Repositories discovered on GitHub by name, topic or custom property
    /// (instead of, or beside, `repositories:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Selector>,
    /// Repositories that share one scale set (grouped scale sets): one
    /// namespace and runner per group, one job ServiceAccount and IAM role
    /// per member (docs/reference.md: grouped scale sets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupConfig>,
    /// The target cluster.
    pub cluster: ClusterConfig,
    /// AWS account, identity mode and IAM role settings.
    pub aws: AwsConfig,
    /// Kubernetes naming, RBAC and hook settings.
    #[serde(default)]
    pub kubernetes: KubernetesConfig,
    /// Value of the `runner-identity.dev/instance` label that marks the objects of
    /// this configuration (default: `<cluster.name>-<github.owner>`).
    #[serde(default)]
    pub instance: Option<String>,
}

/// `github:` section.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GithubConfig {
    /// `https://github.com` or the URL of a GitHub Enterprise Server.
    #[serde(default = "default_github_url")]
    pub url: String,
    /// Organization or user that owns the repositories.
    pub owner: String,
    /// How runner-identity authenticates to the GitHub API (discovery):
    /// default `token: {env: GITHUB_TOKEN}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<GithubAuth>,
    /// Issuer of the Actions OIDC tokens, when it is not derived from `url`
    /// (`https://token.actions.githubusercontent.com` for github.com,
    /// `<url>/_services/token` otherwise), e.g. on GHE.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions_issuer: Option<String>,
    /// GitHub's immutable id of the owner: `verify job` then also compares the
    /// OIDC token's `repository_owner_id` (discovery fills it in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<u64>,
    /// Which forms of GitHub's OIDC `sub` the trusts `bootstrap` writes
    /// accept (docs/reference.md, "GitHub OIDC subjects").
    #[serde(default, skip_serializing_if = "SubjectForms::is_default")]
    pub oidc_subjects: SubjectForms,
}

/// The forms of a GitHub Actions OIDC `sub` a trust accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectForms {
    /// The migration window (default): the immutable form
    /// `repo:OWNER@OWNER_ID/REPO@REPO_ID:…` (repositories created, renamed or
    /// transferred from 2026-07-15, or opted in) and the name form
    /// `repo:OWNER/REPO:…` (older ones). The name form is met by whoever
    /// registers the name next, once the repository is gone.
    #[default]
    Both,
    /// Only the immutable form: a recycled name matches nothing. Needs the
    /// owner's and the repository's ids.
    Immutable,
    /// Only the name form (GitHub Enterprise Server, which has no immutable
    /// subjects).
    Name,
}

impl SubjectForms {
    fn is_default(&self) -> bool {
        *self == SubjectForms::Both
    }
}

/// `github.auth:` exactly one of `token` and `app`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GithubAuth {
    /// A personal access token or installation token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretSource>,
    /// A GitHub App, exchanged for an installation token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<GithubApp>,
}

/// A GitHub App's credentials.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GithubApp {
    /// The numeric App ID (not the client ID).
    pub id: u64,
    /// The installation on `github.owner`; looked up by owner when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation_id: Option<u64>,
    /// The App's private key (PEM).
    pub private_key: SecretSource,
}

/// Where a secret comes from: exactly one of `env` and `file`. The value is
/// read when needed and never printed.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSource {
    /// Name of an environment variable holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// Path of a file holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

/// One group of `groups:`: repositories whose jobs one scale set runs, each
/// still with its own job ServiceAccount and IAM role.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupConfig {
    /// The group's name (a DNS label of at most 40 characters): its
    /// namespace, scale set and GitHub runner group are named after it.
    pub name: String,
    /// Names of repositories listed in `repositories:`; each in one group at most.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
    /// Repositories discovered on GitHub that join this group too (private
    /// and internal ones only: a runner group admits no public repository).
    /// A repository two groups select or list is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Selector>,
}

/// `select:` which repositories of `github.owner` get runner identities.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    /// Name globs (`*`, `?`); any may match. Empty: every name.
    #[serde(default)]
    pub names: Vec<String>,
    /// Topics; a repository needs any one of them. Empty: no topic needed.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Organization custom properties; a repository needs all of them.
    #[serde(default)]
    pub custom_properties: BTreeMap<String, String>,
    /// Visibilities; any. Empty: all.
    #[serde(default)]
    pub visibility: Vec<Visibility>,
    /// Name globs never selected.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Select archived repositories too.
    #[serde(default)]
    pub include_archived: bool,
    /// Select forks too.
    #[serde(default)]
    pub include_forks: bool,
}

impl Config {
    /// Every selector with its field: `select:`, then each group's.
    pub fn selectors(&self) -> impl Iterator<Item = (String, &Selector)> {
        let groups = (self.groups.iter().enumerate())
            .filter_map(|(i, g)| Some((format!("groups[{i}].select"), g.select.as_ref()?)));
        (self.select.iter().map(|s| ("select".to_owned(), s))).chain(groups)
    }

    /// Whether loading needs a discovery on GitHub: `select:`, or a group's.
    pub fn discovers(&self) -> bool {
        self.selectors().next().is_some()
    }
}

/// A repository's visibility on GitHub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Visible to everyone.
    Public,
    /// Visible to those granted access.
    Private,
    /// GitHub Enterprise: visible to the enterprise's members.
    Internal,
}

impl Visibility {
    /// As GitHub's API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
            Visibility::Internal => "internal",
        }
    }
}

fn default_github_url() -> String {
    "https://github.com".into()
}

/// One entry of `repositories:`: a plain name, or a mapping with overrides.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RepositoryEntry {
    /// Just the repository name, with every setting inherited.
    Name(String),
    /// A repository with per-repository overrides.
    Detailed(Box<RepositoryOverride>),
}

impl RepositoryEntry {
    /// The repository name, as written.
    pub fn name(&self) -> &str {
        match self {
            RepositoryEntry::Name(n) => n,
            RepositoryEntry::Detailed(o) => &o.name,
        }
    }
}

impl<'de> Deserialize<'de> for RepositoryEntry {
    // Hand-written instead of `untagged` so that errors inside a mapping (an
    // unknown key, a wrong type) keep their own message and position.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = RepositoryEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a repository name or a mapping with `name` and overrides")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(RepositoryEntry::Name(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                RepositoryOverride::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|o| RepositoryEntry::Detailed(Box::new(o)))
            }
        }
        deserializer.deserialize_any(EntryVisitor)
    }
}

/// A repository with settings that replace the global ones.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepositoryOverride {
    /// Repository name under `github.owner` (case-insensitive, as on GitHub).
    pub name: String,
    /// GitHub's immutable repository id: `verify job` then also compares the
    /// OIDC token's `repository_id` (discovery fills it in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// AWS settings for this repository only.
    #[serde(default)]
    pub aws: AwsOverride,
    /// Kubernetes settings for this repository only.
    #[serde(default)]
    pub kubernetes: KubernetesOverride,
}

/// `cluster:` section.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterConfig {
    /// Cluster name (EKS cluster name for Pod Identity associations).
    pub name: String,
    /// The cluster's OIDC issuer URL (`aws eks describe-cluster --query
    /// cluster.identity.oidc.issuer`); required in `irsa` mode.
    #[serde(default)]
    pub oidc_issuer: Option<String>,
    /// AWS region of the cluster (informational; used by later stages).
    #[serde(default)]
    pub region: Option<String>,
}

/// How the workflow pod gets its AWS role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// IAM Roles for Service Accounts: `eks.amazonaws.com/role-arn` on the job SA.
    Irsa,
    /// EKS Pod Identity: an association (cluster, namespace, job SA) → role.
    PodIdentity,
}

/// `aws:` section.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsConfig {
    /// 12-digit AWS account id, as a string.
    pub account_id: String,
    /// `aws`, `aws-cn` or `aws-us-gov`.
    #[serde(default)]
    pub partition: Partition,
    /// `irsa` or `pod-identity`.
    pub mode: Mode,
    /// IAM role name template; placeholders `{cluster}`, `{owner}`, `{repo}`.
    #[serde(default = "default_role_name")]
    pub role_name: String,
    /// IAM path of the roles, starting and ending with `/`: one only this
    /// configuration uses (default `/runner-identity/<instance>/`; `/` is
    /// refused by `bootstrap` and `apply`).
    #[serde(default)]
    pub role_path: Option<String>,
    /// Managed policies attached to every role.
    #[serde(default)]
    pub managed_policy_arns: Vec<String>,
    /// Name of the inline permissions policy template (in `templates/`); `null`
    /// for none.
    #[serde(default = "default_inline_policy")]
    pub inline_policy_template: Option<String>,
    /// Permissions boundary ARN for every role.
    #[serde(default)]
    pub permissions_boundary: Option<String>,
    /// Maximum session duration in seconds (3600 to 43200).
    #[serde(default = "default_max_session")]
    pub max_session_duration: u32,
    /// Extra tags on every role.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl AwsConfig {
    /// The IAM path of the roles (set from the instance by validation when
    /// the file leaves it out).
    pub fn role_path(&self) -> &str {
        self.role_path.as_deref().unwrap_or(ROOT_PATH)
    }
}

/// IAM's root path.
const ROOT_PATH: &str = "/";

/// The default IAM path of an instance's roles.
pub fn default_role_path(instance: &str) -> String {
    format!("/runner-identity/{instance}/")
}

fn default_role_name() -> String {
    "gha-{cluster}-{owner}-{repo}".into()
}
fn default_inline_policy() -> Option<String> {
    Some("permissions-policy.json".into())
}
fn default_max_session() -> u32 {
    3600
}

/// Per-repository AWS overrides; every field replaces the global one.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsOverride {
    /// Replaces `aws.managedPolicyArns`.
    #[serde(default)]
    pub managed_policy_arns: Option<Vec<String>>,
    /// Replaces `aws.inlinePolicyTemplate`.
    #[serde(default)]
    pub inline_policy_template: Option<String>,
    /// Replaces `aws.permissionsBoundary`.
    #[serde(default)]
    pub permissions_boundary: Option<String>,
    /// Replaces `aws.maxSessionDuration`.
    #[serde(default)]
    pub max_session_duration: Option<u32>,
    /// Added to `aws.tags`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `pod-identity` only: a role (usually in another account) the
    /// association chains to. EKS Pod Identity assumes the repository's role,
    /// then this one with the association's `externalId`; the job runs as
    /// this role. Its trust is written by whoever owns it: `apply` and
    /// `doctor` print it (docs/reference.md, "Target roles").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_role_arn: Option<String>,
}

/// The runner-container-hooks flavour the runners use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Hooks {
    /// `containerMode.type: kubernetes` (work volume; needs batch/jobs rights).
    #[default]
    Kubernetes,
    /// `containerMode.type: kubernetes-novolume` (no batch/jobs rights).
    KubernetesNovolume,
}

impl Hooks {
    /// The chart's `containerMode.type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Hooks::Kubernetes => "kubernetes",
            Hooks::KubernetesNovolume => "kubernetes-novolume",
        }
    }
}

/// An extra RBAC rule for the runner's Role. Wildcards are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleConfig {
    /// API groups (`""` is the core group).
    pub api_groups: Vec<String>,
    /// Resources, optionally `resource/subresource`.
    pub resources: Vec<String>,
    /// Verbs.
    pub verbs: Vec<String>,
    /// Restrict the rule to these object names.
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// IRSA options written as annotations on the job ServiceAccount.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IrsaOptions {
    /// Token audience (`eks.amazonaws.com/audience`).
    #[serde(default = "default_audience")]
    pub audience: String,
    /// `eks.amazonaws.com/sts-regional-endpoints`.
    #[serde(default = "default_true")]
    pub sts_regional_endpoints: bool,
    /// `eks.amazonaws.com/token-expiration`, seconds (3600 to 86400).
    #[serde(default = "default_token_expiration")]
    pub token_expiration: u32,
}

impl Default for IrsaOptions {
    fn default() -> Self {
        IrsaOptions {
            audience: default_audience(),
            sts_regional_endpoints: true,
            token_expiration: default_token_expiration(),
        }
    }
}

fn default_audience() -> String {
    "sts.amazonaws.com".into()
}
fn is_true(value: &bool) -> bool {
    *value
}

fn default_true() -> bool {
    true
}
fn default_token_expiration() -> u32 {
    86400
}

/// Name templates of the per-repository objects; placeholders `{cluster}`,
/// `{owner}`, `{repo}`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameTemplates {
    /// Runner ServiceAccount (used by the runner pod and the hooks).
    #[serde(default = "default_runner_sa")]
    pub runner_service_account: String,
    /// Job ServiceAccount (the workflow pod's identity).
    #[serde(default = "default_job_sa")]
    pub job_service_account: String,
    /// Role and RoleBinding of the runner ServiceAccount.
    #[serde(default = "default_role")]
    pub role: String,
    /// ConfigMap holding the hook template.
    #[serde(default = "default_config_map")]
    pub config_map: String,
    /// `runnerScaleSetName` of the Helm release (at most 45 characters).
    #[serde(default = "default_scale_set")]
    pub scale_set: String,
}

impl Default for NameTemplates {
    fn default() -> Self {
        NameTemplates {
            runner_service_account: default_runner_sa(),
            job_service_account: default_job_sa(),
            role: default_role(),
            config_map: default_config_map(),
            scale_set: default_scale_set(),
        }
    }
}

fn default_runner_sa() -> String {
    "gha-runner".into()
}
fn default_job_sa() -> String {
    "gha-job".into()
}
fn default_role() -> String {
    "gha-runner-hooks".into()
}
fn default_config_map() -> String {
    "gha-hook-template".into()
}
fn default_scale_set() -> String {
    "{repo}".into()
}

/// `kubernetes:` section.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Namespace template; with `{repo}` every repository gets its own namespace
    /// (created by runner-identity), without it the namespace is shared and must exist.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Object name templates.
    #[serde(default)]
    pub names: NameTemplates,
    /// `kubernetes` or `kubernetes-novolume`.
    #[serde(default)]
    pub hooks: Hooks,
    /// Extra rules for every runner Role.
    #[serde(default)]
    pub extra_rules: Vec<RuleConfig>,
    /// Extra labels on every object.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on every object.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// IRSA options (irsa mode).
    #[serde(default)]
    pub irsa: IrsaOptions,
    /// `securityContext.fsGroup` of workflow pods, so a non-root job can read
    /// the projected token.
    #[serde(default = "default_fs_group")]
    pub fs_group: i64,
    /// Runner image of the scale set.
    #[serde(default = "default_runner_image")]
    pub runner_image: String,
    /// Secret named by `githubConfigSecret` in the Helm values.
    #[serde(default = "default_github_secret")]
    pub github_config_secret: String,
    /// Size of the work volume claim (hooks `kubernetes`).
    #[serde(default = "default_work_volume_size")]
    pub work_volume_size: String,
    /// Storage class of the work volume claim; cluster default when unset.
    #[serde(default)]
    pub work_volume_storage_class: Option<String>,
    /// `securityContext.fsGroup` of the runner pod, so the runner (uid 1001,
    /// group 123 in the actions-runner image) can write the work volume.
    #[serde(default = "default_runner_fs_group")]
    pub runner_fs_group: i64,
    /// The ARC chart the Helm values are written for.
    #[serde(default)]
    pub chart: ChartConfig,
    /// Allow several repositories in one namespace (a `namespace` without
    /// `{repo}`): their runners could otherwise start pods as each other's job
    /// ServiceAccount and read each other's step Secrets. With it, `plan`
    /// adds a ValidatingAdmissionPolicy per shared namespace (Kubernetes ≥ 1.30).
    #[serde(default)]
    pub shared_namespace: bool,
    /// A group's namespace gets ValidatingAdmissionPolicies (Kubernetes ≥
    /// 1.30) that let its runner start pods only as the member whose job it
    /// runs (the claim `job-started` records), so that a member's job that
    /// obtains the runner's token cannot take another member's identity.
    /// `false` on older clusters: then the members of a group trust each
    /// other fully (docs/security.md: grouped scale sets).
    // Left out of written configurations when on (the default), so that a
    // runner's configuration reads with a runner-identity that predates it.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub group_admission_policy: bool,
    /// A NetworkPolicy in every repository namespace denying egress to the
    /// instance metadata service (the node's role), all other egress allowed
    /// (the EKS Pod Identity agent included).
    #[serde(default = "default_true")]
    pub block_instance_metadata: bool,
    /// Pod Security admission level of every repository namespace
    /// (`enforce`, `warn` and `audit` labels); `null` for none.
    #[serde(default = "default_pod_security")]
    pub pod_security: Option<PodSecurityLevel>,
    /// `verify runner` as the runner's job-started hook.
    #[serde(default)]
    pub verify_runner: VerifyRunnerConfig,
    /// Credentials of the runner scale sets: runner-identity creates the Secret
    /// `githubConfigSecret` names in every repository namespace from them.
    /// Unset: that Secret is managed elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_credentials: Option<ScaleSetCredentials>,
}

/// `kubernetes.githubCredentials:` exactly one of `token`, `app`, `fromSecret`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaleSetCredentials {
    /// A token (ARC key `github_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretSource>,
    /// A GitHub App (ARC keys `github_app_id`, `github_app_installation_id`,
    /// `github_app_private_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<ScaleSetApp>,
    /// Copy the ARC keys of an existing Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_secret: Option<SecretRef>,
}

/// A GitHub App for the scale sets' listeners.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaleSetApp {
    /// The numeric App ID.
    pub id: u64,
    /// The installation on `github.owner`.
    pub installation_id: u64,
    /// The App's private key (PEM).
    pub private_key: SecretSource,
}

/// An existing Secret.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

/// A Pod Security Standard level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    /// Forbids known privilege escalations (hostPath, privileged, host
    /// namespaces); the hooks' workflow and step pods pass it.
    Baseline,
    /// Hardened: the hook template must then make job pods non-root with a
    /// seccomp profile and no capabilities.
    Restricted,
    /// No restriction (`plan` warns).
    Privileged,
}

impl PodSecurityLevel {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Baseline => "baseline",
            PodSecurityLevel::Restricted => "restricted",
            PodSecurityLevel::Privileged => "privileged",
        }
    }
}

fn default_pod_security() -> Option<PodSecurityLevel> {
    Some(PodSecurityLevel::Baseline)
}

/// `kubernetes.chart:` the ARC chart the Helm values are written for.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChartConfig {
    /// `gha-runner-scale-set` or `gha-runner-scale-set-experimental`.
    #[serde(default)]
    pub name: ChartName,
    /// The chart version the values are for; the values' `helm upgrade` line
    /// pins it. Default: the newest version runner-identity knows.
    #[serde(default = "default_chart_version")]
    pub version: String,
    /// The ARC controller's ServiceAccount, written into the values so the
    /// chart renders offline (`helm template`, Argo CD) instead of looking it
    /// up in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_service_account: Option<ControllerServiceAccount>,
    /// The ARC controller's Deployment: `apply`, `diff` and `doctor` read its
    /// version (a `get` by name that `bootstrap` grants) and refuse values
    /// the controller would delete. Default: `arc-systems/arc-gha-rs-controller`
    /// (ARC's quick start: `helm install arc --namespace arc-systems …`).
    #[serde(default, skip_serializing_if = "ControllerDeployment::is_default")]
    pub controller: ControllerDeployment,
}

impl Default for ChartConfig {
    fn default() -> Self {
        ChartConfig {
            name: ChartName::default(),
            version: default_chart_version(),
            controller_service_account: None,
            controller: ControllerDeployment::default(),
        }
    }
}

/// Where the ARC controller runs.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControllerDeployment {
    #[serde(default = "default_controller_namespace")]
    pub namespace: String,
    /// The Deployment's name (`<release>-gha-rs-controller`).
    #[serde(default = "default_controller_deployment")]
    pub deployment: String,
}

impl ControllerDeployment {
    fn is_default(&self) -> bool {
        *self == ControllerDeployment::default()
    }
}

impl Default for ControllerDeployment {
    fn default() -> Self {
        ControllerDeployment {
            namespace: default_controller_namespace(),
            deployment: default_controller_deployment(),
        }
    }
}

fn default_controller_namespace() -> String {
    "arc-systems".into()
}

fn default_controller_deployment() -> String {
    "arc-gha-rs-controller".into()
}

fn default_chart_version() -> String {
    chart::NEWEST_VERSION.to_owned()
}

/// The ARC controller's ServiceAccount (`controllerServiceAccount` in the values).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControllerServiceAccount {
    pub name: String,
    pub namespace: String,
}

/// `kubernetes.verifyRunner:` the job-started hook that runs `verify runner`
/// in every runner pod before the job's first container starts.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyRunnerConfig {
    /// Install the hook (an init container copies the binary into the pod).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Image holding `/usr/local/bin/runner-identity` and `cp` (the
    /// `gha-runner-scale-set` chart: an init container copies the binary).
    #[serde(default = "default_verify_image")]
    pub image: String,
    /// `gha-runner-scale-set-experimental` only: a runner image that carries
    /// runner-identity and its job-started script in `/opt/runner-identity/bin`
    /// (that chart cannot mount another volume into the runner container).
    /// Unset there: the values have no job-started hook, and `plan` says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_image: Option<String>,
    /// Excess runner rights fail the job instead of warning.
    #[serde(default)]
    pub strict: bool,
}

impl Default for VerifyRunnerConfig {
    fn default() -> Self {
        VerifyRunnerConfig {
            enabled: true,
            image: default_verify_image(),
            runner_image: None,
            strict: false,
        }
    }
}

fn default_verify_image() -> String {
    format!(
        "ghcr.io/runner-identity/runner-identity:v{}",
        env!("CARGO_PKG_VERSION")
    )
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            namespace: default_namespace(),
            names: NameTemplates::default(),
            hooks: Hooks::default(),
            extra_rules: Vec::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            irsa: IrsaOptions::default(),
            fs_group: default_fs_group(),
            runner_image: default_runner_image(),
            github_config_secret: default_github_secret(),
            work_volume_size: default_work_volume_size(),
            work_volume_storage_class: None,
            runner_fs_group: default_runner_fs_group(),
            chart: ChartConfig::default(),
            shared_namespace: false,
            group_admission_policy: true,
            block_instance_metadata: true,
            pod_security: default_pod_security(),
            verify_runner: VerifyRunnerConfig::default(),
            github_credentials: None,
        }
    }
}

fn default_namespace() -> String {
    "gha-{repo}".into()
}
fn default_fs_group() -> i64 {
    1001
}
fn default_runner_fs_group() -> i64 {
    123
}
/// The runner image the values name by default: a pinned release whose
/// runner-container-hooks are the ones `verify` and the plan's Role were
/// checked against (v0.7.0 in `/home/runner/k8s`, v0.8.1 in
/// `/home/runner/k8s-novolume`). Moving it is a deliberate change: set
/// `kubernetes.runnerImage` (a digest pins it further).
pub const DEFAULT_RUNNER_IMAGE: &str = "ghcr.io/actions/actions-runner:2.336.0";

fn default_runner_image() -> String {
    DEFAULT_RUNNER_IMAGE.into()
}
fn default_github_secret() -> String {
    "github-config".into()
}
fn default_work_volume_size() -> String {
    "1Gi".into()
}

/// Per-repository Kubernetes overrides.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesOverride {
    /// Added to `kubernetes.extraRules` for this repository's Role.
    #[serde(default)]
    pub extra_rules: Vec<RuleConfig>,
    /// Added to `kubernetes.labels`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Added to `kubernetes.annotations`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// This repository's scale set credentials instead of
    /// `kubernetes.githubCredentials` (e.g. a fine-grained token limited to
    /// this repository, so its runner can read nothing broader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_credentials: Option<ScaleSetCredentials>,
}
