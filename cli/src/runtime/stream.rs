//! The DynamoDB stream event source mapping: read every shard in order, invoke with a Lambda
//! DynamoDB `Event`, retry from the first failed record, give up after `MaximumRetryAttempts`.
//!
//! Shards are found with DescribeStream (again every second, so that new and child shards are
//! picked up) and a child is read only once its parent is finished, which keeps per-item order.
//! A failing batch is retried from the first failed sequence number (`AT_SEQUENCE_NUMBER`), so
//! records before it are never handed over twice; once the retries are used up the range is
//! reported to the on-failure destination, in Lambda's invocation-record format, and the shard
//! moves on.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::{Event, EventRecord, StreamViewType, UserIdentity};
use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
use aws_sdk_dynamodbstreams::types::{Record, Shard, ShardIteratorType};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{InvokeError, LocalFunction, add, filter};
use crate::template::{StartingPosition, StreamSource};

const DISCOVERY_INTERVAL: Duration = Duration::from_secs(1);
/// Lambda reads each shard about four times a second.
const IDLE_READ_INTERVAL: Duration = Duration::from_millis(250);
const ERROR_PAUSE: Duration = Duration::from_secs(1);
const RETRY_BASE: Duration = Duration::from_millis(100);
const RETRY_CAP: Duration = Duration::from_secs(1);
/// GetRecords' largest page.
const READ_LIMIT: i32 = 1000;

/// How far a mapping has read, for deciding when the pipeline is quiet.
#[derive(Debug, Default)]
pub struct Progress {
    inner: Mutex<ProgressInner>,
}

#[derive(Debug, Default)]
struct ProgressInner {
    discovered_at: Option<Instant>,
    /// Open shards being read, with when their last empty read started (None: behind).
    shards: HashMap<String, Option<Instant>>,
}

impl Progress {
    /// Whether shards were listed, and every shard being read came up empty, after `since`.
    pub fn caught_up_since(&self, since: Instant) -> bool {
        let Ok(inner) = self.inner.lock() else {
            return false;
        };
        inner.discovered_at.is_some_and(|t| t >= since)
            && inner
                .shards
                .values()
                .all(|caught_up| caught_up.is_some_and(|t| t >= since))
    }

    fn update(&self, f: impl FnOnce(&mut ProgressInner)) {
        if let Ok(mut inner) = self.inner.lock() {
            f(&mut inner);
        }
    }
}

/// One DynamoDB stream event source mapping.
pub struct StreamMapping {
    /// Streams client.
    pub streams: aws_sdk_dynamodbstreams::Client,
    /// SQS client, for the on-failure destination.
    pub sqs: aws_sdk_sqs::Client,
    /// The function invoked.
    pub function: Arc<LocalFunction>,
    /// The stream.
    pub stream_arn: String,
    /// The region (the records' `awsRegion`).
    pub region: String,
    /// The mapping's settings.
    pub source: StreamSource,
    /// URL of the on-failure destination queue.
    pub on_failure: Option<String>,
    /// Shared progress.
    pub progress: Arc<Progress>,
}

impl StreamMapping {
    /// Reads until `stop` is cancelled; a batch being handled is finished first.
    pub async fn run(self, stop: CancellationToken) {
        let mapping = Arc::new(self);
        let finished: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut tracked: HashMap<String, JoinHandle<()>> = HashMap::new();
        let mut first_listing = true;
        loop {
            let listed_at = Instant::now();
            match mapping.shards().await {
                Ok(shards) => {
                    let listed: HashSet<&str> = shards.iter().filter_map(Shard::shard_id).collect();
                    for shard in &shards {
                        let Some(id) = shard.shard_id() else { continue };
                        if tracked.contains_key(id) {
                            continue;
                        }
                        let closed = shard
                            .sequence_number_range()
                            .and_then(|r| r.ending_sequence_number())
                            .is_some();
                        let position = if first_listing {
                            mapping.source.starting_position
                        } else {
                            // A shard that appears later holds only new records: all of them count.
                            StartingPosition::TrimHorizon
                        };
                        if position == StartingPosition::Latest && closed {
                            // LATEST skips what was written before the mapping existed.
                            if let Ok(mut done) = finished.lock() {
                                done.insert(id.to_owned());
                            }
                            tracked.insert(id.to_owned(), tokio::spawn(async {}));
                            continue;
                        }
                        // A child waits for its parent, so that an item's changes stay in order.
                        let parent_pending = shard.parent_shard_id().is_some_and(|parent| {
                            listed.contains(parent)
                                && !finished.lock().is_ok_and(|done| done.contains(parent))
                        });
                        if parent_pending {
                            continue;
                        }
                        let iterator_type = match position {
                            StartingPosition::TrimHorizon => ShardIteratorType::TrimHorizon,
                            StartingPosition::Latest => ShardIteratorType::Latest,
                        };
                        mapping.progress.update(|p| {
                            p.shards.insert(id.to_owned(), None);
                        });
                        let reader = ShardReader {
                            mapping: mapping.clone(),
                            shard_id: id.to_owned(),
                            finished: finished.clone(),
                        };
                        tracked.insert(
                            id.to_owned(),
                            tokio::spawn(reader.run(iterator_type, stop.clone())),
                        );
                    }
                    mapping
                        .progress
                        .update(|p| p.discovered_at = Some(listed_at));
                    first_listing = false;
                }
                Err(StreamError::Gone) => {
                    tracing::warn!(stream = %mapping.stream_arn, "stream is gone; reading stops");
                    break;
                }
                Err(StreamError::Other(err)) => {
                    tracing::warn!(stream = %mapping.stream_arn, error = %err, "DescribeStream failed");
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(DISCOVERY_INTERVAL) => {}
            }
        }
        for (_, task) in tracked {
            let _ = task.await;
        }
    }

    async fn shards(&self) -> Result<Vec<Shard>, StreamError> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let output = self
                .streams
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| StreamError::from_sdk(&e))?;
            let Some(description) = output.stream_description else {
                return Ok(shards);
            };
            start = description.last_evaluated_shard_id.clone();
            shards.extend(description.shards.unwrap_or_default());
            if start.is_none() {
                return Ok(shards);
            }
        }
    }

    async fn iterator(
        &self,
        shard_id: &str,
        kind: ShardIteratorType,
        sequence_number: Option<&str>,
    ) -> Result<Option<String>, StreamError> {
        let output = self
            .streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard_id)
            .shard_iterator_type(kind)
            .set_sequence_number(sequence_number.map(str::to_owned))
            .send()
            .await
            .map_err(|e| StreamError::from_sdk(&e))?;
        Ok(output.shard_iterator)
    }

    /// Reports a range given up on, as Lambda's on-failure invocation record.
    async fn discard(
        &self,
        shard_id: &str,
        records: &[EventRecord],
        invoke_count: u32,
        error: Option<String>,
    ) {
        let first = records.first();
        let last = records.last();
        let arrival = |r: Option<&EventRecord>| {
            r.map(|r| {
                r.change
                    .approximate_creation_date_time
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            })
        };
        let record = json!({
            "requestContext": {
                "requestId": uuid::Uuid::new_v4().to_string(),
                "functionArn": self.function.arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invoke_count,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": error.as_ref().map_or("BatchItemFailure", |_| "Unhandled"),
            },
            "version": "1.0",
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": first.and_then(|r| r.change.sequence_number.clone()),
                "endSequenceNumber": last.and_then(|r| r.change.sequence_number.clone()),
                "approximateArrivalOfFirstRecord": arrival(first),
                "approximateArrivalOfLastRecord": arrival(last),
                "batchSize": records.len(),
                "streamArn": self.stream_arn,
            },
        });
        add(&self.function.stats().stream_discarded, records.len());
        tracing::error!(
            function = %self.function.logical_id,
            shard = shard_id,
            records = records.len(),
            start = ?first.and_then(|r| r.change.sequence_number.as_deref()),
            end = ?last.and_then(|r| r.change.sequence_number.as_deref()),
            error = ?error,
            "RETRIES EXHAUSTED: stream records sent to the on-failure destination and skipped"
        );
        let Some(url) = &self.on_failure else {
            tracing::error!(function = %self.function.logical_id, "no on-failure destination: the records are dropped");
            return;
        };
        if let Err(err) = self
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(record.to_string())
            .send()
            .await
        {
            tracing::error!(error = %ripple_kit::telemetry::error_chain(&err), "cannot write to the on-failure destination");
        }
    }
}

enum StreamError {
    Gone,
    Other(String),
}

impl StreamError {
    /// `Gone` when the stream or shard no longer exists; otherwise the error's chain.
    fn from_sdk<E>(err: &E) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        if err.code() == Some("ResourceNotFoundException") {
            StreamError::Gone
        } else {
            StreamError::Other(ripple_kit::telemetry::error_chain(err))
        }
    }
}

/// Reads one shard from its start position to its end.
struct ShardReader {
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

impl ShardReader {
    async fn run(self, start: ShardIteratorType, stop: CancellationToken) {
        let m = &self.mapping;
        let shard = self.shard_id.as_str();
        let mut iterator = self.iterator_or_wait(start.clone(), None, &stop).await;
        // The highest sequence number counted as received, and the last one handled.
        let mut counted: Option<String> = None;
        let mut done: Option<String> = None;
        let mut retry = RetryState::default();
        loop {
            let Some(current) = iterator.take() else {
                if stop.is_cancelled() {
                    return;
                }
                self.finish();
                return;
            };
            if stop.is_cancelled() {
                return;
            }
            let read_started = Instant::now();
            let output = m
                .streams
                .get_records()
                .shard_iterator(&current)
                .limit(READ_LIMIT)
                .send()
                .await;
            let output = match output {
                Ok(output) => output,
                Err(err) => {
                    let service = err.as_service_error();
                    if service.is_some_and(|e| e.is_resource_not_found_exception()) {
                        tracing::warn!(shard, "shard is gone");
                        self.finish();
                        return;
                    }
                    let resume = if service.is_some_and(|e| e.is_trimmed_data_access_exception()) {
                        tracing::warn!(shard, "records were trimmed before they were read");
                        (ShardIteratorType::TrimHorizon, None)
                    } else {
                        if !service.is_some_and(|e| e.is_expired_iterator_exception()) {
                            tracing::warn!(shard, error = %ripple_kit::telemetry::error_chain(&err), "GetRecords failed");
                            if pause(ERROR_PAUSE, &stop).await {
                                return;
                            }
                        }
                        match &done {
                            Some(seq) => {
                                (ShardIteratorType::AfterSequenceNumber, Some(seq.clone()))
                            }
                            None => (start.clone(), None),
                        }
                    };
                    iterator = self
                        .iterator_or_wait(resume.0, resume.1.as_deref(), &stop)
                        .await;
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
            let fresh = records
                .iter()
                .filter(|r| is_after(r, counted.as_deref()))
                .count();
            add(&m.function.stats().stream_received, fresh);
            if let Some(last) = records.last()
                && is_after(last, counted.as_deref())
            {
                counted = last.change.sequence_number.clone();
            }
            match self
                .handle_page(&records, &mut retry, &mut done, fresh)
                .await
            {
                Pass::Done => iterator = next,
                Pass::RetryFrom(seq) => {
                    add(&m.function.stats().stream_retries, 1);
                    if pause(retry.backoff(), &stop).await {
                        return;
                    }
                    iterator = self
                        .iterator_or_wait(ShardIteratorType::AtSequenceNumber, Some(&seq), &stop)
                        .await;
                }
            }
        }
    }

    /// Hands a page to the function batch by batch.
    async fn handle_page(
        &self,
        records: &[EventRecord],
        retry: &mut RetryState,
        done: &mut Option<String>,
        fresh: usize,
    ) -> Pass {
        let m = &self.mapping;
        let stats = m.function.stats();
        let batch_size = m.source.batch_size.max(1) as usize;
        let first_fresh = records.len() - fresh;
        for (chunk_index, batch) in records.chunks(batch_size).enumerate() {
            let offset = chunk_index * batch_size;
            let mut passed: Vec<&EventRecord> = Vec::with_capacity(batch.len());
            for (i, record) in batch.iter().enumerate() {
                let view = serde_json::to_value(record).unwrap_or(Value::Null);
                if filter::passes(&m.source.filters, &view) {
                    passed.push(record);
                } else if offset + i >= first_fresh {
                    // Counted once, not again when a retry re-reads it.
                    add(&stats.stream_filtered, 1);
                }
            }
            let last_of_batch = batch.last().and_then(|r| r.change.sequence_number.clone());
            if passed.is_empty() {
                *done = last_of_batch;
                continue;
            }
            let mut event = Event::default();
            event.records = passed.iter().map(|r| (*r).clone()).collect();
            let payload = match serde_json::to_value(&event) {
                Ok(payload) => payload,
                Err(err) => {
                    tracing::error!(error = %err, "cannot serialise a stream event");
                    *done = last_of_batch;
                    continue;
                }
            };
            let seqs: Vec<&str> = passed
                .iter()
                .map(|r| r.change.sequence_number.as_deref().unwrap_or_default())
                .collect();
            let response = m.function.invoke(payload).await;
            let failed_at = match stream_outcome(
                &seqs,
                response.as_ref(),
                m.source.report_batch_item_failures,
            ) {
                None => {
                    add(&stats.stream_succeeded, passed.len());
                    retry.reset();
                    *done = last_of_batch;
                    continue;
                }
                Some(index) => index,
            };
            add(&stats.stream_succeeded, failed_at);
            let failed_seq = seqs[failed_at].to_owned();
            if failed_at > 0 {
                *done = Some(seqs[failed_at - 1].to_owned());
            } else if offset > 0 {
                *done = records[offset - 1].change.sequence_number.clone();
            }
            let attempts = retry.failed(&failed_seq);
            let exhausted = m
                .source
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
                retry.reset();
                *done = last_of_batch;
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

/// Orders DynamoDB sequence numbers (decimal strings of varying length).
pub fn compare_sequence_numbers(a: &str, b: &str) -> CmpOrdering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn is_after(record: &EventRecord, seq: Option<&str>) -> bool {
    match (record.change.sequence_number.as_deref(), seq) {
        (_, None) => true,
        (Some(own), Some(seq)) => compare_sequence_numbers(own, seq) == CmpOrdering::Greater,
        (None, Some(_)) => false,
    }
}

/// Reads a stream batch response the way Lambda does: `None` if the batch succeeded, else the
/// index of the record to retry from. With `ReportBatchItemFailures` the lowest reported
/// sequence number is the checkpoint; an invalid item identifier retries the whole batch.
pub fn stream_outcome(
    sequence_numbers: &[&str],
    response: Result<&Value, &InvokeError>,
    report_batch_item_failures: bool,
) -> Option<usize> {
    let response = match response {
        Err(_) => return Some(0),
        Ok(_) if !report_batch_item_failures => return None,
        Ok(response) => response,
    };
    let failures = match response {
        Value::Null => return None,
        Value::Object(fields) => match fields.get("batchItemFailures") {
            None | Some(Value::Null) => return None,
            Some(Value::Array(failures)) => failures,
            Some(_) => return Some(0),
        },
        _ => return Some(0),
    };
    let mut lowest: Option<usize> = None;
    for failure in failures {
        let position = failure
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .and_then(|id| sequence_numbers.iter().position(|s| *s == id));
        match position {
            Some(index) => lowest = Some(lowest.map_or(index, |l| l.min(index))),
            None => return Some(0),
        }
    }
    lowest
}

/// A stream record as Lambda's DynamoDB event carries it.
pub fn event_record(record: &Record, stream_arn: &str, region: &str) -> EventRecord {
    let mut out = EventRecord::default();
    out.event_id = record.event_id().unwrap_or_default().to_owned();
    out.event_name = record
        .event_name()
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    out.event_version = Some(record.event_version().unwrap_or("1.1").to_owned());
    out.event_source = Some("aws:dynamodb".to_owned());
    // DynamoDB Local reports "ddblocal"; Lambda reports the table's region.
    out.aws_region = region.to_owned();
    out.event_source_arn = Some(stream_arn.to_owned());
    if let Some(identity) = record.user_identity() {
        let mut user = UserIdentity::default();
        user.type_ = identity.r#type().unwrap_or_default().to_owned();
        user.principal_id = identity.principal_id().unwrap_or_default().to_owned();
        out.user_identity = Some(user);
    }
    if let Some(change) = record.dynamodb() {
        let item = |image: Option<
            &HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
        >| { serde_dynamo::Item::from(image.cloned().unwrap_or_default()) };
        if let Some(time) = change.approximate_creation_date_time()
            && let Some(time) = chrono::DateTime::from_timestamp(time.secs(), time.subsec_nanos())
        {
            out.change.approximate_creation_date_time = time;
        }
        out.change.keys = item(change.keys());
        out.change.new_image = item(change.new_image());
        out.change.old_image = item(change.old_image());
        out.change.sequence_number = change.sequence_number().map(str::to_owned);
        out.change.size_bytes = change.size_bytes().unwrap_or_default();
        out.change.stream_view_type = change.stream_view_type().and_then(|v| {
            serde_json::from_value::<StreamViewType>(Value::String(v.as_str().to_owned())).ok()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, StreamRecord};
    use aws_smithy_types::DateTime;

    fn record(seq: &str, kind: &str) -> Record {
        Record::builder()
            .event_id(format!("id-{seq}"))
            .event_name(OperationType::Insert)
            .event_version("1.1")
            .event_source("aws:dynamodb")
            .aws_region("ddblocal")
            .dynamodb(
                StreamRecord::builder()
                    .approximate_creation_date_time(DateTime::from_secs(1_700_000_000))
                    .keys("pk", AttributeValue::S("Order#1".into()))
                    .keys("sk", AttributeValue::N("1".into()))
                    .new_image("pk", AttributeValue::S("Order#1".into()))
                    .new_image("sk", AttributeValue::N("1".into()))
                    .new_image("kind", AttributeValue::S(kind.into()))
                    .new_image("envelope", AttributeValue::S("{}".into()))
                    .sequence_number(seq)
                    .size_bytes(42)
                    .stream_view_type(aws_sdk_dynamodbstreams::types::StreamViewType::NewImage)
                    .build(),
            )
            .build()
    }

    #[test]
    fn records_have_lambdas_shape_and_round_trip_through_the_event_type() {
        let arn = "arn:aws:dynamodb:ddblocal:000000000000:table/t-events/stream/2026";
        let converted = event_record(&record("000100", "event"), arn, "us-east-1");
        let mut event = Event::default();
        event.records = vec![converted];
        let json = serde_json::to_value(&event).unwrap();
        let r = &json["Records"][0];
        assert_eq!(r["eventID"], "id-000100");
        assert_eq!(r["eventName"], "INSERT");
        assert_eq!(r["eventVersion"], "1.1");
        assert_eq!(r["eventSource"], "aws:dynamodb");
        assert_eq!(r["awsRegion"], "us-east-1");
        assert_eq!(r["eventSourceARN"], arn);
        assert_eq!(
            r["dynamodb"]["ApproximateCreationDateTime"],
            1_700_000_000.0
        );
        assert_eq!(r["dynamodb"]["Keys"]["pk"], json!({"S": "Order#1"}));
        assert_eq!(r["dynamodb"]["NewImage"]["sk"], json!({"N": "1"}));
        assert_eq!(r["dynamodb"]["SequenceNumber"], "000100");
        assert_eq!(r["dynamodb"]["SizeBytes"], 42);
        assert_eq!(r["dynamodb"]["StreamViewType"], "NEW_IMAGE");
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn the_outbox_filter_sees_the_record_as_lambda_does() {
        let pattern: Value = serde_json::from_str(
            r#"{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"kind": {"S": ["event"]}}}}"#,
        )
        .unwrap();
        let as_json =
            |kind| serde_json::to_value(event_record(&record("1", kind), "arn", "r")).unwrap();
        assert!(filter::passes(
            std::slice::from_ref(&pattern),
            &as_json("event")
        ));
        assert!(!filter::passes(&[pattern], &as_json("dedupe")));
    }

    #[test]
    fn stream_outcomes_checkpoint_at_the_lowest_failure() {
        let seqs = ["100", "200", "300"];
        let ok = |v: Value| stream_outcome(&seqs, Ok(&v), true);
        assert_eq!(ok(Value::Null), None);
        assert_eq!(ok(json!({"batchItemFailures": []})), None);
        assert_eq!(
            ok(json!({"batchItemFailures": [{"itemIdentifier": "200"}]})),
            Some(1)
        );
        assert_eq!(
            ok(
                json!({"batchItemFailures": [{"itemIdentifier": "300"}, {"itemIdentifier": "200"}]})
            ),
            Some(1)
        );
        assert_eq!(
            ok(json!({"batchItemFailures": [{"itemIdentifier": "999"}]})),
            Some(0)
        );
        assert_eq!(
            ok(json!({"batchItemFailures": [{"itemIdentifier": ""}]})),
            Some(0)
        );
        assert_eq!(ok(json!(42)), Some(0));
        let err = InvokeError::Panicked {
            function: "f".into(),
            message: "boom".into(),
        };
        assert_eq!(stream_outcome(&seqs, Err(&err), true), Some(0));
        let v = json!({"batchItemFailures": [{"itemIdentifier": "200"}]});
        assert_eq!(stream_outcome(&seqs, Ok(&v), false), None);
    }

    #[test]
    fn sequence_numbers_compare_numerically() {
        assert_eq!(compare_sequence_numbers("99", "100"), CmpOrdering::Less);
        assert_eq!(compare_sequence_numbers("200", "100"), CmpOrdering::Greater);
        assert_eq!(compare_sequence_numbers("100", "100"), CmpOrdering::Equal);
    }

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
