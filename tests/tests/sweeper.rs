//! The saga deadline and converging views: an order whose saga message never arrives is
//! cancelled at its deadline and fully compensated, and a view that missed an event is repaired
//! from the store. The sweeper is the real one from the registry, with its deadline and settle
//! time shortened in its template environment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ripple_e2e::{ALL_FUNCTIONS, QUIET, RunningStack, TestStack, context, eventually, fixture};
use serde_json::Value;

/// Deadline and settle time of one second, so that what the test stored is due at once.
fn hurried(stack: &mut TestStack) {
    let sweeper = stack
        .deployment
        .functions
        .get_mut("SweeperFunction")
        .expect("the sweeper");
    for key in ["ORDER_DEADLINE_SECONDS", "SWEEP_SETTLE_SECONDS"] {
        sweeper.environment.insert(key.into(), "1".into());
    }
}

/// One scheduled run of the sweeper; its report.
async fn sweep(stack: &TestStack) -> Value {
    let sweeper = stack.invoke("sweeper");
    // The minute its template gives it.
    let mut context = context();
    context.deadline += 50_000;
    sweeper(fixture("sweeper-scheduled.json"), context)
        .await
        .expect("the sweep ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_whose_saga_message_never_arrives_is_cancelled_at_its_deadline_and_compensated() {
    // No order-saga: payment.captured is never turned into order.confirmed, as if its message
    // had been dead-lettered.
    let without_saga: Vec<&str> = ALL_FUNCTIONS
        .iter()
        .copied()
        .filter(|b| *b != "order-saga")
        .collect();
    let mut saga = RunningStack::start_only("deadline", &[("SKU", 5)], &without_saga).await;
    hurried(&mut saga.stack);
    let order = saga.api().place("c-1", &[("SKU", 2)]).await;
    let stack = &saga.stack;
    eventually("the capture", QUIET, || async {
        (!stack.types("Payment", &order).await.is_empty()).then_some(())
    })
    .await;
    saga.settle().await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let report = sweep(stack).await;
    assert_eq!(report["orders_timed_out"], 1, "{report}");
    saga.settle().await;

    assert_eq!(
        stack.types("Order", &order).await,
        ["order.placed", "order.cancelled"]
    );
    let cancelled = &stack.stream("Order", &order).await[1];
    assert_eq!(cancelled.data["reason"], "timed_out");
    assert_eq!(
        stack.types("Reservation", &order).await,
        ["stock.reserved", "stock.released"],
        "the stock went back"
    );
    assert_eq!(
        stack.types("Payment", &order).await,
        ["payment.captured", "payment.refunded"],
        "the money went back"
    );
    let (stock, _) = stack.inventory().stock("SKU").await.unwrap();
    assert_eq!((stock.available, stock.allocated), (5, 0));
    let again = sweep(stack).await;
    assert_eq!(again["orders_timed_out"], 0, "once is enough: {again}");
    saga.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_view_that_missed_its_orders_events_is_rebuilt_from_the_store() {
    // No projections: no event reaches the read model, as if every one had been dead-lettered.
    let without_projections: Vec<&str> = ALL_FUNCTIONS
        .iter()
        .copied()
        .filter(|b| *b != "projections")
        .collect();
    let mut saga = RunningStack::start_only("views", &[("SKU", 5)], &without_projections).await;
    hurried(&mut saga.stack);
    let order = saga.api().place("c-1", &[("SKU", 2)]).await;
    saga.settle().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stack = &saga.stack;

    let report = sweep(stack).await;
    assert_eq!(report["views_repaired"], 1, "{report}");
    let (status, view) = saga
        .api()
        .call(ripple_e2e::api_request(
            "c-1",
            "GET",
            &format!("/orders/{order}"),
            &[],
        ))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["view"]["status"], "confirmed", "{view}");
    saga.finish().await;
}
