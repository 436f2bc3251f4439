//! What validation builds: [`Settings`] and each [`Repository`] with its
//! effective (global merged with per-repository) values.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::schema::{
    Config, GithubAuth, RepositoryEntry, RuleConfig, ScaleSetCredentials, SecretRef, SecretSource,
};

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
    pub github_credentials: Option<RunnerCredentials>,
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
    /// How runner-identity authenticates to the GitHub API (default: a
    /// token in `GITHUB_TOKEN`).
    pub github_auth: ApiAuth,
    /// The groups of repositories that share a scale set.
    pub groups: Vec<Group>,
}

/// A validated group: its name and its members, as indices into
/// [`Settings::repositories`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub members: Vec<usize>,
}

/// Where a secret comes from: one of the two, never both or neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// An environment variable's name.
    Env(String),
    /// A file's path.
    File(PathBuf),
}

impl TryFrom<&SecretSource> for Secret {
    type Error = String;

    fn try_from(source: &SecretSource) -> Result<Secret, String> {
        match (&source.env, &source.file) {
            (Some(e), None) if !e.is_empty() => Ok(Secret::Env(e.clone())),
            (None, Some(f)) if !f.as_os_str().is_empty() => Ok(Secret::File(f.clone())),
            _ => Err("set exactly one of `env` (a variable name) and `file` (a path)".into()),
        }
    }
}

/// How runner-identity authenticates to the GitHub API: one of the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiAuth {
    /// A personal access token or installation token.
    Token(Secret),
    /// A GitHub App, exchanged for an installation token (looked up by
    /// owner when no installation is named).
    App {
        id: u64,
        installation_id: Option<u64>,
        private_key: Secret,
    },
}

impl Default for ApiAuth {
    fn default() -> ApiAuth {
        ApiAuth::Token(Secret::Env("GITHUB_TOKEN".into()))
    }
}

impl TryFrom<&GithubAuth> for ApiAuth {
    type Error = (&'static str, String);

    /// The field at fault and why.
    fn try_from(auth: &GithubAuth) -> Result<ApiAuth, (&'static str, String)> {
        match (&auth.token, &auth.app) {
            (Some(t), None) => Secret::try_from(t)
                .map(ApiAuth::Token)
                .map_err(|e| ("github.auth.token", e)),
            (None, Some(app)) => Secret::try_from(&app.private_key)
                .map(|private_key| ApiAuth::App {
                    id: app.id,
                    installation_id: app.installation_id,
                    private_key,
                })
                .map_err(|e| ("github.auth.app.privateKey", e)),
            _ => Err((
                "github.auth",
                "set exactly one of `token` and `app`".to_owned(),
            )),
        }
    }
}

/// The scale sets' GitHub credentials (ARC's `githubConfigSecret`): one of
/// the three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunnerCredentials {
    /// ARC key `github_token`.
    Token(Secret),
    /// ARC keys `github_app_id`, `github_app_installation_id`,
    /// `github_app_private_key`.
    App {
        id: u64,
        installation_id: u64,
        private_key: Secret,
    },
    /// The ARC keys of an existing Secret, copied.
    FromSecret(SecretRef),
}

impl RunnerCredentials {
    /// What it holds, for people.
    pub fn kind(&self) -> &'static str {
        match self {
            RunnerCredentials::Token(_) => "token",
            RunnerCredentials::App { .. } => "GitHub App private key",
            RunnerCredentials::FromSecret(_) => "credential (copied from an existing Secret)",
        }
    }
}

impl TryFrom<&ScaleSetCredentials> for RunnerCredentials {
    type Error = (&'static str, String);

    /// The field at fault (below the credentials' own) and why.
    fn try_from(c: &ScaleSetCredentials) -> Result<RunnerCredentials, (&'static str, String)> {
        match (&c.token, &c.app, &c.from_secret) {
            (Some(t), None, None) => Secret::try_from(t)
                .map(RunnerCredentials::Token)
                .map_err(|e| ("token", e)),
            (None, Some(a), None) => Secret::try_from(&a.private_key)
                .map(|private_key| RunnerCredentials::App {
                    id: a.id,
                    installation_id: a.installation_id,
                    private_key,
                })
                .map_err(|e| ("app.privateKey", e)),
            (None, None, Some(r)) => Ok(RunnerCredentials::FromSecret(r.clone())),
            _ => Err((
                "",
                "set exactly one of `token`, `app` and `fromSecret` (ARC refuses a Secret holding \
                 both kinds)"
                    .to_owned(),
            )),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GithubApp, ScaleSetApp};

    fn env(name: &str) -> SecretSource {
        SecretSource {
            env: Some(name.into()),
            file: None,
        }
    }

    #[test]
    fn each_exactly_one_of_is_one_variant_or_the_reason() {
        assert_eq!(Secret::try_from(&env("T")), Ok(Secret::Env("T".into())));
        for bad in [
            SecretSource::default(),
            env(""),
            SecretSource {
                env: Some("T".into()),
                file: Some("/f".into()),
            },
        ] {
            assert!(Secret::try_from(&bad).unwrap_err().contains("exactly one"));
        }
        let app = GithubApp {
            id: 7,
            installation_id: None,
            private_key: env("PEM"),
        };
        let both = GithubAuth {
            token: Some(env("T")),
            app: Some(app.clone()),
        };
        assert_eq!(ApiAuth::try_from(&both).unwrap_err().0, "github.auth");
        let only_app = GithubAuth {
            token: None,
            app: Some(app),
        };
        assert!(matches!(
            ApiAuth::try_from(&only_app),
            Ok(ApiAuth::App {
                id: 7,
                installation_id: None,
                ..
            })
        ));
        let broken_key = GithubAuth {
            token: None,
            app: Some(GithubApp {
                id: 7,
                installation_id: None,
                private_key: SecretSource::default(),
            }),
        };
        assert_eq!(
            ApiAuth::try_from(&broken_key).unwrap_err().0,
            "github.auth.app.privateKey"
        );
        let two = ScaleSetCredentials {
            token: Some(env("T")),
            app: Some(ScaleSetApp {
                id: 1,
                installation_id: 2,
                private_key: env("PEM"),
            }),
            from_secret: None,
        };
        assert!(
            RunnerCredentials::try_from(&two)
                .unwrap_err()
                .1
                .contains("exactly one")
        );
        let none = ScaleSetCredentials::default();
        assert!(RunnerCredentials::try_from(&none).is_err());
        let token = ScaleSetCredentials {
            token: Some(env("T")),
            ..Default::default()
        };
        assert_eq!(
            RunnerCredentials::try_from(&token).map(|c| c.kind()),
            Ok("token")
        );
    }
}
