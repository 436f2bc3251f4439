//! Desired versus live: whether a planned object needs a write, and a
//! readable diff when it does. Pure: JSON values in, decisions and text out.
//!
//! A live object is unchanged when it carries the hash of the planned object
//! (written by the last apply, so a field the plan dropped is noticed) and
//! every planned field still has its planned value (so a field someone else
//! changed by hand is noticed too).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Annotation holding the hash of the object as last applied.
pub const HASH_ANNOTATION: &str = "runner-identity.dev/applied-hash";

/// The hash of a desired object (its canonical JSON, hash annotation excluded).
pub fn desired_hash(desired: &Value) -> String {
    let mut v = desired.clone();
    if let Some(a) = v
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(HASH_ANNOTATION);
    }
    let canonical = canonical(&v);
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Sets the hash annotation on a desired object.
pub fn with_hash(mut desired: Value) -> Value {
    let hash = desired_hash(&desired);
    if let Some(meta) = desired.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(HASH_ANNOTATION.into(), Value::String(hash));
        }
    }
    desired
}

/// Whether `live` already is what `desired` (with its hash annotation) asks for.
pub fn unchanged(desired: &Value, live: &Value) -> bool {
    let want = desired.pointer(&format!(
        "/metadata/annotations/{}",
        escape(HASH_ANNOTATION)
    ));
    let have = live.pointer(&format!(
        "/metadata/annotations/{}",
        escape(HASH_ANNOTATION)
    ));
    want.is_some() && want == have && subset(desired, live)
}

/// Every field of `want` has the same value in `have`; objects may carry more
/// keys in `have` (server defaults), arrays must match element by element.
pub fn subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w.iter().all(|(k, wv)| {
            h.get(k).is_some_and(|hv| subset(wv, hv))
                || is_empty(wv) && h.get(k).is_none_or(is_empty)
        }),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| subset(a, b))
        }
        (w, h) => w == h,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// `live` reduced to the keys `desired` has, so the two can be compared as text.
pub fn project(desired: &Value, live: &Value) -> Value {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => Value::Object(
            d.iter()
                .filter_map(|(k, dv)| l.get(k).map(|lv| (k.clone(), project(dv, lv))))
                .collect(),
        ),
        (Value::Array(d), Value::Array(l)) => Value::Array(
            l.iter()
                .enumerate()
                .map(|(i, lv)| d.get(i).map_or_else(|| lv.clone(), |dv| project(dv, lv)))
                .collect(),
        ),
        (_, l) => l.clone(),
    }
}

/// A unified diff (live → desired) of the fields runner-identity manages,
/// without the hash annotation and with no secret data.
pub fn diff_text(desired: &Value, live: Option<&Value>) -> String {
    let clean = |v: &Value| {
        let mut v = crate::plan::redacted(v.clone());
        if let Some(a) = v
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            a.remove(HASH_ANNOTATION);
        }
        serde_yaml::to_string(&v).unwrap_or_default()
    };
    let new = clean(desired);
    let old = live
        .map(|l| clean(&project(desired, l)))
        .unwrap_or_default();
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(2)
        .header("live", "planned")
        .to_string()
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// JSON with object keys sorted, so that equal values hash equally.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let body: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        Value::String((*k).clone()),
                        canonical(&o[k.as_str()])
                    )
                })
                .collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sa(labels: Value) -> Value {
        with_hash(json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "gha-job", "namespace": "gha-api", "labels": labels}}))
    }

    #[test]
    fn live_with_server_fields_is_unchanged() {
        let desired = sa(json!({"a": "1"}));
        let mut live = desired.clone();
        live["metadata"]["uid"] = json!("u");
        live["metadata"]["labels"]["other"] = json!("x");
        live["secrets"] = json!([{"name": "tok"}]);
        assert!(unchanged(&desired, &live));
    }

    #[test]
    fn a_hand_edit_is_noticed() {
        let desired = sa(json!({"a": "1"}));
        let mut live = desired.clone();
        live["metadata"]["labels"]["a"] = json!("2");
        assert!(!unchanged(&desired, &live));
        assert!(diff_text(&desired, Some(&live)).contains("-    a: '2'"));
    }

    #[test]
    fn a_field_dropped_from_the_plan_is_noticed_through_the_hash() {
        let old = sa(json!({"a": "1", "b": "2"}));
        let new = sa(json!({"a": "1"}));
        assert!(
            subset(&new["metadata"]["labels"], &old["metadata"]["labels"]),
            "the live object still has every planned label"
        );
        assert!(!unchanged(&new, &old), "but the hash differs");
    }

    #[test]
    fn hash_ignores_key_order_and_the_hash_annotation() {
        let a = json!({"b": 1, "a": {"y": 2, "x": 3}});
        let b = json!({"a": {"x": 3, "y": 2}, "b": 1});
        assert_eq!(desired_hash(&a), desired_hash(&b));
        let hashed = with_hash(json!({"metadata": {"name": "x"}}));
        assert_eq!(
            desired_hash(&hashed),
            desired_hash(&json!({"metadata": {"name": "x", "annotations": {}}}))
        );
    }

    #[test]
    fn arrays_must_match_element_by_element() {
        assert!(subset(&json!([{"a": 1}]), &json!([{"a": 1, "b": 2}])));
        assert!(!subset(&json!([{"a": 1}]), &json!([{"a": 1}, {"a": 2}])));
    }
}
