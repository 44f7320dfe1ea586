//! A sku's stock is loaded from its snapshot and the events after it, on DynamoDB itself: the
//! snapshot sits next to the stream, is never published, and folds to the same stock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use domain::inventory::Stock;
use ripple_e2e::{TestStack, eventually};
use ripple_kit::store::Snapshotted;
use ripple_kit::{EventStore, Loaded};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_stock_stream_is_loaded_from_its_snapshot_which_is_never_published() {
    let stack = TestStack::deploy("snapshot").await;
    let inbox = stack.inbox("DomainEventsTopic").await;
    let runtime = stack.run(&["outbox-publisher"]).await;
    let inventory = stack.inventory();
    let deliveries = Stock::EVERY + 20;
    for _ in 0..deliveries {
        inventory.restock("SKU-HOT", 1).await.unwrap();
    }
    let (stock, version) = inventory.stock("SKU-HOT").await.unwrap();
    assert_eq!((stock.available, version), (deliveries, deliveries));

    let snapshot = stack
        .clients
        .dynamodb
        .get_item()
        .table_name(stack.table("EventsTable"))
        .key("pk", AttributeValue::S("Stock#SKU-HOT".into()))
        .key("sk", AttributeValue::N("0".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = snapshot.item().expect("a snapshot next to the stream");
    assert_eq!(item["kind"], AttributeValue::S("snapshot".into()));
    // Restocking loaded the stock before each delivery: the last snapshot holds a recent state.
    let snapshotted: u64 = item["version"].as_n().unwrap().parse().unwrap();
    assert!(snapshotted >= Stock::EVERY, "{item:?}");

    // From the snapshot and the events after it, the same stock as the whole fold.
    let store = stack.store();
    let folded: Loaded<Stock> = store.load("SKU-HOT").await.unwrap();
    let cached: Loaded<Stock> = store.load_snapshotted("SKU-HOT").await.unwrap();
    assert_eq!(cached, folded);

    let published = eventually(
        "every restock published",
        Duration::from_secs(90),
        || async {
            let mut got = inbox.drain().await;
            got.retain(|m| m.contains("stock.restocked"));
            (got.len() as u64 >= deliveries).then_some(got.len())
        },
    )
    .await;
    runtime
        .wait_until_quiet(Duration::from_secs(60), |_, _| {})
        .await
        .unwrap();
    runtime.stop().await;
    let quarantined = stack
        .clients
        .sqs
        .receive_message()
        .queue_url(stack.queue_url("PublisherFailuresQueue"))
        .send()
        .await
        .unwrap();
    let late = inbox.drain().await;
    stack.teardown().await;
    assert_eq!(
        published as u64 + late.len() as u64,
        deliveries,
        "each event once, no snapshot"
    );
    assert!(quarantined.messages().is_empty(), "{quarantined:?}");
}
