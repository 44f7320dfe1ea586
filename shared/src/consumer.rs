//! Queue consumers: the per-message handler lifted to an SQS batch, and what it did counted and
//! logged the same way in every function.
//!
//! A consumer writes `handle_message` for one record and returns what it did; [`handle_batch`]
//! runs it over the batch (FIFO detected, failures reported alone and logged with their error
//! chain, metrics flushed once per invocation). Consumers that append events in reaction to a
//! message report an [`Outcome`] and pass it through [`record`], so `EventsConsumed`,
//! `DuplicatesSkipped` and the log lines mean the same thing in every function.

use std::error::Error as StdError;
use std::future::Future;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::Error;

use crate::batch::{QueueKind, process_sqs};
use crate::envelope::Envelope;
use crate::store::StoreError;
use crate::telemetry::{Metrics, error_chain};

/// Handles an SQS batch with `handle_message`, `concurrency` records at once on a standard queue
/// and in order on a FIFO one, and flushes `metrics` when the batch is done.
///
/// A record whose handler fails is reported alone (partial batch response) and logged with its
/// error chain; a batch in which every record failed is an error, so Lambda retries it whole.
pub async fn handle_batch<F, Fut, T, E>(
    event: SqsEvent,
    concurrency: usize,
    metrics: &Metrics,
    handle_message: F,
) -> Result<SqsBatchResponse, Error>
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: StdError + 'static,
{
    let kind = QueueKind::detect(&event, concurrency);
    let handle_message = &handle_message;
    let response = process_sqs(event, kind, |message| async move {
        handle_message(message)
            .await
            .map(|_| ())
            .map_err(|err| error_chain(&err))
    })
    .await;
    metrics.flush();
    Ok(response?)
}

/// What handling one message did, for a consumer that appends events in reaction to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// New events were appended; the type of the one that says what happened.
    Applied(&'static str),
    /// The message was handled before (its dedupe marker exists, or its effect is already
    /// stored): nothing was appended now.
    Duplicate,
    /// Nothing to do for this message.
    Ignored,
}

/// Counts and logs what handling `source` came to, and returns it.
///
/// `Applied` counts `EventsConsumed`; `Duplicate` counts `DuplicatesSkipped`, and so does an
/// append refused by its dedupe marker ([`StoreError::Duplicate`] anywhere in the error's source
/// chain), which becomes `Ok(Duplicate)`: the message was handled before. Other errors and
/// `Ignored` pass through uncounted.
pub fn record<E>(
    metrics: &Metrics,
    source: &Envelope,
    outcome: Result<Outcome, E>,
) -> Result<Outcome, E>
where
    E: StdError + 'static,
{
    match outcome {
        Ok(Outcome::Applied(what)) => {
            metrics.count("EventsConsumed");
            tracing::info!(event_id = %source.id, outcome = what, "applied");
            Ok(Outcome::Applied(what))
        }
        Ok(Outcome::Duplicate) => Ok(skipped(metrics, source)),
        Err(err) if is_marker_taken(&err) => Ok(skipped(metrics, source)),
        other => other,
    }
}

fn skipped(metrics: &Metrics, source: &Envelope) -> Outcome {
    metrics.count("DuplicatesSkipped");
    tracing::info!(event_id = %source.id, "already handled; skipped");
    Outcome::Duplicate
}

/// True when `err`, or one of its sources, is the event store refusing a taken dedupe marker.
fn is_marker_taken(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(StoreError::Duplicate { .. }) = err.downcast_ref::<StoreError>() {
            return true;
        }
        next = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::StreamPosition;
    use serde_json::json;

    #[derive(Debug, thiserror::Error)]
    enum ConsumerError {
        #[error("event store")]
        Store(#[from] StoreError),
        #[error("unreadable message")]
        Parse,
    }

    #[derive(serde::Serialize)]
    #[serde(tag = "type", content = "data")]
    enum Counted {
        #[serde(rename = "thing.counted")]
        Counted,
    }

    fn source() -> Envelope {
        Envelope::encode(
            "test",
            StreamPosition::new("Thing", "t-1", 1),
            &Counted::Counted,
        )
        .unwrap()
    }

    fn counts(metrics: &Metrics) -> serde_json::Value {
        let doc = metrics.take_emf(0).unwrap_or_else(|| json!({}));
        json!([doc["EventsConsumed"], doc["DuplicatesSkipped"]])
    }

    #[test]
    fn applied_and_duplicate_outcomes_are_counted() {
        let metrics = Metrics::new("Test", "consumer");
        let applied = record::<ConsumerError>(&metrics, &source(), Ok(Outcome::Applied("x.done")));
        assert_eq!(applied.unwrap(), Outcome::Applied("x.done"));
        let duplicate = record::<ConsumerError>(&metrics, &source(), Ok(Outcome::Duplicate));
        assert_eq!(duplicate.unwrap(), Outcome::Duplicate);
        let ignored = record::<ConsumerError>(&metrics, &source(), Ok(Outcome::Ignored));
        assert_eq!(ignored.unwrap(), Outcome::Ignored);
        assert_eq!(counts(&metrics), json!([1.0, 1.0]));
    }

    #[test]
    fn a_taken_dedupe_marker_is_a_duplicate_and_other_errors_pass_through() {
        let metrics = Metrics::new("Test", "consumer");
        let taken = StoreError::Duplicate {
            consumer: "c".into(),
            source_event_id: "e-1".into(),
        };
        let outcome = record(&metrics, &source(), Err(ConsumerError::from(taken)));
        assert_eq!(outcome.unwrap(), Outcome::Duplicate);
        let conflict = StoreError::Conflict { stream: "s".into() };
        let outcome = record(&metrics, &source(), Err(ConsumerError::from(conflict)));
        assert!(matches!(
            outcome,
            Err(ConsumerError::Store(StoreError::Conflict { .. }))
        ));
        let outcome = record(&metrics, &source(), Err(ConsumerError::Parse));
        assert!(matches!(outcome, Err(ConsumerError::Parse)));
        assert_eq!(counts(&metrics), json!([null, 1.0]));
    }

    #[tokio::test]
    async fn a_batch_reports_failed_records_and_flushes_the_metrics() {
        let metrics = Metrics::new("Test", "consumer");
        let mut event = SqsEvent::default();
        for id in ["a", "bad", "c"] {
            let mut record = SqsMessage::default();
            record.message_id = Some(id.into());
            event.records.push(record);
        }
        let response = handle_batch(event, 2, &metrics, |message| {
            metrics.count("Seen");
            async move {
                match message.message_id.as_deref() {
                    Some("bad") => Err(ConsumerError::Parse),
                    _ => Ok(Outcome::Ignored),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(response.batch_item_failures.len(), 1);
        assert_eq!(response.batch_item_failures[0].item_identifier, "bad");
        assert!(metrics.take_emf(0).is_none(), "flushed after the batch");
    }
}
