//! The sample stream event of `events/` goes through the outbox to a publisher.

use super::*;
use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Context, LambdaEvent};
use ripple_kit::Envelope;
use ripple_kit::outbox::quarantine::{QuarantineError, Quarantined};
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

/// A quarantine that keeps what it is given.
#[derive(Default)]
struct Kept(Mutex<Vec<Quarantined>>);

impl Quarantine for Kept {
    async fn isolate(&self, record: &Quarantined) -> Result<(), QuarantineError> {
        self.0.lock().unwrap().push(record.clone());
        Ok(())
    }
}

#[tokio::test]
async fn the_sample_insert_is_published_as_the_stored_envelope() {
    let event: Event = serde_json::from_str(INSERT).expect("the sample is a stream event");
    let outbox = handler_with(Recording::default(), Kept::default());
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

#[tokio::test]
async fn an_order_confirmed_by_the_api_itself_is_quarantined_not_published() {
    let mut event: Event = serde_json::from_str(INSERT).expect("the sample is a stream event");
    // The API's role may write Order streams, but only the saga confirms an order.
    let serde_dynamo::AttributeValue::S(stored) = &event.records[0].change.new_image["envelope"]
    else {
        panic!("the sample holds its envelope as a string");
    };
    let mut forged: Envelope = serde_json::from_str(stored).unwrap();
    forged.event_type = "order.confirmed".into();
    forged.data = serde_json::json!({"order_id": forged.subject});
    event.records[0].change.new_image.insert(
        "envelope".into(),
        serde_dynamo::AttributeValue::S(forged.to_json()),
    );
    let outbox = handler_with(Recording::default(), Kept::default());
    let response = outbox
        .handle(LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "not retried: it can never be published"
    );
    assert!(outbox.publisher().0.lock().unwrap().is_empty());
}

#[test]
fn config_needs_the_topic_and_the_quarantine() {
    assert!(Config::from_lookup(|_| None).is_err());
    assert!(Config::from_lookup(|k| (k == "TOPIC_ARN").then(|| "arn".to_owned())).is_err());
}
