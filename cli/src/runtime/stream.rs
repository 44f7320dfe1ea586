//! The DynamoDB stream event source mapping: read every shard in order, invoke with a Lambda
//! DynamoDB `Event`, retry from the first failed record (bisecting a batch whose invocation
//! failed, with `BisectBatchOnFunctionError`), give up after `MaximumRetryAttempts` or
//! `MaximumRecordAgeInSeconds` (never, when both are -1).
//!
//! Shards are found with DescribeStream (again every second, so that new and child shards are
//! picked up) and a child is read only once its parent is finished, which keeps per-item order.
//! A failing batch is retried from the first failed sequence number (`AT_SEQUENCE_NUMBER`), so
//! records before it are never handed over twice; once the retries are used up the range is
//! reported to the on-failure destination, in Lambda's invocation-record format, and the shard
//! moves on.
//!
//! Shard discovery is here; reading one shard is in `shard`, and the record format and Lambda's
//! reading of a batch response in `record`.

mod record;
mod shard;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
use aws_sdk_dynamodbstreams::types::{Shard, ShardIteratorType};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{LocalFunction, add};
use crate::template::{StartingPosition, StreamSource};

pub use record::{compare_sequence_numbers, event_record, stream_outcome};
pub(crate) use shard::RETRY_CAP;
use shard::ShardReader;

const DISCOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// How far a mapping has read, for deciding when the pipeline is quiet.
#[derive(Debug, Default)]
pub struct Progress {
    inner: Mutex<ProgressInner>,
}

#[derive(Debug, Default)]
pub(super) struct ProgressInner {
    pub(super) discovered_at: Option<Instant>,
    /// Open shards being read, with when their last empty read started (None: behind).
    pub(super) shards: HashMap<String, Option<Instant>>,
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

    pub(super) fn update(&self, f: impl FnOnce(&mut ProgressInner)) {
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
        let mut discovery = Discovery {
            finished: Arc::default(),
            tracked: HashMap::new(),
            first_listing: true,
        };
        loop {
            let listed_at = Instant::now();
            match mapping.shards().await {
                Ok(shards) => {
                    discovery.start_readers(&mapping, &shards, &stop);
                    mapping
                        .progress
                        .update(|p| p.discovered_at = Some(listed_at));
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
        for (_, task) in discovery.tracked {
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

    pub(super) async fn iterator(
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
    pub(super) async fn discard(
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

/// The shards of one mapping: those being read, and those read to their end.
struct Discovery {
    finished: Arc<Mutex<HashSet<String>>>,
    tracked: HashMap<String, JoinHandle<()>>,
    first_listing: bool,
}

impl Discovery {
    /// Starts a reader for every listed shard not read yet whose parent is finished.
    fn start_readers(
        &mut self,
        mapping: &Arc<StreamMapping>,
        shards: &[Shard],
        stop: &CancellationToken,
    ) {
        let listed: HashSet<&str> = shards.iter().filter_map(Shard::shard_id).collect();
        for shard in shards {
            let Some(id) = shard.shard_id() else { continue };
            if self.tracked.contains_key(id) {
                continue;
            }
            let closed = shard
                .sequence_number_range()
                .and_then(|r| r.ending_sequence_number())
                .is_some();
            let position = if self.first_listing {
                mapping.source.starting_position
            } else {
                // A shard that appears later holds only new records: all of them count.
                StartingPosition::TrimHorizon
            };
            if position == StartingPosition::Latest && closed {
                // LATEST skips what was written before the mapping existed.
                if let Ok(mut done) = self.finished.lock() {
                    done.insert(id.to_owned());
                }
                self.tracked.insert(id.to_owned(), tokio::spawn(async {}));
                continue;
            }
            // A child waits for its parent, so that an item's changes stay in order.
            let parent_pending = shard.parent_shard_id().is_some_and(|parent| {
                listed.contains(parent)
                    && !self.finished.lock().is_ok_and(|done| done.contains(parent))
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
            let reader = ShardReader::new(mapping.clone(), id, self.finished.clone());
            self.tracked.insert(
                id.to_owned(),
                tokio::spawn(reader.run(iterator_type, stop.clone())),
            );
        }
        self.first_listing = false;
    }
}

pub(super) enum StreamError {
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
