//! Record keys and payload hashes: sha256 of canonical JSON, so the same value always hashes the
//! same whatever order its fields were built or parsed in.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// JSON text with object keys sorted at every level: the same value always gives the same text,
/// whatever order its fields were built or parsed in.
pub(crate) fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorted here rather than relying on serde_json's map order, which a crate elsewhere
            // in the build can switch to insertion order with the `preserve_order` feature.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (name, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(name.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// sha256 hex of the canonical JSON of `value`.
pub(crate) fn hash_json(value: &Value) -> String {
    hex::encode(Sha256::digest(canonical_json(value).as_bytes()))
}

/// The record key for `key_material` under the caller-chosen `name`: `<name>#<sha256 hex>`.
pub(crate) fn idempotency_key(name: &str, key_material: &Value) -> String {
    format!("{name}#{}", hash_json(key_material))
}

/// True when the key material carries nothing to tell two requests apart.
pub(crate) fn is_missing_key(key_material: &Value) -> bool {
    match key_material {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.iter().all(Value::is_null),
        Value::Object(map) => map.values().all(Value::is_null),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"y": [1, {"d": 2, "c": 3}], "x": "é\"q"}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":"é\"q","y":[1,{"c":3,"d":2}]},"b":1}"#
        );
        let reordered: Value =
            serde_json::from_str(r#"{"a":{"y":[1,{"c":3,"d":2}],"x":"é\"q"},"b":1}"#).unwrap();
        assert_eq!(hash_json(&a), hash_json(&reordered));
    }

    #[test]
    fn keys_are_the_name_and_a_sha256_of_the_key_material() {
        let key = idempotency_key("notifications.confirmed", &json!({"order": "o-1"}));
        let (name, hash) = key.split_once('#').unwrap();
        assert_eq!(name, "notifications.confirmed");
        assert_eq!(hash.len(), 64);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(
            key,
            idempotency_key("notifications.confirmed", &json!({"order": "o-2"}))
        );
        // Known vector: sha256 of the text `"o-1"`.
        assert_eq!(
            hash_json(&json!("o-1")),
            hex::encode(Sha256::digest(br#""o-1""#))
        );
    }
}
