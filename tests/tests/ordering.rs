//! `Ordering: fifo` against `standard`: what a subscriber of the domain-events topic receives
//! when the outbox publishes an aggregate's events and retries a batch it already sent.
//!
//! FIFO: each aggregate's events arrive once, in sequence order (the message group is the stream
//! key, the deduplication id the event id, so the retried batch is dropped inside SQS's
//! five-minute window). Standard: the retried batch arrives again and order is best-effort; the
//! consumers' sequence checks absorb both, so the read model folded from what arrived, in any
//! order and with the duplicates, is the fold of the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use domain::inventory::Stock;
use domain::view::{ApplyOutcome, OrderView, ViewEvent};
use ripple_e2e::TestStack;
use ripple_kit::Envelope;
use ripple_kit::publish::{Publisher, SnsPublisher};

/// A publisher of the stack's domain-events topic, as the outbox has it.
fn publisher(stack: &TestStack) -> SnsPublisher {
    let topic = stack.deployment.topic("DomainEventsTopic").unwrap();
    SnsPublisher::new(stack.clients.sns.clone(), topic.arn.clone())
}

/// Publishes `events`, asserting SNS took them all.
async fn publish(publisher: &SnsPublisher, events: &[Envelope]) {
    let report = publisher.publish(events).await;
    assert!(report.all_published(), "{report:?}");
}

/// What an inbox received, as envelopes in arrival order.
fn envelopes(bodies: &[String]) -> Vec<Envelope> {
    bodies
        .iter()
        .map(|b| Envelope::from_json(b).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_fifo_mode_each_aggregate_arrives_once_in_sequence_order_though_a_batch_is_retried() {
    let stack = TestStack::deploy_with("fifo-order", &[("Ordering", "fifo")]).await;
    let topic = stack.deployment.topic("DomainEventsTopic").unwrap();
    assert!(topic.arn.ends_with(".fifo"), "{}", topic.arn);
    for consumer in [
        "Inventory",
        "Payments",
        "OrderSaga",
        "Projections",
        "Notifications",
    ] {
        for kind in ["Queue", "DLQ", "SubscriptionDLQ"] {
            let queue = stack.queue_url(&format!("{consumer}{kind}"));
            assert!(queue.ends_with(".fifo"), "{queue}");
        }
    }
    let inbox = stack.inbox("DomainEventsTopic").await;
    let publisher = publisher(&stack);
    let stream = |sku: &str| -> Vec<Envelope> {
        (1..=6)
            .map(|n| domain::testing::stored::<Stock>(sku, n, &domain::testing::restocked(sku, n)))
            .collect()
    };
    let (a, b) = (stream("SKU-A"), stream("SKU-B"));
    // Two aggregates interleaved, as a stream batch of the outbox holds them.
    let first: Vec<Envelope> = a[..4].iter().chain(&b[..3]).cloned().collect();
    publish(&publisher, &first).await;
    // The batch is retried (the stream mapping retries one whose acknowledgement was lost), then
    // the rest follows.
    publish(&publisher, &first).await;
    let rest: Vec<Envelope> = b[3..].iter().chain(&a[4..]).cloned().collect();
    publish(&publisher, &rest).await;

    let received = envelopes(&inbox.drain().await);
    let mut by_stream: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in &received {
        by_stream
            .entry(event.stream_key())
            .or_default()
            .push(event.sequence);
    }
    let in_order: Vec<u64> = (1..=6).collect();
    assert_eq!(by_stream["Stock#SKU-A"], in_order, "{by_stream:?}");
    assert_eq!(by_stream["Stock#SKU-B"], in_order, "{by_stream:?}");
    assert_eq!(received.len(), 12, "the retried batch is deduplicated");
    stack.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_standard_mode_a_retried_batch_arrives_again_and_the_views_absorb_it_in_any_order() {
    let stack = TestStack::deploy_with("standard-order", &[("Ordering", "standard")]).await;
    assert!(
        !stack
            .deployment
            .topic("DomainEventsTopic")
            .unwrap()
            .arn
            .ends_with(".fifo")
    );
    let inbox = stack.inbox("DomainEventsTopic").await;
    let publisher = publisher(&stack);
    let flow = domain::testing::confirmed_flow("o-1");
    publish(&publisher, &flow[..2]).await;
    publish(&publisher, &flow[..2]).await;
    publish(&publisher, &flow[2..]).await;

    let mut received = envelopes(&inbox.drain().await);
    assert_eq!(
        received.len(),
        flow.len() + 2,
        "the retried batch comes again"
    );
    // Whatever order they come in, with their duplicates, the view is the fold of the store.
    received.reverse();
    let stored: Vec<ViewEvent> = flow
        .iter()
        .filter_map(|e| ViewEvent::from_envelope(e).unwrap())
        .collect();
    let expected = OrderView::rebuild("o-1", &stored);
    // As the projections consumer does: a duplicate changes nothing, an event that arrives
    // before an earlier one of its stream (a gap) fails and comes back after the rest, as SQS
    // redelivers a failed message.
    let mut view = OrderView::new("o-1");
    let mut pending: std::collections::VecDeque<Envelope> = received.into();
    let (mut duplicates, mut gaps) = (0, 0);
    while let Some(envelope) = pending.pop_front() {
        let Some(event) = ViewEvent::from_envelope(&envelope).unwrap() else {
            continue;
        };
        match view.apply(&event) {
            ApplyOutcome::Applied => {}
            ApplyOutcome::Duplicate => duplicates += 1,
            ApplyOutcome::Gap { .. } => {
                gaps += 1;
                assert!(gaps < 100, "a gap that never closes");
                pending.push_back(envelope);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(view, expected);
    assert_eq!(view.events_applied(), flow.len() as u64);
    assert_eq!(duplicates, 2);
    assert!(
        gaps > 0,
        "reversed, order.confirmed came before order.placed"
    );
    stack.teardown().await;
}
