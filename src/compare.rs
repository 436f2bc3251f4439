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
/// The canonical text is streamed into the digest, never built.
pub fn desired_hash(desired: &Value) -> String {
    let mut digest = DigestWriter(Sha256::new());
    // Writing into a digest cannot fail.
    let _ = write_canonical(&mut digest, desired, Place::Top);
    digest
        .0
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
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

/// Where a value sits, as far as the hash annotation is concerned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Top,
    Metadata,
    Annotations,
    Elsewhere,
}

/// Feeds an [`std::io::Write`] into a SHA-256 digest.
struct DigestWriter(Sha256);

impl std::io::Write for DigestWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `v` as JSON with object keys sorted (so that equal values hash
/// equally), leaving out `metadata.annotations` hash annotation.
fn write_canonical(out: &mut impl std::io::Write, v: &Value, place: Place) -> std::io::Result<()> {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.write_all(b"{")?;
            let mut first = true;
            for key in keys {
                if place == Place::Annotations && key == HASH_ANNOTATION {
                    continue;
                }
                if !first {
                    out.write_all(b",")?;
                }
                first = false;
                serde_json::to_writer(&mut *out, key)?;
                out.write_all(b":")?;
                let inner = match (place, key.as_str()) {
                    (Place::Top, "metadata") => Place::Metadata,
                    (Place::Metadata, "annotations") => Place::Annotations,
                    _ => Place::Elsewhere,
                };
                write_canonical(out, &o[key.as_str()], inner)?;
            }
            out.write_all(b"}")
        }
        Value::Array(a) => {
            out.write_all(b"[")?;
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write_canonical(out, item, Place::Elsewhere)?;
            }
            out.write_all(b"]")
        }
        scalar => serde_json::to_writer(&mut *out, scalar).map_err(std::io::Error::from),
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
    fn the_hash_of_an_object_is_the_same_as_every_earlier_release_wrote() {
        // Live objects carry the hash of the release that applied them; a
        // different value for the same object would rewrite every object of
        // every installation once. Literals from the text-building hash this
        // streaming one replaced.
        let v = json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "x\"y", "namespace": "ns", "labels": {"b": "2", "a": "1"},
                "annotations": {HASH_ANNOTATION: "old", "z": "é\n"}},
            "data": {"k": "v"}, "list": [1, 2.5, true, null, {"y": [], "x": {}}]});
        assert_eq!(desired_hash(&v), "7630a51838fe5889");
        let only_the_hash = json!({"metadata": {"annotations": {HASH_ANNOTATION: "old"}}});
        assert_eq!(desired_hash(&only_the_hash), "5b17df53723e93ba");
        // The annotation counts anywhere but in the object's own annotations.
        let elsewhere = json!({"data": {HASH_ANNOTATION: "old"}});
        assert_ne!(desired_hash(&elsewhere), desired_hash(&json!({"data": {}})));
    }

    #[test]
    fn arrays_must_match_element_by_element() {
        assert!(subset(&json!([{"a": 1}]), &json!([{"a": 1, "b": 2}])));
        assert!(!subset(&json!([{"a": 1}]), &json!([{"a": 1}, {"a": 2}])));
    }
}
