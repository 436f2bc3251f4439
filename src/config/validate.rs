//! Validation of a parsed [`Config`] into [`Settings`]: every check happens here, once.

use std::collections::BTreeMap;
use std::path::Path;

use super::{
    Config, Mode, Repository, RepositoryEntry, SecretSource, Selector, Settings, check_rule, folded,
};
use crate::names::{self, MANAGED_BY_LABEL, PREFIX};
use crate::{Error, Result};

/// Placeholders allowed in name templates.
pub(crate) const PLACEHOLDERS: [&str; 3] = ["cluster", "owner", "repo"];

pub(super) fn settings(config: Config, path: &Path) -> Result<Settings> {
    let invalid = |field: &str, message: String| Error::ConfigInvalid {
        path: path.to_owned(),
        field: field.to_owned(),
        message,
    };

    let github_url = check_url(&config.github.url, true).map_err(|m| invalid("github.url", m))?;
    check_github_name(&config.github.owner).map_err(|m| invalid("github.owner", m))?;
    if let Some(issuer) = &config.github.actions_issuer {
        check_url(issuer, true).map_err(|m| invalid("github.actionsIssuer", m))?;
    }

    check_cluster_name(&config.cluster.name).map_err(|m| invalid("cluster.name", m))?;
    let issuer_host_path = match (&config.cluster.oidc_issuer, config.aws.mode) {
        (Some(issuer), _) => {
            Some(check_url(issuer, false).map_err(|m| invalid("cluster.oidcIssuer", m))?)
        }
        (None, Mode::Irsa) => {
            return Err(invalid(
                "cluster.oidcIssuer",
                "required in `irsa` mode: set it to the output of \
                 `aws eks describe-cluster --name <cluster> --query cluster.identity.oidc.issuer`"
                    .into(),
            ));
        }
        (None, Mode::PodIdentity) => None,
    }
    .map(|url| url.trim_start_matches("https://").to_owned());

    let aws = &config.aws;
    if aws.account_id.len() != 12 || !aws.account_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "aws.accountId",
            format!(
                "`{}` is not a 12-digit AWS account id (quote it so YAML keeps leading zeros)",
                aws.account_id
            ),
        ));
    }
    let partition = aws.partition.as_str();
    for arn in &aws.managed_policy_arns {
        check_policy_arn(arn, partition).map_err(|m| invalid("aws.managedPolicyArns", m))?;
    }
    if let Some(arn) = &aws.permissions_boundary {
        check_policy_arn(arn, partition).map_err(|m| invalid("aws.permissionsBoundary", m))?;
    }
    check_session(aws.max_session_duration).map_err(|m| invalid("aws.maxSessionDuration", m))?;
    check_role_path(&aws.role_path).map_err(|m| invalid("aws.rolePath", m))?;
    check_tags(&aws.tags).map_err(|m| invalid("aws.tags", m))?;

    let k = &config.kubernetes;
    for (field, template) in [
        ("aws.roleName", &aws.role_name),
        ("kubernetes.namespace", &k.namespace),
        (
            "kubernetes.names.runnerServiceAccount",
            &k.names.runner_service_account,
        ),
        (
            "kubernetes.names.jobServiceAccount",
            &k.names.job_service_account,
        ),
        ("kubernetes.names.role", &k.names.role),
        ("kubernetes.names.configMap", &k.names.config_map),
        ("kubernetes.names.scaleSet", &k.names.scale_set),
    ] {
        check_name_template(template).map_err(|m| invalid(field, m))?;
    }
    if !(3600..=86400).contains(&k.irsa.token_expiration) {
        return Err(invalid(
            "kubernetes.irsa.tokenExpiration",
            format!(
                "{} is outside 3600..=86400 seconds",
                k.irsa.token_expiration
            ),
        ));
    }
    if k.irsa.audience.trim().is_empty() {
        return Err(invalid(
            "kubernetes.irsa.audience",
            "must not be empty".into(),
        ));
    }
    if k.fs_group < 0 {
        return Err(invalid(
            "kubernetes.fsGroup",
            format!("{} is negative", k.fs_group),
        ));
    }
    for (i, rule) in k.extra_rules.iter().enumerate() {
        check_rule(rule).map_err(|m| invalid(&format!("kubernetes.extraRules[{i}]"), m))?;
    }
    check_metadata(&k.labels, true).map_err(|m| invalid("kubernetes.labels", m))?;
    check_metadata(&k.annotations, false).map_err(|m| invalid("kubernetes.annotations", m))?;

    let instance = match &config.instance {
        Some(i) => {
            names::check_label_value(i).map_err(|m| invalid("instance", m))?;
            i.clone()
        }
        None => names::label_value(&format!("{}-{}", config.cluster.name, config.github.owner)),
    };

    if config.repositories.is_empty() && config.select.is_none() {
        return Err(invalid(
            "repositories",
            "lists no repository; list some, or add `select:` to discover them on GitHub".into(),
        ));
    }
    if let Some(sel) = &config.select {
        check_selector(sel).map_err(|(f, m)| invalid(&format!("select.{f}"), m))?;
    }
    if let Some(auth) = &config.github.auth {
        match (&auth.token, &auth.app) {
            (Some(t), None) => check_source(t).map_err(|m| invalid("github.auth.token", m))?,
            (None, Some(app)) => check_source(&app.private_key)
                .map_err(|m| invalid("github.auth.app.privateKey", m))?,
            _ => {
                return Err(invalid(
                    "github.auth",
                    "set exactly one of `token` and `app`".into(),
                ));
            }
        }
    }
    if let Some(c) = &k.github_credentials {
        let set = [c.token.is_some(), c.app.is_some(), c.from_secret.is_some()];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err(invalid(
                "kubernetes.githubCredentials",
                "set exactly one of `token`, `app` and `fromSecret` (ARC refuses a Secret holding both kinds)".into(),
            ));
        }
        if let Some(t) = &c.token {
            check_source(t).map_err(|m| invalid("kubernetes.githubCredentials.token", m))?;
        }
        if let Some(a) = &c.app {
            check_source(&a.private_key)
                .map_err(|m| invalid("kubernetes.githubCredentials.app.privateKey", m))?;
        }
        if let Some(r) = &c.from_secret {
            for v in [&r.namespace, &r.name] {
                if names::dns_label(v, 253) != *v {
                    return Err(invalid(
                        "kubernetes.githubCredentials.fromSecret",
                        format!("`{v}` is not a valid Kubernetes name"),
                    ));
                }
            }
        }
    }
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut repositories = Vec::with_capacity(config.repositories.len());
    for (i, entry) in config.repositories.iter().enumerate() {
        let field = format!("repositories[{i}]");
        let repo = effective(&config, entry);
        check_github_name(&repo.name).map_err(|m| invalid(&field, m))?;
        if let Some(first) = seen.insert(folded(&repo.name), repo.name.clone()) {
            return Err(invalid(
                &field,
                format!(
                    "`{}` duplicates `{first}`: GitHub repository names are case-insensitive; keep one entry",
                    repo.name
                ),
            ));
        }
        for arn in &repo.managed_policy_arns {
            check_policy_arn(arn, partition)
                .map_err(|m| invalid(&format!("{field}.aws.managedPolicyArns"), m))?;
        }
        if let Some(arn) = &repo.permissions_boundary {
            check_policy_arn(arn, partition)
                .map_err(|m| invalid(&format!("{field}.aws.permissionsBoundary"), m))?;
        }
        check_session(repo.max_session_duration)
            .map_err(|m| invalid(&format!("{field}.aws.maxSessionDuration"), m))?;
        check_tags(&repo.tags).map_err(|m| invalid(&format!("{field}.aws.tags"), m))?;
        for (j, rule) in repo.extra_rules.iter().enumerate() {
            check_rule(rule)
                .map_err(|m| invalid(&format!("{field}.kubernetes.extraRules[{j}]"), m))?;
        }
        check_metadata(&repo.labels, true)
            .map_err(|m| invalid(&format!("{field}.kubernetes.labels"), m))?;
        check_metadata(&repo.annotations, false)
            .map_err(|m| invalid(&format!("{field}.kubernetes.annotations"), m))?;
        repositories.push(repo);
    }

    Ok(Settings {
        source: path.to_owned(),
        github_url,
        issuer_host_path,
        instance,
        repositories,
        config,
    })
}

/// A secret source names exactly one of `env` and `file`.
fn check_source(source: &SecretSource) -> std::result::Result<(), String> {
    match (&source.env, &source.file) {
        (Some(e), None) if !e.is_empty() => Ok(()),
        (None, Some(f)) if !f.as_os_str().is_empty() => Ok(()),
        _ => Err("set exactly one of `env` (a variable name) and `file` (a path)".into()),
    }
}

fn check_selector(sel: &Selector) -> std::result::Result<(), (String, String)> {
    for (field, globs) in [("names", &sel.names), ("exclude", &sel.exclude)] {
        for g in globs {
            if g.is_empty() || g.contains('/') {
                return Err((
                    field.into(),
                    format!("`{g}`: a glob of repository names (`*`, `?`), without the owner"),
                ));
            }
        }
    }
    for v in &sel.visibility {
        if !matches!(v.as_str(), "public" | "private" | "internal") {
            return Err((
                "visibility".into(),
                format!("`{v}` is not one of public, private, internal"),
            ));
        }
    }
    if sel.topics.iter().any(String::is_empty) {
        return Err(("topics".into(), "a topic is empty".into()));
    }
    Ok(())
}

/// Merges the global settings with a repository's overrides.
fn effective(config: &Config, entry: &RepositoryEntry) -> Repository {
    let aws = &config.aws;
    let k = &config.kubernetes;
    let mut repo = Repository {
        owner: config.github.owner.clone(),
        name: String::new(),
        managed_policy_arns: aws.managed_policy_arns.clone(),
        inline_policy_template: aws.inline_policy_template.clone(),
        permissions_boundary: aws.permissions_boundary.clone(),
        max_session_duration: aws.max_session_duration,
        tags: aws.tags.clone(),
        extra_rules: k.extra_rules.clone(),
        labels: k.labels.clone(),
        annotations: k.annotations.clone(),
    };
    match entry {
        RepositoryEntry::Name(name) => repo.name = name.clone(),
        RepositoryEntry::Detailed(o) => {
            repo.name = o.name.clone();
            if let Some(arns) = &o.aws.managed_policy_arns {
                repo.managed_policy_arns = arns.clone();
            }
            if let Some(t) = &o.aws.inline_policy_template {
                repo.inline_policy_template = Some(t.clone());
            }
            if let Some(b) = &o.aws.permissions_boundary {
                repo.permissions_boundary = Some(b.clone());
            }
            if let Some(d) = o.aws.max_session_duration {
                repo.max_session_duration = d;
            }
            repo.tags.extend(o.aws.tags.clone());
            repo.extra_rules
                .extend(o.kubernetes.extra_rules.iter().cloned());
            repo.labels.extend(o.kubernetes.labels.clone());
            repo.annotations.extend(o.kubernetes.annotations.clone());
        }
    }
    repo
}

/// An `https://host[:port][/path]` URL (or `http://` on loopback when
/// `allow_loopback_http`), returned without a trailing slash.
fn check_url(url: &str, allow_loopback_http: bool) -> std::result::Result<String, String> {
    let trimmed = url.trim_end_matches('/');
    let rest = if let Some(rest) = trimmed.strip_prefix("https://") {
        rest
    } else if let Some(rest) = trimmed
        .strip_prefix("http://")
        .filter(|_| allow_loopback_http)
    {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        if !matches!(host, "127.0.0.1" | "localhost" | "[") && !rest.starts_with("[::1]") {
            return Err(format!(
                "`{url}`: plain http is accepted only for loopback addresses; use https://"
            ));
        }
        rest
    } else {
        return Err(format!("`{url}` is not an https:// URL"));
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) || rest.contains(['?', '#']) {
        return Err(format!(
            "`{url}` has no valid host, or has a query or fragment"
        ));
    }
    Ok(trimmed.to_owned())
}

/// GitHub owner and repository names: letters, digits, `-`, `_`, `.`; at most 100.
fn check_github_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > 100 {
        return Err(format!("`{name}` must be 1 to 100 characters long"));
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` is not a repository name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "`{name}` contains `{c}`; GitHub names use only letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

fn check_cluster_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not an EKS cluster name (1-100 letters, digits, `-`, `_`, starting with a letter or digit)"
        ))
    }
}

/// `arn:<partition>:iam::(aws|<account>):policy/<path/name>`.
fn check_policy_arn(arn: &str, partition: &str) -> std::result::Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, part, service, region, account, resource] = parts.as_slice() else {
        return Err(format!(
            "`{arn}` is not an ARN (arn:{partition}:iam::<account>:policy/<name>)"
        ));
    };
    if *prefix != "arn" || *service != "iam" || !region.is_empty() {
        return Err(format!(
            "`{arn}` is not an IAM ARN (arn:{partition}:iam::<account>:policy/<name>)"
        ));
    }
    if *part != partition {
        return Err(format!(
            "`{arn}` is in partition `{part}`, but `aws.partition` is `{partition}`"
        ));
    }
    let account_ok =
        *account == "aws" || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()));
    if !account_ok {
        return Err(format!(
            "`{arn}`: `{account}` is not `aws` or a 12-digit account id"
        ));
    }
    match resource.strip_prefix("policy/") {
        Some(name) if !name.is_empty() => Ok(()),
        _ => Err(format!("`{arn}` does not name a policy (`policy/<name>`)")),
    }
}

fn check_session(seconds: u32) -> std::result::Result<(), String> {
    if (3600..=43200).contains(&seconds) {
        Ok(())
    } else {
        Err(format!("{seconds} is outside IAM's 3600..=43200 seconds"))
    }
}

fn check_role_path(path: &str) -> std::result::Result<(), String> {
    let ok = path.starts_with('/')
        && path.ends_with('/')
        && path.len() <= 512
        && path.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{path}` must start and end with `/` and use printable ASCII only"
        ))
    }
}

fn check_tags(tags: &BTreeMap<String, String>) -> std::result::Result<(), String> {
    for (k, v) in tags {
        if k.is_empty() || k.len() > 128 || v.len() > 256 {
            return Err(format!(
                "tag `{k}`: keys are 1-128 and values 0-256 characters"
            ));
        }
        if k.starts_with("aws:") || k.starts_with(PREFIX) {
            return Err(format!(
                "tag `{k}` uses a reserved prefix (`aws:`, `{PREFIX}`)"
            ));
        }
    }
    Ok(())
}

/// Placeholders are `{cluster}`, `{owner}`, `{repo}`; anything else in braces is an error.
fn check_name_template(template: &str) -> std::result::Result<(), String> {
    if template.trim().is_empty() {
        return Err("must not be empty".into());
    }
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err(format!("`{template}` has an unclosed `{{`"));
        };
        let name = &after[..end];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "`{template}` uses `{{{name}}}`; the placeholders are {{cluster}}, {{owner}} and {{repo}}"
            ));
        }
        rest = &after[end + 1..];
    }
    if rest.contains('}') {
        return Err(format!("`{template}` has a `}}` without `{{`"));
    }
    Ok(())
}

/// User labels and annotations: qualified keys, and never the tool's own keys.
fn check_metadata(map: &BTreeMap<String, String>, labels: bool) -> std::result::Result<(), String> {
    for (k, v) in map {
        if k == MANAGED_BY_LABEL || k.starts_with(PREFIX) {
            return Err(format!(
                "`{k}` is set by runner-identity itself and cannot be configured"
            ));
        }
        names::check_qualified_name(k)?;
        if labels {
            names::check_label_value(v).map_err(|m| format!("label `{k}`: {m}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            check_url("https://github.com/", true).as_deref(),
            Ok("https://github.com")
        );
        assert!(check_url("http://github.example.com", true).is_err());
        assert!(check_url("http://127.0.0.1:8080", true).is_ok());
        assert!(check_url("http://127.0.0.1:8080", false).is_err());
        assert!(check_url("ftp://x", true).is_err());
        assert!(check_url("https://", true).is_err());
    }

    #[test]
    fn policy_arns() {
        assert!(check_policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess", "aws").is_ok());
        assert!(check_policy_arn("arn:aws:iam::111122223333:policy/team/x", "aws").is_ok());
        let err = check_policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess", "aws-cn").unwrap_err();
        assert!(err.contains("partition `aws`"), "{err}");
        assert!(check_policy_arn("arn:aws:iam::12:policy/x", "aws").is_err());
        assert!(check_policy_arn("arn:aws:iam::aws:role/x", "aws").is_err());
        assert!(check_policy_arn("ReadOnlyAccess", "aws").is_err());
    }

    #[test]
    fn name_templates() {
        assert!(check_name_template("gha-{repo}").is_ok());
        assert!(check_name_template("{cluster}-{owner}-{repo}").is_ok());
        assert!(
            check_name_template("gha-{repository}")
                .unwrap_err()
                .contains("{repository}")
        );
        assert!(check_name_template("gha-{repo").is_err());
        assert!(check_name_template("gha-repo}").is_err());
    }

    #[test]
    fn github_names() {
        assert!(check_github_name("Web.Frontend_2").is_ok());
        assert!(check_github_name(&"a".repeat(100)).is_ok());
        assert!(check_github_name(&"a".repeat(101)).is_err());
        assert!(check_github_name("a/b").unwrap_err().contains("`/`"));
        assert!(check_github_name("..").is_err());
    }
}
