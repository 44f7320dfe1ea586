//! Generated SQS records: whatever a queue delivers is the envelope it carries or a typed error,
//! never a panic; an SNS notification wrapper (not a raw delivery) is refused as such.

use aws_lambda_events::event::sqs::SqsMessage;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::envelope::proptests::{envelope, json_value};

fn record(body: Option<String>) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some("m-1".to_owned());
    message.body = body;
    message
}

fn wrapped(message: Value) -> String {
    json!({
        "Type": "Notification",
        "MessageId": "5c2b",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:domain-events",
        "Message": message,
        "Timestamp": "2026-01-01T00:00:00.000Z",
    })
    .to_string()
}

fn typed(result: Result<Envelope, ParseError>) -> Result<Option<Envelope>, TestCaseError> {
    match result {
        Ok(envelope) => {
            prop_assert!(envelope.validate().is_ok());
            Ok(Some(envelope))
        }
        Err(
            ParseError::NotJson(_)
            | ParseError::SnsNotification
            | ParseError::Envelope(EnvelopeError::Malformed(_) | EnvelopeError::Invalid(_)),
        ) => Ok(None),
        Err(other) => Err(TestCaseError::fail(format!("unexpected {other}"))),
    }
}

proptest! {
    #[test]
    fn any_body_is_an_envelope_or_a_typed_error(body in any::<String>()) {
        typed(envelope_from_sqs(&record(Some(body))))?;
    }

    #[test]
    fn any_json_body_raw_or_wrapped_is_an_envelope_or_a_typed_error(value in json_value(), wrap in any::<bool>()) {
        let body = if wrap { wrapped(value) } else { value.to_string() };
        typed(envelope_from_sqs(&record(Some(body))))?;
    }

    #[test]
    fn an_envelope_reads_back_raw_and_is_refused_wrapped_by_sns(envelope in envelope()) {
        let raw = envelope_from_sqs(&record(Some(envelope.to_json()))).unwrap();
        prop_assert_eq!(&raw, &envelope);
        prop_assert!(matches!(
            envelope_from_sqs(&record(Some(wrapped(Value::String(envelope.to_json()))))),
            Err(ParseError::SnsNotification)
        ));
    }

    #[test]
    fn any_sns_notification_wrapper_is_refused_as_such(message in json_value()) {
        prop_assert!(matches!(
            envelope_from_sqs(&record(Some(wrapped(message)))),
            Err(ParseError::SnsNotification)
        ));
    }

    #[test]
    fn a_record_without_a_body_is_refused_as_such(_n in 0..1_u8) {
        prop_assert!(matches!(envelope_from_sqs(&record(None)), Err(ParseError::EmptyBody)));
    }
}
