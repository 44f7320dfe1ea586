//! Batch processing with partial failures, for SQS (standard and FIFO) and DynamoDB streams.
//!
//! Write the per-record function first, then lift it to a batch here. Each record runs in its
//! own tracing span carrying its message id; a failed record is reported alone
//! (`ReportBatchItemFailures`) so the rest of the batch is not redelivered. Rules:
//! - standard queues: every record is tried; the failed ones are reported;
//! - FIFO queues: order matters, so processing stops at the first failure and every record after
//!   it is reported too (or, with [`FifoMode::SkipFailedGroup`], only the rest of that message group);
//! - streams: the first failure is reported and Lambda retries the shard from there;
//! - a batch in which every record failed is an error, so Lambda retries it whole and backs off;
//! - a batch never runs into its invocation's deadline ([`BatchDeadline`]): records not started
//!   in time, and records still running at the cut-off, are reported as failures, so the partial
//!   response always goes back and only those records are redelivered.
//!
//! Optionally, [`process_sqs_with_backoff`] (or [`Redelivery::delay`] on the failed records) grows
//! each failed record's visibility timeout exponentially with its receive count.

use std::collections::HashSet;
use std::fmt::Display;
use std::future::Future;
use std::time::SystemTime;

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::StreamExt;
use tracing::Instrument;

mod backoff;
mod deadline;
#[cfg(feature = "redelivery-sqs")]
mod redelivery;

pub use backoff::{
    BASE_VARIABLE, CAP_VARIABLE, MAX_VISIBILITY_TIMEOUT, RedeliveryBackoff, receive_count,
};
pub use deadline::{BatchDeadline, DEADLINE_MARGIN, latest_start};
#[cfg(feature = "redelivery-sqs")]
pub use redelivery::{FailedRedelivery, Redelivery, RedeliveryReport, process_sqs_with_backoff};

/// Every record of a batch failed.
#[derive(Debug, thiserror::Error)]
#[error("all {count} records of the batch failed")]
pub struct BatchFailed {
    /// How many records there were.
    pub count: usize,
}

/// How a FIFO batch treats the records after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FifoMode {
    /// Stop at the first failure and report every later record (what SQS FIFO requires to keep order).
    #[default]
    StopAtFirstFailure,
    /// Report only the later records of the failed record's message group; other groups go on.
    SkipFailedGroup,
}

/// The kind of queue a batch comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// A standard queue: records are independent.
    Standard {
        /// How many records run at once.
        concurrency: usize,
    },
    /// A FIFO queue: records of one message group must be handled in order.
    Fifo(FifoMode),
}

impl Default for QueueKind {
    fn default() -> Self {
        QueueKind::Standard { concurrency: 1 }
    }
}

impl QueueKind {
    /// The kind that fits a batch: FIFO when the source queue's ARN ends in `.fifo`.
    pub fn detect(event: &SqsEvent, concurrency: usize) -> Self {
        let fifo = event
            .records
            .first()
            .and_then(|r| r.event_source_arn.as_deref())
            .is_some_and(|arn| arn.ends_with(".fifo"));
        if fifo {
            QueueKind::Fifo(FifoMode::default())
        } else {
            QueueKind::Standard {
                concurrency: concurrency.max(1),
            }
        }
    }
}

fn message_id(record: &SqsMessage) -> String {
    record.message_id.clone().unwrap_or_default()
}

fn message_group(record: &SqsMessage) -> Option<&str> {
    record.attributes.get("MessageGroupId").map(String::as_str)
}

/// Why a record of a batch is reported as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unfinished {
    /// Its handler failed, or it was abandoned at the batch's answer-by time.
    Failed,
    /// It never ran: too late to start, or (FIFO) an earlier record of its group failed.
    NotStarted,
}

/// The records of a batch that were not done, in batch order, with why.
#[derive(Debug, Default)]
pub(crate) struct Processed {
    pub(crate) count: usize,
    pub(crate) unfinished: Vec<(String, Unfinished)>,
}

impl Processed {
    /// The partial batch response, or [`BatchFailed`] when no record was done.
    pub(crate) fn response(&self) -> Result<SqsBatchResponse, BatchFailed> {
        if self.count > 0 && self.unfinished.len() == self.count {
            return Err(BatchFailed { count: self.count });
        }
        let mut response = SqsBatchResponse::default();
        response.set_failures(self.unfinished.iter().map(|(id, _)| id.clone()));
        Ok(response)
    }
}

/// Runs `handler` on one record inside a span carrying its message id, unless it is too late
/// to start it; abandons it at the batch's answer-by time. Logs what went wrong.
async fn run_one<F, Fut, E>(
    handler: &F,
    record: SqsMessage,
    deadline: &BatchDeadline,
) -> Option<Unfinished>
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let id = message_id(&record);
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .cloned()
        .unwrap_or_default();
    let span = tracing::info_span!("record", message_id = %id, receive_count = %receive_count);
    async {
        if deadline.too_late_to_start() {
            tracing::warn!("not started: the invocation is too close to its deadline; it comes back");
            return Some(Unfinished::NotStarted);
        }
        match tokio::time::timeout_at(deadline.answer_by(), handler(record)).await {
            Ok(Ok(())) => None,
            Ok(Err(err)) => {
                tracing::error!(error = %err, "record failed; it will be redelivered, then dead-lettered");
                Some(Unfinished::Failed)
            }
            Err(_) => {
                tracing::error!("record abandoned: still running at the invocation's answer-by time; it comes back");
                Some(Unfinished::Failed)
            }
        }
    }
    .instrument(span)
    .await
}

/// Processes an SQS batch record by record and returns the partial batch response.
///
/// `deadline` is the invocation's (`LambdaEvent::context.deadline()`): no record starts within
/// the [margin](BatchDeadline) before it, a record still running close to it is abandoned, and
/// both are reported as failures, so the response always goes back in time.
pub async fn process_sqs<F, Fut, E>(
    event: SqsEvent,
    kind: QueueKind,
    deadline: SystemTime,
    handler: F,
) -> Result<SqsBatchResponse, BatchFailed>
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    process_records(
        event.records,
        kind,
        &BatchDeadline::of_invocation(deadline),
        handler,
    )
    .await
    .response()
}

/// [`process_sqs`], saying for each record that was not done whether it ran.
pub(crate) async fn process_records<F, Fut, E>(
    records: Vec<SqsMessage>,
    kind: QueueKind,
    deadline: &BatchDeadline,
    handler: F,
) -> Processed
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let count = records.len();
    let unfinished = match kind {
        QueueKind::Standard { concurrency } => {
            let handler = &handler;
            futures::stream::iter(records)
                .map(|record| async move {
                    let id = message_id(&record);
                    (id, run_one(handler, record, deadline).await)
                })
                .buffered(concurrency.max(1))
                .filter_map(|(id, unfinished)| async move { unfinished.map(|u| (id, u)) })
                .collect::<Vec<_>>()
                .await
        }
        QueueKind::Fifo(mode) => process_fifo(records, mode, deadline, &handler).await,
    };
    Processed { count, unfinished }
}

async fn process_fifo<F, Fut, E>(
    records: Vec<SqsMessage>,
    mode: FifoMode,
    deadline: &BatchDeadline,
    handler: &F,
) -> Vec<(String, Unfinished)>
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut unfinished = Vec::new();
    let mut failed_groups: HashSet<String> = HashSet::new();
    let mut stopped = false;
    for record in records {
        let id = message_id(&record);
        let group = message_group(&record).unwrap_or_default().to_owned();
        let skip = stopped || (mode == FifoMode::SkipFailedGroup && failed_groups.contains(&group));
        if skip {
            tracing::warn!(message_id = %id, "not processed: an earlier record of its group failed");
            unfinished.push((id, Unfinished::NotStarted));
            continue;
        }
        let Some(why) = run_one(handler, record, deadline).await else {
            continue;
        };
        unfinished.push((id, why));
        // Out of time is a stop for every group: nothing later may start either.
        match (mode, why) {
            (FifoMode::StopAtFirstFailure, _) | (_, Unfinished::NotStarted) => stopped = true,
            (FifoMode::SkipFailedGroup, Unfinished::Failed) => {
                failed_groups.insert(group);
            }
        }
    }
    unfinished
}

/// Processes DynamoDB stream records in order; the first failure stops the batch and is reported
/// by its sequence number, so Lambda retries the shard from that record and nothing is skipped.
pub async fn process_stream<F, Fut, E>(
    records: Vec<EventRecord>,
    handler: F,
) -> Result<DynamoDbEventResponse, BatchFailed>
where
    F: Fn(EventRecord) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let count = records.len();
    let mut response = DynamoDbEventResponse::default();
    for (index, record) in records.into_iter().enumerate() {
        let sequence = record.change.sequence_number.clone().unwrap_or_default();
        let span = tracing::info_span!("record", event_id = %record.event_id, sequence = %sequence);
        let result = handler(record).instrument(span.clone()).await;
        if let Err(err) = result {
            span.in_scope(|| tracing::error!(error = %err, "stream record failed; the shard is retried from it"));
            if index == 0 && count > 0 {
                return Err(BatchFailed { count });
            }
            response.batch_item_failures.push(item_failure(sequence));
            break;
        }
    }
    Ok(response)
}

fn item_failure(sequence: String) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = Some(sequence);
    failure
}

/// The stream response for a batch whose records up to `first_failed` (exclusive) are done.
pub fn stream_failure_at(
    records: &[EventRecord],
    first_failed: Option<usize>,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    if let Some(record) = first_failed.and_then(|i| records.get(i)) {
        let sequence = record.change.sequence_number.clone().unwrap_or_default();
        response.batch_item_failures.push(item_failure(sequence));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn record(id: &str, group: Option<&str>) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(id.into());
        if let Some(g) = group {
            m.attributes.insert("MessageGroupId".into(), g.into());
        }
        m
    }

    fn batch(records: Vec<SqsMessage>) -> SqsEvent {
        let mut e = SqsEvent::default();
        e.records = records;
        e
    }

    fn failures(r: &SqsBatchResponse) -> Vec<&str> {
        r.batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    /// A deadline the tests never come near.
    fn later() -> SystemTime {
        SystemTime::now() + std::time::Duration::from_secs(60)
    }

    async fn fail_on_bad(m: SqsMessage) -> Result<(), String> {
        match m.body.as_deref() {
            Some(b) if b.starts_with("bad") => Err(format!("{b} is poison")),
            _ => Ok(()),
        }
    }

    #[tokio::test]
    async fn a_poison_record_is_reported_alone() {
        let event = batch(vec![
            record("a", None),
            record("bad-b", None),
            record("c", None),
        ]);
        let r = process_sqs(
            event,
            QueueKind::Standard { concurrency: 2 },
            later(),
            fail_on_bad,
        )
        .await
        .unwrap();
        assert_eq!(failures(&r), vec!["bad-b"]);
    }

    #[tokio::test]
    async fn a_batch_that_fails_whole_is_an_error() {
        let event = batch(vec![record("bad-1", None), record("bad-2", None)]);
        let err = process_sqs(event, QueueKind::default(), later(), fail_on_bad)
            .await
            .unwrap_err();
        assert_eq!(err.count, 2);
    }

    #[tokio::test]
    async fn fifo_stops_at_the_first_failure_and_reports_the_rest() {
        let seen = Mutex::new(Vec::new());
        let event = batch(vec![
            record("a", Some("g1")),
            record("bad-b", Some("g1")),
            record("c", Some("g2")),
            record("d", Some("g1")),
        ]);
        let r = process_sqs(
            event,
            QueueKind::Fifo(FifoMode::StopAtFirstFailure),
            later(),
            |m| {
                seen.lock().unwrap().push(m.message_id.clone().unwrap());
                fail_on_bad(m)
            },
        )
        .await
        .unwrap();
        assert_eq!(failures(&r), vec!["bad-b", "c", "d"]);
        assert_eq!(*seen.lock().unwrap(), vec!["a", "bad-b"]);
    }

    #[tokio::test]
    async fn fifo_can_skip_only_the_failed_group() {
        let event = batch(vec![
            record("bad-a", Some("g1")),
            record("b", Some("g2")),
            record("c", Some("g1")),
        ]);
        let r = process_sqs(
            event,
            QueueKind::Fifo(FifoMode::SkipFailedGroup),
            later(),
            fail_on_bad,
        )
        .await
        .unwrap();
        assert_eq!(failures(&r), vec!["bad-a", "c"]);
    }

    #[test]
    fn fifo_is_detected_from_the_queue_arn() {
        let mut r = record("a", None);
        r.event_source_arn = Some("arn:aws:sqs:us-east-1:1:q.fifo".into());
        assert_eq!(
            QueueKind::detect(&batch(vec![r]), 4),
            QueueKind::Fifo(FifoMode::StopAtFirstFailure)
        );
        assert_eq!(
            QueueKind::detect(&batch(vec![record("b", None)]), 4),
            QueueKind::Standard { concurrency: 4 }
        );
    }

    /// Records named `slow` never finish; the rest finish at once.
    async fn slow_never_finishes(seen: &Mutex<Vec<String>>, m: SqsMessage) -> Result<(), String> {
        let id = m.message_id.clone().unwrap();
        seen.lock().unwrap().push(id.clone());
        if id.starts_with("slow") {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    /// A deadline 600 ms away with a 400 ms margin: nothing starts after 200 ms, and what runs
    /// at 400 ms is abandoned.
    fn soon() -> BatchDeadline {
        BatchDeadline::with_margin(
            std::time::Duration::from_millis(600),
            std::time::Duration::from_millis(400),
        )
    }

    #[tokio::test]
    async fn a_record_running_at_the_cut_off_is_abandoned_and_the_rest_never_start() {
        let seen = Mutex::new(Vec::new());
        let deadline = soon();
        let records = vec![record("a", None), record("slow-b", None), record("c", None)];
        let processed = process_records(records, QueueKind::default(), &deadline, |m| {
            slow_never_finishes(&seen, m)
        })
        .await;
        assert!(
            tokio::time::Instant::now() >= deadline.answer_by(),
            "returned only once the slow record was given up"
        );
        assert_eq!(
            processed.unfinished,
            vec![
                ("slow-b".to_owned(), Unfinished::Failed),
                ("c".to_owned(), Unfinished::NotStarted)
            ]
        );
        assert_eq!(*seen.lock().unwrap(), vec!["a", "slow-b"], "c never ran");
        assert_eq!(
            failures(&processed.response().unwrap()),
            vec!["slow-b", "c"]
        );
    }

    #[tokio::test]
    async fn concurrent_records_are_all_answered_by_the_cut_off() {
        let seen = Mutex::new(Vec::new());
        let records = vec![
            record("slow-a", None),
            record("b", None),
            record("slow-c", None),
        ];
        let kind = QueueKind::Standard { concurrency: 3 };
        let processed =
            process_records(records, kind, &soon(), |m| slow_never_finishes(&seen, m)).await;
        let failed: Vec<_> = processed
            .unfinished
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(failed, vec!["slow-a", "slow-c"]);
        assert_eq!(seen.lock().unwrap().len(), 3, "all three started together");
    }

    #[tokio::test]
    async fn fifo_stops_at_the_cut_off_and_reports_every_later_record() {
        let seen = Mutex::new(Vec::new());
        let records = vec![
            record("a", Some("g1")),
            record("slow-b", Some("g2")),
            record("c", Some("g3")),
        ];
        let kind = QueueKind::Fifo(FifoMode::SkipFailedGroup);
        let processed =
            process_records(records, kind, &soon(), |m| slow_never_finishes(&seen, m)).await;
        assert_eq!(
            processed.unfinished,
            vec![
                ("slow-b".to_owned(), Unfinished::Failed),
                ("c".to_owned(), Unfinished::NotStarted)
            ],
            "another group does not start after the cut-off either"
        );
    }

    #[tokio::test]
    async fn a_batch_that_ran_out_of_time_whole_is_an_error() {
        let deadline = BatchDeadline::with_margin(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(1),
        );
        let processed = process_records(
            vec![record("a", None), record("b", None)],
            QueueKind::default(),
            &deadline,
            fail_on_bad,
        )
        .await;
        assert_eq!(processed.response().unwrap_err().count, 2);
    }

    fn stream_record(seq: &str) -> EventRecord {
        let mut r = EventRecord::default();
        r.event_id = format!("e-{seq}");
        r.change.sequence_number = Some(seq.into());
        r
    }

    #[tokio::test]
    async fn stream_reports_the_first_failure_and_stops() {
        let seen = Mutex::new(Vec::new());
        let records = vec![stream_record("1"), stream_record("2"), stream_record("3")];
        let r = process_stream(records, |rec| {
            seen.lock().unwrap().push(rec.event_id.clone());
            async move {
                if rec.event_id == "e-2" {
                    Err("boom")
                } else {
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(r.batch_item_failures.len(), 1);
        assert_eq!(
            r.batch_item_failures[0].item_identifier.as_deref(),
            Some("2")
        );
        assert_eq!(*seen.lock().unwrap(), vec!["e-1", "e-2"]);
    }

    #[test]
    fn stream_failure_at_names_the_record() {
        let records = vec![stream_record("10"), stream_record("11")];
        assert!(
            stream_failure_at(&records, None)
                .batch_item_failures
                .is_empty()
        );
        let r = stream_failure_at(&records, Some(1));
        assert_eq!(
            r.batch_item_failures[0].item_identifier.as_deref(),
            Some("11")
        );
    }
}
