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

use sha2::{Digest, Sha256};

use crate::config::{Repository, Settings};
use crate::{Error, Result};

/// Prefix of the tool's own labels and annotations.
pub const PREFIX: &str = "runner-identity.dev/";
/// Standard label marking what the tool manages.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "runner-identity";
/// Label holding the configuration instance.
pub const INSTANCE_LABEL: &str = "runner-identity.dev/instance";
/// Label holding the repository in label-value form (for selection).
pub const REPOSITORY_LABEL: &str = "runner-identity.dev/repository";
/// Annotation holding the exact `owner/repo`.
pub const REPOSITORY_ANNOTATION: &str = "runner-identity.dev/repository";

/// Kubernetes name limit (DNS-1123 label).
const DNS_LABEL_MAX: usize = 63;
/// The gha-runner-scale-set chart refuses longer scale set names.
const SCALE_SET_MAX: usize = 45;
/// IAM role name limit.
const IAM_ROLE_MAX: usize = 64;
/// Hex digits of the disambiguating hash.
const HASH_LEN: usize = 8;

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
            cfg.aws.role_path,
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
        }
    }
}

/// Rejects two repositories that map to the same object: namespace (when each
/// repository owns one), any namespaced object, scale set or IAM role.
pub fn check_collisions(all: &[RepoNames]) -> Result<()> {
    let mut seen: BTreeMap<(&'static str, String), &str> = BTreeMap::new();
    for n in all {
        let ns = &n.namespace;
        let mut keys = vec![
            (
                "ServiceAccount",
                format!("{ns}/{}", n.runner_service_account),
            ),
            ("Role", format!("{ns}/{}", n.role)),
            ("ConfigMap", format!("{ns}/{}", n.config_map)),
            ("scale set", format!("{ns}/{}", n.scale_set)),
            ("IAM role", n.iam_role.to_lowercase()),
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
        keys.push(("ServiceAccount", format!("{ns}/{}", n.job_service_account)));
        for key in keys {
            if let Some(first) = seen.get(&key) {
                return Err(Error::NameCollision {
                    kind: key.0,
                    name: key.1,
                    first: (*first).to_owned(),
                    second: n.repository.clone(),
                });
            }
            seen.insert(key, &n.repository);
        }
    }
    Ok(())
}

/// A DNS-1123 label of at most `max` characters derived from `input`.
pub fn dns_label(input: &str, max: usize) -> String {
    let folded = input.to_lowercase();
    let mut slug = String::with_capacity(folded.len());
    for c in folded.chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (slug.is_empty() || slug.ends_with('-'))) {
            slug.push(c);
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug == folded && slug.len() <= max {
        return slug.to_owned();
    }
    with_hash(slug, &folded, max)
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

/// A label value (`[A-Za-z0-9._-]`, at most 63, alphanumeric at both ends).
pub fn label_value(input: &str) -> String {
    let folded = input.to_lowercase();
    let slug: String = folded
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = slug.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed == folded && trimmed.len() <= DNS_LABEL_MAX {
        return trimmed.to_owned();
    }
    with_hash(trimmed, &folded, DNS_LABEL_MAX)
}

/// `<slug truncated>-<hash of original>`, at most `max` characters.
fn with_hash(slug: &str, original: &str, max: usize) -> String {
    let digest = Sha256::digest(original.as_bytes());
    let hash: String = digest
        .iter()
        .take(HASH_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    let keep = max.saturating_sub(HASH_LEN + 1);
    let base: String = slug.chars().take(keep).collect();
    let base = base.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if base.is_empty() {
        hash
    } else {
        format!("{base}-{hash}")
    }
}

/// Checks a label value.
pub fn check_label_value(v: &str) -> std::result::Result<(), String> {
    let ok = v.is_empty()
        || (v.len() <= DNS_LABEL_MAX
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a valid label value (at most 63 letters, digits, `-`, `_`, `.`, alphanumeric at both ends)"
        ))
    }
}

/// Checks a DNS-1123 subdomain (the names of Secrets, ConfigMaps and most
/// objects): at most 253 characters, dot-separated parts of lower-case
/// letters, digits and `-`, each starting and ending alphanumeric.
pub fn check_dns_subdomain(name: &str) -> std::result::Result<(), String> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !p.starts_with('-')
            && !p.ends_with('-')
    };
    if name.len() <= 253 && name.split('.').all(part_ok) {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid Kubernetes name (a DNS subdomain: at most 253 lower-case \
             letters, digits, `-` and `.`, alphanumeric at both ends of each part)"
        ))
    }
}

/// Checks a DNS-1123 label (namespace names): at most 63 lower-case letters,
/// digits and `-`, alphanumeric at both ends.
pub fn check_dns_label(name: &str) -> std::result::Result<(), String> {
    if name.len() <= DNS_LABEL_MAX && !name.contains('.') && check_dns_subdomain(name).is_ok() {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid namespace name (a DNS label: at most 63 lower-case \
             letters, digits and `-`, alphanumeric at both ends)"
        ))
    }
}

/// Checks a label or annotation key (`[prefix/]name`).
pub fn check_qualified_name(key: &str) -> std::result::Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    if prefix_ok && !name.is_empty() && check_label_value(name).is_ok() {
        Ok(())
    } else {
        Err(format!("`{key}` is not a valid label or annotation key"))
    }
}

/// Kubernetes-side names are derived from these settings alone; the
/// `verify` stage uses this to recompute the expected names of the
/// repository a job claims to belong to.
pub fn for_repository(settings: &Settings, full_name: &str) -> Option<RepoNames> {
    settings
        .repositories
        .iter()
        .find(|r| r.full_name().eq_ignore_ascii_case(full_name))
        .map(|r| RepoNames::new(settings, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_dns_subdomains() {
        // Rejected before: `github.app` was checked as a DNS label.
        for ok in ["github.app", "a", "arc-github-secret", "x.y-z.0"] {
            assert_eq!(check_dns_subdomain(ok), Ok(()), "{ok}");
        }
        let long = format!("{}.{}", "a".repeat(63), "b".repeat(190));
        assert_eq!(long.len(), 254);
        for bad in [
            "",
            "Github.app",
            "a..b",
            "-a",
            "a-.b",
            "a_b",
            ".a",
            long.as_str(),
        ] {
            assert!(check_dns_subdomain(bad).is_err(), "{bad}");
        }
        assert!(check_dns_label("arc-runners").is_ok());
        assert!(check_dns_label("a.b").is_err());
        assert!(check_dns_label(&"a".repeat(64)).is_err());
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

    #[test]
    fn label_values() {
        assert_eq!(label_value("acme.api"), "acme.api");
        assert!(check_label_value(&label_value(&"r".repeat(120))).is_ok());
        assert!(check_label_value("-a").is_err());
        assert!(check_qualified_name("example.com/team").is_ok());
        assert!(check_qualified_name("team").is_ok());
        assert!(check_qualified_name("Example.com/team").is_err());
        assert!(check_qualified_name("a/b/c").is_err());
    }
}
