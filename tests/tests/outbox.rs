//! The outbox never gives up: a record it can never publish is quarantined alone while its
//! neighbours are published, and any time range can be published again from the store itself,
//! harmlessly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use domain::inventory::Stock;
use domain::testing::{restocked, stored};
use ripple::republish::{OutboxOf, republish_range};
use ripple_e2e::{RunningStack, TestStack, eventually};
use ripple_kit::store::TimeRange;
use ripple_kit::{Append, Envelope, EventStore};
use serde_json::Value;

/// A stock change as inventory writes it: the outbox publishes only what a producer may write.
fn probe(sku: &str, quantity: u64) -> Envelope {
    stored::<Stock>(sku, 1, &restocked(sku, quantity))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreadable_event_item_is_quarantined_alone_and_its_neighbours_are_published() {
    let stack = TestStack::deploy("quarantine").await;
    let inbox = stack.inbox("DomainEventsTopic").await;
    let store = stack.store();
    store
        .append(Append::events(vec![probe("probe-before", 1)]))
        .await
        .unwrap();
    // An event item that is not a readable event: it can never be published.
    stack
        .clients
        .dynamodb
        .put_item()
        .table_name(stack.table("EventsTable"))
        .item("pk", AttributeValue::S("Stock#probe-broken".into()))
        .item("sk", AttributeValue::N("1".into()))
        .item("kind", AttributeValue::S("event".into()))
        .item("envelope", AttributeValue::S("{not an envelope".into()))
        .send()
        .await
        .unwrap();
    store
        .append(Append::events(vec![probe("probe-after", 2)]))
        .await
        .unwrap();

    let runtime = stack.run(&["outbox-publisher"]).await;
    let published = eventually(
        "both readable events published",
        Duration::from_secs(60),
        || async {
            let mut got = inbox.drain().await;
            got.sort();
            (got.len() >= 2).then_some(got)
        },
    )
    .await;
    runtime
        .wait_until_quiet(Duration::from_secs(60), |_, _| {})
        .await
        .unwrap();
    runtime.stop().await;
    let quarantine = stack.queue_url("PublisherFailuresQueue");
    let kept = stack
        .clients
        .sqs
        .receive_message()
        .queue_url(&quarantine)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    stack.teardown().await;

    assert_eq!(published.len(), 2, "{published:?}");
    assert!(published.iter().all(|m| m.contains("stock.restocked")));
    let kept = kept.messages();
    assert_eq!(kept.len(), 1, "the broken item alone is quarantined");
    let record: Value = serde_json::from_str(kept[0].body().unwrap()).unwrap();
    assert_eq!(record["quarantined"]["stream"], "Stock#probe-broken");
    assert_eq!(record["quarantined"]["sequence"], 1);
    assert_eq!(record["quarantined"]["code"], "Unreadable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_time_range_republished_from_the_store_reaches_every_consumer_and_changes_nothing() {
    let started = Utc::now() - chrono::Duration::seconds(5);
    let saga = RunningStack::start("republish", &[("HAPPY", 10), ("SCARCE", 1)]).await;
    let (stack, api) = (&saga.stack, saga.api());
    let inbox = stack.inbox("NotificationsTopic").await;
    let orders = [
        api.place("c-happy", &[("HAPPY", 2)]).await,
        api.place("c-scarce", &[("SCARCE", 2)]).await,
    ];
    saga.settle().await;
    assert_eq!(inbox.drain().await.len(), 2, "each customer told once");
    let mut before = Vec::new();
    for order in &orders {
        for aggregate in ["Order", "Reservation", "Payment"] {
            before.push((aggregate, order, stack.stream(aggregate, order).await.len()));
        }
    }
    let stored: usize = before.iter().map(|(_, _, n)| n).sum();
    let (happy, _) = stack.inventory().stock("HAPPY").await.unwrap();

    let outbox = OutboxOf::find(&stack.deployment).expect("the stack has an outbox");
    let range = TimeRange::new(started, Utc::now() + chrono::Duration::seconds(5));
    let report = republish_range(&stack.clients, &outbox, &range, |_| {})
        .await
        .unwrap();
    saga.settle().await;

    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.published, report.found);
    // The orders' events and the stock changes (restocks included): everything in the range.
    assert!(
        report.found > stored,
        "found {} of at least {stored}",
        report.found
    );
    for (aggregate, order, length) in before {
        assert_eq!(
            stack.stream(aggregate, order).await.len(),
            length,
            "{aggregate}#{order} changed when republished"
        );
    }
    assert_eq!(stack.inventory().stock("HAPPY").await.unwrap().0, happy);
    assert!(inbox.drain().await.is_empty(), "no customer is told twice");
    assert_eq!(stack.dead_lettered().await, 0, "nothing dead-lettered");
    saga.finish().await;
}
