//! Typed parsing of what a queue delivers: SQS record (raw SNS delivery) → CloudEvents
//! [`Envelope`] → the consumer's own event type.
//!
//! Subscriptions deliver raw (`RawMessageDelivery: true`): the body is the envelope itself. A body
//! that is an SNS notification wrapping one is refused ([`ParseError::SnsNotification`]): anyone
//! allowed to send to the queue can write such a wrapper, and nothing here verifies its `TopicArn`
//! or signature, so trusting it would let them speak for the topic.
//!
//! A record that fails to parse fails alone: the caller reports it as a batch item failure, the
//! queue redelivers it and finally moves it to the DLQ, and the reason is logged each time.

use aws_lambda_events::event::sqs::SqsMessage;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::envelope::{Envelope, EnvelopeError, Upcaster};
use crate::producers::Refused;

/// Why a record is not an event this consumer can handle (or may trust).
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The record has no body.
    #[error("record has no body")]
    EmptyBody,
    /// The body is not JSON.
    #[error("record body is not JSON")]
    NotJson(#[source] serde_json::Error),
    /// The body is an SNS notification wrapping a message, not a raw delivery: its origin cannot
    /// be verified, so it is refused (the subscription must set `RawMessageDelivery: true`).
    #[error("SNS notification wrapper refused: subscriptions must deliver raw messages")]
    SnsNotification,
    /// The JSON is not a valid envelope, or its data does not fit the expected type.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The event's producer may not write it (see [`crate::producers`]).
    #[error("event {event_id} refused")]
    Refused {
        /// The event's id.
        event_id: String,
        /// Why.
        #[source]
        reason: Refused,
    },
    /// The event's `time` is outside the replay window: older than its dedupe marker could still
    /// be kept, or further in the future than clocks drift (see [`crate::consumer::ReplayWindow`]).
    #[error("event {event_id} at {time} is outside the replay window ({why})")]
    OutsideReplayWindow {
        /// The event's id.
        event_id: String,
        /// The event's `time`, RFC 3339.
        time: String,
        /// `too old` or `in the future`.
        why: &'static str,
    },
}

/// The envelope in an SQS record delivered raw by SNS.
pub fn envelope_from_sqs(message: &SqsMessage) -> Result<Envelope, ParseError> {
    let body = message.body.as_deref().ok_or(ParseError::EmptyBody)?;
    envelope_from_body(body)
}

/// The envelope a raw message body is.
fn envelope_from_body(body: &str) -> Result<Envelope, ParseError> {
    let value: Value = serde_json::from_str(body).map_err(ParseError::NotJson)?;
    if value.get("Type").and_then(Value::as_str) == Some("Notification")
        && value.get("TopicArn").is_some()
    {
        return Err(ParseError::SnsNotification);
    }
    let envelope: Envelope = serde_json::from_value(value).map_err(EnvelopeError::Malformed)?;
    envelope.validate()?;
    Ok(envelope)
}

/// The envelope and its typed payload, upcast by `upcaster`.
pub fn typed_from_sqs<E: DeserializeOwned>(
    message: &SqsMessage,
    upcaster: &dyn Upcaster,
) -> Result<(Envelope, E), ParseError> {
    let envelope = envelope_from_sqs(message)?;
    let event = envelope.decode_with(upcaster)?;
    Ok((envelope, event))
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::NoUpcast;
    use crate::envelope::StreamPosition;
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum Ev {
        #[serde(rename = "x.done")]
        Done { n: u8 },
    }

    fn message(body: Option<String>) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some("m-1".into());
        m.body = body;
        m
    }

    fn envelope() -> Envelope {
        Envelope::encode("t", StreamPosition::new("X", "1", 1), &Ev::Done { n: 1 }).unwrap()
    }

    #[test]
    fn a_raw_delivery_is_the_event_and_an_sns_wrapper_is_refused() {
        let e = envelope();
        let raw = message(Some(e.to_json()));
        assert_eq!(envelope_from_sqs(&raw).unwrap(), e);
        let (_, typed): (_, Ev) = typed_from_sqs(&raw, &NoUpcast).unwrap();
        assert_eq!(typed, Ev::Done { n: 1 });
        // Anyone who may send to the queue could write this wrapper: its TopicArn proves nothing.
        let wrapped = message(Some(
            json!({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": e.to_json()})
                .to_string(),
        ));
        assert!(matches!(
            envelope_from_sqs(&wrapped),
            Err(ParseError::SnsNotification)
        ));
    }

    #[test]
    fn every_kind_of_bad_body_has_its_own_reason() {
        assert!(matches!(
            envelope_from_sqs(&message(None)),
            Err(ParseError::EmptyBody)
        ));
        assert!(matches!(
            envelope_from_sqs(&message(Some("{oops".into()))),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(
            envelope_from_sqs(&message(Some(
                json!({"Type": "Notification", "TopicArn": "a"}).to_string()
            ))),
            Err(ParseError::SnsNotification)
        ));
        assert!(matches!(
            envelope_from_sqs(&message(Some("[1,2]".into()))),
            Err(ParseError::Envelope(_))
        ));
        let mut wrong = envelope();
        wrong.event_type = "x.unknown".into();
        assert!(matches!(
            typed_from_sqs::<Ev>(&message(Some(wrong.to_json())), &NoUpcast),
            Err(ParseError::Envelope(EnvelopeError::UnknownType(_)))
        ));
    }
}
