//! Exactly-once effects against the real conditional writes of the emulator's DynamoDB.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::order::{OrderEvent, OrderLine, OrderPlaced};
use ripple_e2e::{TestStack, context, fixture_delivery, sqs_event};
use ripple_kit::store::{RetryPolicy, retry_on_conflict};
use ripple_kit::{Append, DedupeMarker, Envelope, EventStore, StoreError, StreamPosition};

fn failures(response: &serde_json::Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

fn placed(order_id: &str, sku: &str, quantity: u32) -> Envelope {
    let event = OrderEvent::Placed(OrderPlaced {
        order_id: order_id.into(),
        customer_id: "c-1".into(),
        lines: vec![OrderLine {
            sku: sku.into(),
            quantity,
            unit_price_cents: 100,
        }],
        total: domain::money::Money::new("EUR", 100 * u64::from(quantity)),
    });
    Envelope::encode(
        domain::sources::ORDERS_API,
        StreamPosition::of::<domain::order::Order>(order_id, 1),
        &event,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_sqs_message_delivered_twice_reserves_once() {
    let stack = TestStack::deploy("twice").await;
    let inventory = stack.inventory();
    let delivery = fixture_delivery("inventory-order-placed.json");
    let body = delivery["Records"][0]["body"].as_str().unwrap();
    let source = Envelope::from_json(body).unwrap();
    let order_id = source.subject.clone();
    inventory.restock("SKU-1", 5).await.unwrap();
    let invoke = stack.invoke("inventory");

    // Redelivered one after the other, and twice more at the same moment.
    for _ in 0..2 {
        let response = invoke(delivery.clone(), context()).await.unwrap();
        assert!(failures(&response).is_empty(), "{response}");
    }
    let (a, b) = tokio::join!(
        invoke(delivery.clone(), context()),
        invoke(delivery.clone(), context())
    );
    assert!(failures(&a.unwrap()).is_empty());
    assert!(failures(&b.unwrap()).is_empty());

    assert_eq!(
        stack.types("Reservation", &order_id).await,
        vec!["stock.reserved"]
    );
    let (stock, version) = inventory.stock("SKU-1").await.unwrap();
    assert_eq!((stock.available, stock.allocated, version), (3, 2, 2));
    stack.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_appends_at_the_same_version_one_conflicts_and_no_event_is_lost() {
    let stack = TestStack::deploy("conflict").await;
    let store = stack.store();
    let (first, second) = (placed("o-1", "A", 1), placed("o-1", "A", 2));
    let (a, b) = tokio::join!(
        store.append(Append::events(vec![first.clone()])),
        store.append(Append::events(vec![second.clone()]))
    );
    let conflicts = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict { .. })))
        .count();
    assert_eq!(conflicts, 1, "exactly one writer loses: {a:?} {b:?}");
    assert_eq!([&a, &b].iter().filter(|r| r.is_ok()).count(), 1);

    // The loser reloads and appends after the winner: both events are kept, in order.
    let loser = if a.is_err() { first } else { second };
    retry_on_conflict(&RetryPolicy::default(), || async {
        let version = store.read_stream("Order", "o-1", 1).await?.len() as u64;
        let mut event = loser.clone();
        event.sequence = version + 1;
        store.append(Append::events(vec![event])).await
    })
    .await
    .unwrap();
    let stream = stack.stream("Order", "o-1").await;
    assert_eq!(
        stream.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let ids: std::collections::HashSet<_> = stream.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "two distinct events");
    stack.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_with_a_used_marker_is_a_duplicate_and_writes_nothing() {
    let stack = TestStack::deploy("marker").await;
    let store = stack.store();
    let marker = DedupeMarker::new("e2e", "source-1");
    let batch = |order: &str| {
        Append::events(vec![
            placed(order, "A", 1),
            placed(&format!("{order}-b"), "B", 1),
        ])
        .deduplicated_by(marker.clone())
    };
    store.append(batch("o-1")).await.unwrap();
    let again = store.append(batch("o-2")).await;
    assert!(
        matches!(again, Err(StoreError::Duplicate { .. })),
        "{again:?}"
    );
    assert!(
        stack.stream("Order", "o-2").await.is_empty(),
        "nothing of a duplicate is written"
    );
    let clash = store
        .append(Append::events(vec![
            placed("o-3", "A", 1),
            placed("o-1", "A", 1),
        ]))
        .await;
    assert!(
        matches!(clash, Err(StoreError::Conflict { ref stream }) if stream == "Order#o-1"),
        "{clash:?}"
    );
    assert!(
        stack.stream("Order", "o-3").await.is_empty(),
        "a conflicting transaction writes nothing"
    );
    stack.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_keyed_by_its_cause_is_its_own_marker_in_one_put() {
    let stack = TestStack::deploy("by-cause").await;
    let store = stack.store();
    let cause = placed("o-1", "A", 1);
    // The same reaction to the same event, encoded afresh on each delivery (a new id each time).
    let reaction = |cause: &Envelope| {
        Append::events(vec![placed("r-1", "A", 1).caused_by(cause)]).deduplicated_by_cause()
    };
    store.append(reaction(&cause)).await.unwrap();
    let again = store.append(reaction(&cause)).await;
    assert!(
        matches!(again, Err(StoreError::Duplicate { ref source_event_id, .. }) if *source_event_id == cause.id),
        "DynamoDB returns the event in the way, caused by the same event: {again:?}"
    );
    let other = store.append(reaction(&placed("o-2", "A", 1))).await;
    assert!(
        matches!(other, Err(StoreError::Conflict { ref stream }) if stream == "Order#r-1"),
        "{other:?}"
    );
    let stream = stack.stream("Order", "r-1").await;
    assert_eq!(stream.len(), 1, "one event, written once");
    assert_eq!(stream[0].causationid.as_deref(), Some(cause.id.as_str()));
    stack.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_message_fails_alone_while_the_rest_of_the_batch_succeeds() {
    let stack = TestStack::deploy("poison").await;
    stack.inventory().restock("A", 10).await.unwrap();
    let good = placed("o-good", "A", 1);
    let other = placed("o-other", "A", 2);
    let batch = sqs_event(&[
        ("m-good", good.to_json()),
        (
            "m-poison",
            "{\"specversion\": \"1.0\", \"truncated".to_owned(),
        ),
        (
            "m-unknown",
            good.to_json().replace("order.placed", "order.teleported"),
        ),
        ("m-other", other.to_json()),
    ]);
    let response = stack.invoke("inventory")(batch, context()).await.unwrap();
    assert_eq!(failures(&response), vec!["m-poison", "m-unknown"]);
    assert_eq!(
        stack.types("Reservation", "o-good").await,
        vec!["stock.reserved"]
    );
    assert_eq!(
        stack.types("Reservation", "o-other").await,
        vec!["stock.reserved"]
    );
    stack.teardown().await;
}
