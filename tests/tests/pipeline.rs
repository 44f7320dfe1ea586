//! The walking skeleton end to end: producer → event store → stream → SNS → SQS → consumer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ripple_e2e::{TestStack, body, eventually, fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_posted_through_the_api_is_stored_published_consumed_and_reserved() {
    let stack = TestStack::deploy("pipeline").await;
    let request = fixture("orders-api-post-order.json");
    let order: serde_json::Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
    let inventory = stack.inventory();
    for line in order["lines"].as_array().unwrap() {
        let (sku, quantity) = (
            line["sku"].as_str().unwrap(),
            line["quantity"].as_u64().unwrap(),
        );
        inventory.restock(sku, quantity + 3).await.unwrap();
        stack.price(&[sku]).await;
    }
    let runtime = stack
        .run(&["orders-api", "outbox-publisher", "inventory"])
        .await;

    let response = runtime
        .function("OrdersApiFunction")
        .unwrap()
        .invoke(request)
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 201, "{response}");
    let order_id = body(&response)["order_id"].as_str().unwrap().to_owned();
    assert_eq!(
        stack.types("Order", &order_id).await,
        vec!["order.placed"],
        "stored"
    );

    let reserved = eventually(
        "stock.reserved in the store",
        Duration::from_secs(60),
        || async {
            let types = stack.types("Reservation", &order_id).await;
            (!types.is_empty()).then_some(types)
        },
    )
    .await;
    assert_eq!(reserved, vec!["stock.reserved"]);
    let reservation = &stack.stream("Reservation", &order_id).await[0];
    let placed = &stack.stream("Order", &order_id).await[0];
    assert_eq!(
        reservation.causationid.as_deref(),
        Some(placed.id.as_str()),
        "caused by the order"
    );
    assert_eq!(
        reservation.traceparent, placed.traceparent,
        "trace carried across the hop"
    );

    runtime
        .wait_until_quiet(Duration::from_secs(60), |_, _| {})
        .await
        .unwrap();
    let stats = runtime.stats().snapshot();
    let consumed = runtime
        .function("InventoryFunction")
        .unwrap()
        .stats()
        .sqs_succeeded
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        consumed >= 1,
        "inventory consumed the published order.placed: {stats:?}"
    );
    for line in order["lines"].as_array().unwrap() {
        let (stock, _) = inventory
            .stock(line["sku"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(
            (stock.available, stock.allocated),
            (3, line["quantity"].as_u64().unwrap())
        );
    }
    runtime.stop().await;
    stack.teardown().await;
}
