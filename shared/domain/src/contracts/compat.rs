//! Whether a new schema of an event still serves the readers of the old one.
//!
//! Within one `(type, schemaversion)` two kinds of reader meet: today's code reading history
//! written under the old schema, and consumers still on the old code reading what today's
//! producers write. Both hold only if every field keeps its name, shape and obligation. So a
//! field removed, retyped, newly required or no longer required, or a closed set of values that
//! gains or loses one, breaks the version; a new optional field does not (older readers ignore
//! it, newer ones default it). Descriptions, titles and defaults are documentation.
//!
//! The comparison walks the two schemas as JSON, following each one's own `#/$defs/..`
//! references. A maintained crate was considered first: `json-schema-diff` asks whether the new
//! schema still *accepts* the old documents, for which a removed property is not breaking; the
//! question here is what readers may rely on.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

/// One change that readers of the old schema cannot absorb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The field, e.g. `data.lines[].sku` (`[]` is every item of an array).
    pub field: String,
    /// What changed.
    pub change: Change,
}

/// What changed about a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The field is gone.
    Removed,
    /// Its JSON type, format or constant is different.
    Retyped {
        /// The old shape, e.g. `integer (uint64)`.
        was: String,
        /// The new shape.
        now: String,
    },
    /// It must now be present, and history does not always have it.
    NewlyRequired,
    /// It may now be absent, and older readers count on it.
    NoLongerRequired,
    /// Its closed set of values changed.
    ValuesChanged {
        /// Values older readers do not know.
        added: Vec<String>,
        /// Values history may hold that the new schema refuses.
        removed: Vec<String>,
    },
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = &self.field;
        match &self.change {
            Change::Removed => write!(f, "field `{field}` was removed"),
            Change::Retyped { was, now } => {
                write!(f, "field `{field}` was retyped from {was} to {now}")
            }
            Change::NewlyRequired => write!(f, "field `{field}` is newly required"),
            Change::NoLongerRequired => write!(f, "field `{field}` is no longer required"),
            Change::ValuesChanged { added, removed } => {
                write!(f, "field `{field}` changed its values")?;
                if !added.is_empty() {
                    write!(f, ", added {}", added.join(", "))?;
                }
                if !removed.is_empty() {
                    write!(f, ", removed {}", removed.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

/// Every change from `old` to `new` (two root schemas) that readers of `old` cannot absorb.
pub fn breaking_changes(old: &Value, new: &Value) -> Vec<Break> {
    let mut walk = Walk {
        old_root: old,
        new_root: new,
        found: Vec::new(),
    };
    walk.node(old, new, "", 0);
    walk.found
}

/// Deeper than any event payload; stops a self-referring schema.
const MAX_DEPTH: usize = 32;

struct Walk<'a> {
    old_root: &'a Value,
    new_root: &'a Value,
    found: Vec<Break>,
}

impl<'a> Walk<'a> {
    fn node(&mut self, old: &'a Value, new: &'a Value, field: &str, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let (old, new) = (resolve(self.old_root, old), resolve(self.new_root, new));
        let (was, now) = (Shape::of(old), Shape::of(new));
        if was.kind != now.kind {
            self.report(
                field,
                Change::Retyped {
                    was: was.kind.to_string(),
                    now: now.kind.to_string(),
                },
            );
            return;
        }
        if was.values != now.values {
            let (before, after) = (
                was.values.unwrap_or_default(),
                now.values.unwrap_or_default(),
            );
            self.report(
                field,
                Change::ValuesChanged {
                    added: after.difference(&before).cloned().collect(),
                    removed: before.difference(&after).cloned().collect(),
                },
            );
        }
        self.object(old, new, field, depth);
        if let (Some(old_items), Some(new_items)) = (old.get("items"), new.get("items")) {
            self.node(old_items, new_items, &format!("{field}[]"), depth + 1);
        }
        self.alternatives(old, new, field, depth);
    }

    fn object(&mut self, old: &'a Value, new: &'a Value, field: &str, depth: usize) {
        let (old_required, new_required) = (required(old), required(new));
        let new_properties = new["properties"].as_object();
        for (name, old_property) in old["properties"].as_object().into_iter().flatten() {
            let path = join(field, name);
            match new_properties.and_then(|properties| properties.get(name)) {
                None => self.report(&path, Change::Removed),
                Some(new_property) => {
                    if old_required.contains(name) && !new_required.contains(name) {
                        self.report(&path, Change::NoLongerRequired);
                    }
                    self.node(old_property, new_property, &path, depth + 1);
                }
            }
        }
        for name in new_required.difference(&old_required) {
            self.report(&join(field, name), Change::NewlyRequired);
        }
    }

    /// `anyOf`/`oneOf` of the same length are compared in order (e.g. `Option<T>` as
    /// `[T, null]`); any other change to them is a different shape.
    fn alternatives(&mut self, old: &'a Value, new: &'a Value, field: &str, depth: usize) {
        for keyword in ["anyOf", "oneOf"] {
            let (Some(before), Some(after)) = (old[keyword].as_array(), new[keyword].as_array())
            else {
                continue;
            };
            if all_constants(before) && all_constants(after) {
                continue; // Compared as values above.
            }
            if before.len() != after.len() {
                self.report(
                    field,
                    Change::Retyped {
                        was: format!("{keyword} of {}", before.len()),
                        now: format!("{keyword} of {}", after.len()),
                    },
                );
                continue;
            }
            for (old_alt, new_alt) in before.iter().zip(after) {
                self.node(old_alt, new_alt, field, depth + 1);
            }
        }
    }

    fn report(&mut self, field: &str, change: Change) {
        let field = if field.is_empty() { "(root)" } else { field };
        self.found.push(Break {
            field: field.to_owned(),
            change,
        });
    }
}

/// What a node's values look like: its type, format and constant, and its closed set of values.
struct Shape {
    kind: Kind,
    values: Option<BTreeSet<String>>,
}

#[derive(PartialEq, Eq)]
struct Kind {
    types: BTreeSet<String>,
    format: Option<String>,
    constant: Option<String>,
    combinator: Option<&'static str>,
}

impl Shape {
    fn of(node: &Value) -> Shape {
        let mut types = types_of(node);
        let combinator = ["anyOf", "oneOf", "allOf"]
            .into_iter()
            .find(|k| node.get(k).is_some());
        let constants = combinator
            .and_then(|k| node[k].as_array())
            .filter(|alternatives| all_constants(alternatives));
        let values = match (node["enum"].as_array(), constants) {
            (Some(values), _) => Some(values.iter().map(Value::to_string).collect()),
            (None, Some(alternatives)) => {
                types.extend(alternatives.iter().flat_map(types_of));
                Some(
                    alternatives
                        .iter()
                        .map(|a| a["const"].to_string())
                        .collect(),
                )
            }
            _ => None,
        };
        Shape {
            kind: Kind {
                types,
                format: node["format"].as_str().map(String::from),
                constant: node.get("const").map(Value::to_string),
                // A closed set of values is one shape however it is spelled.
                combinator: combinator.filter(|_| values.is_none()),
            },
            values,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let types: Vec<&str> = self.types.iter().map(String::as_str).collect();
        match types.as_slice() {
            [] => write!(f, "{}", self.combinator.unwrap_or("any"))?,
            _ => write!(f, "{}", types.join(" or "))?,
        }
        if let Some(format) = &self.format {
            write!(f, " ({format})")?;
        }
        if let Some(constant) = &self.constant {
            write!(f, " = {constant}")?;
        }
        Ok(())
    }
}

fn types_of(node: &Value) -> BTreeSet<String> {
    match &node["type"] {
        Value::String(t) => BTreeSet::from([t.clone()]),
        Value::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => BTreeSet::new(),
    }
}

fn all_constants(alternatives: &[Value]) -> bool {
    !alternatives.is_empty() && alternatives.iter().all(|a| a.get("const").is_some())
}

fn required(node: &Value) -> BTreeSet<String> {
    node["required"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The node `node` stands for, following its `$ref`s into `root`.
fn resolve<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..MAX_DEPTH {
        let Some(target) = node["$ref"].as_str() else {
            break;
        };
        match target
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer))
        {
            Some(next) => node = next,
            None => break,
        }
    }
    node
}

fn join(field: &str, name: &str) -> String {
    if field.is_empty() {
        name.to_owned()
    } else {
        format!("{field}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A payload schema as schemars writes one: a `$ref` to a definition with a nested array.
    fn placed() -> Value {
        json!({
            "type": "object",
            "properties": {
                "type": {"type": "string", "const": "order.placed"},
                "data": {"$ref": "#/$defs/OrderPlaced"},
            },
            "required": ["type", "data"],
            "$defs": {
                "OrderPlaced": {
                    "type": "object",
                    "properties": {
                        "order_id": {"type": "string"},
                        "total_cents": {"type": "integer", "format": "uint64", "minimum": 0},
                        "lines": {"type": "array", "items": {"$ref": "#/$defs/OrderLine"}},
                        "reason": {"oneOf": [
                            {"type": "string", "const": "out_of_stock"},
                            {"type": "string", "const": "timed_out"},
                        ]},
                    },
                    "required": ["order_id", "total_cents", "lines"],
                },
                "OrderLine": {
                    "type": "object",
                    "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer"}},
                    "required": ["sku", "quantity"],
                },
            },
        })
    }

    fn changed(edit: impl FnOnce(&mut Value)) -> Vec<String> {
        let mut new = placed();
        edit(&mut new);
        breaking_changes(&placed(), &new)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn an_unchanged_schema_breaks_nothing() {
        assert!(breaking_changes(&placed(), &placed()).is_empty());
    }

    #[test]
    fn an_added_optional_field_is_compatible() {
        let found = changed(|s| {
            s["$defs"]["OrderLine"]["properties"]["gift_wrap"] = json!({"type": "boolean"});
            s["$defs"]["OrderPlaced"]["properties"]["note"] = json!({"type": ["string", "null"]});
        });
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn documentation_and_defaults_may_change() {
        let found = changed(|s| {
            s["$defs"]["OrderPlaced"]["description"] = json!("An order was accepted.");
            s["$defs"]["OrderPlaced"]["properties"]["order_id"]["description"] = json!("The id.");
            s["$defs"]["OrderPlaced"]["properties"]["order_id"]["default"] = json!("");
        });
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_removed_field_breaks_even_inside_an_array() {
        let found = changed(|s| {
            let line = &mut s["$defs"]["OrderLine"];
            line["properties"]
                .as_object_mut()
                .unwrap()
                .remove("quantity");
            line["required"] = json!(["sku"]);
        });
        assert_eq!(found, ["field `data.lines[].quantity` was removed"]);
    }

    #[test]
    fn a_retyped_field_breaks() {
        let found = changed(|s| {
            s["$defs"]["OrderPlaced"]["properties"]["total_cents"] = json!({"type": "string"});
        });
        assert_eq!(
            found,
            ["field `data.total_cents` was retyped from integer (uint64) to string"]
        );
    }

    #[test]
    fn a_narrower_or_wider_number_format_is_a_retype() {
        let found = changed(|s| {
            s["$defs"]["OrderPlaced"]["properties"]["total_cents"]["format"] = json!("uint32");
        });
        assert_eq!(found.len(), 1);
        assert!(
            found[0].contains("from integer (uint64) to integer (uint32)"),
            "{found:?}"
        );
    }

    #[test]
    fn a_field_that_becomes_nullable_is_a_retype() {
        let found = changed(|s| {
            s["$defs"]["OrderPlaced"]["properties"]["order_id"]["type"] = json!(["string", "null"]);
        });
        assert_eq!(
            found,
            ["field `data.order_id` was retyped from string to null or string"]
        );
    }

    #[test]
    fn a_new_required_field_breaks_whether_it_is_new_or_was_optional() {
        let found = changed(|s| {
            let placed = &mut s["$defs"]["OrderPlaced"];
            placed["properties"]["channel"] = json!({"type": "string"});
            placed["required"] = json!(["order_id", "total_cents", "lines", "channel", "reason"]);
        });
        assert_eq!(
            found,
            [
                "field `data.channel` is newly required",
                "field `data.reason` is newly required"
            ]
        );
    }

    #[test]
    fn a_field_no_longer_required_breaks_older_readers() {
        let found = changed(|s| {
            s["$defs"]["OrderPlaced"]["required"] = json!(["order_id", "lines"]);
        });
        assert_eq!(found, ["field `data.total_cents` is no longer required"]);
    }

    #[test]
    fn a_value_added_to_or_removed_from_a_closed_set_breaks() {
        let found = changed(|s| {
            s["$defs"]["OrderPlaced"]["properties"]["reason"]["oneOf"] = json!([
                {"type": "string", "const": "timed_out"},
                {"type": "string", "const": "fraud"},
            ]);
        });
        assert_eq!(
            found,
            [r#"field `data.reason` changed its values, added "fraud", removed "out_of_stock""#]
        );
    }

    #[test]
    fn reordered_values_and_enum_spelling_are_the_same_set() {
        let found = changed(|s| {
            s["$defs"]["OrderPlaced"]["properties"]["reason"] =
                json!({"type": "string", "enum": ["timed_out", "out_of_stock"]});
        });
        assert!(
            found.is_empty(),
            "`oneOf` of constants and `enum` say the same: {found:?}"
        );
        let reordered = changed(|s| {
            let alternatives = s["$defs"]["OrderPlaced"]["properties"]["reason"]["oneOf"]
                .as_array_mut()
                .unwrap();
            alternatives.reverse();
        });
        assert!(reordered.is_empty(), "{reordered:?}");
    }

    #[test]
    fn a_changed_constant_is_a_retype() {
        let found = changed(|s| s["properties"]["type"]["const"] = json!("order.accepted"));
        assert_eq!(
            found,
            [
                r#"field `type` was retyped from string = "order.placed" to string = "order.accepted""#
            ]
        );
    }

    #[test]
    fn a_reference_and_its_inline_definition_are_the_same_field() {
        let found = changed(|s| {
            let line = s["$defs"]["OrderLine"].clone();
            s["$defs"]["OrderPlaced"]["properties"]["lines"]["items"] = line;
            s["$defs"].as_object_mut().unwrap().remove("OrderLine");
        });
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn an_optional_payload_keeps_its_fields_compared() {
        let wrap = |s: &mut Value| {
            s["properties"]["data"] =
                json!({"anyOf": [{"$ref": "#/$defs/OrderPlaced"}, {"type": "null"}]});
        };
        let mut old = placed();
        wrap(&mut old);
        let mut new = placed();
        wrap(&mut new);
        new["$defs"]["OrderPlaced"]["properties"]["order_id"] = json!({"type": "integer"});
        let found: Vec<String> = breaking_changes(&old, &new)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            ["field `data.order_id` was retyped from string to integer"]
        );
    }
}
