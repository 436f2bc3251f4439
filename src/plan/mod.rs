//! Planning: validated [`Settings`] and [`Templates`] in; per repository the
//! typed Kubernetes objects, the Helm values, and the IAM role with its trust
//! and permissions policies out. Pure: no client, no I/O.

mod admission;
mod checks;
mod group;
pub mod group_admission;
mod hook;
mod iam;
mod isolation;
mod objects;
mod planner;
mod refusals;
mod rights;
mod warnings;

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
    ChartName, Group, Hooks, KubernetesConfig, Mode, PodSecurityLevel, Repository,
    RunnerCredentials, Settings,
};
use crate::kvp;
use crate::names::{self, RepoNames};
use crate::templates::{self, Context, Templates};
use crate::{Error, Result};

pub use self::checks::check_hook_template;
use self::checks::check_values;
pub use self::group::member_hook_template;
use self::hook::{RunnerConfig, group_job_started_script, job_started_script};
use self::iam::plan_iam_role;
pub use self::iam::{
    TARGET_STATEMENT, apply_identity_requirements, target_trust_policy, trust_policy,
};
pub use self::isolation::{
    INSTANCE_METADATA, METADATA_POLICY, POD_IDENTITY_AGENT, instance_metadata_policy,
    pod_security_labels,
};
#[cfg(any(test, feature = "test-support"))]
pub use self::isolation::{baseline_violations, egress_allowed};
pub use self::objects::{CONTENT_DIGEST_ANNOTATION, Kind, Object, redacted};
pub use self::planner::Planner;
use self::planner::{OutputChecks, context, metadata};
use self::refusals::*;
use self::rights::role_rules;
pub use self::rights::{HookRight, HookVersion, hook_asks, hook_rights, hook_versions};
pub use self::warnings::planning_warnings;

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
/// A group's runner container: its own `emptyDir`, where `job-started`
/// writes the hook template of the job's repository (never under the work
/// directory, which the workflow pod shares).
pub const JOB_TEMPLATE_DIR: &str = "/run/runner-identity";
/// A group's runner container on the experimental chart, whose runner
/// container mounts nothing but its fixed list: the hook template in the
/// container's own files (the runner's home, outside the work volume).
pub const IMAGE_JOB_TEMPLATE: &str = "/home/runner/runner-identity-hook-template.yaml";
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

/// The objects of one scale set: its runner ServiceAccount with the hooks'
/// rights, the ConfigMap its runner pod mounts, and its Helm values. A
/// repository on its own scale set has them; a group's are planned once,
/// with its first member.
#[derive(Debug, Clone)]
pub struct ScaleSetPlan {
    pub runner_service_account: ServiceAccount,
    pub role: Role,
    pub role_binding: RoleBinding,
    /// The hook template (on a repository's own scale set), the runner
    /// pod's configuration and its job-started script.
    pub config_map: ConfigMap,
    /// Rendered gha-runner-scale-set values (YAML text, comments kept).
    pub values: String,
}

/// Everything planned for one repository.
#[derive(Debug, Clone)]
pub struct RepoPlan {
    pub names: RepoNames,
    /// Only when the repository (or its group) owns its namespace, with the
    /// first repository planned into it.
    pub namespace: Option<Namespace>,
    /// Denies egress to the instance metadata service in the namespace
    /// (`kubernetes.blockInstanceMetadata`; one per namespace).
    pub network_policy: Option<NetworkPolicy>,
    /// The guard of a shared namespace (`kubernetes.sharedNamespace`), or a
    /// group's guard and claim policy (`kubernetes.groupAdmissionPolicy`);
    /// with the first repository planned into the namespace.
    pub admission_policy: Vec<(ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding)>,
    /// The scale set that runs the repository's jobs: its own, or its
    /// group's when it is the group's first member; `None` for the group's
    /// other members.
    pub scale_set: Option<ScaleSetPlan>,
    pub job_service_account: ServiceAccount,
    /// The hook template the repository's workflow pods start with: in the
    /// scale set's ConfigMap, or (in a group) the one `job-started` writes.
    pub job_template: String,
    /// The scale set's GitHub credentials (`githubConfigSecret`), when
    /// runner-identity manages them ([`Planner::with_credentials`]).
    pub github_secret: Option<Secret>,
    pub iam_role: IamRolePlan,
}

/// The ConfigMap key of the hook template for `chart`.
pub fn hook_template_key(chart: ChartName) -> &'static str {
    match chart {
        ChartName::Classic => HOOK_TEMPLATE_KEY,
        ChartName::Experimental => EXTENSION_KEY,
    }
}

impl RepoPlan {
    /// The rendered hook template of the repository's workflow pods.
    pub fn hook_template_text(&self) -> Option<&str> {
        Some(&self.job_template)
    }

    /// The Helm values of the repository's own scale set, or of its group's
    /// (with the group's first member).
    pub fn values(&self) -> Option<&str> {
        self.scale_set.as_ref().map(|s| s.values.as_str())
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

/// Plans every repository of `settings`.
pub fn plan(settings: &Settings, templates: &Templates) -> Result<Plan> {
    Planner::new(settings, templates)?.plan()
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

#[cfg(test)]
mod tests {
    #[test]
    fn an_image_without_a_pinned_tag_or_digest_floats() {
        use super::warnings::floating_tag;
        assert!(floating_tag("ghcr.io/actions/actions-runner:latest"));
        assert!(floating_tag("ghcr.io/actions/actions-runner"));
        assert!(floating_tag("registry.example.com:5000/runner"));
        assert!(!floating_tag("registry.example.com:5000/runner:2.336.0"));
        assert!(!floating_tag("ghcr.io/actions/actions-runner:2.336.0"));
        assert!(!floating_tag("ghcr.io/actions/actions-runner@sha256:0123"));
    }
}
