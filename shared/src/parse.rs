//! Typed parsing of what a queue delivers: SQS record → (raw SNS delivery or SNS envelope) →
//! CloudEvents [`Envelope`] → the consumer's own event type.
//!
//! A record that fails to parse fails alone: the caller reports it as a batch item failure, the
//! queue redelivers it and finally moves it to the DLQ, and the reason is logged each time.

use aws_lambda_events::event::sqs::SqsMessage;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::envelope::{Envelope, EnvelopeError, Upcaster};

/// Why a record is not an event this consumer can handle.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The record has no body.
    #[error("record has no body")]
    EmptyBody,
    /// The body is not JSON.
    #[error("record body is not JSON")]
    NotJson(#[source] serde_json::Error),
    /// An SNS notification whose `Message` is missing or not text.
    #[error("SNS notification without a string Message")]
    BadNotification,
    /// The JSON is not a valid envelope, or its data does not fit the expected type.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// The envelope in an SQS record, whether SNS delivered it raw or wrapped in its own JSON.
pub fn envelope_from_sqs(message: &SqsMessage) -> Result<Envelope, ParseError> {
    let body = message.body.as_deref().ok_or(ParseError::EmptyBody)?;
    envelope_from_body(body)
}

/// The envelope in a message body: raw, or inside an SNS notification (`RawMessageDelivery` off).
fn envelope_from_body(body: &str) -> Result<Envelope, ParseError> {
    let value: Value = serde_json::from_str(body).map_err(ParseError::NotJson)?;
    let is_notification = value.get("Type").and_then(Value::as_str) == Some("Notification")
        && value.get("TopicArn").is_some();
    let envelope = if is_notification {
        let message = value
            .get("Message")
            .and_then(Value::as_str)
            .ok_or(ParseError::BadNotification)?;
        Envelope::from_json(message)?
    } else {
        let envelope: Envelope = serde_json::from_value(value).map_err(EnvelopeError::Malformed)?;
        envelope.validate()?;
        envelope
    };
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
    fn raw_delivery_and_sns_envelope_give_the_same_event() {
        let e = envelope();
        let raw = message(Some(e.to_json()));
        let wrapped = message(Some(
            json!({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": e.to_json()})
                .to_string(),
        ));
        assert_eq!(envelope_from_sqs(&raw).unwrap(), e);
        assert_eq!(envelope_from_sqs(&wrapped).unwrap(), e);
        let (_, typed): (_, Ev) = typed_from_sqs(&raw, &NoUpcast).unwrap();
        assert_eq!(typed, Ev::Done { n: 1 });
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
            Err(ParseError::BadNotification)
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
