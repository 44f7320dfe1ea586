//! `outbox-publisher`: the events table's stream, published to the domain-events topic.
//!
//! The stream is the outbox: producers only append to the store, and this function is the one
//! place that publishes. Records are published in stream order with `PublishBatch`; the first
//! record that cannot be published (SNS refused it, or its item is corrupt) is reported as the
//! batch item failure, so Lambda retries the shard from exactly there and nothing after it is
//! skipped. After the mapping's retry limit Lambda sends the record to the on-failure destination.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{Error, LambdaEvent};
use ripple_kit::Envelope;
use ripple_kit::batch::stream_failure_at;
use ripple_kit::publish::{Publisher, SnsPublisher};
use ripple_kit::store::envelope_from_stream_image;
use ripple_kit::telemetry::{Metrics, Unit};

ripple_kit::settings! {
    /// Settings, from the variables template.yaml gives this function.
    pub struct Config {
        /// The domain-events topic.
        topic_arn: "TOPIC_ARN",
    }
}

/// The stream handler over a publisher.
pub struct Handler<P = SnsPublisher> {
    publisher: P,
    metrics: Metrics,
}

impl Handler<SnsPublisher> {
    /// The handler publishing to the topic named in `config`.
    pub fn new(config: Config, aws: &aws_config::SdkConfig) -> Self {
        Self::with_publisher(SnsPublisher::new(
            aws_sdk_sns::Client::new(aws),
            config.topic_arn,
        ))
    }
}

/// What a stream record holds for the outbox.
#[derive(Debug)]
enum Outbox {
    /// An event to publish.
    Publish(Box<Envelope>),
    /// Not an event (a dedupe marker, a TTL removal, an update): nothing to do.
    Skip,
    /// An event item that cannot be read: it can only fail.
    Corrupt(String),
}

fn classify(record: &EventRecord) -> Outbox {
    // Events are immutable: only inserts are new events. TTL removes dedupe markers (REMOVE).
    if record.event_name != "INSERT" {
        return Outbox::Skip;
    }
    match envelope_from_stream_image(&record.change.new_image) {
        Ok(Some(envelope)) => Outbox::Publish(Box::new(envelope)),
        Ok(None) => Outbox::Skip,
        Err(err) => Outbox::Corrupt(err.to_string()),
    }
}

impl<P: Publisher> Handler<P> {
    /// The handler over any publisher.
    pub fn with_publisher(publisher: P) -> Self {
        Handler {
            publisher,
            metrics: Metrics::new("Ripple", "outbox-publisher"),
        }
    }

    /// Publishes a batch of stream records; reports the first one that could not be published.
    pub async fn handle(&self, event: LambdaEvent<Event>) -> Result<DynamoDbEventResponse, Error> {
        let records = event.payload.records;
        let mut to_publish: Vec<(usize, Envelope)> = Vec::new();
        let mut first_failed: Option<usize> = None;
        for (index, record) in records.iter().enumerate() {
            match classify(record) {
                Outbox::Publish(envelope) => to_publish.push((index, *envelope)),
                Outbox::Skip => {}
                Outbox::Corrupt(reason) => {
                    tracing::error!(
                        event_id = %record.event_id,
                        sequence = record.change.sequence_number.as_deref().unwrap_or_default(),
                        reason = %reason,
                        "stream record is not a readable event; it goes to the on-failure destination after the retries"
                    );
                    first_failed = Some(index);
                    // Everything after it is retried with it, in order.
                    break;
                }
            }
        }
        let envelopes: Vec<Envelope> = to_publish.iter().map(|(_, e)| e.clone()).collect();
        let report = self.publisher.publish(&envelopes).await;
        for failure in &report.failed {
            tracing::error!(event_id = %failure.event_id, code = %failure.code, reason = %failure.reason, permanent = failure.permanent, "publish failed");
        }
        if let Some((index, _)) = to_publish.iter().find(|(_, e)| report.needs_retry(&e.id)) {
            first_failed = Some(first_failed.map_or(*index, |f| f.min(*index)));
        }
        for envelope in envelopes.iter().filter(|e| !report.needs_retry(&e.id)) {
            let latency_ms = (chrono_now_ms() - envelope.time.timestamp_millis()).max(0);
            tracing::info!(event_id = %envelope.id, r#type = %envelope.event_type, correlation_id = %envelope.correlationid, "published");
            self.metrics
                .add("StoreToTopicLatency", Unit::Milliseconds, latency_ms as f64);
        }
        self.metrics.add(
            "EventsPublished",
            Unit::Count,
            report.published.len() as f64,
        );
        if first_failed.is_some() {
            self.metrics.count("PublishFailures");
        }
        self.metrics.flush();
        Ok(stream_failure_at(&records, first_failed))
    }
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
