//! Lambda event filtering (`FilterCriteria`): which records of a batch reach the function.
//!
//! A record passes if any pattern matches it. A pattern is an object whose keys select fields of
//! the record (nested objects select nested fields) and whose leaves are lists of rules: a literal
//! equals the value (or one element of an array value); `{"prefix"}`, `{"suffix"}`,
//! `{"equals-ignore-case"}`, `{"exists"}`, `{"anything-but"}` and `{"numeric"}` compare as in
//! EventBridge patterns. SQS records are matched with their `body` parsed when it is JSON, as
//! Lambda does.

use serde_json::Value;

/// Whether `record` passes `filters` (no filters: everything passes).
pub fn passes(filters: &[Value], record: &Value) -> bool {
    filters.is_empty() || filters.iter().any(|pattern| matches(pattern, record))
}

/// Whether one pattern matches a record.
pub fn matches(pattern: &Value, record: &Value) -> bool {
    let Value::Object(fields) = pattern else {
        return false;
    };
    fields.iter().all(|(key, rule)| {
        let value = record.get(key);
        match rule {
            Value::Object(_) => value.is_some_and(|v| matches(rule, v)),
            Value::Array(rules) => rules.iter().any(|r| rule_matches(r, value)),
            // A bare literal is not valid pattern syntax; treat it as a one-element list.
            literal => rule_matches(literal, value),
        }
    })
}

fn rule_matches(rule: &Value, value: Option<&Value>) -> bool {
    match rule {
        Value::Object(op) => {
            if let Some(exists) = op.get("exists").and_then(Value::as_bool) {
                return value.is_some() == exists;
            }
            let Some(value) = value else {
                return false;
            };
            candidates(value).any(|v| operator_matches(op, v))
        }
        Value::Null => value.is_some_and(Value::is_null),
        literal => value.is_some_and(|v| candidates(v).any(|v| equal(literal, v))),
    }
}

/// The values a rule is tested against: the value, or each element of an array value.
fn candidates(value: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match value {
        Value::Array(items) => Box::new(items.iter()),
        other => Box::new(std::iter::once(other)),
    }
}

fn equal(literal: &Value, value: &Value) -> bool {
    match (literal, value) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

fn operator_matches(op: &serde_json::Map<String, Value>, value: &Value) -> bool {
    let text = value.as_str();
    if let Some(prefix) = op.get("prefix").and_then(Value::as_str) {
        return text.is_some_and(|t| t.starts_with(prefix));
    }
    if let Some(suffix) = op.get("suffix").and_then(Value::as_str) {
        return text.is_some_and(|t| t.ends_with(suffix));
    }
    if let Some(other) = op.get("equals-ignore-case").and_then(Value::as_str) {
        return text.is_some_and(|t| t.eq_ignore_ascii_case(other));
    }
    if let Some(excluded) = op.get("anything-but") {
        return match excluded {
            Value::Array(items) => !items.iter().any(|i| equal(i, value)),
            Value::Object(inner) => !operator_matches(inner, value),
            literal => !equal(literal, value),
        };
    }
    if let Some(Value::Array(conditions)) = op.get("numeric") {
        let Some(n) = value.as_f64() else {
            return false;
        };
        return conditions.chunks(2).all(|pair| match pair {
            [Value::String(cmp), bound] => bound.as_f64().is_some_and(|b| match cmp.as_str() {
                "=" => n == b,
                "<" => n < b,
                "<=" => n <= b,
                ">" => n > b,
                ">=" => n >= b,
                _ => false,
            }),
            _ => false,
        });
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stream_record(kind: &str, event_name: &str) -> Value {
        json!({
            "eventName": event_name,
            "dynamodb": {"NewImage": {"kind": {"S": kind}, "sk": {"N": "1"}}}
        })
    }

    #[test]
    fn the_outbox_filter_passes_inserted_events_only() {
        let pattern: Value = serde_json::from_str(
            r#"{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"kind": {"S": ["event"]}}}}"#,
        )
        .unwrap();
        let filters = [pattern];
        assert!(passes(&filters, &stream_record("event", "INSERT")));
        assert!(!passes(&filters, &stream_record("dedupe", "INSERT")));
        assert!(!passes(&filters, &stream_record("event", "REMOVE")));
        assert!(!passes(
            &filters,
            &json!({"eventName": "INSERT", "dynamodb": {}})
        ));
    }

    #[test]
    fn no_filters_pass_everything_and_any_pattern_suffices() {
        assert!(passes(&[], &json!({"x": 1})));
        let filters = [json!({"a": ["x"]}), json!({"b": ["y"]})];
        assert!(passes(&filters, &json!({"b": "y"})));
        assert!(!passes(&filters, &json!({"a": "y"})));
    }

    #[test]
    fn operators() {
        let record = json!({"type": "order.placed", "n": 5, "tags": ["a", "b"], "nothing": null});
        let cases = [
            (json!({"type": [{"prefix": "order."}]}), true),
            (json!({"type": [{"suffix": ".placed"}]}), true),
            (
                json!({"type": [{"equals-ignore-case": "ORDER.PLACED"}]}),
                true,
            ),
            (json!({"type": [{"anything-but": ["order.placed"]}]}), false),
            (
                json!({"type": [{"anything-but": {"prefix": "stock."}}]}),
                true,
            ),
            (json!({"n": [{"numeric": [">", 1, "<=", 5]}]}), true),
            (json!({"n": [{"numeric": ["<", 5]}]}), false),
            (json!({"n": [5]}), true),
            (json!({"tags": ["b"]}), true),
            (json!({"missing": [{"exists": false}]}), true),
            (json!({"type": [{"exists": true}]}), true),
            (json!({"nothing": [null]}), true),
            (json!({"missing": [null]}), false),
        ];
        for (pattern, expected) in cases {
            assert_eq!(matches(&pattern, &record), expected, "{pattern}");
        }
    }
}
