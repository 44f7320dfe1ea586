//! Fixtures for handler tests (feature `test-support`): events, the SQS records and Lambda
//! invocations that carry them, and what a batch response reports.
//!
//! Function crates enable it for their tests only:
//! `ripple-kit = { workspace = true, features = ["test-support"] }` under `[dev-dependencies]`.
// A fixture that cannot be built is a broken test: panicking says so at the right line.
#![allow(clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{Context, LambdaEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::envelope::{Envelope, StreamPosition};
use crate::idempotency::{Claim, IdempotencyRecord, IdempotencyStore, IdempotencyStoreError};
use crate::parse::envelope_from_sqs;

/// `event` as the `sequence`-th event of the stream `aggregate_type`/`aggregate_id`, from source
/// `test`.
pub fn envelope<E: Serialize>(
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: u64,
    event: &E,
) -> Envelope {
    Envelope::encode(
        "test",
        StreamPosition::new(aggregate_type, aggregate_id, sequence),
        event,
    )
    .expect("a test event encodes")
}

/// The first record of an SQS event given as JSON (a sample from `events/`).
pub fn first_sqs_record(sqs_event_json: &str) -> SqsMessage {
    let event: SqsEvent = serde_json::from_str(sqs_event_json).expect("the sample is an SQS event");
    event
        .records
        .into_iter()
        .next()
        .expect("the sample holds a record")
}

/// The payload (`data`) of the event in the first record of an SQS event given as JSON, as `T`.
pub fn sample_data<T: DeserializeOwned>(sqs_event_json: &str) -> T {
    let envelope = envelope_from_sqs(&first_sqs_record(sqs_event_json))
        .expect("the sample record holds an event envelope");
    serde_json::from_value(envelope.data).expect("the sample event's data fits the type")
}

/// `record` carrying `envelope` as its body (raw SNS delivery), with the message id
/// `m-<event id>`.
pub fn carrying(mut record: SqsMessage, envelope: &Envelope) -> SqsMessage {
    record.message_id = Some(format!("m-{}", envelope.id));
    record.body = Some(envelope.to_json());
    record
}

/// `record` with its event's `time` set to now, as if just published: a sample written on a
/// fixed date would otherwise age out of the consumers' replay window.
pub fn restamped(mut record: SqsMessage) -> SqsMessage {
    let mut envelope =
        envelope_from_sqs(&record).expect("the record holds an event envelope to restamp");
    envelope.time = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3);
    record.body = Some(envelope.to_json());
    record
}

/// An SQS record, with no attributes, carrying `envelope` (see [`carrying`]).
pub fn sqs_message(envelope: &Envelope) -> SqsMessage {
    carrying(SqsMessage::default(), envelope)
}

/// An SQS record with the id `message_id` and any `body` (a poison message, say).
pub fn raw_sqs_message(message_id: &str, body: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(message_id.into());
    record.body = Some(body.into());
    record
}

/// An invocation with a batch of `records` from a standard queue and a default context.
pub fn sqs_invocation(records: Vec<SqsMessage>) -> LambdaEvent<SqsEvent> {
    let mut event = SqsEvent::default();
    event.records = records;
    LambdaEvent::new(event, Context::default())
}

/// The ids of the records `response` reports as failed, in order.
pub fn failed_message_ids(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.as_str())
        .collect()
}

/// An invocation deadline ten seconds from now.
pub fn deadline() -> SystemTime {
    SystemTime::now() + Duration::from_secs(10)
}

/// A clock a test moves by hand; clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    /// A clock showing `now`.
    pub fn at(now: SystemTime) -> Self {
        ManualClock(Arc::new(Mutex::new(now)))
    }

    /// The time it shows.
    pub fn now(&self) -> SystemTime {
        *self.0.lock().expect("the clock is not poisoned")
    }

    /// Moves it `by` forward.
    pub fn advance(&self, by: Duration) {
        *self.0.lock().expect("the clock is not poisoned") += by;
    }

    /// The clock as the function `with_clock` builders take.
    pub fn reader(&self) -> impl Fn() -> SystemTime + Clone + Send + Sync + 'static {
        let clock = self.clone();
        move || clock.now()
    }
}

/// An idempotency store over `S` whose completions never land, as if the process died right
/// after the effect and before recording its result: the record stays in progress until its
/// expiry, and a retry after that takes it over and runs the effect again.
#[derive(Debug, Clone, Default)]
pub struct DiesBeforeComplete<S>(pub S);

impl<S: IdempotencyStore> IdempotencyStore for DiesBeforeComplete<S> {
    async fn put_in_progress(
        &self,
        record: &IdempotencyRecord,
        now: SystemTime,
    ) -> Result<Claim, IdempotencyStoreError> {
        self.0.put_in_progress(record, now).await
    }

    async fn complete(&self, _: &IdempotencyRecord) -> Result<(), IdempotencyStoreError> {
        Err(IdempotencyStoreError::Backend(
            "the process died before completing the record".into(),
        ))
    }

    async fn mark_sending(&self, claim: &IdempotencyRecord) -> Result<(), IdempotencyStoreError> {
        self.0.mark_sending(claim).await
    }

    async fn delete(&self, claim: &IdempotencyRecord) -> Result<(), IdempotencyStoreError> {
        self.0.delete(claim).await
    }

    async fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>, IdempotencyStoreError> {
        self.0.get(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    #[serde(tag = "type", content = "data")]
    enum Counted {
        #[serde(rename = "thing.counted")]
        Counted,
    }

    #[test]
    fn a_message_carries_its_envelope_and_is_named_after_it() {
        let event = envelope("Thing", "t-1", 2, &Counted::Counted);
        let message = sqs_message(&event);
        assert_eq!(message.message_id, Some(format!("m-{}", event.id)));
        let received = envelope_from_sqs(&message).unwrap();
        assert_eq!((received.id, received.sequence), (event.id, 2));
    }

    #[test]
    fn a_sample_gives_its_first_record_and_its_data() {
        let event = envelope(
            "Thing",
            "t-1",
            1,
            &serde_json::json!({"type": "thing.counted", "data": {"n": 3}}),
        );
        let sample = serde_json::json!({"Records": [sqs_message(&event)]}).to_string();
        assert_eq!(
            first_sqs_record(&sample).message_id,
            Some(format!("m-{}", event.id))
        );
        let data: serde_json::Value = sample_data(&sample);
        assert_eq!(data, serde_json::json!({"n": 3}));
    }

    #[test]
    fn failed_ids_come_in_order() {
        let mut response = SqsBatchResponse::default();
        response.set_failures(vec!["b".to_owned(), "a".to_owned()]);
        assert_eq!(failed_message_ids(&response), vec!["b", "a"]);
        let invocation = sqs_invocation(vec![raw_sqs_message("p", "{")]);
        assert_eq!(invocation.payload.records[0].body.as_deref(), Some("{"));
    }
}
