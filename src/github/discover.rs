//! Discovery: list the owner's repositories (every page), add custom
//! properties when the selector needs them, and select. The result is also
//! the `--repos-file` format, so plan and apply can run from it offline.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Github;
use super::select::{Rejected, RepoInfo, Selected, select};
use crate::config::{self, Selector, Settings};
use crate::{Error, Result};

/// The outcome of a discovery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Discovery {
    /// `github.owner`.
    pub owner: String,
    /// The API it came from.
    pub api: String,
    /// Whether every listing was read to the end and agrees with GitHub's
    /// count; `apply --prune` requires it.
    pub complete: bool,
    /// Why it is incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
    /// Repositories listed.
    pub listed: usize,
    pub selected: Vec<Selected>,
    pub rejected: Vec<Rejected>,
    /// Problems worth a warning (listed repositories GitHub does not show).
    #[serde(default)]
    pub problems: Vec<String>,
    /// The selectors it was made with (`select:` and the groups'): a saved
    /// discovery serves only a configuration that selects alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selectors: Option<Value>,
}

/// The selectors of a configuration, as a saved discovery records them.
fn selectors(settings: &Settings) -> Value {
    let groups: Vec<Value> = (settings.config.groups.iter())
        .filter_map(|g| Some(serde_json::json!({"name": g.name, "select": g.select.as_ref()?})))
        .collect();
    serde_json::json!({"select": settings.config.select, "groups": groups})
}

impl Discovery {
    /// The selected names.
    pub fn names(&self) -> Vec<String> {
        self.selected.iter().map(|s| s.name.clone()).collect()
    }

    /// The selected repositories, with GitHub's ids where it gave them.
    pub fn repositories(&self) -> Vec<config::DiscoveredRepository> {
        self.selected
            .iter()
            .map(|s| config::DiscoveredRepository {
                name: s.name.clone(),
                id: s.id,
                owner_id: s.owner_id,
                groups: s.groups.clone(),
            })
            .collect()
    }

    /// Reads a saved discovery (`discover -o json`).
    pub fn read(path: &Path, settings: &Settings) -> Result<Discovery> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        let d: Discovery = serde_json::from_str(&text).map_err(|e| Error::ConfigParse {
            path: path.to_owned(),
            location: format!("{}:{}", e.line(), e.column()),
            message: format!("not a `runner-identity discover -o json` result: {e}"),
        })?;
        if !d.owner.eq_ignore_ascii_case(&settings.config.github.owner) {
            return Err(Error::ConfigInvalid {
                path: path.to_owned(),
                field: "owner".into(),
                message: format!(
                    "the file lists repositories of `{}`, the configuration is for `{}`",
                    d.owner, settings.config.github.owner
                ),
            });
        }
        let group_selects = settings.config.groups.iter().any(|g| g.select.is_some());
        let refuse = |why: &str| {
            Err(Error::ConfigInvalid {
                path: path.to_owned(),
                field: "selectors".into(),
                message: format!(
                    "{why}: run `runner-identity discover -c {} -o json` again",
                    settings.source.display()
                ),
            })
        };
        match &d.selectors {
            Some(made) if *made != selectors(settings) => refuse(
                "the file was discovered with other selectors than the configuration's \
                 (`select:` or a group's)",
            ),
            // Files of older versions record no selectors nor groups.
            None if group_selects => refuse(
                "the file records no group membership, and a group of the configuration \
                 selects its repositories",
            ),
            _ => Ok(d),
        }
    }

    /// The settings with the selected repositories added.
    pub fn settings(&self, settings: &Settings) -> Result<Settings> {
        config::with_discovered(settings, &self.repositories())
    }
}

fn repo_info(v: &Value) -> Option<RepoInfo> {
    let mut info: RepoInfo = serde_json::from_value(v.clone()).ok()?;
    // GitHub sends `null` for these on some endpoints.
    info.topics.retain(|t| !t.is_empty());
    Some(info)
}

/// Lists and selects the owner's repositories as `settings` configure.
pub async fn discover(github: &Github, settings: &Settings) -> Result<Discovery> {
    let owner = &settings.config.github.owner;
    let group_selectors: Vec<(&str, &Selector)> = (settings.config.groups.iter())
        .filter_map(|g| Some((g.name.as_str(), g.select.as_ref()?)))
        .collect();
    let mut incomplete = None;

    let (first, is_org) = if github.app_installation {
        ("/installation/repositories?per_page=100".to_owned(), None)
    } else {
        let (user, _) = github.get(&format!("/users/{owner}")).await?;
        let org = user.get("type").and_then(Value::as_str) == Some("Organization");
        let path = if org {
            format!("/orgs/{owner}/repos?type=all&per_page=100")
        } else {
            format!("/users/{owner}/repos?type=owner&per_page=100")
        };
        (path, Some(org))
    };
    let mut repos: Vec<RepoInfo> = Vec::new();
    let mut total = None;
    let mut next = Some(first);
    let mut pages = 0usize;
    while let Some(path) = next.take() {
        let (body, link) = github.get(&path).await?;
        pages += 1;
        let items = match &body {
            Value::Array(a) => a.clone(),
            Value::Object(o) => {
                total = total.or_else(|| o.get("total_count").and_then(Value::as_u64));
                o.get("repositories")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        };
        for item in &items {
            match repo_info(item) {
                Some(r) => repos.push(r),
                None => {
                    incomplete = Some(format!(
                        "page {pages} holds an entry that is not a repository"
                    ));
                }
            }
        }
        next = link;
    }
    if let Some(t) = total.filter(|t| usize::try_from(*t).unwrap_or(usize::MAX) != repos.len()) {
        incomplete = Some(format!(
            "GitHub counts {t} repositories but the listing returned {}",
            repos.len()
        ));
    }
    tracing::info!(
        repositories = repos.len(),
        pages,
        "listed the repositories of {owner}"
    );

    let by_property = (settings.config.selectors()).find(|(_, s)| !s.custom_properties.is_empty());
    if let Some((field, _)) = by_property {
        if is_org == Some(false) {
            return Err(Error::ConfigInvalid {
                path: settings.source.clone(),
                field: format!("{field}.customProperties"),
                message: format!(
                    "`{owner}` is a user; custom properties exist only for organizations"
                ),
            });
        }
        add_custom_properties(github, owner, &mut repos).await?;
    }

    let listed: BTreeSet<String> = settings
        .config
        .repositories
        .iter()
        .map(|e| e.name().to_lowercase())
        .collect();
    let visible: BTreeSet<String> = repos.iter().map(|r| r.name.to_lowercase()).collect();
    let problems = listed
        .iter()
        .filter(|n| !visible.contains(*n))
        .map(|n| {
            if github.app_installation {
                format!(
                    "`{owner}/{n}` is listed in `repositories:` but the GitHub App installation cannot see it: \
                     add it to the installation's repository access (ARC's listener needs it too)"
                )
            } else {
                format!("`{owner}/{n}` is listed in `repositories:` but GitHub does not list it for these credentials")
            }
        })
        .collect();
    let (selected, rejected) = select(
        settings.config.select.as_ref(),
        &group_selectors,
        &listed,
        &repos,
    );
    Ok(Discovery {
        owner: owner.clone(),
        api: github.api_base.clone(),
        complete: incomplete.is_none(),
        incomplete,
        listed: repos.len(),
        selected,
        rejected,
        problems,
        selectors: Some(selectors(settings)),
    })
}

async fn add_custom_properties(github: &Github, owner: &str, repos: &mut [RepoInfo]) -> Result<()> {
    let by_name: std::collections::BTreeMap<String, usize> = repos
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.to_lowercase(), i))
        .collect();
    let mut next = Some(format!("/orgs/{owner}/properties/values?per_page=100"));
    while let Some(path) = next.take() {
        let (body, link) = github.get(&path).await?;
        for entry in body.as_array().into_iter().flatten() {
            let Some(name) = entry.get("repository_name").and_then(Value::as_str) else {
                continue;
            };
            let Some(&i) = by_name.get(&name.to_lowercase()) else {
                continue;
            };
            for p in entry
                .get("properties")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(key) = p.get("property_name").and_then(Value::as_str) {
                    let value = p.get("value").cloned().unwrap_or(Value::Null);
                    repos[i].custom_properties.insert(key.to_owned(), value);
                }
            }
        }
        next = link;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(group_select: &str) -> Settings {
        let text = format!(
            "github: {{owner: acme, ownerId: 7}}\nrepositories: [{{name: api, id: 1}}]\n\
             cluster: {{name: prod, oidcIssuer: https://o.example/id/1}}\n\
             aws: {{accountId: '111122223333', mode: irsa}}\n\
             groups:\n  - {{name: core, repositories: [api]{group_select}}}\n"
        );
        crate::config::parse(&text, Path::new("t.yaml")).unwrap()
    }

    fn saved(d: &Discovery, dir: &Path) -> std::path::PathBuf {
        let path = dir.join("repos.json");
        std::fs::write(&path, serde_json::to_string(d).unwrap()).unwrap();
        path
    }

    #[test]
    fn a_saved_discovery_serves_only_a_configuration_that_selects_alike() {
        let dir = tempfile::tempdir().unwrap();
        let selecting = settings(", select: {names: ['svc-*']}");
        let d = Discovery {
            owner: "acme".into(),
            api: "https://api.github.com".into(),
            complete: true,
            incomplete: None,
            listed: 2,
            selected: vec![Selected {
                name: "svc-a".into(),
                id: Some(11),
                owner_id: Some(7),
                reasons: vec!["group `core`: name matches `svc-*`".into()],
                groups: vec!["core".into()],
            }],
            rejected: Vec::new(),
            problems: Vec::new(),
            selectors: Some(selectors(&selecting)),
        };
        let file = saved(&d, dir.path());
        let read = Discovery::read(&file, &selecting).unwrap();
        let s = read.settings(&selecting).unwrap();
        assert_eq!(s.groups[0].members.len(), 2);

        // The group's selector changed since: refused.
        let narrowed = settings(", select: {names: ['svc-b*']}");
        let e = Discovery::read(&file, &narrowed).unwrap_err().to_string();
        assert!(e.contains("discovered with other selectors"), "{e}");
        // A file of an older version (no selectors, no groups): refused
        // while a group selects.
        let old = saved(
            &Discovery {
                selectors: None,
                ..d.clone()
            },
            dir.path(),
        );
        let e = Discovery::read(&old, &selecting).unwrap_err().to_string();
        assert!(e.contains("records no group membership"), "{e}");
        // Membership of a group that does not select: refused.
        let plain = settings("");
        let e = read.settings(&plain).unwrap_err().to_string();
        assert!(
            e.contains("which the configuration has not or which selects nothing"),
            "{e}"
        );
    }
}
