//! Configuration: `runner-identity.yaml` in, validated [`Settings`] out.
//!
//! Two phases: [`Config`] mirrors what the user wrote (serde, unknown keys
//! rejected, camelCase keys, JSON Schema via `schemars`); [`Settings`] is built
//! from it with `TryFrom`-style validation where every check happens once.
//! No I/O besides reading the file in [`load`].

use std::collections::BTreeSet;
use std::path::Path;

use crate::{Error, Result};

mod locate;
mod path;
pub mod reference;
mod schema;
mod settings;
mod structure;
mod validate;

use self::path::{PathStep, field_of, path_steps};
pub use self::schema::*;
pub use self::settings::*;

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Settings> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and validates configuration text; `path` is used in messages only.
/// Reports every structural problem (unknown keys, wrong types) at once, or,
/// when the structure is sound, every invalid value at once, each with its
/// `line:column`.
pub fn parse(text: &str, path: &Path) -> Result<Settings> {
    let parse_error = |e: serde_yaml::Error| {
        let message = e.to_string();
        // serde_yaml appends " at line L column C"; the location leads instead.
        let message = match message.rfind(" at line ") {
            Some(i) if e.location().is_some() => message[..i].to_owned(),
            _ => message,
        };
        Error::ConfigParse {
            path: path.to_owned(),
            location: e
                .location()
                .map(|l| format!("{}:{}", l.line(), l.column()))
                .unwrap_or_else(|| "?".into()),
            message,
        }
    };
    // A file serde accepts has no structural problem (the schema mirrors the
    // types): only a refused one is walked against the schema, so that every
    // unknown key and wrong type is reported, not just serde's first.
    let config: Config = match serde_yaml::from_str(text) {
        Ok(config) => config,
        Err(first) => {
            // YAML syntax first: past a syntax error nothing else can be read.
            let tree: serde_yaml::Value = serde_yaml::from_str(text).map_err(parse_error)?;
            let structural = serde_json::to_value(&tree)
                .map(|doc| structure::problems(&doc, &json_schema()))
                .unwrap_or_default();
            if structural.is_empty() {
                return Err(parse_error(first));
            }
            let mut problems: Vec<crate::ConfigProblem> = structural
                .iter()
                .map(|(field, message)| crate::ConfigProblem {
                    location: locate::locate(text, field),
                    field: field.clone(),
                    message: message.clone(),
                })
                .collect();
            // The values tier too, on what is left without the refused keys
            // (when that still forms a configuration): every problem at once.
            if let Ok(mut doc) = serde_json::to_value(&tree) {
                remove_paths(&mut doc, structural.iter().map(|(f, _)| f.as_str()));
                if let Ok(config) = serde_json::from_value::<Config>(doc)
                    && let Err(Error::ConfigProblems {
                        problems: values, ..
                    }) = crate::config::validate::settings(config, path, Some(text))
                {
                    // Removed list entries shifted the later ones: each value
                    // problem gets its entry's own index and line back.
                    let removed: Vec<Vec<PathStep>> =
                        structural.iter().map(|(f, _)| path_steps(f)).collect();
                    problems.extend(
                        values
                            .into_iter()
                            .map(|mut p| {
                                let field = renumbered(&p.field, &removed);
                                if field != p.field {
                                    p.location = locate::locate(text, &field);
                                    p.field = field;
                                }
                                p
                            })
                            .filter(|p| {
                                !structural.iter().any(|(field, _)| {
                                    p.field == *field || p.field.starts_with(&format!("{field}."))
                                })
                            }),
                    );
                }
            }
            return Err(Error::ConfigProblems {
                path: path.to_owned(),
                problems,
            });
        }
    };
    crate::config::validate::settings(config, path, Some(text))
}

/// The settings with `names` (discovered on GitHub) added after the
/// repositories listed explicitly, which keep their overrides.
pub fn with_discovered(
    settings: &Settings,
    discovered: &[DiscoveredRepository],
) -> Result<Settings> {
    let mut config = settings.config.clone();
    let listed: BTreeSet<String> = config
        .repositories
        .iter()
        .map(|e| folded(e.name()))
        .collect();
    if config.github.owner_id.is_none() {
        config.github.owner_id = discovered.iter().find_map(|d| d.owner_id);
    }
    config.repositories.extend(
        discovered
            .iter()
            .filter(|d| !listed.contains(&folded(&d.name)))
            .map(|d| match d.id {
                Some(id) => RepositoryEntry::Detailed(Box::new(RepositoryOverride {
                    name: d.name.clone(),
                    id: Some(id),
                    ..Default::default()
                })),
                None => RepositoryEntry::Name(d.name.clone()),
            }),
    );
    let problems = join_groups(&mut config, &listed, discovered);
    if !problems.is_empty() {
        return Err(Error::ConfigProblems {
            path: settings.source.clone(),
            problems,
        });
    }
    validate::settings(config, &settings.source, None)
}

/// Adds each discovered repository to the group whose `select:` picked it;
/// a repository two groups claim, or a group that selected nothing, is a
/// problem.
fn join_groups(
    config: &mut Config,
    listed: &BTreeSet<String>,
    discovered: &[DiscoveredRepository],
) -> Vec<crate::ConfigProblem> {
    let mut problems = Vec::new();
    let mut problem = |field: String, message: String| {
        problems.push(crate::ConfigProblem {
            field,
            location: None,
            message,
        });
    };
    // Only a group that selects takes in what discovery picked for it.
    let index = |config: &Config, name: &str| {
        (config.groups.iter()).position(|g| g.name == name && g.select.is_some())
    };
    for d in discovered {
        let name = folded(&d.name);
        let listed_in =
            (config.groups.iter()).position(|g| g.repositories.iter().any(|r| folded(r) == name));
        for unknown in d.groups.iter().filter(|g| index(config, g).is_none()) {
            problem(
                "groups".into(),
                format!(
                    "the discovery puts `{}` in group `{unknown}`, which the configuration has \
                     not or which selects nothing: discover again",
                    d.name
                ),
            );
        }
        let mut picked = d.groups.iter().filter_map(|g| index(config, g));
        let Some(first) = picked.next() else {
            continue;
        };
        for other in picked {
            problem(
                format!("groups[{other}].select"),
                format!(
                    "picks `{}`, which group `{}` picks too: a repository's jobs run in one \
                     scale set; add it to one group's `select.exclude`",
                    d.name, config.groups[first].name
                ),
            );
        }
        if let Some(listed) = listed_in.filter(|&l| l != first) {
            problem(
                format!("groups[{first}].select"),
                format!(
                    "picks `{}`, which group `{}` lists: a repository's jobs run in one scale \
                     set; add it to this group's `select.exclude`",
                    d.name, config.groups[listed].name
                ),
            );
        }
        if listed_in.is_none() && listed.contains(&name) {
            // Listed for a scale set of its own: a selector must not move
            // it in beside the group's members.
            problem(
                format!("groups[{first}].select"),
                format!(
                    "picks `{}`, which `repositories:` lists for a scale set of its own: list it \
                     in the group's `repositories:` to share the group's, or add it to this \
                     group's `select.exclude`",
                    d.name
                ),
            );
        } else if listed_in.is_none() {
            config.groups[first].repositories.push(d.name.clone());
        }
    }
    for (i, g) in config.groups.iter().enumerate() {
        if g.select.is_some() && g.repositories.is_empty() {
            problem(
                format!("groups[{i}].select"),
                "selected no repository on GitHub (`runner-identity discover --explain` says \
                 why), and the group lists none"
                    .into(),
            );
        }
    }
    problems
}

/// A repository discovery selected, with GitHub's ids when it gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredRepository {
    pub name: String,
    pub id: Option<u64>,
    pub owner_id: Option<u64>,
    /// The groups whose `select:` picked it.
    pub groups: Vec<String>,
}

/// The field, in the document before the list entries at `removed` were
/// taken out, of `field` in the document after: each index past a removed
/// entry of the same list moves back up.
fn renumbered(field: &str, removed: &[Vec<PathStep>]) -> String {
    let mut steps = path_steps(field);
    for at in 0..steps.len() {
        let PathStep::Index(new) = steps[at] else {
            continue;
        };
        let parent = &steps[..at];
        let mut gone: Vec<usize> = removed
            .iter()
            .filter(|r| r.len() == at + 1 && r[..at] == *parent)
            .filter_map(|r| match r[at] {
                PathStep::Index(i) => Some(i),
                PathStep::Key(_) => None,
            })
            .collect();
        gone.sort_unstable();
        let mut old = new;
        for g in gone {
            if g <= old {
                old += 1;
            }
        }
        steps[at] = PathStep::Index(old);
    }
    field_of(&steps)
}

/// Removes the keys at `fields` from `doc` (the later list items first, so
/// that earlier indices stay valid).
fn remove_paths<'a>(doc: &mut serde_json::Value, fields: impl Iterator<Item = &'a str>) {
    let mut paths: Vec<Vec<PathStep>> = fields.map(path_steps).collect();
    paths.sort();
    for steps in paths.iter().rev() {
        let Some((last, parents)) = steps.split_last() else {
            continue;
        };
        let Some(node) = parents.iter().try_fold(&mut *doc, |node, step| match step {
            PathStep::Key(k) => node.get_mut(k.as_str()),
            PathStep::Index(i) => node.get_mut(*i),
        }) else {
            continue;
        };
        match (last, node) {
            (PathStep::Key(k), serde_json::Value::Object(map)) => {
                map.remove(k);
            }
            (PathStep::Index(i), serde_json::Value::Array(list)) if *i < list.len() => {
                list.remove(*i);
            }
            _ => {}
        }
    }
}

/// The JSON Schema of the configuration file.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(groups: &str) -> Settings {
        let text = format!(
            "github: {{owner: acme, ownerId: 7}}\nrepositories: [{{name: api, id: 1}}]\n\
             cluster: {{name: prod, oidcIssuer: https://o.example/id/1}}\n\
             aws: {{accountId: '111122223333', mode: irsa}}\ngroups:\n{groups}"
        );
        parse(&text, Path::new("t.yaml")).unwrap()
    }

    fn found(name: &str, id: u64, groups: &[&str]) -> DiscoveredRepository {
        DiscoveredRepository {
            name: name.into(),
            id: Some(id),
            owner_id: Some(7),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    fn members(s: &Settings) -> Vec<(String, Vec<String>)> {
        s.groups
            .iter()
            .map(|g| {
                let names = g.members.iter().map(|&i| s.repositories[i].name.clone());
                (g.name.clone(), names.collect())
            })
            .collect()
    }

    #[test]
    fn a_groups_select_adds_what_it_picked_to_that_group_only() {
        let s = settings(
            "  - {name: core, repositories: [api], select: {names: ['svc-*']}}\n  - {name: site, select: {topics: [web]}}\n",
        );
        let s = with_discovered(
            &s,
            &[
                found("svc-a", 11, &["core"]),
                found("www", 12, &["site"]),
                found("loose", 13, &[]),
            ],
        )
        .unwrap();
        assert_eq!(
            members(&s),
            [
                ("core".into(), vec!["api".into(), "svc-a".into()]),
                ("site".into(), vec!["www".into()])
            ]
        );
        // Picked by no group: a repository with its own scale set.
        assert!(s.repositories.iter().any(|r| r.name == "loose"));
        assert_eq!(
            s.repositories.iter().find(|r| r.name == "www").unwrap().id,
            Some(12)
        );
    }

    #[test]
    fn a_repository_listed_for_its_own_scale_set_is_not_moved_into_a_group_by_a_select() {
        let text = "github: {owner: acme, ownerId: 7}\n\
                    repositories: [{name: api, id: 1}, {name: solo, id: 2, kubernetes: {extraRules: []}}]\n\
                    cluster: {name: prod, oidcIssuer: https://o.example/id/1}\n\
                    aws: {accountId: '111122223333', mode: irsa}\n\
                    groups:\n  - {name: core, repositories: [api], select: {names: ['*']}}\n";
        let s = parse(text, Path::new("t.yaml")).unwrap();
        let e = with_discovered(&s, &[found("solo", 2, &["core"])])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("invalid `groups[0].select`: picks `solo`, which `repositories:` lists for a scale set of its own"),
            "{e}"
        );
    }

    #[test]
    fn a_repository_two_groups_claim_and_a_group_that_selected_nothing_are_refused() {
        let s = settings(
            "  - {name: core, repositories: [api], select: {names: ['*']}}\n  - {name: site, select: {names: ['*']}}\n  - {name: idle, select: {topics: [none]}}\n",
        );
        let e = with_discovered(
            &s,
            &[
                found("both", 11, &["core", "site"]),
                found("api", 1, &["site"]),
            ],
        )
        .unwrap_err()
        .to_string();
        for says in [
            "invalid `groups[1].select`: picks `both`, which group `core` picks too",
            "invalid `groups[1].select`: picks `api`, which group `core` lists",
            "invalid `groups[2].select`: selected no repository on GitHub",
        ] {
            assert!(e.contains(says), "missing {says:?} in:\n{e}");
        }
    }
}
