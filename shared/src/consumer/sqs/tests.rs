//! `SqsConsumer`: what it counts, what it reports, and that a taken marker is a duplicate.

use std::sync::Mutex;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;

use super::*;
use crate::fixtures::event;
use crate::parse::ParseError;

#[derive(Debug, thiserror::Error)]
enum TestError {
    #[error("unreadable")]
    Parse(#[from] ParseError),
    #[error("event store")]
    Store(#[source] StoreError),
    #[error("refused")]
    Refused,
}

/// Answers each event by its aggregate id: `applied`, `dup`, `ignored`, `taken`, or fails.
#[derive(Default)]
struct Scripted {
    seen: Mutex<Vec<String>>,
}

impl Consumer for Scripted {
    const NAME: &'static str = "scripted";
    type Error = TestError;

    async fn consume(&self, delivery: &Delivery<'_>) -> Result<Handled, TestError> {
        let id = delivery.event.subject.clone();
        self.seen.lock().unwrap().push(id.clone());
        match id.as_str() {
            "applied" => Ok(Handled::Applied("thing.counted")),
            "dup" => Ok(Handled::Duplicate),
            "ignored" => Ok(Handled::Ignored),
            "taken" => Err(TestError::Store(StoreError::Duplicate {
                consumer: "scripted".into(),
                source_event_id: delivery.event.id.clone(),
            })),
            _ => Err(TestError::Refused),
        }
    }
}

fn message(id: &str, body: String) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(id.into());
    record.body = Some(body);
    record
}

fn carrying(subject: &str) -> SqsMessage {
    message(subject, event(subject, 1).to_json())
}

fn counts(consumer: &SqsConsumer<Scripted>) -> serde_json::Value {
    let doc = consumer.metrics.take_emf(0).unwrap_or_else(|| json!({}));
    json!([
        doc["EventsConsumed"],
        doc["DuplicatesSkipped"],
        doc["ConsumerFailures"]
    ])
}

#[tokio::test]
async fn each_outcome_is_counted_once_and_a_taken_marker_is_a_duplicate() {
    let consumer = SqsConsumer::new(Scripted::default());
    for (subject, expected) in [
        ("applied", Handled::Applied("thing.counted")),
        ("dup", Handled::Duplicate),
        ("ignored", Handled::Ignored),
        ("taken", Handled::Duplicate),
    ] {
        let handled = consumer
            .handle_message(&carrying(subject), SystemTime::now())
            .await;
        assert_eq!(handled.unwrap(), expected, "{subject}");
    }
    assert_eq!(counts(&consumer), json!([1.0, 2.0, null]));
}

#[tokio::test]
async fn a_poison_message_fails_alone_without_reaching_the_consumer() {
    let consumer = SqsConsumer::new(Scripted::default());
    let mut batch = SqsEvent::default();
    batch.records = vec![
        carrying("applied"),
        message("poison", "{not json".into()),
        carrying("refused"),
    ];
    let response = consumer
        .handle(LambdaEvent::new(batch, Context::default()))
        .await
        .unwrap();
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["poison", "refused"]);
    assert_eq!(
        *consumer.consumer().seen.lock().unwrap(),
        ["applied", "refused"]
    );
    assert!(
        consumer.metrics.take_emf(0).is_none(),
        "flushed after the batch"
    );
}

#[tokio::test]
async fn a_batch_in_which_every_record_failed_is_an_error_so_lambda_retries_it() {
    let consumer = SqsConsumer::new(Scripted::default());
    let mut batch = SqsEvent::default();
    batch.records = vec![carrying("refused"), message("p", String::new())];
    let result = consumer
        .handle(LambdaEvent::new(batch, Context::default()))
        .await;
    assert!(result.is_err());
}

use crate::fixtures::Thing;

#[tokio::test]
async fn an_event_its_source_may_not_write_never_reaches_the_consumer() {
    let producers = crate::producers::Producers::new().allow_all::<Thing>("test");
    let consumer = SqsConsumer::new(Scripted::default()).with_producers(producers);
    assert!(
        consumer
            .handle_message(&carrying("applied"), SystemTime::now())
            .await
            .is_ok()
    );
    let mut forged = event("applied", 2);
    forged.source = "ripple/payments".into();
    let err = consumer
        .handle_message(&message("forged", forged.to_json()), SystemTime::now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TestError::Parse(ParseError::Refused { .. })),
        "{err:?}"
    );
    let mut misplaced = event("applied", 3);
    misplaced.aggregatetype = "Payment".into();
    let err = consumer
        .handle_message(
            &message("misplaced", misplaced.to_json()),
            SystemTime::now(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, TestError::Parse(ParseError::Refused { .. })),
        "{err:?}"
    );
    assert_eq!(*consumer.consumer().seen.lock().unwrap(), ["applied"]);
    let doc = consumer.metrics.take_emf(0).unwrap();
    assert_eq!(
        (doc["EventsRefused"].clone(), doc["EventsConsumed"].clone()),
        (json!(2.0), json!(1.0))
    );
}

#[tokio::test]
async fn a_replay_older_than_its_dedupe_marker_lives_is_refused() {
    use crate::consumer::admission::{MAX_CLOCK_SKEW, MAX_EVENT_AGE};
    use std::time::Duration;
    let e = event("applied", 1);
    let sent: SystemTime = e.time.into();
    let at = |now: SystemTime| SqsConsumer::new(Scripted::default()).with_clock(move || now);

    let on_time = at(sent + MAX_EVENT_AGE);
    assert!(
        on_time
            .handle_message(&message("m", e.to_json()), SystemTime::now())
            .await
            .is_ok()
    );

    let late = at(sent + MAX_EVENT_AGE + Duration::from_secs(1));
    let err = late
        .handle_message(&message("m", e.to_json()), SystemTime::now())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        TestError::Parse(ParseError::OutsideReplayWindow { why: "too old", .. })
    ));
    assert!(late.consumer().seen.lock().unwrap().is_empty());

    let early = at(sent - MAX_CLOCK_SKEW - Duration::from_secs(1));
    let err = early
        .handle_message(&message("m", e.to_json()), SystemTime::now())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        TestError::Parse(ParseError::OutsideReplayWindow {
            why: "in the future",
            ..
        })
    ));
}
