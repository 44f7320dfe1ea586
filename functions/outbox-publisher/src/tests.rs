//! Handler tests over a recording publisher, starting from the sample stream event in `events/`.

use super::*;
use ripple_kit::publish::{FailedPublish, PublishReport};
use std::sync::Mutex;

const INSERT: &str = include_str!("../../../events/outbox-publisher-insert.json");

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

fn sample() -> Event {
    serde_json::from_str(INSERT).expect("fixture is a DynamoDB stream event")
}

/// The sample record copied `n` times with distinct sequence numbers and event ids.
fn batch(n: usize) -> (Event, Vec<String>) {
    let template = sample().records.remove(0);
    let mut event = sample();
    event.records.clear();
    let mut ids = Vec::new();
    for i in 0..n {
        let mut r = template.clone();
        let mut envelope = envelope_from_stream_image(&r.change.new_image)
            .unwrap()
            .unwrap();
        envelope.id = format!("event-{i}");
        r.change.new_image.insert(
            "envelope".into(),
            serde_dynamo::AttributeValue::S(envelope.to_json()),
        );
        r.change.sequence_number = Some(format!("{}", 100 + i));
        ids.push(envelope.id);
        event.records.push(r);
    }
    (event, ids)
}

async fn run(handler: &Handler<Recording>, event: Event) -> Vec<String> {
    handler
        .handle(LambdaEvent::new(event, lambda_runtime::Context::default()))
        .await
        .unwrap()
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier.unwrap())
        .collect()
}

#[tokio::test]
async fn the_sample_insert_is_published() {
    let handler = Handler::with_publisher(Recording::default());
    assert!(run(&handler, sample()).await.is_empty());
    assert_eq!(handler.publisher.published.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_refused_event_is_reported_and_nothing_after_it_is_lost() {
    let (event, ids) = batch(4);
    let handler = Handler::with_publisher(Recording {
        refuse: vec![ids[2].clone()],
        ..Default::default()
    });
    assert_eq!(run(&handler, event).await, vec!["102"]);
    assert_eq!(
        *handler.publisher.published.lock().unwrap(),
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
    let handler = Handler::with_publisher(Recording::default());
    assert!(run(&handler, event).await.is_empty());
    assert_eq!(handler.publisher.published.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_corrupt_item_stops_the_batch_at_itself() {
    let (mut event, ids) = batch(3);
    event.records[1].change.new_image.insert(
        "envelope".into(),
        serde_dynamo::AttributeValue::S("{oops".into()),
    );
    let handler = Handler::with_publisher(Recording::default());
    assert_eq!(run(&handler, event).await, vec!["101"]);
    assert_eq!(
        *handler.publisher.published.lock().unwrap(),
        vec![ids[0].clone()]
    );
}
