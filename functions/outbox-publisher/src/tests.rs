//! The sample stream event of `events/` goes through the outbox to a publisher.

use super::*;
use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Context, LambdaEvent};
use ripple_kit::Envelope;
use ripple_kit::publish::{PublishReport, Publisher};
use std::sync::Mutex;

const INSERT: &str = include_str!("../../../events/outbox-publisher-insert.json");

/// A publisher that records the events it is given.
#[derive(Default)]
struct Recording(Mutex<Vec<Envelope>>);

impl Publisher for Recording {
    async fn publish(&self, events: &[Envelope]) -> PublishReport {
        self.0.lock().unwrap().extend(events.iter().cloned());
        PublishReport {
            published: events.iter().map(|e| e.id.clone()).collect(),
            ..PublishReport::default()
        }
    }
}

#[tokio::test]
async fn the_sample_insert_is_published_as_the_stored_envelope() {
    let event: Event = serde_json::from_str(INSERT).expect("the sample is a stream event");
    let outbox = Outbox::new(Recording::default());
    let response = outbox
        .handle(LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let published = outbox.publisher().0.lock().unwrap();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].event_type, "order.placed");
    assert_eq!(published[0].id, "01a2076b-4400-792f-a17c-03d5f2a6b8c1");
}

#[test]
fn config_needs_the_topic_and_the_quarantine() {
    assert!(Config::from_lookup(|_| None).is_err());
    assert!(Config::from_lookup(|k| (k == "TOPIC_ARN").then(|| "arn".to_owned())).is_err());
}
