//! Interop with the CloudEvents SDK: an envelope is a CloudEvent, and a CloudEvent with Ripple's
//! extensions is an envelope.

use chrono::{TimeZone, Utc};
use cloudevents::event::ExtensionValue;
use cloudevents::{AttributesReader, Data, Event, EventBuilder, EventBuilderV10};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::*;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum Parcel {
    #[serde(rename = "parcel.shipped")]
    Shipped {
        parcel_id: String,
        weight_grams: u32,
    },
}

fn shipped() -> Envelope {
    let cause = Envelope::encode(
        "ripple/orders",
        StreamPosition::new("Parcel", "p-1", 1),
        &Parcel::Shipped {
            parcel_id: "p-1".into(),
            weight_grams: 1,
        },
    )
    .unwrap();
    Envelope::encode(
        "ripple/shipping",
        StreamPosition::new("Parcel", "p-1", 2),
        &Parcel::Shipped {
            parcel_id: "p-1".into(),
            weight_grams: 1200,
        },
    )
    .unwrap()
    .caused_by(&cause)
    .with_traceparent(Some(
        "00-6b03f280a3ce929d0e0e47364bf92f35-00f067aa0ba902b7-01".into(),
    ))
}

fn text(event: &Event, name: &str) -> Option<String> {
    match event.extension(name)? {
        ExtensionValue::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[test]
fn a_ripple_envelope_parses_as_a_cloudevent_with_the_same_attributes_and_data() {
    let envelope = shipped();
    let event: Event = serde_json::from_str(&envelope.to_json()).unwrap();
    assert_eq!(event.specversion().as_str(), SPEC_VERSION);
    assert_eq!(event.id(), envelope.id);
    assert_eq!(event.source().as_str(), envelope.source);
    assert_eq!(event.ty(), envelope.event_type);
    assert_eq!(event.subject(), Some(envelope.subject.as_str()));
    assert_eq!(event.time(), Some(&envelope.time));
    assert_eq!(event.datacontenttype(), Some(JSON_CONTENT_TYPE));
    assert_eq!(event.data(), Some(&Data::Json(envelope.data.clone())));
    // Ripple's attributes are CloudEvents extensions, typed as the spec allows.
    assert_eq!(
        event.extension("sequence"),
        Some(&ExtensionValue::Integer(2))
    );
    assert_eq!(
        event.extension("schemaversion"),
        Some(&ExtensionValue::Integer(1))
    );
    assert_eq!(text(&event, "aggregatetype").as_deref(), Some("Parcel"));
    assert_eq!(
        text(&event, "correlationid"),
        Some(envelope.correlationid.clone())
    );
    assert_eq!(text(&event, "causationid"), envelope.causationid.clone());
    assert_eq!(text(&event, "traceparent"), envelope.traceparent.clone());
}

#[test]
fn a_cloudevent_made_by_the_sdk_is_accepted_and_decoded() {
    let time = Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap();
    let event = EventBuilderV10::new()
        .id("01a2076b-4400-792f-a17c-03d5f2a6b8c1")
        .source("ripple/shipping")
        .ty("parcel.shipped")
        .subject("p-7")
        .time(time)
        .data(
            "application/json",
            json!({"parcel_id": "p-7", "weight_grams": 300}),
        )
        .extension("aggregatetype", "Parcel")
        .extension("sequence", 3_i64)
        .extension("schemaversion", 1_i64)
        .extension("correlationid", "01a2076b-4400-792f-a17c-03d5f2a6b8c1")
        .extension("partnerext", "kept")
        .build()
        .unwrap();
    let envelope = Envelope::from_json(&serde_json::to_string(&event).unwrap()).unwrap();
    assert_eq!(
        (envelope.id.as_str(), envelope.source.as_str()),
        ("01a2076b-4400-792f-a17c-03d5f2a6b8c1", "ripple/shipping")
    );
    assert_eq!((envelope.subject.as_str(), envelope.time), ("p-7", time));
    assert_eq!(envelope.stream_key(), "Parcel#p-7");
    assert_eq!((envelope.sequence, envelope.schemaversion), (3, 1));
    assert_eq!(
        envelope.decode::<Parcel>().unwrap(),
        Parcel::Shipped {
            parcel_id: "p-7".into(),
            weight_grams: 300
        }
    );
    // An extension Ripple does not know is kept, and written back for the SDK to read again.
    assert_eq!(envelope.extensions["partnerext"], json!("kept"));
    let again: Event = serde_json::from_str(&envelope.to_json()).unwrap();
    assert_eq!(again, event);
}

#[test]
fn a_cloudevent_without_ripples_extensions_is_refused_not_guessed() {
    let event = EventBuilderV10::new()
        .id("e-1")
        .source("https://example.com/partner")
        .ty("parcel.shipped")
        .subject("p-7")
        .time(Utc::now())
        .data("application/json", json!({}))
        .build()
        .unwrap();
    assert!(matches!(
        Envelope::from_json(&serde_json::to_string(&event).unwrap()),
        Err(EnvelopeError::Malformed(_))
    ));
}
