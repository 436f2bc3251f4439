//! Which listed repositories a [`Selector`] selects, and why (pure).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Selector;

/// What discovery knows of one repository.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepoInfo {
    pub name: String,
    /// GitHub's immutable id of the repository.
    #[serde(default)]
    pub id: Option<u64>,
    /// The owner's id (`owner.id`).
    #[serde(default)]
    pub owner: Option<OwnerRef>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub fork: bool,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub visibility: Option<String>,
    #[serde(default)]
    pub topics: Vec<String>,
    /// Custom property values (strings, or arrays for multi-select).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_properties: BTreeMap<String, Value>,
}

/// The owner of a listed repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRef {
    pub id: u64,
}

/// A selected repository and the reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selected {
    pub name: String,
    /// GitHub's immutable id: `verify job` compares it with the OIDC token's
    /// `repository_id` (a name can be renamed, transferred or re-created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The owner's immutable id (`repository_owner_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<u64>,
    pub reasons: Vec<String>,
    /// The groups whose `select:` picked it (more than one is refused when
    /// the configuration takes it in).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// A repository that was not selected, and the first reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub name: String,
    pub reason: String,
}

/// Case-insensitive glob with `*` and `?`, as GitHub names are case-insensitive.
pub fn glob(pattern: &str, name: &str) -> bool {
    crate::policy::glob_match(&pattern.to_lowercase(), &name.to_lowercase())
}

fn property_matches(value: Option<&Value>, want: &str) -> bool {
    match value {
        Some(Value::String(s)) => s == want,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(want)),
        Some(Value::Bool(b)) => b.to_string() == want,
        Some(Value::Number(n)) => n.to_string() == want,
        _ => false,
    }
}

/// Decides one repository. `listed` holds the folded names of `repositories:`.
pub fn decide(
    sel: &Selector,
    listed: &BTreeSet<String>,
    repo: &RepoInfo,
) -> Result<Vec<String>, String> {
    if let Some(g) = sel.exclude.iter().find(|g| glob(g, &repo.name)) {
        return Err(format!("excluded by `{g}`"));
    }
    if listed.contains(&repo.name.to_lowercase()) {
        return Ok(vec!["listed in `repositories:`".into()]);
    }
    if repo.disabled {
        return Err("disabled".into());
    }
    if repo.archived && !sel.include_archived {
        return Err("archived (includeArchived: false)".into());
    }
    if repo.fork && !sel.include_forks {
        return Err("a fork (includeForks: false)".into());
    }
    let mut reasons = Vec::new();
    if !sel.names.is_empty() {
        match sel.names.iter().find(|g| glob(g, &repo.name)) {
            Some(g) => reasons.push(format!("name matches `{g}`")),
            None => return Err(format!("name matches none of {:?}", sel.names)),
        }
    }
    if !sel.visibility.is_empty() {
        let v = repo.visibility.as_deref().unwrap_or("unknown");
        if !sel.visibility.iter().any(|w| w.as_str() == v) {
            let wanted: Vec<&str> = sel.visibility.iter().map(|w| w.as_str()).collect();
            return Err(format!("visibility {v} is not one of {wanted:?}"));
        }
        reasons.push(format!("visibility {v}"));
    }
    if !sel.topics.is_empty() {
        match sel
            .topics
            .iter()
            .find(|t| repo.topics.iter().any(|r| r.eq_ignore_ascii_case(t)))
        {
            Some(t) => reasons.push(format!("topic `{t}`")),
            None => return Err(format!("has none of the topics {:?}", sel.topics)),
        }
    }
    for (key, want) in &sel.custom_properties {
        let have = repo.custom_properties.get(key);
        if !property_matches(have, want) {
            let have = match have {
                None | Some(Value::Null) => "unset".to_owned(),
                Some(v) => v.to_string(),
            };
            return Err(format!("custom property `{key}` is {have}, not `{want}`"));
        }
        reasons.push(format!("{key}={want}"));
    }
    if reasons.is_empty() {
        reasons.push("every repository of the owner is selected".into());
    }
    Ok(reasons)
}

/// Decides one repository for a group's selector: as [`decide`], never a
/// repository the group's or the top-level `select.exclude` names, and never
/// a public repository (a runner group of the tool's admits none).
pub fn decide_for_group(
    sel: &Selector,
    top: Option<&Selector>,
    repo: &RepoInfo,
) -> Result<Vec<String>, String> {
    // The top-level `select.exclude` keeps a repository out of every group too.
    let excludes = sel
        .exclude
        .iter()
        .chain(top.iter().flat_map(|t| &t.exclude));
    if let Some(g) = excludes.into_iter().find(|g| glob(g, &repo.name)) {
        return Err(format!("excluded by `{g}`"));
    }
    if repo.visibility.as_deref() == Some("public") {
        return Err("public (a runner group admits private and internal repositories only)".into());
    }
    decide(sel, &BTreeSet::new(), repo)
}

/// Selects from `repos` (sorted by name in the result): what `top` selects
/// (`None`: only the `listed` names) and what each named group's selector
/// selects, with the groups that picked each.
pub fn select(
    top: Option<&Selector>,
    groups: &[(&str, &Selector)],
    listed: &BTreeSet<String>,
    repos: &[RepoInfo],
) -> (Vec<Selected>, Vec<Rejected>) {
    let mut selected = Vec::new();
    let mut rejected = Vec::new();
    let top_selector = top;
    for repo in repos {
        let top = match top {
            Some(sel) => decide(sel, listed, repo),
            None if listed.contains(&repo.name.to_lowercase()) => {
                Ok(vec!["listed in `repositories:`".into()])
            }
            None => Err("not listed in `repositories:`".into()),
        };
        let mut reasons = Vec::new();
        let mut why_not = Vec::new();
        match top {
            Ok(r) => reasons.extend(r),
            Err(r) => why_not.push(r),
        }
        let mut picked_by = Vec::new();
        for (name, sel) in groups {
            match decide_for_group(sel, top_selector, repo) {
                Ok(r) => {
                    reasons.extend(r.into_iter().map(|r| format!("group `{name}`: {r}")));
                    picked_by.push((*name).to_owned());
                }
                Err(r) => why_not.push(format!("group `{name}`: {r}")),
            }
        }
        if reasons.is_empty() {
            rejected.push(Rejected {
                name: repo.name.clone(),
                reason: why_not.join("; "),
            });
        } else {
            selected.push(Selected {
                name: repo.name.clone(),
                id: repo.id,
                owner_id: repo.owner.as_ref().map(|o| o.id),
                reasons,
                groups: picked_by,
            });
        }
    }
    selected.sort_by_key(|s| s.name.to_lowercase());
    rejected.sort_by_key(|r| r.name.to_lowercase());
    (selected, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("svc-*", "svc-api"));
        assert!(glob("SVC-*", "svc-Api"));
        assert!(glob("*-api", "svc-api"));
        assert!(glob("s?c-*i", "svc-api"));
        assert!(!glob("svc-*", "web-svc"));
        assert!(!glob("svc", "svc-api"));
        assert!(glob("*", "anything"));
    }

    fn repo(name: &str) -> RepoInfo {
        RepoInfo {
            name: name.into(),
            visibility: Some("private".into()),
            ..Default::default()
        }
    }

    #[test]
    fn every_criterion_is_a_reason_or_a_rejection() {
        let sel = Selector {
            names: vec!["svc-*".into()],
            topics: vec!["arc-runner".into()],
            custom_properties: BTreeMap::from([("team".into(), "payments".into())]),
            ..Default::default()
        };
        let listed = BTreeSet::new();
        let mut good = repo("svc-pay");
        good.topics = vec!["go".into(), "ARC-runner".into()];
        good.custom_properties
            .insert("team".into(), "payments".into());
        assert_eq!(
            decide(&sel, &listed, &good).unwrap(),
            [
                "name matches `svc-*`",
                "topic `arc-runner`",
                "team=payments"
            ]
        );
        let mut multi = good.clone();
        multi
            .custom_properties
            .insert("team".into(), serde_json::json!(["ops", "payments"]));
        assert!(decide(&sel, &listed, &multi).is_ok());
        let mut other_team = good.clone();
        other_team
            .custom_properties
            .insert("team".into(), "web".into());
        assert!(
            decide(&sel, &listed, &other_team)
                .unwrap_err()
                .contains("is \"web\"")
        );
        let mut archived = good.clone();
        archived.archived = true;
        assert!(
            decide(&sel, &listed, &archived)
                .unwrap_err()
                .starts_with("archived")
        );
        let mut fork = good.clone();
        fork.fork = true;
        assert!(decide(&sel, &listed, &fork).unwrap_err().contains("fork"));
        assert!(
            decide(&sel, &listed, &repo("svc-x"))
                .unwrap_err()
                .contains("topics")
        );
        assert!(
            decide(&sel, &listed, &repo("web"))
                .unwrap_err()
                .contains("none of")
        );
        // Listed explicitly: selected whatever the selector says, unless excluded.
        let listed = BTreeSet::from(["web".to_owned()]);
        assert!(decide(&sel, &listed, &repo("Web")).is_ok());
        let excluding = Selector {
            exclude: vec!["w*".into()],
            ..sel
        };
        assert!(
            decide(&excluding, &listed, &repo("web"))
                .unwrap_err()
                .contains("excluded")
        );
    }

    #[test]
    fn a_groups_selector_picks_no_public_repository_and_names_every_group_that_picked() {
        let core = Selector {
            names: vec!["svc-*".into()],
            ..Default::default()
        };
        let all = Selector::default();
        let listed = BTreeSet::from(["api".to_owned()]);
        let mut public = repo("svc-site");
        public.visibility = Some("public".into());
        let repos = [repo("api"), repo("svc-a"), public, repo("web")];
        let (selected, rejected) =
            select(None, &[("core", &core), ("every", &all)], &listed, &repos);
        let picked: Vec<(&str, Vec<&str>)> = selected
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.groups.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            picked,
            [
                ("api", vec!["every"]),
                ("svc-a", vec!["core", "every"]),
                ("web", vec!["every"])
            ]
        );
        assert_eq!(rejected.len(), 1);
        assert!(rejected[0].reason.contains("not listed"), "{rejected:?}");
        assert!(
            rejected[0].reason.contains("group `core`: public"),
            "{rejected:?}"
        );
        // The top-level `select.exclude` keeps a repository out of the groups
        // too (only the group's own did before).
        let top = Selector {
            exclude: vec!["svc-a".into()],
            ..Default::default()
        };
        let (selected, rejected) = select(Some(&top), &[("core", &core)], &listed, &repos);
        assert!(!selected.iter().any(|s| s.name == "svc-a"), "{selected:?}");
        let svc_a = rejected.iter().find(|r| r.name == "svc-a").unwrap();
        assert!(
            svc_a.reason.contains("group `core`: excluded by `svc-a`"),
            "{}",
            svc_a.reason
        );
        // Without groups and without `select:`, only the listed ones.
        let (selected, _) = select(None, &[], &listed, &repos);
        assert_eq!(selected.len(), 1);
        assert!(selected[0].groups.is_empty());
    }
}
