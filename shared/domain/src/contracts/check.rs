//! An event checked against its contract: the committed schema of its type and version.

use serde_json::Value;

use super::{Contract, committed_for};

/// Why an event does not meet its contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The JSON has no string `type` or no unsigned `schemaversion`.
    #[error("not an envelope: {0}")]
    NotAnEnvelope(&'static str),
    /// No contract is committed for the event's type and version.
    #[error("no contract for {event_type} v{schemaversion}")]
    NoContract {
        /// The event's type.
        event_type: String,
        /// Its schema version.
        schemaversion: u32,
    },
    /// The contract itself is not a schema the validator takes.
    #[error("the contract of {event_type} v{schemaversion} is not a valid schema: {message}")]
    BadContract {
        /// The event's type.
        event_type: String,
        /// Its schema version.
        schemaversion: u32,
        /// What the validator said.
        message: String,
    },
    /// The event breaks its contract.
    #[error("{event_type} v{schemaversion} breaks its contract: {}", errors.join("; "))]
    Invalid {
        /// The event's type.
        event_type: String,
        /// Its schema version.
        schemaversion: u32,
        /// Each error with the JSON pointer of the value at fault.
        errors: Vec<String>,
    },
}

/// Checks `envelope`, as JSON, against the contract of its type and version among `contracts`
/// (an envelope without `schemaversion` is at version 1, as the kit reads it). Formats such as
/// `date-time` are checked too.
pub fn check(contracts: &[Contract], envelope: &Value) -> Result<(), Violation> {
    let event_type = envelope["type"]
        .as_str()
        .ok_or(Violation::NotAnEnvelope("no string `type`"))?;
    let schemaversion = envelope
        .get("schemaversion")
        .map_or(Some(1), Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or(Violation::NotAnEnvelope("`schemaversion` is not a version"))?;
    let contract = committed_for(contracts, event_type, schemaversion).ok_or_else(|| {
        Violation::NoContract {
            event_type: event_type.to_owned(),
            schemaversion,
        }
    })?;
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&contract.schema)
        .map_err(|e| Violation::BadContract {
            event_type: event_type.to_owned(),
            schemaversion,
            message: e.to_string(),
        })?;
    let errors: Vec<String> = validator
        .iter_errors(envelope)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(Violation::Invalid {
        event_type: event_type.to_owned(),
        schemaversion,
        errors,
    })
}
