//! Deterministic names: a repository in, the names of its namespace, service
//! accounts, Role, RoleBinding, ConfigMap, scale set and IAM role out. Pure.
//!
//! GitHub names are case-insensitive, so every name is derived from the
//! case-folded repository (`Web.Frontend` and `web.frontend` are one
//! repository, and `GITHUB_REPOSITORY` may spell it either way). When mapping
//! the folded name into a Kubernetes or IAM name loses information (a `.` or
//! `_` replaced, a name truncated) a short stable hash of the folded input is
//! appended, so two repositories never share a name; [`check_collisions`]
//! rejects any collision that remains.

use std::collections::BTreeMap;

use crate::config::{Repository, Settings};
use crate::kvp::{DNS_LABEL_MAX, dns_label, label_value, with_hash};
use crate::{Error, Result};

/// A namespaced object's namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamespacedName {
    pub namespace: String,
    pub name: String,
}

impl NamespacedName {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> NamespacedName {
        NamespacedName {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// A name one repository takes: what it names (a kind, or "scale set",
/// "IAM role") and the name, namespaced where it is.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Claim {
    what: &'static str,
    name: String,
}

/// The gha-runner-scale-set chart refuses longer scale set names.
const SCALE_SET_MAX: usize = 45;
/// IAM role name limit.
const IAM_ROLE_MAX: usize = 64;
/// Every name derived for one repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoNames {
    /// Exact `owner/repo` as configured.
    pub repository: String,
    /// Namespace of every object of this repository.
    pub namespace: String,
    /// Whether the namespace belongs to this repository alone (and is created).
    pub own_namespace: bool,
    /// Runner ServiceAccount.
    pub runner_service_account: String,
    /// Job ServiceAccount.
    pub job_service_account: String,
    /// Role and RoleBinding.
    pub role: String,
    /// Hook template ConfigMap.
    pub config_map: String,
    /// `runnerScaleSetName`.
    pub scale_set: String,
    /// IAM role name.
    pub iam_role: String,
    /// IAM role ARN.
    pub iam_role_arn: String,
    /// Repository label value.
    pub repository_label: String,
    /// The group whose scale set runs the repository's jobs, if any: then
    /// the namespace, runner ServiceAccount, Role, ConfigMap and scale set
    /// are the group's, shared with its other members.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl RepoNames {
    /// Derives the names of `repo` under `settings`.
    pub fn new(settings: &Settings, repo: &Repository) -> RepoNames {
        let cfg = &settings.config;
        let t = &cfg.kubernetes.names;
        let fill = |template: &str| {
            template
                .replace("{cluster}", &cfg.cluster.name)
                .replace("{owner}", &repo.owner)
                .replace("{repo}", &repo.name)
        };
        let iam_role = iam_name(&fill(&cfg.aws.role_name), IAM_ROLE_MAX);
        let iam_role_arn = format!(
            "arn:{}:iam::{}:role{}{}",
            cfg.aws.partition.as_str(),
            cfg.aws.account_id,
            cfg.aws.role_path(),
            iam_role
        );
        RepoNames {
            repository: repo.full_name(),
            namespace: dns_label(&fill(&cfg.kubernetes.namespace), DNS_LABEL_MAX),
            own_namespace: cfg.kubernetes.namespace.contains("{repo}"),
            runner_service_account: dns_label(&fill(&t.runner_service_account), DNS_LABEL_MAX),
            job_service_account: dns_label(&fill(&t.job_service_account), DNS_LABEL_MAX),
            role: dns_label(&fill(&t.role), DNS_LABEL_MAX),
            config_map: dns_label(&fill(&t.config_map), DNS_LABEL_MAX),
            scale_set: dns_label(&fill(&t.scale_set), SCALE_SET_MAX),
            iam_role,
            iam_role_arn,
            repository_label: label_value(&repo.full_name().to_lowercase().replace('/', ".")),
            group: None,
        }
    }
}

impl RepoNames {
    /// The names of `repo` as a member of the group `group`: the group's
    /// namespace, runner ServiceAccount, Role, ConfigMap and scale set (the
    /// templates filled with the group's name for `{repo}`), and the
    /// repository's own job ServiceAccount and IAM role. The job
    /// ServiceAccount's template gets `-{repo}` when it has no `{repo}`, and
    /// its name always ends in a hash of the repository's id (of its full
    /// name when the id is unknown): a repository can never be named like
    /// another member's name (`a_b` is `…-a-b-<hash>`, which a repository
    /// called `a-b-<hash>` would otherwise be), and a repository that takes
    /// a deleted member's name gets another ServiceAccount than the one the
    /// member's IAM role trusted.
    pub fn group_member(settings: &Settings, group: &str, repo: &Repository) -> RepoNames {
        let own = RepoNames::new(settings, repo);
        let mut as_group = repo.clone();
        as_group.name = group.to_owned();
        let shared = RepoNames::new(settings, &as_group);
        let cfg = &settings.config;
        let template = &cfg.kubernetes.names.job_service_account;
        let template = if template.contains("{repo}") {
            template.clone()
        } else {
            format!("{template}-{{repo}}")
        };
        let filled = template
            .replace("{cluster}", &cfg.cluster.name)
            .replace("{owner}", &repo.owner)
            .replace("{repo}", &repo.name);
        let key = match repo.id {
            Some(id) => format!("github-repository-id:{id}"),
            None => repo.full_name().to_lowercase(),
        };
        let job_service_account =
            with_hash(&dns_label(&filled, DNS_LABEL_MAX), &key, DNS_LABEL_MAX);
        RepoNames {
            namespace: shared.namespace,
            own_namespace: shared.own_namespace,
            runner_service_account: shared.runner_service_account,
            role: shared.role,
            config_map: shared.config_map,
            scale_set: shared.scale_set,
            job_service_account,
            group: Some(group.to_owned()),
            ..own
        }
    }
}

/// The names of every repository of `settings`, in order: a group's
/// members' as [`RepoNames::group_member`], the others' as [`RepoNames::new`].
pub fn all(settings: &Settings) -> Vec<RepoNames> {
    let mut group_of: Vec<Option<&str>> = vec![None; settings.repositories.len()];
    for group in &settings.groups {
        for &m in &group.members {
            if let Some(slot) = group_of.get_mut(m) {
                *slot = Some(&group.name);
            }
        }
    }
    settings
        .repositories
        .iter()
        .zip(group_of)
        .map(|(r, group)| match group {
            Some(group) => RepoNames::group_member(settings, group, r),
            None => RepoNames::new(settings, r),
        })
        .collect()
}

impl RepoNames {
    /// The names of the repository at `index` of `settings`, in its group
    /// if it has one.
    pub fn at(settings: &Settings, index: usize) -> Option<RepoNames> {
        let repo = settings.repositories.get(index)?;
        Some(
            match settings.groups.iter().find(|g| g.members.contains(&index)) {
                Some(group) => RepoNames::group_member(settings, &group.name, repo),
                None => RepoNames::new(settings, repo),
            },
        )
    }
}

/// Rejects two repositories that map to the same object: namespace (when each
/// repository owns one), any namespaced object, scale set or IAM role.
/// A group's members share the group's namespace, runner ServiceAccount,
/// Role, ConfigMap and scale set: those are claimed once, by the group.
pub fn check_collisions(all: &[RepoNames]) -> Result<()> {
    let mut seen: BTreeMap<Claim, String> = BTreeMap::new();
    for n in all {
        let ns = &n.namespace;
        let group = n.group.as_ref().map(|g| format!("group {g}"));
        let mut keys = vec![
            (
                "ServiceAccount",
                format!("{ns}/{}", n.runner_service_account),
            ),
            ("Role", format!("{ns}/{}", n.role)),
            ("ConfigMap", format!("{ns}/{}", n.config_map)),
            ("scale set", format!("{ns}/{}", n.scale_set)),
        ];
        if n.own_namespace {
            keys.push(("Namespace", ns.clone()));
        }
        if n.job_service_account == n.runner_service_account {
            return Err(Error::NameCollision {
                kind: "ServiceAccount",
                name: format!("{ns}/{}", n.job_service_account),
                first: format!("{} (runner)", n.repository),
                second: format!("{} (job)", n.repository),
            });
        }
        let shared = keys.len();
        keys.push(("ServiceAccount", format!("{ns}/{}", n.job_service_account)));
        keys.push(("IAM role", n.iam_role.to_lowercase()));
        for (i, key) in keys.into_iter().enumerate() {
            let key = Claim {
                what: key.0,
                name: key.1,
            };
            let owner = match &group {
                Some(group) if i < shared => group.clone(),
                _ => n.repository.clone(),
            };
            match seen.get(&key) {
                // The group's own names, claimed again by another member.
                Some(first) if *first == owner && group.is_some() && i < shared => {}
                Some(first) => {
                    return Err(Error::NameCollision {
                        kind: key.what,
                        name: key.name,
                        first: first.clone(),
                        second: owner,
                    });
                }
                None => {
                    seen.insert(key, owner);
                }
            }
        }
    }
    Ok(())
}

/// Rejects, in one group, two members whose job ServiceAccounts meet, or a
/// member's that is the group's runner ServiceAccount: a member's hook
/// template would then name another identity. (The members share the
/// group's other names by design.)
pub fn check_group_collisions(group: &str, members: &[RepoNames]) -> Result<()> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for n in members {
        let name = n.job_service_account.as_str();
        let first = if name == n.runner_service_account {
            Some(format!("group {group} (runner)"))
        } else {
            seen.insert(name, &n.repository).map(str::to_owned)
        };
        if let Some(first) = first {
            return Err(Error::NameCollision {
                kind: "ServiceAccount",
                name: format!("{}/{name}", n.namespace),
                first,
                second: n.repository.clone(),
            });
        }
    }
    Ok(())
}

/// An IAM role name (`[\w+=,.@-]`, at most `max`) derived from `input`.
fn iam_name(input: &str, max: usize) -> String {
    let folded = input.to_lowercase();
    let slug: String = folded
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if slug == folded && slug.len() <= max {
        return slug;
    }
    with_hash(&slug, &folded, max)
}

/// Kubernetes-side names are derived from these settings alone; the
/// `verify` stage uses this to recompute the expected names of the
/// repository a job claims to belong to.
pub fn for_repository(settings: &Settings, full_name: &str) -> Option<RepoNames> {
    let index = settings
        .repositories
        .iter()
        .position(|r| r.full_name().eq_ignore_ascii_case(full_name))?;
    RepoNames::at(settings, index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_a_group_no_member_shares_a_job_account_with_another_or_the_runner() {
        let settings = crate::config::parse(
            "github: {owner: acme, ownerId: 7}\nrepositories: [{name: a_b, id: 1}, {name: a-b-f10f7a17, id: 2}]\n\
             cluster: {name: prod, oidcIssuer: https://o.example/id/1}\n\
             aws: {accountId: '111122223333', mode: irsa}\n\
             groups: [{name: g, repositories: [a_b, a-b-f10f7a17]}]\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let members: Vec<RepoNames> = settings
            .repositories
            .iter()
            .map(|r| RepoNames::group_member(&settings, "g", r))
            .collect();
        // `a_b` folds to `a-b` plus a hash; the other is named like that
        // result, yet the hash of each full name keeps them apart.
        assert_ne!(
            members[0].job_service_account,
            members[1].job_service_account
        );
        assert!(check_group_collisions("g", &members).is_ok());

        let mut same = members.clone();
        same[1].job_service_account = same[0].job_service_account.clone();
        let e = check_group_collisions("g", &same).unwrap_err().to_string();
        assert!(
            e.contains("acme/a_b") && e.contains("acme/a-b-f10f7a17"),
            "{e}"
        );
        let mut runner = members;
        runner[0].job_service_account = runner[0].runner_service_account.clone();
        let e = check_group_collisions("g", &runner)
            .unwrap_err()
            .to_string();
        assert!(e.contains("group g (runner)"), "{e}");
    }

    #[test]
    fn a_members_job_account_is_keyed_by_its_repository_id() {
        let member = |repository: &str| {
            let text = format!(
                "github: {{owner: acme, ownerId: 7}}\nrepositories: [{repository}]\n\
                 cluster: {{name: prod, oidcIssuer: https://o.example/id/1}}\n\
                 aws: {{accountId: '111122223333', mode: irsa}}\n\
                 groups: [{{name: g, repositories: [api]}}]\n"
            );
            let settings = crate::config::parse(&text, std::path::Path::new("t.yaml")).unwrap();
            RepoNames::group_member(&settings, "g", &settings.repositories[0]).job_service_account
        };
        // A repository that takes a deleted member's name is another
        // identity (the full name keyed it before: the same account).
        assert_ne!(member("{name: api, id: 1}"), member("{name: api, id: 2}"));
        assert_eq!(member("{name: api, id: 1}"), member("{name: API, id: 1}"));
        assert!(member("{name: api, id: 1}").starts_with("gha-job-api-"));
    }

    #[test]
    fn lossless_names_are_kept() {
        assert_eq!(dns_label("gha-api", 63), "gha-api");
        assert_eq!(iam_name("gha-prod-acme-api", 64), "gha-prod-acme-api");
    }

    #[test]
    fn case_is_folded_without_hash() {
        // GitHub names are case-insensitive: API and api are one repository.
        assert_eq!(dns_label("gha-API", 63), "gha-api");
        assert_eq!(iam_name("gha-prod-ACME-API", 64), "gha-prod-acme-api");
    }

    #[test]
    fn lossy_names_get_a_stable_hash() {
        let dot = dns_label("gha-web.frontend", 63);
        let underscore = dns_label("gha-web_frontend", 63);
        let dash = dns_label("gha-web-frontend", 63);
        assert!(
            dot.starts_with("gha-web-frontend-") && dot.len() == "gha-web-frontend-".len() + 8,
            "{dot}"
        );
        assert_ne!(dot, underscore);
        assert_ne!(dot, dash);
        assert_eq!(
            dot,
            dns_label("GHA-Web.Frontend", 63),
            "stable and case-insensitive"
        );
    }

    #[test]
    fn truncation_respects_limits_and_distinguishes() {
        let a = dns_label(&format!("gha-{}", "a".repeat(100)), 63);
        let b = dns_label(&format!("gha-{}b", "a".repeat(99)), 63);
        assert_eq!(a.len(), 63);
        assert_ne!(a, b);
        let s = dns_label(&"x".repeat(60), 45);
        assert!(s.len() <= 45, "{s}");
        let r = iam_name(&format!("gha-prod-acme-{}", "Very.Long_Name".repeat(6)), 64);
        assert!(
            r.len() <= 64
                && r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
        );
    }

    #[test]
    fn names_are_valid_dns_labels() {
        for input in ["-x-", "__", "a..b", ".github", "Z", "x_"] {
            let n = dns_label(input, 63);
            assert!(!n.is_empty() && n.len() <= 63, "{input} -> {n}");
            assert!(
                n.starts_with(|c: char| c.is_ascii_alphanumeric()),
                "{input} -> {n}"
            );
            assert!(
                n.ends_with(|c: char| c.is_ascii_alphanumeric()),
                "{input} -> {n}"
            );
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            );
        }
    }
}
