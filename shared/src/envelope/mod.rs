//! The event envelope: CloudEvents 1.0 attribute names plus Ripple's extensions.
//!
//! Every event Ripple stores or sends travels in an [`Envelope`]. Unknown attributes are kept in
//! [`Envelope::extensions`] and written back unchanged, so an older consumer never drops what a
//! newer producer added. Typed payloads go in and out with [`Envelope::encode`] and
//! [`Envelope::decode`]; old schema versions are upcast on the way out by an [`Upcaster`].

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};
use uuid::Uuid;

#[cfg(test)]
mod cloudevents_tests;
mod names;
#[cfg(test)]
pub(crate) mod proptests;
mod upcast;

pub use names::{event_type_of, event_types};
pub use upcast::{NoUpcast, UpcastChain, Upcaster};

/// The CloudEvents version Ripple writes and accepts.
pub const SPEC_VERSION: &str = "1.0";
/// The content type of every `data` Ripple writes.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// An event as stored and sent: CloudEvents 1.0 attributes and Ripple's extensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Envelope {
    /// CloudEvents version, always `"1.0"`.
    pub specversion: String,
    /// Unique event id (a UUID v7 for events Ripple creates).
    pub id: String,
    /// Who produced the event, e.g. `ripple/orders-api`.
    pub source: String,
    /// Past-tense event type, e.g. `order.placed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The aggregate id the event belongs to.
    pub subject: String,
    /// When the event happened.
    pub time: DateTime<Utc>,
    /// Content type of `data`.
    #[serde(default = "default_content_type")]
    pub datacontenttype: String,
    /// The payload.
    #[serde(default)]
    pub data: Value,
    /// The aggregate type, e.g. `Order`.
    pub aggregatetype: String,
    /// The aggregate version this event creates (1 for the first event of a stream).
    pub sequence: u64,
    /// Version of the payload's schema, for upcasting.
    #[serde(default = "default_schema_version")]
    pub schemaversion: u32,
    /// Id shared by every event of one business flow (the first event's id).
    pub correlationid: String,
    /// Id of the event that caused this one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causationid: Option<String>,
    /// W3C trace context carried from producer to every consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Attributes this version does not know: kept and written back unchanged.
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

fn default_content_type() -> String {
    JSON_CONTENT_TYPE.to_owned()
}

fn default_schema_version() -> u32 {
    1
}

/// Why a text or payload is not a usable envelope.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The text is not JSON of the envelope's shape.
    #[error("not a CloudEvents envelope")]
    Malformed(#[source] serde_json::Error),
    /// The envelope parsed but breaks a rule of the contract.
    #[error("invalid envelope: {0}")]
    Invalid(String),
    /// `data` does not match the type asked for.
    #[error("payload of {event_type} (schema {schemaversion}) does not match the expected type")]
    Payload {
        /// The event's type.
        event_type: String,
        /// The event's schema version after upcasting.
        schemaversion: u32,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// The event's type is not one the caller handles.
    #[error("unknown event type {0}")]
    UnknownType(String),
}

/// Something a typed event can be turned into: its type name and its data.
///
/// Implemented for every `Serialize` enum written with
/// `#[serde(tag = "type", content = "data")]`, which maps exactly onto `type` and `data`.
fn split_tagged(value: Value) -> Result<(String, Value), String> {
    match value {
        Value::Object(mut map) => {
            let event_type = match map.remove("type") {
                Some(Value::String(t)) => t,
                _ => return Err("a typed event must serialise with a string `type`".into()),
            };
            Ok((event_type, map.remove("data").unwrap_or(Value::Null)))
        }
        _ => Err("a typed event must serialise to an object with `type` and `data`".into()),
    }
}

/// Where an event is written: its aggregate type, aggregate id and the version it creates, and
/// the schema versions its events are written at.
#[derive(Clone)]
pub struct StreamPosition {
    /// Aggregate type, e.g. `Order`.
    pub aggregate_type: String,
    /// Aggregate id, e.g. the order id.
    pub aggregate_id: String,
    /// The version this event creates.
    pub sequence: u64,
    /// Tells the schema version each event type is written at (its aggregate's upcaster).
    schemas: &'static dyn Upcaster,
}

impl StreamPosition {
    /// The position `sequence` in the stream of `aggregate_type` / `aggregate_id`, for events
    /// whose schema has only one version. An aggregate's own positions come from
    /// [`Loaded::next`](crate::Loaded::next) or [`StreamPosition::of`], which write each event at
    /// the version its [`Aggregate::upcaster`](crate::Aggregate::upcaster) reaches.
    pub fn new(aggregate_type: &str, aggregate_id: &str, sequence: u64) -> Self {
        StreamPosition {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            sequence,
            schemas: &NoUpcast,
        }
    }

    /// The position `sequence` in the stream of the aggregate `A` with id `aggregate_id`.
    pub fn of<A: crate::Aggregate>(aggregate_id: &str, sequence: u64) -> Self {
        StreamPosition {
            schemas: A::upcaster(),
            ..StreamPosition::new(A::TYPE, aggregate_id, sequence)
        }
    }

    /// The schema version an event of `event_type` is written at here.
    pub fn schemaversion_of(&self, event_type: &str) -> u32 {
        self.schemas.current_version(event_type)
    }
}

impl std::fmt::Debug for StreamPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamPosition")
            .field("aggregate_type", &self.aggregate_type)
            .field("aggregate_id", &self.aggregate_id)
            .field("sequence", &self.sequence)
            .finish_non_exhaustive()
    }
}

/// Two positions are equal when they name the same place in the same stream.
impl PartialEq for StreamPosition {
    fn eq(&self, other: &Self) -> bool {
        (&self.aggregate_type, &self.aggregate_id, self.sequence)
            == (&other.aggregate_type, &other.aggregate_id, other.sequence)
    }
}

impl Eq for StreamPosition {}

impl Envelope {
    /// A new root event (it starts its own correlation) from a typed payload.
    ///
    /// `event` must serialise as `{"type": .., "data": ..}`, i.e. an enum with
    /// `#[serde(tag = "type", content = "data")]`.
    pub fn encode<E: Serialize>(
        source: &str,
        at: StreamPosition,
        event: &E,
    ) -> Result<Self, EnvelopeError> {
        let value = serde_json::to_value(event).map_err(EnvelopeError::Malformed)?;
        let (event_type, data) = split_tagged(value).map_err(EnvelopeError::Invalid)?;
        let schemaversion = at.schemaversion_of(&event_type);
        let id = Uuid::now_v7().to_string();
        Ok(Envelope {
            specversion: SPEC_VERSION.to_owned(),
            correlationid: id.clone(),
            id,
            source: source.to_owned(),
            event_type,
            subject: at.aggregate_id,
            // Millisecond precision: what JavaScript and most CloudEvents tools keep.
            time: Utc::now().trunc_subsecs(3),
            datacontenttype: default_content_type(),
            data,
            aggregatetype: at.aggregate_type,
            sequence: at.sequence,
            schemaversion,
            causationid: None,
            traceparent: None,
            extensions: Map::new(),
        })
    }

    /// Marks this event as caused by `cause`: same correlation and trace, causation = its id.
    pub fn caused_by(mut self, cause: &Envelope) -> Self {
        self.correlationid = cause.correlationid.clone();
        self.causationid = Some(cause.id.clone());
        self.traceparent = cause.traceparent.clone();
        self
    }

    /// Sets the W3C `traceparent` carried to every consumer.
    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }

    /// The stream key `<AggregateType>#<id>` this event belongs to.
    pub fn stream_key(&self) -> String {
        stream_key(&self.aggregatetype, &self.subject)
    }

    /// Parses and checks an envelope from JSON text.
    pub fn from_json(text: &str) -> Result<Self, EnvelopeError> {
        let envelope: Envelope = serde_json::from_str(text).map_err(EnvelopeError::Malformed)?;
        envelope.validate()?;
        Ok(envelope)
    }

    /// The envelope as JSON text (unknown attributes included).
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings, numbers and JSON values cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Checks the rules serde cannot: spec version, non-empty ids and type, sequence from 1.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        if self.specversion != SPEC_VERSION {
            return Err(EnvelopeError::Invalid(format!(
                "specversion {:?} is not {SPEC_VERSION}",
                self.specversion
            )));
        }
        for (name, value) in [
            ("id", &self.id),
            ("type", &self.event_type),
            ("subject", &self.subject),
            ("source", &self.source),
            ("aggregatetype", &self.aggregatetype),
        ] {
            if value.trim().is_empty() {
                return Err(EnvelopeError::Invalid(format!("{name} is empty")));
            }
        }
        if self.sequence == 0 {
            return Err(EnvelopeError::Invalid("sequence starts at 1".into()));
        }
        Ok(())
    }

    /// The payload as a typed event, after upcasting old schema versions with `upcaster`.
    ///
    /// `E` is an enum with `#[serde(tag = "type", content = "data")]`; a type it does not
    /// know gives [`EnvelopeError::UnknownType`].
    pub fn decode_with<E: DeserializeOwned>(
        &self,
        upcaster: &dyn Upcaster,
    ) -> Result<E, EnvelopeError> {
        let (schemaversion, data) =
            upcaster.upcast(&self.event_type, self.schemaversion, self.data.clone())?;
        let mut tagged = Map::new();
        tagged.insert("type".into(), Value::String(self.event_type.clone()));
        tagged.insert("data".into(), data);
        serde_json::from_value(Value::Object(tagged)).map_err(|source| {
            // serde names the variant it did not know; one inside `data` is a payload error.
            let unknown_type = format!("unknown variant `{}`", self.event_type);
            if source.to_string().starts_with(&unknown_type) {
                EnvelopeError::UnknownType(self.event_type.clone())
            } else {
                EnvelopeError::Payload {
                    event_type: self.event_type.clone(),
                    schemaversion,
                    source,
                }
            }
        })
    }

    /// The payload as an event of the aggregate `A`, read through its
    /// [`Aggregate::upcaster`](crate::Aggregate::upcaster): what a consumer of `A`'s events
    /// calls, so that history written at an older schema version reads as today's.
    pub fn decode_for<A: crate::Aggregate>(&self) -> Result<A::Event, EnvelopeError> {
        self.decode_with(A::upcaster())
    }

    /// The payload as a typed event, with no upcasting: for events whose schema has only one
    /// version (an aggregate's events are read with [`Envelope::decode_for`]).
    pub fn decode<E: DeserializeOwned>(&self) -> Result<E, EnvelopeError> {
        self.decode_with(&NoUpcast)
    }
}

/// The stream key `<AggregateType>#<id>`.
pub fn stream_key(aggregate_type: &str, aggregate_id: &str) -> String {
    format!("{aggregate_type}#{aggregate_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum Test {
        #[serde(rename = "thing.happened")]
        Happened { n: u32 },
        #[serde(rename = "thing.coloured")]
        Coloured { colour: Colour },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Colour {
        Red,
    }

    fn sample() -> Envelope {
        Envelope::encode(
            "ripple/test",
            StreamPosition::new("Thing", "t-1", 1),
            &Test::Happened { n: 3 },
        )
        .unwrap()
    }

    #[test]
    fn encode_fills_the_cloudevents_attributes() {
        let e = sample();
        assert_eq!(e.specversion, "1.0");
        assert_eq!(e.event_type, "thing.happened");
        assert_eq!(e.subject, "t-1");
        assert_eq!(e.data, json!({"n": 3}));
        assert_eq!(e.correlationid, e.id, "a root event correlates to itself");
        assert_eq!(Uuid::parse_str(&e.id).unwrap().get_version_num(), 7);
        assert_eq!(e.stream_key(), "Thing#t-1");
    }

    #[test]
    fn unknown_attributes_survive_a_round_trip() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value["partnerext"] = json!({"deep": [1, 2]});
        let parsed = Envelope::from_json(&value.to_string()).unwrap();
        assert_eq!(parsed.extensions["partnerext"], json!({"deep": [1, 2]}));
        let again: Value = serde_json::from_str(&parsed.to_json()).unwrap();
        assert_eq!(again, value);
    }

    #[test]
    fn caused_by_carries_correlation_and_trace() {
        let cause = sample().with_traceparent(Some("00-abc-def-01".into()));
        let effect = sample().caused_by(&cause);
        assert_eq!(effect.correlationid, cause.correlationid);
        assert_eq!(effect.causationid.as_deref(), Some(cause.id.as_str()));
        assert_eq!(effect.traceparent, cause.traceparent);
    }

    #[test]
    fn decode_distinguishes_unknown_types_from_bad_payloads() {
        let mut e = sample();
        assert_eq!(e.decode::<Test>().unwrap(), Test::Happened { n: 3 });
        e.data = json!({"n": "three"});
        assert!(matches!(
            e.decode::<Test>(),
            Err(EnvelopeError::Payload { .. })
        ));
        e.event_type = "thing.vanished".into();
        assert!(matches!(
            e.decode::<Test>(),
            Err(EnvelopeError::UnknownType(t)) if t == "thing.vanished"
        ));
        // An unknown variant inside the data is the payload's fault, not the type's.
        e.event_type = "thing.coloured".into();
        e.data = json!({"colour": "Mauve"});
        assert!(matches!(
            e.decode::<Test>(),
            Err(EnvelopeError::Payload { .. })
        ));
    }

    #[test]
    fn from_json_rejects_what_breaks_the_contract() {
        assert!(matches!(
            Envelope::from_json("{not json"),
            Err(EnvelopeError::Malformed(_))
        ));
        let mut value = serde_json::to_value(sample()).unwrap();
        value["specversion"] = json!("0.3");
        assert!(matches!(
            Envelope::from_json(&value.to_string()),
            Err(EnvelopeError::Invalid(_))
        ));
        let mut value = serde_json::to_value(sample()).unwrap();
        value.as_object_mut().unwrap().remove("subject");
        assert!(matches!(
            Envelope::from_json(&value.to_string()),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    #[test]
    fn upcast_chain_walks_old_payloads_to_the_current_schema() {
        let chain = UpcastChain::new()
            .step("thing.happened", 1, |mut d| {
                d["n"] = d["count"].take();
                Ok(d)
            })
            .step("thing.happened", 2, Ok);
        let mut e = sample();
        e.data = json!({"count": 9});
        assert_eq!(
            e.decode_with::<Test>(&chain).unwrap(),
            Test::Happened { n: 9 }
        );
        let (version, _) = chain.upcast("thing.happened", 1, json!({})).unwrap();
        assert_eq!(version, 3);
    }

    /// A `Thing` whose `thing.happened` is at schema 2: v1 said `count`, v2 says `n`.
    #[derive(Default)]
    struct Versioned;

    impl crate::Aggregate for Versioned {
        const TYPE: &'static str = "Thing";
        type Event = Test;
        fn apply(&mut self, _: &Test) {}
        fn upcaster() -> &'static dyn Upcaster {
            static CHAIN: std::sync::LazyLock<UpcastChain> = std::sync::LazyLock::new(|| {
                UpcastChain::new().step("thing.happened", 1, |mut d| {
                    d["n"] = d["count"].take();
                    Ok(d)
                })
            });
            &*CHAIN
        }
    }

    #[test]
    fn an_aggregate_writes_each_event_at_the_version_its_upcaster_reaches_and_reads_older_ones() {
        let at = crate::Loaded::<Versioned>::new("t-1").next();
        assert_eq!(at, StreamPosition::new("Thing", "t-1", 1));
        let written = Envelope::encode("ripple/test", at, &Test::Happened { n: 3 }).unwrap();
        assert_eq!(written.schemaversion, 2);
        let coloured = Envelope::encode(
            "ripple/test",
            StreamPosition::of::<Versioned>("t-1", 2),
            &Test::Coloured {
                colour: Colour::Red,
            },
        )
        .unwrap();
        assert_eq!(coloured.schemaversion, 1, "a type with no step stays at 1");
        assert_eq!(
            sample().schemaversion,
            1,
            "a plain position writes version 1"
        );

        let mut old = sample();
        old.data = json!({"count": 9});
        assert_eq!(
            old.decode_for::<Versioned>().unwrap(),
            Test::Happened { n: 9 }
        );
        assert_eq!(
            written.decode_for::<Versioned>().unwrap(),
            Test::Happened { n: 3 },
            "an event at the current version is read as it is"
        );
        assert!(matches!(
            old.decode::<Test>(),
            Err(EnvelopeError::Payload {
                schemaversion: 1,
                ..
            })
        ));
    }
}
