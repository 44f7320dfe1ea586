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

/// Never finishes with a `slow` subject.
struct Stuck;

impl Consumer for Stuck {
    const NAME: &'static str = "stuck";
    type Error = TestError;

    async fn consume(&self, delivery: &Delivery<'_>) -> Result<Handled, TestError> {
        if delivery.event.subject == "slow" {
            std::future::pending::<()>().await;
        }
        Ok(Handled::Applied("thing.counted"))
    }
}

fn invocation(records: Vec<SqsMessage>, deadline: SystemTime) -> LambdaEvent<SqsEvent> {
    let mut batch = SqsEvent::default();
    batch.records = records;
    let mut context = Context::default();
    context.deadline = deadline
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    LambdaEvent::new(batch, context)
}

#[tokio::test]
async fn the_invocations_deadline_bounds_the_batch_and_what_did_not_run_is_reported() {
    let consumer = SqsConsumer::new(Stuck).concurrency(1);
    // Five seconds: a one-second margin, half a second of it left to answer in.
    let deadline = SystemTime::now() + std::time::Duration::from_secs(5);
    let records = vec![carrying("fine"), carrying("slow"), carrying("later")];
    // Without the cut-off the stuck record would hold the batch until Lambda killed it.
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        consumer.handle(invocation(records, deadline)),
    )
    .await;
    let response = answered.expect("the batch answers on its own").unwrap();
    assert!(SystemTime::now() < deadline, "answered before the deadline");
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["slow", "later"]);
}

#[cfg(feature = "redelivery-sqs")]
mod redelivery {
    use std::sync::{Arc, Mutex};

    use aws_sdk_sqs::operation::change_message_visibility_batch::ChangeMessageVisibilityBatchOutput;
    use aws_sdk_sqs::operation::get_queue_url::GetQueueUrlOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;
    use crate::batch::{Redelivery, RedeliveryBackoff};

    const ARN: &str = "arn:aws:sqs:us-east-1:123456789012:scripted";

    fn on_queue(mut record: SqsMessage, receive_count: u32) -> SqsMessage {
        record.receipt_handle = record.message_id.clone();
        record.event_source_arn = Some(ARN.into());
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), receive_count.to_string());
        record
    }

    #[tokio::test]
    async fn an_unusable_message_comes_back_at_once_and_a_failed_one_backs_off() {
        let seen: Arc<Mutex<Vec<(String, i32)>>> = Arc::default();
        let url = mock!(aws_sdk_sqs::Client::get_queue_url)
            .then_output(|| GetQueueUrlOutput::builder().queue_url("https://q").build());
        let recorded = seen.clone();
        let change = mock!(aws_sdk_sqs::Client::change_message_visibility_batch)
            .then_compute_output(move |req| {
                for entry in req.entries() {
                    recorded.lock().unwrap().push((
                        entry.receipt_handle().to_owned(),
                        entry.visibility_timeout().unwrap(),
                    ));
                }
                ChangeMessageVisibilityBatchOutput::builder()
                    .set_successful(Some(vec![]))
                    .set_failed(Some(vec![]))
                    .build()
                    .unwrap()
            });
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&url, &change]);
        let backoff = RedeliveryBackoff {
            base: std::time::Duration::from_secs(10),
            cap: std::time::Duration::from_secs(300),
            jitter: false,
        };
        let consumer =
            SqsConsumer::new(Scripted::default()).with_redelivery(Redelivery::new(client, backoff));
        let records = vec![
            on_queue(carrying("applied"), 1),
            on_queue(message("poison", "{not json".into()), 3),
            on_queue(carrying("refused"), 3),
        ];
        let response = consumer
            .handle(invocation(
                records,
                SystemTime::now() + std::time::Duration::from_secs(30),
            ))
            .await
            .unwrap();
        assert_eq!(response.batch_item_failures.len(), 2);
        assert_eq!(
            *seen.lock().unwrap(),
            [("poison".to_owned(), 0), ("refused".to_owned(), 40)]
        );
    }
}
