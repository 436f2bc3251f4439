//! The configuration reference (`docs/configuration.md`), generated from
//! the JSON Schema, which is generated from the types: every key, its type,
//! its default and its documentation, so the reference cannot drift from what
//! the loader accepts. Pure: the schema in, Markdown out.

use std::collections::BTreeSet;

use serde_json::Value;

/// The reference as Markdown.
pub fn markdown(schema: &Value) -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from the JSON Schema (`runner-identity schema`, \
         `schema/runner-identity.schema.json`) by `runner-identity schema --markdown`; \
         a test keeps it current. Keys are camelCase; unknown keys are refused.\n\n\
         | key | type | default | description |\n| --- | --- | --- | --- |\n",
    );
    let mut seen = BTreeSet::new();
    walk(schema, schema, "", &mut out, &mut seen);
    out
}

/// The rows of `node`'s properties, prefixed with `path`; `seen` stops a
/// definition that refers to itself.
fn walk(root: &Value, node: &Value, path: &str, out: &mut String, seen: &mut BTreeSet<String>) {
    let node = resolve(root, node);
    let Some(properties) = node.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, property) in properties {
        let field = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let target = object_of(root, property);
        let description = description(root, property);
        out.push_str(&format!(
            "| `{field}` | {} | {} | {} |\n",
            type_of(root, property),
            default_of(property),
            cell(&description)
        ));
        if let Some((name, target, suffix)) = target
            && seen.insert(name.clone())
        {
            walk(root, target, &format!("{field}{suffix}"), out, seen);
            seen.remove(&name);
        }
    }
}

/// A `$ref` followed (one level).
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    node.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/"))
        .and_then(|pointer| root.pointer(&format!("/{pointer}")))
        .unwrap_or(node)
}

/// The object definition a property holds (directly, optionally, as one
/// choice of several, or as list items), with its name and the path suffix
/// (`[]` for list items), when it has properties to list.
fn object_of<'a>(
    root: &'a Value,
    property: &'a Value,
) -> Option<(String, &'a Value, &'static str)> {
    let (node, suffix) = match property.get("items") {
        Some(items) => (items, "[]"),
        None => (property, ""),
    };
    let resolved = resolve(root, node);
    let choices = |v: &'a Value| {
        ["anyOf", "oneOf"]
            .into_iter()
            .filter_map(move |k| v.get(k).and_then(Value::as_array))
            .flatten()
    };
    let candidates = std::iter::once(node)
        .chain(choices(node))
        .chain(choices(resolved));
    for candidate in candidates {
        let Some(name) = candidate.get("$ref").and_then(Value::as_str) else {
            continue;
        };
        let target = resolve(root, candidate);
        if target.get("properties").is_some() {
            return Some((name.to_owned(), target, suffix));
        }
    }
    None
}

/// A short type: `string`, `integer`, `list of …`, `one of a, b`.
fn type_of(root: &Value, property: &Value) -> String {
    let target = resolve(root, property);
    if let Some(values) = enum_values(target) {
        return format!("one of {}", values.join(", "));
    }
    if let Some(any) = property
        .get("anyOf")
        .or_else(|| target.get("anyOf"))
        .and_then(Value::as_array)
    {
        let kinds: Vec<String> = any
            .iter()
            .filter(|v| v.get("type").and_then(Value::as_str) != Some("null"))
            .map(|v| type_of(root, v))
            .collect();
        return kinds.join(" or ");
    }
    match target.get("type") {
        Some(Value::String(t)) if t == "array" => match property.get("items") {
            Some(items) => format!("list of {}", type_of(root, items)),
            None => "list".to_owned(),
        },
        Some(Value::String(t)) if t == "object" => {
            if target.get("properties").is_some() {
                "mapping".to_owned()
            } else {
                "mapping of strings".to_owned()
            }
        }
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .map(|t| match (t, property.get("items")) {
                ("array", Some(items)) => format!("list of {}", type_of(root, items)),
                (t, _) => t.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".to_owned(),
    }
}

/// The values of an enum definition (`enum`, or `oneOf` of constants).
fn enum_values(target: &Value) -> Option<Vec<String>> {
    if let Some(values) = target.get("enum").and_then(Value::as_array) {
        return Some(values.iter().map(|v| format!("`{}`", text(v))).collect());
    }
    let one_of = target.get("oneOf").and_then(Value::as_array)?;
    let mut values = Vec::new();
    for branch in one_of {
        match (
            branch.get("const"),
            branch.get("enum").and_then(Value::as_array),
        ) {
            (Some(c), _) => values.push(format!("`{}`", text(c))),
            (None, Some(all)) => values.extend(all.iter().map(|v| format!("`{}`", text(v)))),
            (None, None) => return None,
        }
    }
    Some(values)
}

fn default_of(property: &Value) -> String {
    match property.get("default") {
        None | Some(Value::Null) => String::new(),
        Some(v @ (Value::Object(_) | Value::Array(_))) if v.to_string().len() > 40 => {
            "(see the rows below)".to_owned()
        }
        Some(v) => format!("`{}`", text(v)),
    }
}

fn description(root: &Value, property: &Value) -> String {
    property
        .get("description")
        .or_else(|| resolve(root, property).get("description"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A Markdown table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_the_schema_has_a_row() {
        let text = markdown(&crate::config::json_schema());
        for key in [
            "`github.owner`",
            "`github.oidcSubjects`",
            "`repositories`",
            "`cluster.region`",
            "`aws.mode`",
            "`kubernetes.chart.version`",
            "`kubernetes.chart.controller.namespace`",
            "`select.visibility`",
            "`github.auth.app.privateKey.env`",
            "`repositories[].aws.targetRoleArn`",
            "`repositories[].kubernetes.githubCredentials.fromSecret.name`",
        ] {
            assert!(text.contains(&format!("| {key} |")), "{key}");
        }
        assert!(text.contains("one of `irsa`, `pod-identity`"), "{text}");
        // Every value of an enum, however the schema spells it.
        assert!(
            text.contains("list of one of `public`, `private`, `internal`"),
            "{text}"
        );
        assert!(!text.contains("| any |"), "an untyped row: {text}");
    }

    #[test]
    fn the_committed_reference_is_the_generated_one() {
        let committed = include_str!("../../docs/configuration.md");
        assert!(
            committed == markdown(&crate::config::json_schema()),
            "docs/configuration.md is stale: run `cargo run -- schema --markdown > docs/configuration.md`"
        );
    }
}
