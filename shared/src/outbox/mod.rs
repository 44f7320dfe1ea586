//! The outbox: an event store's DynamoDB stream, published to a topic.
//!
//! Producers only append to the store; the table's stream (view type `NEW_IMAGE`) is the outbox,
//! and [`Outbox`] is the one place that publishes. Records are published in stream order with a
//! [`Publisher`]. The outbox never gives up on an event:
//! - a record that fails for a reason that can pass (throttling, an outage of SNS, KMS or IAM) is
//!   reported as the batch item failure, so Lambda retries the shard from exactly there; the
//!   stream mapping is configured to retry for as long as it takes (`MaximumRetryAttempts: -1`,
//!   `MaximumRecordAgeInSeconds: -1`, `BisectBatchOnFunctionError`), so nothing after it is
//!   skipped;
//! - a record that can never be published (not a readable event; refused by SNS for what it is)
//!   is isolated alone in a [`quarantine`] with its key and reason, and its neighbours go on;
//! - whatever the stream no longer holds (it keeps 24 hours) is published again from the store
//!   itself, by time range ([`republish()`]), since every event is in the store's time index.
//!
//! Only the store's own events leave: a record is published only if its item key is the envelope's
//! own stream (`pk` = `<aggregatetype>#<subject>`, `sk` = `sequence`), so a writer allowed one
//! aggregate's keys cannot slip out an envelope of another, and, with
//! [`with_producers`](Outbox::with_producers), only if its `source` may write that aggregate and
//! event type. Anything else is quarantined (code `Refused`) and never published.
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
//! // .with_quarantine(SqsQuarantine::new(client, queue_url)) in Lambda
//! let outbox = Outbox::new(Printer);
//! let response = outbox.handle(LambdaEvent::new(Event::default(), Context::default())).await?;
//! assert!(response.batch_item_failures.is_empty());
//! # Ok(())
//! # }
//! ```

mod image;
pub mod quarantine;
pub mod republish;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::LambdaEvent;

use crate::batch::stream_failure_at;
use crate::envelope::Envelope;
use crate::producers::Producers;
use crate::publish::{FailedPublish, Publisher};
use crate::telemetry::{Metrics, Unit, metrics_namespace};
use image::{Record, classify};
use quarantine::{NoQuarantine, Quarantine, Quarantined};

pub use republish::{RepublishReport, republish};

/// The stream handler that publishes an event store's new events.
pub struct Outbox<P, Q = NoQuarantine> {
    publisher: P,
    quarantine: Q,
    producers: Option<Producers>,
    metrics: Metrics,
}

/// An event of the batch, with the stream record it came in.
struct Pending<'r> {
    index: usize,
    record: &'r EventRecord,
    event: Envelope,
}

impl<P: Publisher> Outbox<P> {
    /// The outbox publishing through `publisher`, without a quarantine (a record that can never
    /// be published holds its shard); metrics in the
    /// [namespace](crate::telemetry::metrics_namespace) of the environment, with the service
    /// dimension `outbox-publisher`.
    pub fn new(publisher: P) -> Self {
        Outbox {
            publisher,
            quarantine: NoQuarantine,
            producers: None,
            metrics: Metrics::new(&metrics_namespace(), "outbox-publisher"),
        }
    }
}

impl<P: Publisher, Q: Quarantine> Outbox<P, Q> {
    /// Isolates records that can never be published in `quarantine` instead of retrying them.
    pub fn with_quarantine<R: Quarantine>(self, quarantine: R) -> Outbox<P, R> {
        Outbox {
            publisher: self.publisher,
            quarantine,
            producers: self.producers,
            metrics: self.metrics,
        }
    }

    /// Publishes only events whose `source` may write them by `producers` (the system's
    /// allowlist); every other event is refused and quarantined.
    pub fn with_producers(mut self, producers: Producers) -> Self {
        self.producers = Some(producers);
        self
    }

    /// The publisher.
    pub fn publisher(&self) -> &P {
        &self.publisher
    }

    /// The quarantine.
    pub fn quarantine(&self) -> &Q {
        &self.quarantine
    }

    /// Publishes a batch of stream records; reports the first one to retry from.
    pub async fn handle(
        &self,
        event: LambdaEvent<Event>,
    ) -> Result<DynamoDbEventResponse, lambda_runtime::Error> {
        let records = event.payload.records;
        let mut retry_from: Option<usize> = None;
        let mut pending = Vec::new();
        for (index, record) in records.iter().enumerate() {
            match classify(record, self.producers.as_ref()) {
                Record::Publish(event) => pending.push(Pending {
                    index,
                    record,
                    event: *event,
                }),
                Record::Skip => {}
                Record::Refused { envelope, reason } => {
                    let refused = Quarantined::refused(record, &envelope, reason);
                    if !self.isolate(&refused).await {
                        // Never published: it holds its shard until the quarantine takes it.
                        retry_from = Some(index);
                        break;
                    }
                }
                Record::Imageless(reason) => {
                    tracing::error!(event_id = %record.event_id, reason = %reason, "stream record cannot be judged; it waits for the stream to be fixed");
                    retry_from = Some(index);
                    break;
                }
                Record::Corrupt(reason) => {
                    tracing::error!(
                        event_id = %record.event_id,
                        sequence = record.change.sequence_number.as_deref().unwrap_or_default(),
                        reason = %reason,
                        "stream record is not a readable event"
                    );
                    if !self.isolate(&Quarantined::unreadable(record, reason)).await {
                        // Everything after it is retried with it, in order.
                        retry_from = Some(index);
                        break;
                    }
                }
            }
        }
        if let Some(index) = self.publish(pending).await {
            retry_from = Some(retry_from.map_or(index, |r| r.min(index)));
        }
        if retry_from.is_some() {
            self.metrics.count("PublishFailures");
        }
        self.metrics.flush();
        Ok(stream_failure_at(&records, retry_from))
    }

    /// Publishes `pending` in order, isolating what SNS refuses for good and going on after it;
    /// the index of the first event to retry, if one failed for a reason that can pass.
    async fn publish(&self, mut pending: Vec<Pending<'_>>) -> Option<usize> {
        while !pending.is_empty() {
            let events: Vec<Envelope> = pending.iter().map(|p| p.event.clone()).collect();
            let report = self.publisher.publish(&events).await;
            self.count_published(&pending, &report.published);
            for failure in &report.failed {
                tracing::error!(event_id = %failure.event_id, code = %failure.code, reason = %failure.reason, permanent = failure.permanent, "publish failed");
                let Some(failed) = pending.iter().find(|p| p.event.id == failure.event_id) else {
                    return pending.first().map(|p| p.index);
                };
                if !(failure.permanent && self.isolate_refused(failed, failure).await) {
                    return Some(failed.index);
                }
            }
            let progressed = !report.published.is_empty() || !report.failed.is_empty();
            pending.retain(|p| report.not_attempted.contains(&p.event.id));
            if !progressed {
                return pending.first().map(|p| p.index);
            }
        }
        None
    }

    async fn isolate_refused(&self, failed: &Pending<'_>, failure: &FailedPublish) -> bool {
        let quarantined = Quarantined::unpublishable(&failed.event, failure, failed.record);
        self.isolate(&quarantined).await
    }

    /// Keeps `record` in the quarantine; false when it could not, and the record stays failed.
    async fn isolate(&self, record: &Quarantined) -> bool {
        match self.quarantine.isolate(record).await {
            Ok(()) => {
                self.metrics.count("EventsQuarantined");
                tracing::error!(stream = ?record.stream, sequence = ?record.sequence, event_id = ?record.event_id, code = %record.code, reason = %record.reason, "QUARANTINED: this event can never be published as it is; the shard goes on without it");
                true
            }
            Err(err) => {
                tracing::error!(error = %crate::telemetry::error_chain(&err), "record not quarantined; it holds its shard until it is");
                false
            }
        }
    }

    fn count_published(&self, pending: &[Pending<'_>], published: &[String]) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        for event in pending
            .iter()
            .map(|p| &p.event)
            .filter(|e| published.contains(&e.id))
        {
            let latency_ms = (now_ms - event.time.timestamp_millis()).max(0);
            tracing::info!(event_id = %event.id, r#type = %event.event_type, correlation_id = %event.correlationid, "published");
            self.metrics
                .add("StoreToTopicLatency", Unit::Milliseconds, latency_ms as f64);
        }
        self.metrics
            .add("EventsPublished", Unit::Count, published.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::event;

    use crate::publish::{FailedPublish, PublishReport};
    use aws_lambda_events::event::dynamodb::Event;
    use lambda_runtime::Context;
    use std::sync::Mutex;

    /// A publisher that records what it is given and refuses the event ids it is told to (for
    /// good, those in `refuse_for_good`), stopping at the first refusal like SNS.
    #[derive(Default)]
    struct Recording {
        refuse: Vec<String>,
        refuse_for_good: Vec<String>,
        published: Mutex<Vec<String>>,
    }

    impl Publisher for Recording {
        async fn publish(&self, events: &[Envelope]) -> PublishReport {
            let mut report = PublishReport::default();
            let mut failed = false;
            for e in events {
                if failed {
                    report.not_attempted.push(e.id.clone());
                } else if self.refuse.contains(&e.id) || self.refuse_for_good.contains(&e.id) {
                    failed = true;
                    report.failed.push(FailedPublish {
                        event_id: e.id.clone(),
                        code: "X".into(),
                        reason: "refused".into(),
                        permanent: self.refuse_for_good.contains(&e.id),
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
            ("pk".to_owned(), V::S(envelope.stream_key())),
            ("sk".to_owned(), V::N(envelope.sequence.to_string())),
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

    /// A quarantine that keeps what it is given, or fails when told to.
    #[derive(Default)]
    struct Kept {
        fails: bool,
        kept: Mutex<Vec<Quarantined>>,
    }

    impl Quarantine for Kept {
        async fn isolate(&self, record: &Quarantined) -> Result<(), quarantine::QuarantineError> {
            if self.fails {
                return Err(quarantine::QuarantineError::Backend("queue down".into()));
            }
            self.kept.lock().unwrap().push(record.clone());
            Ok(())
        }
    }

    async fn run<Q: Quarantine>(outbox: &Outbox<Recording, Q>, event: Event) -> Vec<String> {
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

    #[tokio::test]
    async fn an_event_refused_for_good_is_quarantined_alone_and_its_neighbours_go_on() {
        let (event, ids) = batch(4);
        let outbox = Outbox::new(Recording {
            refuse_for_good: vec![ids[1].clone()],
            ..Default::default()
        })
        .with_quarantine(Kept::default());
        assert!(run(&outbox, event).await.is_empty(), "the shard goes on");
        let published = outbox.publisher.published.lock().unwrap().clone();
        assert_eq!(
            published,
            vec![ids[0].clone(), ids[2].clone(), ids[3].clone()]
        );
        let kept = outbox.quarantine().kept.lock().unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].event_id.as_deref(), Some(ids[1].as_str()));
        assert_eq!(kept[0].stream.as_deref(), Some("Thing#t-1"));
        assert_eq!(kept[0].stream_sequence_number.as_deref(), Some("101"));
        assert_eq!(
            (kept[0].code.as_str(), kept[0].reason.as_str()),
            ("X", "refused")
        );
    }

    #[tokio::test]
    async fn an_unreadable_item_is_quarantined_with_its_key_and_the_rest_is_published() {
        use serde_dynamo::AttributeValue as V;
        let (mut event, ids) = batch(3);
        let record = &mut event.records[1];
        record
            .change
            .new_image
            .insert("envelope".into(), V::S("{oops".into()));
        record
            .change
            .keys
            .insert("pk".into(), V::S("Thing#t-1".into()));
        record.change.keys.insert("sk".into(), V::N("1".into()));
        let outbox = Outbox::new(Recording::default()).with_quarantine(Kept::default());
        assert!(run(&outbox, event).await.is_empty());
        assert_eq!(
            *outbox.publisher.published.lock().unwrap(),
            vec![ids[0].clone(), ids[2].clone()]
        );
        let kept = outbox.quarantine().kept.lock().unwrap();
        assert_eq!(
            (
                kept[0].stream.as_deref(),
                kept[0].sequence,
                kept[0].code.as_str()
            ),
            (Some("Thing#t-1"), Some(1), "Unreadable")
        );
    }

    #[tokio::test]
    async fn a_failure_that_can_pass_is_retried_and_never_quarantined() {
        let (event, ids) = batch(3);
        let outbox = Outbox::new(Recording {
            refuse: vec![ids[1].clone()],
            ..Default::default()
        })
        .with_quarantine(Kept::default());
        assert_eq!(run(&outbox, event).await, vec!["101"]);
        assert!(outbox.quarantine().kept.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_record_the_quarantine_cannot_keep_stays_failed() {
        let (event, ids) = batch(3);
        let outbox = Outbox::new(Recording {
            refuse_for_good: vec![ids[1].clone()],
            ..Default::default()
        })
        .with_quarantine(Kept {
            fails: true,
            ..Default::default()
        });
        assert_eq!(run(&outbox, event).await, vec!["101"]);
    }

    #[tokio::test]
    async fn a_record_without_an_image_is_a_misconfigured_stream_and_is_never_quarantined() {
        let (mut event, _) = batch(2);
        event.records[1].change.new_image = Default::default();
        let outbox = Outbox::new(Recording::default()).with_quarantine(Kept::default());
        assert_eq!(run(&outbox, event).await, vec!["101"]);
        assert!(outbox.quarantine().kept.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_envelope_stored_under_another_stream_is_quarantined_and_the_rest_published() {
        use serde_dynamo::AttributeValue as V;
        let (mut event, ids) = batch(4);
        // A writer allowed only `Stock#*` keys puts a Thing envelope there...
        event.records[1]
            .change
            .new_image
            .insert("pk".into(), V::S("Stock#t-1".into()));
        // ...or one at the wrong position of its own stream.
        event.records[2]
            .change
            .new_image
            .insert("sk".into(), V::N("7".into()));
        let outbox = Outbox::new(Recording::default()).with_quarantine(Kept::default());
        assert!(run(&outbox, event).await.is_empty(), "nothing to retry");
        assert_eq!(
            *outbox.publisher.published.lock().unwrap(),
            vec![ids[0].clone(), ids[3].clone()]
        );
        let kept = outbox.quarantine().kept.lock().unwrap();
        let found: Vec<_> = kept
            .iter()
            .map(|k| (k.code.as_str(), k.stream.as_deref(), k.sequence))
            .collect();
        assert_eq!(
            found,
            [
                ("Refused", Some("Stock#t-1"), Some(1)),
                ("Refused", Some("Thing#t-2"), Some(7))
            ]
        );
    }

    #[tokio::test]
    async fn an_event_its_source_may_not_write_is_quarantined() {
        use crate::fixtures::Thing;
        let (mut stream, ids) = batch(3);
        let mut forged = event("t-9", 1);
        forged.source = "someone/else".into();
        stream.records[1] = insert(&forged, 101);
        let outbox = Outbox::new(Recording::default())
            .with_producers(crate::producers::Producers::new().allow_all::<Thing>("test"))
            .with_quarantine(Kept::default());
        assert!(run(&outbox, stream).await.is_empty());
        assert_eq!(
            *outbox.publisher.published.lock().unwrap(),
            vec![ids[0].clone(), ids[2].clone()]
        );
        let kept = outbox.quarantine().kept.lock().unwrap();
        assert_eq!(kept[0].event_id.as_deref(), Some(forged.id.as_str()));
        assert_eq!(
            kept[0].reason,
            "someone/else is not a producer of this system"
        );
    }

    #[tokio::test]
    async fn a_refused_event_the_quarantine_cannot_keep_holds_its_shard_unpublished() {
        let (mut stream, _) = batch(2);
        stream.records[1].change.new_image.insert(
            "pk".into(),
            serde_dynamo::AttributeValue::S("Other#x".into()),
        );
        let outbox = Outbox::new(Recording::default());
        assert_eq!(run(&outbox, stream).await, vec!["101"]);
        assert_eq!(outbox.publisher.published.lock().unwrap().len(), 1);
    }
}
