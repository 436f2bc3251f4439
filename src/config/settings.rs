//! What validation builds: [`Settings`] and each [`Repository`] with its
//! effective (global merged with per-repository) values.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::schema::{Config, RepositoryEntry, RuleConfig, ScaleSetCredentials};

/// A repository with its effective (global merged with override) settings.
#[derive(Debug, Clone)]
pub struct Repository {
    /// Owner as configured.
    pub owner: String,
    /// Name exactly as configured.
    pub name: String,
    /// Effective managed policy ARNs.
    pub managed_policy_arns: Vec<String>,
    /// Effective inline policy template name.
    pub inline_policy_template: Option<String>,
    /// Effective permissions boundary.
    pub permissions_boundary: Option<String>,
    /// Effective max session duration.
    pub max_session_duration: u32,
    /// Effective IAM tags (global and per-repository).
    pub tags: BTreeMap<String, String>,
    /// Global and per-repository extra Role rules.
    pub extra_rules: Vec<RuleConfig>,
    /// Global and per-repository labels.
    pub labels: BTreeMap<String, String>,
    /// Global and per-repository annotations.
    pub annotations: BTreeMap<String, String>,
    /// GitHub's immutable repository id, when configured or discovered.
    pub id: Option<u64>,
    /// The Pod Identity target role the association chains to (checked: an
    /// IAM role ARN in `aws.partition`).
    pub target_role_arn: Option<String>,
    /// The scale set's credentials: the repository's own, else the global ones.
    pub github_credentials: Option<ScaleSetCredentials>,
    /// Whether `github_credentials` are the repository's own.
    pub own_github_credentials: bool,
    /// The `repositories:` entry as written (the runner pod's configuration
    /// carries it alone).
    pub entry: RepositoryEntry,
}

impl Repository {
    /// `owner/name`, exactly as configured.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// The validated configuration: every check has passed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the configuration came from (for messages).
    pub source: PathBuf,
    /// The configuration as written (for global values).
    pub config: Config,
    /// The GitHub URL without a trailing slash.
    pub github_url: String,
    /// The OIDC issuer without `https://` and trailing slash (IRSA mode).
    pub issuer_host_path: Option<String>,
    /// The instance label value.
    pub instance: String,
    /// Repositories in configuration order, duplicates rejected.
    pub repositories: Vec<Repository>,
}

/// Set of repository names, compared case-insensitively like GitHub does.
pub(crate) fn folded(name: &str) -> String {
    name.to_lowercase()
}

/// Checks one extra rule: no wildcard, nothing empty.
pub(crate) fn check_rule(rule: &RuleConfig) -> std::result::Result<(), String> {
    let all = rule
        .api_groups
        .iter()
        .chain(&rule.resources)
        .chain(&rule.verbs)
        .chain(&rule.resource_names);
    if all.clone().any(|v| v.contains('*')) {
        return Err("wildcards (`*`) are not allowed; list the groups, resources and verbs".into());
    }
    if rule.resources.is_empty() || rule.verbs.is_empty() || rule.api_groups.is_empty() {
        return Err(
            "`apiGroups`, `resources` and `verbs` must each list at least one value".into(),
        );
    }
    let verbs: BTreeSet<&str> = rule.verbs.iter().map(String::as_str).collect();
    for dangerous in ["escalate", "bind", "impersonate"] {
        if verbs.contains(dangerous) {
            return Err(format!(
                "verb `{dangerous}` lets the runner gain rights; it is not allowed"
            ));
        }
    }
    Ok(())
}
