//! Upcasting: old schema versions of a payload turned into the current one on every read.
//!
//! Stored history is never rewritten. A reader decodes through an [`Upcaster`]; an
//! [`UpcastChain`] walks a payload one version at a time (`1 → 2 → 3`), so adding a version adds
//! one step and never touches the older ones.

use serde_json::Value;

use super::EnvelopeError;

/// Turns an old payload into the current schema before it is decoded.
///
/// Stored history is never rewritten: upcasting happens on every read.
pub trait Upcaster: Send + Sync {
    /// Returns the schema version reached and the upcast data.
    fn upcast(
        &self,
        event_type: &str,
        schemaversion: u32,
        data: Value,
    ) -> Result<(u32, Value), EnvelopeError>;

    /// The schema version `event_type` is written at today: the version its upcasting reaches.
    fn current_version(&self, event_type: &str) -> u32 {
        let _ = event_type;
        1
    }
}

/// The upcaster for payloads that have only ever had one schema.
pub struct NoUpcast;

impl Upcaster for NoUpcast {
    fn upcast(
        &self,
        _event_type: &str,
        schemaversion: u32,
        data: Value,
    ) -> Result<(u32, Value), EnvelopeError> {
        Ok((schemaversion, data))
    }
}

/// An upcaster made of steps: each turns one `(type, version)` into the next version.
#[derive(Default)]
pub struct UpcastChain {
    steps: Vec<UpcastStep>,
}

type UpcastFn = Box<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;

struct UpcastStep {
    event_type: String,
    from_version: u32,
    step: UpcastFn,
}

impl UpcastChain {
    /// An empty chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the step that turns `event_type` at `from_version` into `from_version + 1`.
    pub fn step(
        mut self,
        event_type: &str,
        from_version: u32,
        step: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.steps.push(UpcastStep {
            event_type: event_type.to_owned(),
            from_version,
            step: Box::new(step),
        });
        self
    }
}

impl Upcaster for UpcastChain {
    fn upcast(
        &self,
        event_type: &str,
        mut schemaversion: u32,
        mut data: Value,
    ) -> Result<(u32, Value), EnvelopeError> {
        while let Some(step) = self
            .steps
            .iter()
            .find(|s| s.event_type == event_type && s.from_version == schemaversion)
        {
            data = (step.step)(data).map_err(|reason| {
                EnvelopeError::Invalid(format!(
                    "upcasting {event_type} from schema {schemaversion} failed: {reason}"
                ))
            })?;
            schemaversion += 1;
        }
        Ok((schemaversion, data))
    }

    fn current_version(&self, event_type: &str) -> u32 {
        self.steps
            .iter()
            .filter(|s| s.event_type == event_type)
            .map(|s| s.from_version + 1)
            .max()
            .unwrap_or(1)
    }
}
