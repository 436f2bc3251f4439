//! The GitHub side of a grouped scale set: the organisation's runner group
//! named after the group lets exactly the group's repositories send it jobs
//! (REST `/orgs/{org}/actions/runner-groups`). `apply` creates it, or brings
//! its repositories and settings back to the plan; `diff` says what would
//! change. A runner group is the configuration's when a group names it;
//! runner groups no group names are only read. The organisation's default
//! runner group, and one an enterprise shares, are refused. Workflow
//! restrictions are left as an administrator set them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use super::{Github, Method, github_error};
use crate::Result;
use crate::config::Settings;

/// What a group's runner group must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub name: String,
    /// The group's scale set: its runners are named `<scale set>-…`.
    pub scale_set: String,
    /// Repository id → `owner/name`.
    pub repositories: BTreeMap<u64, String>,
}

/// The runner groups `settings` plans: one per group, named after it.
pub fn planned(settings: &Settings) -> Vec<Planned> {
    settings
        .groups
        .iter()
        .map(|g| Planned {
            name: g.name.clone(),
            scale_set: g
                .members
                .first()
                .and_then(|&m| crate::names::RepoNames::at(settings, m))
                .map(|n| n.scale_set)
                .unwrap_or_default(),
            repositories: g
                .members
                .iter()
                .filter_map(|&m| settings.repositories.get(m))
                .filter_map(|r| Some((r.id?, r.full_name())))
                .collect(),
        })
        .collect()
}

/// What happened to one runner group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Updated,
    Unchanged,
    /// `diff` or a dry run: what `apply` would do is in `changes`.
    WouldChange,
    /// Not the configuration's to change (the default or an inherited group).
    Refused,
    Failed,
}

/// One runner group's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunnerGroupResult {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub action: Action,
    /// What differed from the plan (`+owner/repo`, `-owner/repo`, settings).
    pub changes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every runner group's result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub runner_groups: Vec<RunnerGroupResult>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.runner_groups
            .iter()
            .filter(|r| matches!(r.action, Action::Failed | Action::Refused))
            .count()
    }

    /// Groups that differ from the plan (for `diff --exit-code`).
    pub fn changes(&self) -> usize {
        self.runner_groups
            .iter()
            .filter(|r| !matches!(r.action, Action::Unchanged))
            .count()
    }

    /// A table in the style of the other stages' reports.
    pub fn table(&self) -> String {
        let mut out = String::from("RUNNER GROUP\tACTION\tCHANGES\n");
        for r in &self.runner_groups {
            let action = serde_json::to_value(r.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let detail = match &r.error {
                Some(e) => e.clone(),
                None => r.changes.join(", "),
            };
            out.push_str(&format!("{}\t{action}\t{detail}\n", r.name));
        }
        out
    }

    /// Each failed or refused group's error.
    pub fn problems(&self) -> impl Iterator<Item = String> + '_ {
        self.runner_groups.iter().filter_map(|r| {
            r.error
                .as_ref()
                .map(|e| format!("runner group {}: {e}", r.name))
        })
    }
}

/// Every item of a paged list answer (`{total_count, <key>: [...]}`),
/// following the `next` links.
async fn list_all(github: &Github, first: &str, key: &str) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(path) = next {
        let (body, link) = github.get(&path).await?;
        match body.get(key).and_then(Value::as_array) {
            Some(page) => items.extend(page.iter().cloned()),
            None => {
                return Err(github_error(
                    format!("GET {path}"),
                    format!("the answer has no `{key}` list"),
                    "check `github.url`",
                ));
            }
        }
        next = link;
    }
    Ok(items)
}

/// How `reconcile` may write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// `diff` or a dry run: compare only.
    pub no_writes: bool,
    /// Take over a runner group of the group's name that serves other
    /// runners than the group's scale set's.
    pub adopt: bool,
}

/// Converges (or, with `no_writes`, compares) the runner group of each
/// planned group in `org`. Listing the organisation's runner groups failing
/// is an error for the whole stage; a failure on one group is that group's.
pub async fn reconcile(
    github: &Github,
    org: &str,
    plans: &[Planned],
    options: Options,
) -> Result<Report> {
    let live = list_all(
        github,
        &format!("/orgs/{org}/actions/runner-groups?per_page=100"),
        "runner_groups",
    )
    .await?;
    let mut report = Report::default();
    for plan in plans {
        let found = live.iter().find(|g| {
            g.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(&plan.name))
        });
        let result = match found {
            None => create(github, org, plan, options.no_writes).await,
            Some(group) => converge(github, org, plan, group, options).await,
        };
        report
            .runner_groups
            .push(result.unwrap_or_else(|e| RunnerGroupResult {
                name: plan.name.clone(),
                id: None,
                action: Action::Failed,
                changes: Vec::new(),
                error: Some(e.to_string()),
            }));
    }
    Ok(report)
}

async fn create(
    github: &Github,
    org: &str,
    plan: &Planned,
    no_writes: bool,
) -> Result<RunnerGroupResult> {
    let changes: Vec<String> =
        std::iter::once("create (visibility selected, public repositories not allowed)".to_owned())
            .chain(plan.repositories.values().map(|r| format!("+{r}")))
            .collect();
    if no_writes {
        return Ok(RunnerGroupResult {
            name: plan.name.clone(),
            id: None,
            action: Action::WouldChange,
            changes,
            error: None,
        });
    }
    let body = json!({
        "name": plan.name,
        "visibility": "selected",
        "selected_repository_ids": plan.repositories.keys().collect::<Vec<_>>(),
        "allows_public_repositories": false,
    });
    let (created, _) = github
        .request(
            Method::Post,
            &format!("/orgs/{org}/actions/runner-groups"),
            Some(&body),
        )
        .await?;
    Ok(RunnerGroupResult {
        name: plan.name.clone(),
        id: created.get("id").and_then(Value::as_u64),
        action: Action::Created,
        changes,
        error: None,
    })
}

async fn converge(
    github: &Github,
    org: &str,
    plan: &Planned,
    live: &Value,
    options: Options,
) -> Result<RunnerGroupResult> {
    let no_writes = options.no_writes;
    let id = live.get("id").and_then(Value::as_u64).ok_or_else(|| {
        github_error(
            format!("runner group {}", plan.name),
            "the answer has no id",
            "check `github.url`",
        )
    })?;
    let flag = |key: &str| live.get(key).and_then(Value::as_bool).unwrap_or(false);
    let mut result = RunnerGroupResult {
        name: plan.name.clone(),
        id: Some(id),
        action: Action::Unchanged,
        changes: Vec::new(),
        error: None,
    };
    if flag("default") || flag("inherited") {
        result.action = Action::Refused;
        result.error = Some(format!(
            "`{}` is the organisation's {} runner group, which serves other repositories: \
             runner-identity does not change it; name the group otherwise",
            plan.name,
            if flag("default") {
                "default"
            } else {
                "enterprise's shared"
            }
        ));
        return Ok(result);
    }
    // A runner group that serves other runners is someone else's, whatever
    // its name: taken over only when asked.
    let runners = list_all(
        github,
        &format!("/orgs/{org}/actions/runner-groups/{id}/runners?per_page=100"),
        "runners",
    )
    .await?;
    let foreign: Vec<&str> = runners
        .iter()
        .filter_map(|r| r.get("name").and_then(Value::as_str))
        .filter(|n| !n.starts_with(&format!("{}-", plan.scale_set)))
        .collect();
    if !foreign.is_empty() && !options.adopt {
        result.action = Action::Refused;
        result.error = Some(format!(
            "runner group `{}` serves runners that are not scale set {}'s ({}{}): it is someone \
             else's; name the group otherwise, or take it over with --adopt",
            plan.name,
            plan.scale_set,
            foreign
                .iter()
                .take(3)
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
            if foreign.len() > 3 { ", …" } else { "" }
        ));
        return Ok(result);
    }
    let mut settings = serde_json::Map::new();
    if live.get("visibility").and_then(Value::as_str) != Some("selected") {
        settings.insert("visibility".into(), json!("selected"));
        result.changes.push(format!(
            "visibility {} → selected",
            live.get("visibility")
                .and_then(Value::as_str)
                .unwrap_or("(none)")
        ));
    }
    if flag("allows_public_repositories") {
        settings.insert("allows_public_repositories".into(), json!(false));
        result
            .changes
            .push("public repositories allowed → not allowed".into());
    }
    let members = list_all(
        github,
        &format!("/orgs/{org}/actions/runner-groups/{id}/repositories?per_page=100"),
        "repositories",
    )
    .await?;
    let live_ids: BTreeMap<u64, String> = members
        .iter()
        .filter_map(|r| {
            Some((
                r.get("id")?.as_u64()?,
                r.get("full_name")?.as_str()?.to_owned(),
            ))
        })
        .collect();
    let want: BTreeSet<u64> = plan.repositories.keys().copied().collect();
    let have: BTreeSet<u64> = live_ids.keys().copied().collect();
    for added in want.difference(&have) {
        result
            .changes
            .push(format!("+{}", plan.repositories[added]));
    }
    for removed in have.difference(&want) {
        result
            .changes
            .push(format!("-{} (not in the group)", live_ids[removed]));
    }
    // Planned members only: a public non-member is removed below.
    let public: Vec<&str> = members
        .iter()
        .filter(|r| {
            r.get("id")
                .and_then(Value::as_u64)
                .is_some_and(|id| want.contains(&id))
        })
        .filter(|r| r.get("private").and_then(Value::as_bool) == Some(false))
        .filter_map(|r| r.get("full_name").and_then(Value::as_str))
        .collect();
    let refused = (!public.is_empty()).then(|| public_refused(&public));
    if result.changes.is_empty() || no_writes {
        if !result.changes.is_empty() {
            result.action = Action::WouldChange;
        }
        if refused.is_some() {
            result.action = Action::Failed;
            result.error = refused;
        }
        return Ok(result);
    }
    if !settings.is_empty() {
        github
            .request(
                Method::Patch,
                &format!("/orgs/{org}/actions/runner-groups/{id}"),
                Some(&Value::Object(settings)),
            )
            .await?;
    }
    if want != have {
        github
            .request(
                Method::Put,
                &format!("/orgs/{org}/actions/runner-groups/{id}/repositories"),
                Some(&json!({ "selected_repository_ids": want })),
            )
            .await?;
    }
    result.action = Action::Updated;
    if refused.is_some() {
        result.action = Action::Failed;
        result.error = refused;
    }
    Ok(result)
}

/// Public members: the runner group does not send their jobs (public
/// repositories are not allowed), and a public repository's pull requests
/// from forks would run on the group's runner: refused.
fn public_refused(public: &[&str]) -> String {
    format!(
        "{} {} public: a public repository's jobs (forks' pull requests included) must not run \
         beside the group's identities; keep it on its own scale set, or make it private",
        public.join(", "),
        if public.len() == 1 { "is" } else { "are" }
    )
}
