//! One shard read from its start position to its end: pages handed to the function batch by
//! batch, a failed batch retried from its first failed record with a backoff (in halves after a
//! failed invocation, with `BisectBatchOnFunctionError`), and a range given up on once the
//! retries are used up or its first record is older than `MaximumRecordAgeInSeconds` (never,
//! with -1 for both: then a record is retried until it passes).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_sdk_dynamodbstreams::error::SdkError;
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::record::{event_record, is_after, stream_outcome};
use super::{StreamError, StreamMapping};
use crate::runtime::{add, filter};

/// Lambda reads each shard about four times a second.
const IDLE_READ_INTERVAL: Duration = Duration::from_millis(250);
const ERROR_PAUSE: Duration = Duration::from_secs(1);
const RETRY_BASE: Duration = Duration::from_millis(100);
/// The longest pause between two tries of a failing batch.
pub(crate) const RETRY_CAP: Duration = Duration::from_secs(1);
/// GetRecords' largest page.
const READ_LIMIT: i32 = 1000;

/// Reads one shard from its start position to its end.
pub(super) struct ShardReader {
    mapping: Arc<StreamMapping>,
    shard_id: String,
    finished: Arc<Mutex<HashSet<String>>>,
}

/// What one pass over a page of records ended with.
enum Pass {
    /// Every record handled; continue with the page's next iterator.
    Done,
    /// Re-read from this sequence number after a pause.
    RetryFrom(String),
}

/// Where a reader stands in its shard.
#[derive(Debug, Default)]
struct Position {
    /// The highest sequence number counted as received.
    counted: Option<String>,
    /// The last sequence number handled.
    done: Option<String>,
    retry: RetryState,
    /// A batch size halved by `BisectBatchOnFunctionError`, until a batch succeeds.
    bisected: Option<usize>,
}

impl ShardReader {
    pub(super) fn new(
        mapping: Arc<StreamMapping>,
        shard_id: &str,
        finished: Arc<Mutex<HashSet<String>>>,
    ) -> Self {
        ShardReader {
            mapping,
            shard_id: shard_id.to_owned(),
            finished,
        }
    }

    pub(super) async fn run(self, start: ShardIteratorType, stop: CancellationToken) {
        let m = &self.mapping;
        let shard = self.shard_id.as_str();
        let mut iterator = self.iterator_or_wait(start.clone(), None, &stop).await;
        let mut position = Position::default();
        loop {
            let Some(current) = iterator.take() else {
                if !stop.is_cancelled() {
                    self.finish();
                }
                return;
            };
            if stop.is_cancelled() {
                return;
            }
            let read_started = Instant::now();
            let read = m
                .streams
                .get_records()
                .shard_iterator(&current)
                .limit(READ_LIMIT)
                .send()
                .await;
            let output = match read {
                Ok(output) => output,
                Err(err) => {
                    let Some((kind, seq)) = self.resume_after(&err, &start, &position, &stop).await
                    else {
                        return;
                    };
                    iterator = self.iterator_or_wait(kind, seq.as_deref(), &stop).await;
                    continue;
                }
            };
            let next = output.next_shard_iterator.clone();
            tracing::trace!(
                shard,
                records = output.records().len(),
                has_next = next.is_some(),
                "GetRecords"
            );
            let records: Vec<EventRecord> = output
                .records()
                .iter()
                .map(|r| event_record(r, &m.stream_arn, &m.region))
                .collect();
            if records.is_empty() {
                if next.is_none() {
                    self.finish();
                    return;
                }
                m.progress.update(|p| {
                    p.shards.insert(shard.to_owned(), Some(read_started));
                });
                iterator = next;
                if pause(IDLE_READ_INTERVAL, &stop).await {
                    return;
                }
                continue;
            }
            m.progress.update(|p| {
                p.shards.insert(shard.to_owned(), None);
            });
            let fresh = self.count_received(&records, &mut position);
            match self.handle_page(&records, &mut position, fresh).await {
                Pass::Done => iterator = next,
                Pass::RetryFrom(seq) => {
                    add(&m.function.stats().stream_retries, 1);
                    if pause(position.retry.backoff(), &stop).await {
                        return;
                    }
                    iterator = self
                        .iterator_or_wait(ShardIteratorType::AtSequenceNumber, Some(&seq), &stop)
                        .await;
                }
            }
        }
    }

    /// Where to read again after GetRecords failed; `None` when the shard is gone (it is
    /// finished) or the mapping stops.
    async fn resume_after(
        &self,
        err: &SdkError<GetRecordsError>,
        start: &ShardIteratorType,
        position: &Position,
        stop: &CancellationToken,
    ) -> Option<(ShardIteratorType, Option<String>)> {
        let shard = self.shard_id.as_str();
        let service = err.as_service_error();
        if service.is_some_and(|e| e.is_resource_not_found_exception()) {
            tracing::warn!(shard, "shard is gone");
            self.finish();
            return None;
        }
        if service.is_some_and(|e| e.is_trimmed_data_access_exception()) {
            tracing::warn!(shard, "records were trimmed before they were read");
            return Some((ShardIteratorType::TrimHorizon, None));
        }
        if !service.is_some_and(|e| e.is_expired_iterator_exception()) {
            tracing::warn!(shard, error = %ripple_kit::telemetry::error_chain(err), "GetRecords failed");
            if pause(ERROR_PAUSE, stop).await {
                return None;
            }
        }
        Some(match &position.done {
            Some(seq) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone())),
            None => (start.clone(), None),
        })
    }

    /// Counts the records of a page not counted before (a retry re-reads some); returns how
    /// many there are.
    fn count_received(&self, records: &[EventRecord], position: &mut Position) -> usize {
        let fresh = records
            .iter()
            .filter(|r| is_after(r, position.counted.as_deref()))
            .count();
        add(&self.mapping.function.stats().stream_received, fresh);
        if let Some(last) = records.last()
            && is_after(last, position.counted.as_deref())
        {
            position.counted = last.change.sequence_number.clone();
        }
        fresh
    }

    /// Hands a page to the function batch by batch.
    async fn handle_page(
        &self,
        records: &[EventRecord],
        position: &mut Position,
        fresh: usize,
    ) -> Pass {
        let m = &self.mapping;
        let stats = m.function.stats();
        let configured = m.source.batch_size.max(1) as usize;
        let batch_size = position.bisected.map_or(configured, |b| b.min(configured));
        let first_fresh = records.len() - fresh;
        for (chunk_index, batch) in records.chunks(batch_size).enumerate() {
            let offset = chunk_index * batch_size;
            let passed = self.passing(batch, offset, first_fresh);
            let last_of_batch = batch.last().and_then(|r| r.change.sequence_number.clone());
            let Some(payload) = payload(&passed) else {
                position.done = last_of_batch;
                continue;
            };
            let seqs: Vec<&str> = passed
                .iter()
                .map(|r| r.change.sequence_number.as_deref().unwrap_or_default())
                .collect();
            let response = m.function.invoke(payload).await;
            let outcome = stream_outcome(
                &seqs,
                response.as_ref(),
                m.source.report_batch_item_failures,
            );
            let Some(failed_at) = outcome else {
                add(&stats.stream_succeeded, passed.len());
                position.retry.reset();
                position.bisected = None;
                position.done = last_of_batch;
                continue;
            };
            add(&stats.stream_succeeded, failed_at);
            let failed_seq = seqs[failed_at].to_owned();
            if failed_at > 0 {
                position.done = Some(seqs[failed_at - 1].to_owned());
            } else if offset > 0 {
                position.done = records[offset - 1].change.sequence_number.clone();
            }
            // A failed invocation (not a reported record) splits the batch, as Lambda does;
            // the split is not a retry attempt.
            if response.is_err() && m.source.bisect_on_function_error && passed.len() > 1 {
                position.bisected = Some(passed.len() / 2);
                tracing::info!(function = %m.function.logical_id, shard = %self.shard_id, batch = passed.len(), "stream batch failed; retrying it in halves");
                return Pass::RetryFrom(failed_seq);
            }
            let attempts = position.retry.failed(&failed_seq);
            let too_old = m.source.maximum_record_age.is_some_and(|max| {
                let age =
                    chrono::Utc::now() - passed[failed_at].change.approximate_creation_date_time;
                age.to_std().is_ok_and(|age| age > max)
            });
            let exhausted = too_old
                || m.source
                    .maximum_retry_attempts
                    .is_some_and(|max| attempts > max);
            if exhausted {
                let rest: Vec<EventRecord> =
                    passed[failed_at..].iter().map(|r| (*r).clone()).collect();
                let error = response
                    .as_ref()
                    .err()
                    .map(|e| ripple_kit::telemetry::error_chain(e));
                m.discard(&self.shard_id, &rest, attempts, error).await;
                position.retry.reset();
                position.done = last_of_batch;
                continue;
            }
            tracing::info!(
                function = %m.function.logical_id,
                shard = %self.shard_id,
                sequence_number = %failed_seq,
                attempt = attempts,
                "stream batch failed; retrying from the first failed record"
            );
            return Pass::RetryFrom(failed_seq);
        }
        Pass::Done
    }

    /// The records of a batch that pass the mapping's filters; those dropped are counted, once
    /// (records before `first_fresh` were counted when first read).
    fn passing<'r>(
        &self,
        batch: &'r [EventRecord],
        offset: usize,
        first_fresh: usize,
    ) -> Vec<&'r EventRecord> {
        let m = &self.mapping;
        let mut passed = Vec::with_capacity(batch.len());
        for (i, record) in batch.iter().enumerate() {
            let view = serde_json::to_value(record).unwrap_or(Value::Null);
            if filter::passes(&m.source.filters, &view) {
                passed.push(record);
            } else if offset + i >= first_fresh {
                add(&m.function.stats().stream_filtered, 1);
            }
        }
        passed
    }

    async fn iterator_or_wait(
        &self,
        kind: ShardIteratorType,
        sequence_number: Option<&str>,
        stop: &CancellationToken,
    ) -> Option<String> {
        loop {
            match self
                .mapping
                .iterator(&self.shard_id, kind.clone(), sequence_number)
                .await
            {
                Ok(iterator) => return iterator,
                Err(StreamError::Gone) => return None,
                Err(StreamError::Other(err)) => {
                    tracing::warn!(shard = %self.shard_id, error = %err, "GetShardIterator failed");
                    if pause(ERROR_PAUSE, stop).await {
                        return None;
                    }
                }
            }
        }
    }

    fn finish(&self) {
        if let Ok(mut done) = self.finished.lock() {
            done.insert(self.shard_id.clone());
        }
        self.mapping.progress.update(|p| {
            p.shards.remove(&self.shard_id);
        });
        tracing::debug!(shard = %self.shard_id, "shard finished");
    }
}

/// The Lambda event for the records that passed, if any.
fn payload(passed: &[&EventRecord]) -> Option<Value> {
    if passed.is_empty() {
        return None;
    }
    let mut event = Event::default();
    event.records = passed.iter().map(|r| (*r).clone()).collect();
    match serde_json::to_value(&event) {
        Ok(payload) => Some(payload),
        Err(err) => {
            tracing::error!(error = %err, "cannot serialise a stream event");
            None
        }
    }
}

/// Failures of the same record in a row.
#[derive(Debug, Default)]
struct RetryState {
    sequence_number: Option<String>,
    failures: u32,
}

impl RetryState {
    /// Counts a failure at `seq`; returns the failures in a row at that record.
    fn failed(&mut self, seq: &str) -> u32 {
        if self.sequence_number.as_deref() == Some(seq) {
            self.failures += 1;
        } else {
            self.sequence_number = Some(seq.to_owned());
            self.failures = 1;
        }
        self.failures
    }

    fn reset(&mut self) {
        *self = RetryState::default();
    }

    fn backoff(&self) -> Duration {
        let exponent = self.failures.saturating_sub(1).min(16);
        (RETRY_BASE * 2u32.pow(exponent)).min(RETRY_CAP)
    }
}

/// Sleeps; true if `stop` was cancelled meanwhile.
async fn pause(duration: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(duration) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_count_per_record() {
        let mut retry = RetryState::default();
        assert_eq!(retry.failed("5"), 1);
        assert_eq!(retry.backoff(), Duration::from_millis(100));
        assert_eq!(retry.failed("5"), 2);
        assert_eq!(retry.backoff(), Duration::from_millis(200));
        for _ in 0..10 {
            retry.failed("5");
        }
        assert_eq!(retry.backoff(), RETRY_CAP);
        assert_eq!(
            retry.failed("6"),
            1,
            "a later checkpoint starts a new count"
        );
    }
}
