//! The structure of a configuration file, checked against the JSON Schema the
//! configuration types derive ([`super::json_schema`]) before they are
//! deserialised: serde stops at the first unknown key or wrong type, this
//! walk finds every one, each with its field path. Pure.
//!
//! It understands what schemars writes for the configuration: `$ref` into
//! `$defs`, `type` (one or a list), `const`, `anyOf` / `oneOf`, `properties`
//! with `additionalProperties`, `required`, `items` and `minimum`.

use serde_json::Value;

/// `(field path, message)` of every structural problem of `value`.
pub(crate) fn problems(value: &Value, schema: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    check(value, schema, schema, "", &mut out);
    out
}

fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    match schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        Some(name) => root
            .pointer(&format!("/$defs/{name}"))
            .map_or(schema, |s| resolve(s, root)),
        None => schema,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

fn check(value: &Value, schema: &Value, root: &Value, path: &str, out: &mut Vec<(String, String)>) {
    let schema = resolve(schema, root);
    let branches = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array);
    if let Some(branches) = branches {
        check_branches(value, branches, root, path, out);
        // Keywords beside the branches (rare) are checked too.
    }
    if let Some(expected) = schema.get("const") {
        if value != expected {
            out.push((
                path.to_owned(),
                format!("{} is not {}", shown(value), shown(expected)),
            ));
        }
        return;
    }
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let actual = type_name(value);
        // serde reads an empty value (`key:`) as an empty list or mapping.
        let fits = allowed.iter().any(|t| {
            *t == actual
                || (*t == "number" && actual == "integer")
                || (actual == "null" && matches!(*t, "array" | "object"))
        });
        if !allowed.is_empty() && !fits {
            out.push((
                path.to_owned(),
                format!(
                    "invalid type: {actual} {}, expected {}",
                    shown(value),
                    allowed.join(" or ")
                ),
            ));
            return;
        }
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) && n < min
    {
        out.push((
            path.to_owned(),
            format!("{n} is less than the minimum {min}"),
        ));
    }
    match value {
        Value::Object(map) => check_object(map, schema, root, path, out),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item, item_schema, root, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn check_object(
    map: &serde_json::Map<String, Value>,
    schema: &Value,
    root: &Value,
    path: &str,
    out: &mut Vec<(String, String)>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    for (key, v) in map {
        let field = join(path, key);
        match (properties.and_then(|p| p.get(key)), additional) {
            (Some(s), _) => check(v, s, root, &field, out),
            (None, Some(Value::Bool(false))) => {
                let known: Vec<&str> = properties
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                out.push((
                    field,
                    format!(
                        "unknown field `{key}`, expected one of {}",
                        known.join(", ")
                    ),
                ));
            }
            (None, Some(s)) if s.is_object() => check(v, s, root, &field, out),
            (None, _) => {}
        }
    }
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(required) {
            out.push((path.to_owned(), format!("missing field `{required}`")));
        }
    }
}

/// `anyOf` / `oneOf`: fine when one branch fits. Otherwise an enum of
/// constants says which values it takes; a union of shapes reports the
/// problems of the branch whose type fits the value.
fn check_branches(
    value: &Value,
    branches: &[Value],
    root: &Value,
    path: &str,
    out: &mut Vec<(String, String)>,
) {
    let mut per_branch = Vec::with_capacity(branches.len());
    for b in branches {
        let mut found = Vec::new();
        check(value, b, root, path, &mut found);
        if found.is_empty() {
            return;
        }
        per_branch.push(found);
    }
    let constants: Vec<String> = branches
        .iter()
        .filter_map(|b| resolve(b, root).get("const").map(shown))
        .collect();
    if constants.len() == branches.len() {
        let message = if value.is_string() {
            format!("unknown variant {}", shown(value))
        } else {
            format!("invalid type: {} {}", type_name(value), shown(value))
        };
        out.push((
            path.to_owned(),
            format!("{message}, expected one of {}", constants.join(", ")),
        ));
        return;
    }
    // The branch whose problems are deepest (its type fitted) explains best.
    let best = per_branch.into_iter().min_by_key(|found| {
        found
            .iter()
            .filter(|(_, m)| m.starts_with("invalid type"))
            .count()
    });
    out.extend(best.unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        super::super::json_schema()
    }

    fn paths(value: Value) -> Vec<String> {
        problems(&value, &schema())
            .into_iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect()
    }

    #[test]
    fn every_unknown_key_and_wrong_type_is_found_in_one_walk() {
        let found = paths(json!({
            "github": {"owner": "acme", "ownr": "x"},
            "repositories": ["api", {"name": "web", "aws": {"managedPolicies": []}}],
            "cluster": {"name": "c"},
            "aws": {"accountId": "111122223333", "mode": "kiam", "maxSessionDuration": "one hour"},
            "kubernetes": {"hooks": ["kubernetes"]},
            "extra": 1,
        }));
        let has = |prefix: &str| found.iter().any(|f| f.starts_with(prefix));
        assert!(has("github.ownr: unknown field `ownr`"), "{found:#?}");
        assert!(
            has("repositories[1].aws.managedPolicies: unknown field"),
            "{found:#?}"
        );
        assert!(
            has("aws.mode: unknown variant `kiam`, expected one of"),
            "{found:#?}"
        );
        assert!(
            has("aws.maxSessionDuration: invalid type: string"),
            "{found:#?}"
        );
        assert!(has("kubernetes.hooks: "), "{found:#?}");
        assert!(has("extra: unknown field `extra`"), "{found:#?}");
        assert_eq!(found.len(), 6, "{found:#?}");
    }

    #[test]
    fn a_well_formed_configuration_has_no_structural_problem() {
        let found = paths(json!({
            "github": {"owner": "acme"},
            "repositories": ["api", {"name": "web", "aws": {"tags": {"team": "web"}}}],
            "cluster": {"name": "c", "oidcIssuer": "https://x.example/id/1"},
            "aws": {"accountId": "111122223333", "mode": "irsa"},
        }));
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let found =
            paths(json!({"github": {}, "cluster": {"name": "c"}, "aws": {"accountId": "1"}}));
        assert!(
            found.iter().any(|f| f == "github: missing field `owner`"),
            "{found:#?}"
        );
    }
}
