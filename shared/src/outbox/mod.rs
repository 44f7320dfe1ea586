//! The outbox: an event store's DynamoDB stream, published to a topic.
//!
//! Producers only append to the store; the table's stream (view type `NEW_IMAGE`) is the outbox,
//! and [`Outbox`] is the one place that publishes. Records are published in stream order with a
//! [`Publisher`]; the first record that cannot be published (the topic refused it, or its item is
//! not a readable event) is reported as the batch item failure, so Lambda retries the shard from
//! exactly there and nothing after it is skipped.
//!
//! ```
//! use aws_lambda_events::event::dynamodb::Event;
//! use lambda_runtime::{Context, LambdaEvent};
//! use ripple_kit::outbox::Outbox;
//! use ripple_kit::publish::{PublishReport, Publisher};
//! use ripple_kit::Envelope;
//!
//! struct Printer; // SnsPublisher::new(client, topic_arn) in Lambda
//! impl Publisher for Printer {
//!     async fn publish(&self, events: &[Envelope]) -> PublishReport {
//!         PublishReport { published: events.iter().map(|e| e.id.clone()).collect(), ..Default::default() }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), lambda_runtime::Error> {
//! let outbox = Outbox::new(Printer);
//! let response = outbox.handle(LambdaEvent::new(Event::default(), Context::default())).await?;
//! assert!(response.batch_item_failures.is_empty());
//! # Ok(())
//! # }
//! ```

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::LambdaEvent;

use crate::batch::stream_failure_at;
use crate::envelope::{Envelope, EnvelopeError};
use crate::publish::Publisher;
use crate::store::{KIND_EVENT, attr};
use crate::telemetry::{Metrics, Unit, metrics_namespace};

/// The stream handler that publishes an event store's new events.
pub struct Outbox<P> {
    publisher: P,
    metrics: Metrics,
}

/// What a stream record holds for the outbox.
#[derive(Debug)]
enum Record {
    /// An event to publish.
    Publish(Box<Envelope>),
    /// Not an event (a dedupe marker, a TTL removal, an update): nothing to do.
    Skip,
    /// An event item that cannot be read: it can only fail.
    Corrupt(String),
}

fn classify(record: &EventRecord) -> Record {
    // Events are immutable: only inserts are new events. TTL removes dedupe markers (REMOVE).
    if record.event_name != "INSERT" {
        return Record::Skip;
    }
    match envelope_from_stream_image(&record.change.new_image) {
        Ok(Some(envelope)) => Record::Publish(Box::new(envelope)),
        Ok(None) => Record::Skip,
        Err(err) => Record::Corrupt(err.to_string()),
    }
}

/// The envelope in a stream image (`NewImage`), or `None` for an item that is not an event (a
/// dedupe marker): only events are published.
fn envelope_from_stream_image(
    image: &serde_dynamo::Item,
) -> Result<Option<Envelope>, EnvelopeError> {
    use serde_dynamo::AttributeValue as StreamValue;
    match image.get(attr::KIND) {
        Some(StreamValue::S(kind)) if kind == KIND_EVENT => {}
        Some(_) => return Ok(None),
        None => {
            return Err(EnvelopeError::Invalid(
                "stream image has no `kind` attribute (is the stream view NEW_IMAGE?)".into(),
            ));
        }
    }
    match image.get(attr::ENVELOPE) {
        Some(StreamValue::S(text)) => Envelope::from_json(text).map(Some),
        _ => Err(EnvelopeError::Invalid(
            "event item has no string `envelope` attribute".into(),
        )),
    }
}

impl<P: Publisher> Outbox<P> {
    /// The outbox publishing through `publisher`; metrics in the
    /// [namespace](crate::telemetry::metrics_namespace) of the environment, with the service
    /// dimension `outbox-publisher`.
    pub fn new(publisher: P) -> Self {
        Outbox {
            publisher,
            metrics: Metrics::new(&metrics_namespace(), "outbox-publisher"),
        }
    }

    /// The publisher.
    pub fn publisher(&self) -> &P {
        &self.publisher
    }

    /// Publishes a batch of stream records; reports the first one that could not be published.
    pub async fn handle(
        &self,
        event: LambdaEvent<Event>,
    ) -> Result<DynamoDbEventResponse, lambda_runtime::Error> {
        let records = event.payload.records;
        let mut to_publish: Vec<(usize, Envelope)> = Vec::new();
        let mut first_failed: Option<usize> = None;
        for (index, record) in records.iter().enumerate() {
            match classify(record) {
                Record::Publish(envelope) => to_publish.push((index, *envelope)),
                Record::Skip => {}
                Record::Corrupt(reason) => {
                    tracing::error!(
                        event_id = %record.event_id,
                        sequence = record.change.sequence_number.as_deref().unwrap_or_default(),
                        reason = %reason,
                        "stream record is not a readable event"
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
        let now_ms = chrono::Utc::now().timestamp_millis();
        for envelope in envelopes.iter().filter(|e| !report.needs_retry(&e.id)) {
            let latency_ms = (now_ms - envelope.time.timestamp_millis()).max(0);
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

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::event;

    use crate::publish::{FailedPublish, PublishReport};
    use aws_lambda_events::event::dynamodb::Event;
    use lambda_runtime::Context;
    use std::sync::Mutex;

    /// A publisher that records what it is given and refuses the event ids it is told to.
    #[derive(Default)]
    struct Recording {
        refuse: Vec<String>,
        published: Mutex<Vec<String>>,
    }

    impl Publisher for Recording {
        async fn publish(&self, events: &[Envelope]) -> PublishReport {
            let mut report = PublishReport::default();
            let mut failed = false;
            for e in events {
                if failed {
                    report.not_attempted.push(e.id.clone());
                } else if self.refuse.contains(&e.id) {
                    failed = true;
                    report.failed.push(FailedPublish {
                        event_id: e.id.clone(),
                        code: "X".into(),
                        reason: "refused".into(),
                        permanent: false,
                    });
                } else {
                    self.published.lock().unwrap().push(e.id.clone());
                    report.published.push(e.id.clone());
                }
            }
            report
        }
    }

    /// The stream record of an INSERT of `envelope`'s item.
    fn insert(envelope: &Envelope, sequence: u64) -> EventRecord {
        use serde_dynamo::AttributeValue as V;
        let mut record = EventRecord::default();
        record.event_name = "INSERT".into();
        record.change.sequence_number = Some(sequence.to_string());
        record.change.new_image = std::collections::HashMap::from([
            ("kind".to_owned(), V::S("event".into())),
            ("envelope".to_owned(), V::S(envelope.to_json())),
        ])
        .into();
        record
    }

    /// `n` inserts of distinct events, sequence numbers 100, 101, ...
    fn batch(n: u64) -> (Event, Vec<String>) {
        let mut stream = Event::default();
        let mut ids = Vec::new();
        for i in 0..n {
            let e = event(&format!("t-{i}"), 1);
            ids.push(e.id.clone());
            stream.records.push(insert(&e, 100 + i));
        }
        (stream, ids)
    }

    async fn run(outbox: &Outbox<Recording>, event: Event) -> Vec<String> {
        outbox
            .handle(LambdaEvent::new(event, Context::default()))
            .await
            .unwrap()
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier.unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_refused_event_is_reported_and_nothing_after_it_is_lost() {
        let (event, ids) = batch(4);
        let outbox = Outbox::new(Recording {
            refuse: vec![ids[2].clone()],
            ..Default::default()
        });
        assert_eq!(run(&outbox, event).await, vec!["102"]);
        assert_eq!(
            *outbox.publisher.published.lock().unwrap(),
            ids[..2].to_vec()
        );
    }

    #[tokio::test]
    async fn markers_updates_and_removals_are_not_published() {
        let (mut event, _) = batch(3);
        event.records[0].change.new_image.insert(
            "kind".into(),
            serde_dynamo::AttributeValue::S("dedupe".into()),
        );
        event.records[1].event_name = "REMOVE".into();
        let outbox = Outbox::new(Recording::default());
        assert!(run(&outbox, event).await.is_empty());
        assert_eq!(outbox.publisher.published.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_corrupt_item_stops_the_batch_at_itself() {
        let (mut event, ids) = batch(3);
        event.records[1].change.new_image.insert(
            "envelope".into(),
            serde_dynamo::AttributeValue::S("{oops".into()),
        );
        let outbox = Outbox::new(Recording::default());
        assert_eq!(run(&outbox, event).await, vec!["101"]);
        assert_eq!(
            *outbox.publisher.published.lock().unwrap(),
            vec![ids[0].clone()]
        );
    }

    #[test]
    fn stream_images_give_events_and_skip_markers() {
        use serde_dynamo::AttributeValue as V;
        use std::collections::HashMap as Map;
        let e = event("a", 1);
        let image: serde_dynamo::Item = Map::from([
            ("kind".to_owned(), V::S("event".into())),
            ("envelope".to_owned(), V::S(e.to_json())),
        ])
        .into();
        assert_eq!(envelope_from_stream_image(&image).unwrap(), Some(e));
        let marker: serde_dynamo::Item =
            Map::from([("kind".to_owned(), V::S("dedupe".into()))]).into();
        assert_eq!(envelope_from_stream_image(&marker).unwrap(), None);
        let keys_only: serde_dynamo::Item = Map::from([("pk".to_owned(), V::S("x".into()))]).into();
        assert!(envelope_from_stream_image(&keys_only).is_err());
        let corrupt: serde_dynamo::Item = Map::from([
            ("kind".to_owned(), V::S("event".into())),
            ("envelope".to_owned(), V::S("{".into())),
        ])
        .into();
        assert!(envelope_from_stream_image(&corrupt).is_err());
    }
}
