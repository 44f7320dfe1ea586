//! Generated inputs for the envelope: any text or JSON is an envelope or a typed error, never a
//! panic; an envelope with one attribute broken is refused; every envelope written reads back as
//! itself, attributes this version does not know included.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;

/// Any JSON value, nested a few levels (finite numbers only: JSON has no others).
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid envelope: every attribute drawn, extensions named so they cannot shadow one.
pub(crate) fn envelope() -> impl Strategy<Value = Envelope> {
    let ids = "[A-Za-z0-9][A-Za-z0-9._-]{0,20}";
    (
        (
            ids,
            "[a-z]{1,8}/[a-z-]{1,12}",
            "[a-z]{1,8}\\.[a-z]{1,10}",
            ids,
        ),
        (
            0_i64..4_000_000_000_000,
            json_value(),
            "[A-Z][A-Za-z]{0,10}",
            1_u64..=u64::MAX,
        ),
        (
            1_u32..5,
            ids,
            proptest::option::of(ids),
            proptest::option::of("00-[0-9a-f]{32}-[0-9a-f]{16}-01"),
        ),
        prop::collection::btree_map("x[a-z0-9]{1,10}", json_value(), 0..3),
    )
        .prop_map(
            |(
                (id, source, event_type, subject),
                (millis, data, aggregate, sequence),
                (schema, correlation, causation, traceparent),
                extensions,
            )| Envelope {
                specversion: SPEC_VERSION.to_owned(),
                id,
                source,
                event_type,
                subject,
                time: DateTime::from_timestamp_millis(millis).unwrap_or_default(),
                datacontenttype: JSON_CONTENT_TYPE.to_owned(),
                data,
                aggregatetype: aggregate,
                sequence,
                schemaversion: schema,
                correlationid: correlation,
                causationid: causation,
                traceparent,
                extensions: extensions.into_iter().collect(),
            },
        )
}

/// An attribute of the contract and a value that breaks it.
fn broken_attribute() -> impl Strategy<Value = (&'static str, Value)> {
    let not_a_string = prop_oneof![
        Just(Value::Null),
        Just(json!(7)),
        Just(json!([])),
        Just(json!({}))
    ];
    let blank = prop_oneof![Just(json!("")), Just(json!("   "))];
    prop_oneof![
        prop::sample::select(
            &[
                "id",
                "type",
                "subject",
                "source",
                "aggregatetype",
                "correlationid"
            ][..]
        )
        .prop_flat_map(move |name| (Just(name), prop_oneof![not_a_string.clone(), blank.clone()]))
        .prop_filter("correlationid may be blank", |(name, value)| {
            *name != "correlationid" || !value.is_string()
        }),
        Just(("sequence", json!(0))),
        Just(("sequence", json!(-1))),
        Just(("sequence", json!("1"))),
        Just(("specversion", json!("0.3"))),
        Just(("time", json!("yesterday"))),
        Just(("schemaversion", json!(-2))),
    ]
}

fn refused(text: &str) -> Result<(), TestCaseError> {
    match Envelope::from_json(text) {
        Err(EnvelopeError::Malformed(_) | EnvelopeError::Invalid(_)) => Ok(()),
        Err(other) => Err(TestCaseError::fail(format!("unexpected error {other}"))),
        Ok(envelope) => Err(TestCaseError::fail(format!("accepted {envelope:?}"))),
    }
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "data")]
enum Thing {
    #[serde(rename = "thing.counted")]
    Counted { n: u32 },
    #[serde(rename = "thing.named")]
    Named(String),
}

proptest! {
    #[test]
    fn any_text_is_an_envelope_or_a_typed_error(text in any::<String>()) {
        if let Ok(envelope) = Envelope::from_json(&text) {
            prop_assert!(envelope.validate().is_ok());
        } else {
            refused(&text)?;
        }
    }

    #[test]
    fn any_json_is_an_envelope_or_a_typed_error(value in json_value()) {
        if Envelope::from_json(&value.to_string()).is_err() {
            refused(&value.to_string())?;
        }
    }

    #[test]
    fn every_envelope_written_reads_back_as_itself(envelope in envelope()) {
        let text = envelope.to_json();
        prop_assert_eq!(Envelope::from_json(&text).unwrap(), envelope);
    }

    #[test]
    fn an_envelope_with_one_attribute_broken_is_refused(
        envelope in envelope(),
        (name, value) in broken_attribute(),
    ) {
        let mut fields: Map<String, Value> = match serde_json::to_value(&envelope) {
            Ok(Value::Object(fields)) => fields,
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        fields.insert(name.to_owned(), value);
        refused(&Value::Object(fields).to_string())?;
    }

    #[test]
    fn an_envelope_missing_a_required_attribute_is_malformed(
        envelope in envelope(),
        name in prop::sample::select(&["specversion", "id", "source", "type", "subject", "time", "aggregatetype", "sequence", "correlationid"][..]),
    ) {
        let mut value = serde_json::to_value(&envelope).unwrap();
        value.as_object_mut().unwrap().remove(name);
        prop_assert!(matches!(Envelope::from_json(&value.to_string()), Err(EnvelopeError::Malformed(_))));
    }

    #[test]
    fn any_payload_decodes_to_its_event_or_a_typed_error(
        mut envelope in envelope(),
        event_type in prop_oneof![Just("thing.counted".to_owned()), Just("thing.named".to_owned()), "[a-z.]{1,12}"],
        data in json_value(),
    ) {
        envelope.event_type = event_type;
        envelope.data = data;
        match envelope.decode::<Thing>() {
            Ok(thing) => prop_assert_eq!(
                event_type_of(&thing),
                Some(envelope.event_type.as_str())
            ),
            Err(EnvelopeError::UnknownType(t)) => {
                prop_assert_eq!(&t, &envelope.event_type);
                prop_assert!(!event_types::<Thing>().contains(&t.as_str()));
            }
            Err(EnvelopeError::Payload { event_type, .. }) => prop_assert_eq!(event_type, envelope.event_type),
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
    }
}
