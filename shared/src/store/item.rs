//! The DynamoDB items of the events table: an event, a dedupe marker, and back.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{DEDUPE_RETENTION, DedupeMarker, KIND_EVENT, attr, time_bucket, time_key};

/// `kind` of a dedupe marker.
const KIND_DEDUPE: &str = "dedupe";
use crate::envelope::{Envelope, EnvelopeError};

/// The DynamoDB item for an event.
pub(crate) fn event_item(event: &Envelope) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (attr::PK.into(), AttributeValue::S(event.stream_key())),
        (
            attr::SK.into(),
            AttributeValue::N(event.sequence.to_string()),
        ),
        (attr::KIND.into(), AttributeValue::S(KIND_EVENT.into())),
        (attr::ID.into(), AttributeValue::S(event.id.clone())),
        (
            attr::TYPE.into(),
            AttributeValue::S(event.event_type.clone()),
        ),
        (attr::ENVELOPE.into(), AttributeValue::S(event.to_json())),
        (
            attr::TIME_BUCKET.into(),
            AttributeValue::S(time_bucket(&event.stream_key(), event.time)),
        ),
        (attr::TIME_KEY.into(), AttributeValue::S(time_key(event))),
    ])
}

/// The DynamoDB item for a dedupe marker, expiring `DEDUPE_RETENTION` after `now_epoch_secs`.
pub(crate) fn dedupe_item(
    marker: &DedupeMarker,
    now_epoch_secs: i64,
) -> HashMap<String, AttributeValue> {
    let expires_at = now_epoch_secs.saturating_add(DEDUPE_RETENTION.as_secs() as i64);
    HashMap::from([
        (attr::PK.into(), AttributeValue::S(marker.key())),
        (attr::SK.into(), AttributeValue::N("0".into())),
        (attr::KIND.into(), AttributeValue::S(KIND_DEDUPE.into())),
        (
            attr::EXPIRES_AT.into(),
            AttributeValue::N(expires_at.to_string()),
        ),
    ])
}

/// The envelope stored in an event item.
pub(crate) fn envelope_from_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<Envelope, EnvelopeError> {
    match item.get(attr::ENVELOPE) {
        Some(AttributeValue::S(text)) => Envelope::from_json(text),
        _ => Err(EnvelopeError::Invalid(
            "item has no string `envelope` attribute".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::event;

    #[test]
    fn event_items_round_trip_through_dynamodb_attributes() {
        let e = event("a", 3);
        let item = event_item(&e);
        assert_eq!(item["pk"], AttributeValue::S("Thing#a".into()));
        assert_eq!(item["sk"], AttributeValue::N("3".into()));
        assert_eq!(item["kind"], AttributeValue::S("event".into()));
        assert!(matches!(&item["time_bucket"], AttributeValue::S(b) if b.contains('#')));
        assert_eq!(item["time_key"], AttributeValue::S(time_key(&e)));
        assert_eq!(envelope_from_item(&item).unwrap(), e);
    }

    #[test]
    fn dedupe_items_expire_after_the_retention() {
        let item = dedupe_item(&DedupeMarker::new("inventory", "e-1"), 1_000);
        assert_eq!(item["pk"], AttributeValue::S("dedupe#inventory#e-1".into()));
        assert!(
            !item.contains_key("time_bucket"),
            "markers stay out of the time index"
        );
        assert_eq!(item["sk"], AttributeValue::N("0".into()));
        assert_eq!(
            item["expires_at"],
            AttributeValue::N((1_000 + DEDUPE_RETENTION.as_secs()).to_string())
        );
    }
}
