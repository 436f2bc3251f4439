//! Validation of a parsed [`Config`] into [`Settings`]: every check happens here, once.

use std::collections::BTreeMap;
use std::path::Path;

use super::locate::locate;
use super::{
    ApiAuth, ChartName, Config, Group, Hooks, Mode, Repository, RepositoryEntry, RunnerCredentials,
    ScaleSetCredentials, Secret, Selector, Settings, check_rule, folded,
};
use crate::chart;
use crate::kvp::{self, MANAGED_BY_LABEL, PREFIX};
use crate::{ConfigProblem, Error, Result};

/// Placeholders allowed in name templates.
pub(crate) const PLACEHOLDERS: [&str; 3] = ["cluster", "owner", "repo"];

/// Every problem of one configuration, collected in one pass.
struct Problems<'a> {
    path: &'a Path,
    text: Option<&'a str>,
    list: Vec<ConfigProblem>,
}

impl Problems<'_> {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.list.push(ConfigProblem {
            location: self.text.and_then(|t| locate(t, field)),
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// Records the error of `check`, if any; the value otherwise.
    fn check<T>(&mut self, field: &str, check: std::result::Result<T, String>) -> Option<T> {
        match check {
            Ok(v) => Some(v),
            Err(m) => {
                self.add(field, m);
                None
            }
        }
    }
}

/// Validates `config` (read from `text` at `path`, when there is a text to
/// point into) and reports every problem at once, each with its location.
pub(super) fn settings(mut config: Config, path: &Path, text: Option<&str>) -> Result<Settings> {
    let mut p = Problems {
        path,
        text,
        list: Vec::new(),
    };

    let github_url = p.check("github.url", check_url(&config.github.url, true));
    p.check("github.owner", check_github_name(&config.github.owner));
    if let Some(issuer) = &config.github.actions_issuer {
        p.check("github.actionsIssuer", check_url(issuer, true));
    }

    p.check("cluster.name", check_cluster_name(&config.cluster.name));
    let issuer_host_path = match (&config.cluster.oidc_issuer, config.aws.mode) {
        (Some(issuer), _) => p
            .check("cluster.oidcIssuer", check_url(issuer, false))
            .map(|url| url.trim_start_matches("https://").to_owned()),
        (None, Mode::Irsa) => {
            p.add(
                "cluster.oidcIssuer",
                "required in `irsa` mode: set it to the output of \
                 `aws eks describe-cluster --name <cluster> --query cluster.identity.oidc.issuer`",
            );
            None
        }
        (None, Mode::PodIdentity) => None,
    };

    let aws = &config.aws;
    if aws.account_id.len() != 12 || !aws.account_id.bytes().all(|b| b.is_ascii_digit()) {
        p.add(
            "aws.accountId",
            format!(
                "`{}` is not a 12-digit AWS account id (quote it so YAML keeps leading zeros)",
                aws.account_id
            ),
        );
    }
    let partition = aws.partition.as_str();
    if aws.mode == Mode::PodIdentity && config.cluster.region.is_none() {
        p.add(
            "cluster.region",
            "required in `pod-identity` mode: the role's trust pins the cluster by its ARN \
             (`arn:<partition>:eks:<region>:<account>:cluster/<name>`), so that a same-named \
             cluster in another region cannot assume it; set it to the cluster's region",
        );
    }
    if let Some(region) = &config.cluster.region {
        let of_region = crate::config::Partition::of_region(region);
        if of_region != aws.partition {
            p.check::<()>(
                "cluster.region",
                Err(format!(
                    "`{region}` is in the `{}` partition, but aws.partition is `{partition}`; set \
                     aws.partition: {} (or the cluster's real region)",
                    of_region.as_str(),
                    of_region.as_str()
                )),
            );
        }
    }
    for arn in &aws.managed_policy_arns {
        p.check("aws.managedPolicyArns", check_policy_arn(arn, partition));
    }
    if let Some(arn) = &aws.permissions_boundary {
        p.check("aws.permissionsBoundary", check_policy_arn(arn, partition));
    }
    p.check(
        "aws.maxSessionDuration",
        check_session(aws.max_session_duration),
    );
    if let Some(path) = &aws.role_path {
        p.check("aws.rolePath", check_role_path(path));
    }
    p.check("aws.tags", check_tags(&aws.tags));

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
        p.check(field, check_name_template(template));
    }
    if !(3600..=86400).contains(&k.irsa.token_expiration) {
        p.add(
            "kubernetes.irsa.tokenExpiration",
            format!(
                "{} is outside 3600..=86400 seconds",
                k.irsa.token_expiration
            ),
        );
    }
    if k.irsa.audience.trim().is_empty() {
        p.add("kubernetes.irsa.audience", "must not be empty");
    }
    if k.fs_group < 0 {
        p.add("kubernetes.fsGroup", format!("{} is negative", k.fs_group));
    }
    if k.runner_fs_group < 0 {
        p.add(
            "kubernetes.runnerFsGroup",
            format!("{} is negative", k.runner_fs_group),
        );
    }
    if let Some(version) = p.check(
        "kubernetes.chart.version",
        chart::parse_version(&k.chart.version),
    ) && let Some(problem) =
        chart::unsupported(k.chart.name, &version, k.hooks == Hooks::KubernetesNovolume)
    {
        p.add("kubernetes.chart.version", problem);
    }
    if let Some(sa) = &k.chart.controller_service_account {
        p.check(
            "kubernetes.chart.controllerServiceAccount.namespace",
            kvp::check_dns_label(&sa.namespace),
        );
        p.check(
            "kubernetes.chart.controllerServiceAccount.name",
            kvp::check_dns_subdomain(&sa.name),
        );
    }
    if k.verify_runner.runner_image.is_some() && k.chart.name == ChartName::Classic {
        p.add(
            "kubernetes.verifyRunner.runnerImage",
            "is for the gha-runner-scale-set-experimental chart only; with gha-runner-scale-set an \
             init container copies runner-identity from kubernetes.verifyRunner.image into the \
             unmodified runner image: remove runnerImage, or set kubernetes.chart.name",
        );
    }
    for (i, rule) in k.extra_rules.iter().enumerate() {
        p.check(&format!("kubernetes.extraRules[{i}]"), check_rule(rule));
    }
    p.check("kubernetes.labels", check_metadata(&k.labels, true));
    p.check(
        "kubernetes.annotations",
        check_metadata(&k.annotations, false),
    );

    let instance = match &config.instance {
        Some(i) => {
            p.check("instance", kvp::check_label_value(i));
            i.clone()
        }
        None => kvp::label_value(&format!("{}-{}", config.cluster.name, config.github.owner)),
    };
    if config.aws.role_path.is_none() {
        config.aws.role_path = Some(crate::config::default_role_path(&instance));
    }

    if config.repositories.is_empty() && !config.discovers() {
        p.add(
            "repositories",
            "lists no repository; list some, or add `select:` to discover them on GitHub",
        );
    }
    for (field, sel) in config.selectors() {
        if let Err((f, m)) = check_selector(sel) {
            p.add(&format!("{field}.{f}"), m);
        }
    }
    let github_auth = match config.github.auth.as_ref().map(ApiAuth::try_from) {
        None => ApiAuth::default(),
        Some(Ok(auth)) => auth,
        Some(Err((field, message))) => {
            p.add(field, message);
            ApiAuth::default()
        }
    };
    p.check(
        "kubernetes.githubConfigSecret",
        kvp::check_dns_subdomain(&k.github_config_secret),
    );
    if let Some(c) = &k.github_credentials {
        check_credentials(&mut p, "kubernetes.githubCredentials", c);
    }
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut repositories = Vec::with_capacity(config.repositories.len());
    for (i, entry) in config.repositories.iter().enumerate() {
        let field = format!("repositories[{i}]");
        let repo = effective(&config, entry);
        let name_field = match entry {
            RepositoryEntry::Name(_) => field.clone(),
            RepositoryEntry::Detailed(_) => format!("{field}.name"),
        };
        p.check(&name_field, check_github_name(&repo.name));
        if let Some(first) = seen.insert(folded(&repo.name), repo.name.clone()) {
            p.add(
                &name_field,
                format!(
                    "`{}` duplicates `{first}`: GitHub repository names are case-insensitive; keep one entry",
                    repo.name
                ),
            );
        }
        for arn in &repo.managed_policy_arns {
            p.check(
                &format!("{field}.aws.managedPolicyArns"),
                check_policy_arn(arn, partition),
            );
        }
        if let Some(arn) = &repo.permissions_boundary {
            p.check(
                &format!("{field}.aws.permissionsBoundary"),
                check_policy_arn(arn, partition),
            );
        }
        p.check(
            &format!("{field}.aws.maxSessionDuration"),
            check_session(repo.max_session_duration),
        );
        p.check(&format!("{field}.aws.tags"), check_tags(&repo.tags));
        if let Some(arn) = &repo.target_role_arn {
            p.check(
                &format!("{field}.aws.targetRoleArn"),
                check_target_role(arn, partition, config.aws.mode),
            );
        }
        for (j, rule) in repo.extra_rules.iter().enumerate() {
            p.check(
                &format!("{field}.kubernetes.extraRules[{j}]"),
                check_rule(rule),
            );
        }
        p.check(
            &format!("{field}.kubernetes.labels"),
            check_metadata(&repo.labels, true),
        );
        p.check(
            &format!("{field}.kubernetes.annotations"),
            check_metadata(&repo.annotations, false),
        );
        if let RepositoryEntry::Detailed(o) = entry
            && let Some(c) = &o.kubernetes.github_credentials
        {
            check_credentials(&mut p, &format!("{field}.kubernetes.githubCredentials"), c);
        }
        repositories.push(repo);
    }

    let groups = check_groups(&mut p, &config, &repositories);

    match (p.list.is_empty(), github_url) {
        (true, Some(github_url)) => Ok(Settings {
            source: path.to_owned(),
            github_url,
            issuer_host_path,
            instance,
            repositories,
            config,
            github_auth,
            groups,
        }),
        _ => Err(Error::ConfigProblems {
            path: p.path.to_owned(),
            problems: p.list,
        }),
    }
}

/// The longest group name: the names derived from it get suffixes.
const GROUP_NAME_MAX: usize = 40;

/// `groups:`: names that are DNS labels, once each; members that are listed
/// repositories, each in one group at most; a hooks flavour whose job cannot
/// reach the runner container (docs/design/grouped-scale-sets.md).
fn check_groups(p: &mut Problems<'_>, config: &Config, repositories: &[Repository]) -> Vec<Group> {
    if config.groups.is_empty() {
        return Vec::new();
    }
    if config.kubernetes.hooks == Hooks::KubernetesNovolume {
        p.add(
            "groups",
            "grouped scale sets need `kubernetes.hooks: kubernetes`: with kubernetes-novolume, \
             hooks v0.8.1 copy files from the job's pod into the runner container and start \
             `sh` there through a PATH the job can extend, and in a group the runner's \
             ServiceAccount may start pods as every member's identity",
        );
    }
    if config.github.owner_id.is_none() {
        p.add(
            "github.ownerId",
            "a group's runner names the job's repository; pin the owner by its id so that \
             another account of the same name is refused (`gh api users/OWNER --jq .id`)",
        );
    }
    let index: BTreeMap<String, usize> = repositories
        .iter()
        .enumerate()
        .map(|(i, r)| (folded(&r.name), i))
        .collect();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut member_of: BTreeMap<usize, String> = BTreeMap::new();
    let mut groups = Vec::with_capacity(config.groups.len());
    for (i, group) in config.groups.iter().enumerate() {
        let field = format!("groups[{i}]");
        p.check(&format!("{field}.name"), kvp::check_dns_label(&group.name));
        if group.name.len() > GROUP_NAME_MAX {
            p.add(
                &format!("{field}.name"),
                format!("is longer than {GROUP_NAME_MAX} characters"),
            );
        }
        if let Some(first) = names.insert(folded(&group.name), i) {
            p.add(
                &format!("{field}.name"),
                format!("`{}` is also the name of groups[{first}]", group.name),
            );
        }
        if group.repositories.is_empty() && group.select.is_none() {
            p.add(
                &format!("{field}.repositories"),
                "lists no repository; list some, or add `select:` to the group",
            );
        }
        let mut members = Vec::with_capacity(group.repositories.len());
        for (j, name) in group.repositories.iter().enumerate() {
            let at = format!("{field}.repositories[{j}]");
            let Some(&member) = index.get(&folded(name)) else {
                p.add(
                    &at,
                    format!("`{name}` is not in `repositories:`; list it there (a group names listed repositories)"),
                );
                continue;
            };
            if let Some(other) = member_of.insert(member, group.name.clone()) {
                p.add(
                    &at,
                    format!("`{name}` is already in group `{other}`: a repository's jobs run in one scale set"),
                );
                continue;
            }
            if repositories[member].id.is_none() {
                // A name can move to another repository; the runner group
                // lists repositories by id.
                p.add(
                    &at,
                    format!(
                        "`{name}` has no `id:` in `repositories:`; a group member is pinned by its \
                         repository id, since its name can pass to another repository \
                         (`gh api repos/OWNER/{name} --jq .id`)"
                    ),
                );
            }
            // The group's runner and credentials are shared: one member's own
            // would be every member's.
            if let Some(RepositoryEntry::Detailed(o)) = config.repositories.get(member) {
                if !o.kubernetes.extra_rules.is_empty() {
                    p.add(
                        &at,
                        format!(
                            "`{name}` has its own kubernetes.extraRules; in a group the runner's Role is \
                             the group's, so they would be every member's runner's: move them to \
                             kubernetes.extraRules or keep `{name}` on its own scale set"
                        ),
                    );
                }
                if o.kubernetes.github_credentials.is_some() {
                    p.add(
                        &at,
                        format!(
                            "`{name}` has its own kubernetes.githubCredentials; a group's scale set \
                             registers at the organisation with kubernetes.githubCredentials"
                        ),
                    );
                }
            }
            members.push(member);
        }
        if index.contains_key(&folded(&group.name)) {
            p.add(
                &format!("{field}.name"),
                format!(
                    "`{}` is also a repository's name: the group's namespace, scale set and \
                     runner would be that repository's; name the group otherwise",
                    group.name
                ),
            );
        }
        groups.push(Group {
            name: group.name.clone(),
            members,
        });
    }
    groups
}

/// `kubernetes.githubCredentials` (or a repository's): exactly one of
/// `token`, `app` and `fromSecret`, each with a readable source declaration.
fn check_credentials(p: &mut Problems<'_>, field: &str, c: &ScaleSetCredentials) {
    if let Err((below, message)) = RunnerCredentials::try_from(c) {
        let at = if below.is_empty() {
            field.to_owned()
        } else {
            format!("{field}.{below}")
        };
        p.add(&at, message);
        // Every problem at once: with more than one kind set, each source
        // present is checked too.
        if below.is_empty() {
            if let Some(t) = &c.token {
                p.check(&format!("{field}.token"), Secret::try_from(t).map(drop));
            }
            if let Some(a) = &c.app {
                p.check(
                    &format!("{field}.app.privateKey"),
                    Secret::try_from(&a.private_key).map(drop),
                );
            }
        }
    }
    if let Some(r) = &c.from_secret {
        p.check(
            &format!("{field}.fromSecret.namespace"),
            kvp::check_dns_label(&r.namespace),
        );
        p.check(
            &format!("{field}.fromSecret.name"),
            kvp::check_dns_subdomain(&r.name),
        );
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
        entry: entry.clone(),
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
        github_credentials: k
            .github_credentials
            .as_ref()
            .and_then(|c| RunnerCredentials::try_from(c).ok()),
        own_github_credentials: false,
        id: None,
        target_role_arn: None,
    };
    match entry {
        RepositoryEntry::Name(name) => repo.name = name.clone(),
        RepositoryEntry::Detailed(o) => {
            repo.name = o.name.clone();
            repo.id = o.id;
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
            repo.target_role_arn = o.aws.target_role_arn.clone();
            repo.extra_rules
                .extend(o.kubernetes.extra_rules.iter().cloned());
            repo.labels.extend(o.kubernetes.labels.clone());
            repo.annotations.extend(o.kubernetes.annotations.clone());
            if let Some(c) = &o.kubernetes.github_credentials {
                repo.github_credentials = RunnerCredentials::try_from(c).ok();
                repo.own_github_credentials = true;
            }
        }
    }
    repo
}

/// An `https://host[:port][/path]` URL (or `http://` on a loopback host when
/// `allow_loopback_http`), returned as written without a trailing slash.
fn check_url(text: &str, allow_loopback_http: bool) -> std::result::Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_loopback_http => {
            if !is_loopback(&url) {
                return Err(format!(
                    "`{text}`: plain http is accepted only for loopback addresses; use https://"
                ));
            }
        }
        _ => return Err(format!("`{text}` is not an https:// URL")),
    }
    if text.trim() != text
        || url.host().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(format!(
            "`{text}` has no valid host, or has white space, credentials, a query or a fragment"
        ));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// `localhost`, 127.0.0.0/8 or `::1`: nothing else counts (an IPv4-mapped
/// IPv6 address such as `[::ffff:8.8.8.8]` is not loopback).
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
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
/// A Pod Identity target role: an IAM role ARN without wildcards, in the
/// configured partition, in `pod-identity` mode.
fn check_target_role(arn: &str, partition: &str, mode: Mode) -> std::result::Result<(), String> {
    if mode != Mode::PodIdentity {
        return Err(
            "a target role is chained by EKS Pod Identity only; set aws.mode: pod-identity, or \
             remove it and give the repository's own role the rights"
                .to_owned(),
        );
    }
    let parsed = crate::arn::Arn::parse(arn)?;
    // IAM's role name (`[\w+=,.@-]{1,64}`) and path characters: no wildcard
    // and no policy variable (`${…}`), which IAM would expand in the
    // statements that name it.
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c);
    let name_ok = parsed
        .role_name()
        .is_some_and(|n| n.len() <= 64 && n.chars().all(|c| c != '/' && allowed(c)));
    if parsed.service != "iam" || !name_ok || !parsed.resource.chars().all(allowed) {
        return Err(format!(
            "`{arn}` is not one IAM role (arn:{partition}:iam::<account>:role/<path/><name>; \
             letters, digits and +=,.@_- only)"
        ));
    }
    if !parsed.has_account_id() || !parsed.region.is_empty() {
        return Err(format!(
            "`{arn}`: a role ARN has no region and a 12-digit account id"
        ));
    }
    if parsed.partition.as_str() != partition {
        return Err(format!(
            "`{arn}` is in partition `{}`, but `aws.partition` is `{partition}`: EKS Pod \
             Identity chains within one partition",
            parsed.partition.as_str()
        ));
    }
    Ok(())
}

fn check_policy_arn(arn: &str, partition: &str) -> std::result::Result<(), String> {
    if arn.contains(['*', '?']) {
        // IAM matches `*` and `?` in ArnEquals: `policy/*` as a boundary
        // would admit AdministratorAccess.
        return Err(format!(
            "`{arn}` holds a wildcard: name one policy (the identity that runs apply may attach, \
             or set as the boundary, exactly the policies named here)"
        ));
    }
    let parsed = crate::arn::Arn::parse(arn).map_err(|_| {
        format!("`{arn}` is not an ARN (arn:{partition}:iam::<account>:policy/<name>)")
    })?;
    if parsed.service != "iam" || !parsed.region.is_empty() {
        return Err(format!(
            "`{arn}` is not an IAM ARN (arn:{partition}:iam::<account>:policy/<name>)"
        ));
    }
    if parsed.partition.as_str() != partition {
        return Err(format!(
            "`{arn}` is in partition `{}`, but `aws.partition` is `{partition}`",
            parsed.partition.as_str()
        ));
    }
    if parsed.account != "aws" && !parsed.has_account_id() {
        return Err(format!(
            "`{arn}`: `{}` is not `aws` or a 12-digit account id",
            parsed.account
        ));
    }
    match parsed.resource.strip_prefix("policy/") {
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
        kvp::check_qualified_name(k)?;
        if labels {
            kvp::check_label_value(v).map_err(|m| format!("label `{k}`: {m}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grouped(groups: &str, hooks: &str) -> Result<Settings> {
        let text = format!(
            "github: {{owner: acme, ownerId: 7}}\nrepositories: [{{name: api, id: 1}}, {{name: web, id: 2}}, Docs, platform]\n\
             cluster: {{name: prod, oidcIssuer: https://o.example/id/1}}\n\
             aws: {{accountId: '111122223333', mode: irsa}}\n\
             kubernetes: {{hooks: {hooks}}}\ngroups:\n{groups}"
        );
        crate::config::parse(&text, Path::new("t.yaml"))
    }

    #[test]
    fn groups_name_listed_repositories_once_each_and_every_problem_is_reported() {
        let ok = grouped(
            "  - {name: core, repositories: [api]}\n  - {name: site, repositories: [WEB]}\n",
            "kubernetes",
        )
        .unwrap();
        let members: Vec<(&str, Vec<&str>)> = ok
            .groups
            .iter()
            .map(|g| {
                let names = g
                    .members
                    .iter()
                    .map(|&i| ok.repositories[i].name.as_str())
                    .collect();
                (g.name.as_str(), names)
            })
            .collect();
        assert_eq!(members, [("core", vec!["api"]), ("site", vec!["web"])]);

        let e = grouped(
            "  - {name: Platform_1, repositories: [api, nope]}\n  - {name: platform_1, repositories: [API]}\n  - {name: empty, repositories: []}\n  - {name: platform, repositories: [docs]}\n",
            "kubernetes-novolume",
        )
        .unwrap_err()
        .to_string();
        for says in [
            "invalid `groups`: grouped scale sets need `kubernetes.hooks: kubernetes`",
            "invalid `groups[0].name`",
            "invalid `groups[0].repositories[1]`: `nope` is not in `repositories:`",
            "invalid `groups[1].name`: `platform_1` is also the name of groups[0]",
            "invalid `groups[1].repositories[0]`: `API` is already in group `Platform_1`",
            "invalid `groups[2].repositories`: lists no repository",
            "invalid `groups[3].repositories[0]`: `docs` has no `id:`",
            "invalid `groups[3].name`: `platform` is also a repository's name",
        ] {
            assert!(e.contains(says), "missing {says:?} in:\n{e}");
        }
    }

    #[test]
    fn a_group_may_be_filled_by_its_select_whose_globs_are_checked() {
        // Before, any `select:` beside `groups:` was refused.
        let ok = grouped(
            "  - {name: core, select: {names: ['svc-*']}}\n  - {name: site, repositories: [web], select: {topics: [site]}}\n",
            "kubernetes",
        )
        .unwrap();
        assert_eq!(
            ok.config.groups[0].select.as_ref().unwrap().names,
            ["svc-*"]
        );
        assert!(ok.config.discovers());
        // Until discovery, a selecting group has only its listed members.
        assert!(ok.groups[0].members.is_empty());
        let e = grouped(
            "  - {name: core, select: {names: ['acme/svc-*']}}\n  - {name: site, select: {topics: ['']}}\n",
            "kubernetes",
        )
        .unwrap_err()
        .to_string();
        for says in [
            "invalid `groups[0].select.names`: `acme/svc-*`: a glob of repository names",
            "invalid `groups[1].select.topics`: a topic is empty",
        ] {
            assert!(e.contains(says), "missing {says:?} in:\n{e}");
        }
    }

    #[test]
    fn a_target_role_is_one_role_in_the_partition_chained_by_pod_identity() {
        let ok = "arn:aws:iam::444455556666:role/data/reader";
        assert_eq!(check_target_role(ok, "aws", Mode::PodIdentity), Ok(()));
        let irsa = check_target_role(ok, "aws", Mode::Irsa).unwrap_err();
        assert!(irsa.contains("aws.mode: pod-identity"), "{irsa}");
        for (arn, says) in [
            ("arn:aws:iam::444455556666:role/*", "not one IAM role"),
            (
                "arn:aws:iam::444455556666:role/${aws:PrincipalTag/x}",
                "not one IAM role",
            ),
            ("arn:aws:iam::444455556666:role/a?b", "not one IAM role"),
            ("arn:aws:iam::444455556666:policy/p", "not one IAM role"),
            ("arn:aws:s3:::bucket", "not one IAM role"),
            ("arn:aws:iam::4444:role/r", "12-digit"),
            ("arn:aws-cn:iam::444455556666:role/r", "partition `aws-cn`"),
            ("role/r", "not an ARN"),
        ] {
            let e = check_target_role(arn, "aws", Mode::PodIdentity).unwrap_err();
            assert!(e.contains(says), "{arn}: {e}");
        }
        // Through the whole configuration: named by its field.
        let text = "github: {owner: acme}\nrepositories:\n  - name: api\n    aws: {targetRoleArn: 'arn:aws:iam::1:role/x'}\n\
                    cluster: {name: prod, region: eu-west-1, oidcIssuer: https://o.example/id/1}\n\
                    aws: {accountId: '111122223333', mode: irsa}\n";
        let e = crate::config::parse(text, Path::new("t.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("repositories[0].aws.targetRoleArn"), "{e}");
    }

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
        assert!(check_url("http://[::1]:8080/x", true).is_ok());
        assert!(check_url("http://localhost:1", true).is_ok());
        assert!(check_url("https://u:p@github.example.com", true).is_err());
        assert!(check_url("https://github.example.com/?q", true).is_err());
    }

    #[test]
    fn an_ipv4_mapped_public_address_is_not_loopback() {
        // Accepted before: a host starting with `[` counted as loopback.
        for url in [
            "http://[::ffff:8.8.8.8]",
            "http://[::ffff:8.8.8.8]:80/x",
            "http://[2001:db8::1]",
        ] {
            let err = check_url(url, true).unwrap_err();
            assert!(err.contains("only for loopback"), "{url}: {err}");
        }
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
