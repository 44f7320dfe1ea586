//! What a stream record of the events table holds for the outbox: an event, nothing to publish
//! (a dedupe marker, a TTL removal), an item that is not a readable event, or an event that is not
//! the store's own to publish (not at its own stream position, or not its source's to write).

use aws_lambda_events::event::dynamodb::EventRecord;

use crate::envelope::{Envelope, EnvelopeError};
use crate::producers::Producers;
use crate::store::{KIND_EVENT, attr};

/// What a stream record holds for the outbox.
#[derive(Debug)]
pub(super) enum Record {
    /// An event to publish.
    Publish(Box<Envelope>),
    /// Not an event (a dedupe marker, a TTL removal, an update): nothing to do.
    Skip,
    /// An event item that cannot be read: it can only fail (and is quarantined).
    Corrupt(String),
    /// A record without an item to judge (the stream's view type is not `NEW_IMAGE`): the path
    /// is misconfigured, not the event, so the record waits for the fix like any outage.
    Imageless(String),
    /// A readable event that may not leave: never published (and quarantined).
    Refused {
        /// The envelope as found.
        envelope: Box<Envelope>,
        /// Why it may not leave.
        reason: String,
    },
}

pub(super) fn classify(record: &EventRecord, producers: Option<&Producers>) -> Record {
    // Events are immutable: only inserts are new events. TTL removes dedupe markers (REMOVE).
    if record.event_name != "INSERT" {
        return Record::Skip;
    }
    if record.change.new_image.get(attr::KIND).is_none() {
        return Record::Imageless(
            "stream image has no `kind` attribute (is the stream view NEW_IMAGE?)".into(),
        );
    }
    let image = &record.change.new_image;
    match envelope_from_stream_image(image) {
        Ok(Some(envelope)) => match admit(image, &envelope, producers) {
            Ok(()) => Record::Publish(Box::new(envelope)),
            Err(reason) => Record::Refused {
                envelope: Box::new(envelope),
                reason,
            },
        },
        Ok(None) => Record::Skip,
        Err(err) => Record::Corrupt(err.to_string()),
    }
}

/// Why the event in `image` may not be published, if it may not: its item is not at its own
/// stream position, or its producer may not write it.
fn admit(
    image: &serde_dynamo::Item,
    envelope: &Envelope,
    producers: Option<&Producers>,
) -> Result<(), String> {
    use serde_dynamo::AttributeValue as StreamValue;
    let (pk, sk) = (image.get(attr::PK), image.get(attr::SK));
    let expected_sk = envelope.sequence.to_string();
    let at_own_position = matches!(pk, Some(StreamValue::S(pk)) if *pk == envelope.stream_key())
        && matches!(sk, Some(StreamValue::N(sk)) if *sk == expected_sk)
        // `Order#a` + `b#c` and `Order#a#b` + `c` would share a key.
        && !envelope.aggregatetype.contains('#');
    if !at_own_position {
        return Err(format!(
            "stored at pk {pk:?} sk {sk:?}, but the envelope belongs at {} sequence {}",
            envelope.stream_key(),
            envelope.sequence
        ));
    }
    match producers {
        Some(producers) => producers
            .check(envelope)
            .map_err(|refused| refused.to_string()),
        None => Ok(()),
    }
}

/// The envelope in a stream image (`NewImage`), or `None` for an item that is not an event (a
/// dedupe marker): only events are published.
fn envelope_from_stream_image(
    image: &serde_dynamo::Item,
) -> Result<Option<Envelope>, EnvelopeError> {
    use serde_dynamo::AttributeValue as StreamValue;
    match image.get(attr::KIND) {
        Some(StreamValue::S(kind)) if kind == KIND_EVENT => {}
        Some(_) => return Ok(None),
        None => {
            return Err(EnvelopeError::Invalid(
                "stream image has no `kind` attribute (is the stream view NEW_IMAGE?)".into(),
            ));
        }
    }
    match image.get(attr::ENVELOPE) {
        Some(StreamValue::S(text)) => Envelope::from_json(text).map(Some),
        _ => Err(EnvelopeError::Invalid(
            "event item has no string `envelope` attribute".into(),
        )),
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::event;

    #[test]
    fn stream_images_give_events_and_skip_markers() {
        use serde_dynamo::AttributeValue as V;
        use std::collections::HashMap as Map;
        let e = event("a", 1);
        let image: serde_dynamo::Item = Map::from([
            ("kind".to_owned(), V::S("event".into())),
            ("envelope".to_owned(), V::S(e.to_json())),
        ])
        .into();
        assert_eq!(envelope_from_stream_image(&image).unwrap(), Some(e));
        let marker: serde_dynamo::Item =
            Map::from([("kind".to_owned(), V::S("dedupe".into()))]).into();
        assert_eq!(envelope_from_stream_image(&marker).unwrap(), None);
        let keys_only: serde_dynamo::Item = Map::from([("pk".to_owned(), V::S("x".into()))]).into();
        assert!(envelope_from_stream_image(&keys_only).is_err());
        let corrupt: serde_dynamo::Item = Map::from([
            ("kind".to_owned(), V::S("event".into())),
            ("envelope".to_owned(), V::S("{".into())),
        ])
        .into();
        assert!(envelope_from_stream_image(&corrupt).is_err());
    }
}
