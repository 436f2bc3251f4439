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
    validate::settings(config, &settings.source, None)
}

/// A repository discovery selected, with GitHub's ids when it gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredRepository {
    pub name: String,
    pub id: Option<u64>,
    pub owner_id: Option<u64>,
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
