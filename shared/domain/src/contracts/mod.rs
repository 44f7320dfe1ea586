//! Event contracts: the JSON Schema of every event type at each schema version (feature
//! `schemas`, on by default), generated from the event enums and committed in
//! `shared/domain/schemas/<type>/v<N>.json`.
//!
//! A contract is the whole envelope an event travels in (the kit's [`Envelope`]) with its `type`
//! and `schemaversion` fixed and its `data` the variant's payload, so one file validates a stored
//! item, an SNS message or an SQS body. The committed files are the baseline: a test fails when
//! they differ from what the types generate, and [`compat`] refuses a change to a committed
//! `(type, schemaversion)` that its readers could not read. Such a change is a new schema version
//! with an upcaster from the old one; the old file stays, since history keeps its events.
//! [`check`] validates an event against its committed contract.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ripple_kit::envelope::event_types;
use ripple_kit::{Aggregate, Envelope};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::catalog::Product;
use crate::inventory::{Reservation, Stock};
use crate::order::Order;
use crate::payment::Payment;

mod check;
pub mod compat;

pub use check::{Violation, check};
#[cfg(test)]
mod tests;

/// Where the committed contracts are: `<type>/v<N>.json` under it.
pub const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");

/// The JSON Schema of one event type at one schema version.
#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    /// The event type, e.g. `order.placed`.
    pub event_type: String,
    /// The version of its payload's schema.
    pub schemaversion: u32,
    /// The envelope's schema with this type, version and payload.
    pub schema: Value,
}

impl Contract {
    /// The contract's file under `dir`: `<type>/v<N>.json`.
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(&self.event_type)
            .join(format!("v{}.json", self.schemaversion))
    }

    /// The schema as committed: keys sorted, two-space indents, a final newline.
    pub fn to_file_text(&self) -> String {
        // Pretty-printing a JSON value cannot fail.
        let text = serde_json::to_string_pretty(&sorted(&self.schema)).unwrap_or_default();
        format!("{text}\n")
    }
}

/// Why the committed contracts cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// What was read.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A file is not JSON, or not named `<type>/v<N>.json`.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// The contract of every event type of the domain, at its current version, from the types.
///
/// A type's current version is the one its aggregate's upcaster reaches, the version
/// `Envelope::encode` writes it at ([`current_version`](ripple_kit::envelope::Upcaster::current_version)).
pub fn generated() -> Vec<Contract> {
    let envelope = root_schema::<Envelope>();
    let mut contracts = Vec::new();
    contracts.extend(of_aggregate::<Order>(&envelope));
    contracts.extend(of_aggregate::<Stock>(&envelope));
    contracts.extend(of_aggregate::<Reservation>(&envelope));
    contracts.extend(of_aggregate::<Payment>(&envelope));
    contracts.extend(of_aggregate::<Product>(&envelope));
    contracts
}

/// The contracts committed under `dir`, every version of every type, sorted by type and version.
pub fn committed(dir: &Path) -> Result<Vec<Contract>, ContractError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ContractError::Io { path, source }
    };
    let mut contracts = Vec::new();
    for type_dir in std::fs::read_dir(dir).map_err(io(dir))? {
        let type_dir = type_dir.map_err(io(dir))?.path();
        for file in std::fs::read_dir(&type_dir).map_err(io(&type_dir))? {
            let path = file.map_err(io(&type_dir))?.path();
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            contracts.push(parse_file(&path, &text)?);
        }
    }
    contracts
        .sort_by(|a, b| (&a.event_type, a.schemaversion).cmp(&(&b.event_type, b.schemaversion)));
    Ok(contracts)
}

/// The committed contract of `event_type` at `schemaversion`, if there is one.
pub fn committed_for<'a>(
    contracts: &'a [Contract],
    event_type: &str,
    schemaversion: u32,
) -> Option<&'a Contract> {
    contracts
        .iter()
        .find(|c| c.event_type == event_type && c.schemaversion == schemaversion)
}

/// Why `generated` cannot replace `committed` (the same type and version), as a message that
/// names the type, the version, each field and the way out; `None` when its readers are served.
pub fn incompatibility(committed: &Contract, generated: &Contract) -> Option<String> {
    let breaks = compat::breaking_changes(&committed.schema, &generated.schema);
    if breaks.is_empty() {
        return None;
    }
    let (event_type, version) = (&committed.event_type, committed.schemaversion);
    let fields: Vec<String> = breaks.iter().map(|b| format!("  - {b}")).collect();
    Some(format!(
        "{event_type} v{version} changed in a way its readers cannot absorb:\n{}\n\
         A change like this needs a new schemaversion (v{next}) of {event_type} plus an upcaster \
         from v{version} to v{next}; shared/domain/schemas/{event_type}/v{version}.json stays as committed, for \
         the history that holds it. Within a version, only optional fields may be added.",
        fields.join("\n"),
        next = version + 1,
    ))
}

fn parse_file(path: &Path, text: &str) -> Result<Contract, ContractError> {
    let invalid = |message: String| ContractError::Invalid {
        path: path.to_owned(),
        message,
    };
    let event_type = path
        .parent()
        .and_then(Path::file_name)
        .and_then(|name| name.to_str())
        .ok_or_else(|| invalid("not under a directory named for its event type".into()))?;
    let schemaversion = path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix('v')?.strip_suffix(".json")?.parse().ok())
        .ok_or_else(|| invalid("not named v<N>.json".into()))?;
    let schema = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    Ok(Contract {
        event_type: event_type.to_owned(),
        schemaversion,
        schema,
    })
}

fn root_schema<T: JsonSchema>() -> Value {
    // Pinned to 2020-12: schemars' default draft may change with its versions.
    SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

/// One contract per variant of the aggregate's adjacently tagged event enum.
fn of_aggregate<A>(envelope: &Value) -> Vec<Contract>
where
    A: Aggregate,
    A::Event: JsonSchema,
{
    let root = root_schema::<A::Event>();
    let variants = root["oneOf"].as_array().cloned().unwrap_or_default();
    let defs = root.get("$defs").cloned().unwrap_or_else(|| json!({}));
    event_types::<A::Event>()
        .iter()
        .filter_map(|event_type| {
            let variant = variants
                .iter()
                .find(|v| v["properties"]["type"]["const"] == **event_type)?;
            let version = A::upcaster().current_version(event_type);
            Some(Contract {
                event_type: (*event_type).to_owned(),
                schemaversion: version,
                schema: contract_schema(envelope, &defs, (event_type, version), variant),
            })
        })
        .collect()
}

/// The envelope's schema narrowed to one variant: its type, version and payload.
fn contract_schema(
    envelope: &Value,
    defs: &Value,
    (event_type, version): (&str, u32),
    variant: &Value,
) -> Value {
    let mut schema = envelope.clone();
    let described = |schema: &Value, field: &str, mut narrowed: Value| {
        if let Some(description) = schema["properties"][field].get("description") {
            narrowed["description"] = description.clone();
        }
        narrowed
    };
    let narrowed_type = described(
        &schema,
        "type",
        json!({"type": "string", "const": event_type}),
    );
    let narrowed_version = described(
        &schema,
        "schemaversion",
        json!({"type": "integer", "const": version}),
    );
    let data = described(&schema, "data", variant["properties"]["data"].clone());
    schema["title"] = json!(format!("{event_type} v{version}"));
    match variant.get("description") {
        Some(description) => schema["description"] = description.clone(),
        None => _ = schema.as_object_mut().map(|s| s.remove("description")),
    }
    schema["properties"]["type"] = narrowed_type;
    schema["properties"]["schemaversion"] = narrowed_version;
    schema["properties"]["data"] = data;
    // A payload is what a reader decodes: an event without one is not this event.
    if let Some(required) = schema["required"].as_array_mut()
        && !required.contains(&json!("data"))
    {
        required.push(json!("data"));
    }
    let mut all_defs = envelope.get("$defs").cloned().unwrap_or_else(|| json!({}));
    if let (Some(all), Some(more)) = (all_defs.as_object_mut(), defs.as_object()) {
        all.extend(more.clone());
    }
    schema["$defs"] = Value::Object(reachable_defs(&schema, &all_defs));
    if schema["$defs"].as_object().is_some_and(Map::is_empty) {
        schema.as_object_mut().map(|s| s.remove("$defs"));
    }
    schema
}

/// The definitions `schema` refers to, directly or through each other.
fn reachable_defs(schema: &Value, defs: &Value) -> Map<String, Value> {
    let mut found = BTreeMap::new();
    let mut pending = refs_in(schema);
    while let Some(name) = pending.pop() {
        if found.contains_key(&name) {
            continue;
        }
        if let Some(def) = defs.get(&name) {
            pending.extend(refs_in(def));
            found.insert(name, def.clone());
        }
    }
    found.into_iter().collect()
}

/// Names of the `#/$defs/<name>` references anywhere in `value`.
fn refs_in(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(key, v)| match (key.as_str(), v.as_str()) {
                ("$ref", Some(target)) => target
                    .strip_prefix("#/$defs/")
                    .map(|name| vec![name.to_owned()])
                    .unwrap_or_default(),
                _ => refs_in(v),
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(refs_in).collect(),
        _ => Vec::new(),
    }
}

/// `value` with every object's keys in order, whichever map serde_json was built with.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let ordered: BTreeMap<&String, Value> =
                map.iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}
