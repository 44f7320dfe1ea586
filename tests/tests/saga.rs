//! The order saga end to end, every function running, one path per test on a stack of its own:
//! confirmation, compensation, the race for the last unit, the read model and time travel, one
//! message per outcome, and a second delivery of everything changing nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::views::ViewStore;
use ripple_e2e::{
    ALL_FUNCTIONS, OrdersApi, QUIET, RunningStack, TestStack, api_request, context,
    fixture_envelope, sqs_event,
};
use ripple_kit::publish::{Publisher, SnsPublisher};
use ripple_kit::{Envelope, EventStore};
use serde_json::json;

/// Stock for the three paths an order can take: confirmed, out of stock, declined.
const THREE_PATHS: &[(&str, u64)] = &[("HAPPY", 5), ("SCARCE", 1), ("DECLINE", 3)];

/// The order was placed, then cancelled for `reason`.
async fn assert_cancelled(stack: &TestStack, order: &str, reason: &str) {
    let history = stack.stream("Order", order).await;
    let types: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["order.placed", "order.cancelled"]);
    assert_eq!(history[1].data["reason"], reason);
}

/// The view of `customer`'s `order` the API answers from the read model.
async fn view(api: &OrdersApi<'_>, customer: &str, order: &str) -> serde_json::Value {
    let (status, view) = api
        .call(api_request(
            customer,
            "GET",
            &format!("/orders/{order}"),
            &[],
        ))
        .await;
    assert_eq!(
        (status, view["source"].as_str()),
        (200, Some("read_model")),
        "{view}"
    );
    view
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_with_stock_and_a_good_card_is_reserved_charged_and_confirmed() {
    let saga = RunningStack::start("confirmed", &[("HAPPY", 5)]).await;
    let (stack, api) = (&saga.stack, saga.api());
    let order = api.place("c-happy", &[("HAPPY", 2)]).await;
    saga.settle().await;

    assert_eq!(
        stack.types("Order", &order).await,
        ["order.placed", "order.confirmed"]
    );
    assert_eq!(stack.types("Payment", &order).await, ["payment.captured"]);
    let (level, _) = stack.inventory().stock("HAPPY").await.unwrap();
    assert_eq!((level.available, level.allocated), (3, 2));
    assert_eq!(
        view(&api, "c-happy", &order).await["view"]["status"],
        "confirmed"
    );
    saga.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_without_enough_stock_is_cancelled_and_never_charged() {
    let saga = RunningStack::start("outofstock", &[("SCARCE", 1)]).await;
    let (stack, api) = (&saga.stack, saga.api());
    let order = api.place("c-scarce", &[("SCARCE", 2)]).await;
    saga.settle().await;

    assert_cancelled(stack, &order, "out_of_stock").await;
    assert!(
        stack.types("Payment", &order).await.is_empty(),
        "no payment attempted"
    );
    assert_eq!(
        view(&api, "c-scarce", &order).await["view"]["status"],
        "cancelled"
    );
    saga.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_declined_payment_cancels_the_order_and_gives_its_stock_back() {
    let saga = RunningStack::start("declined", &[("DECLINE", 3)]).await;
    let (stack, api) = (&saga.stack, saga.api());
    let order = api.place("declined-c-1", &[("DECLINE", 2)]).await;
    saga.settle().await;

    assert_cancelled(stack, &order, "payment_declined").await;
    assert_eq!(
        stack.types("Reservation", &order).await,
        ["stock.reserved", "stock.released"]
    );
    let (level, _) = stack.inventory().stock("DECLINE").await.unwrap();
    assert_eq!(
        (level.available, level.allocated),
        (3, 0),
        "back to its prior level"
    );
    assert_eq!(
        view(&api, "declined-c-1", &order).await["view"]["status"],
        "cancelled"
    );
    saga.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_orders_for_the_last_unit_exactly_one_is_confirmed() {
    let saga = RunningStack::start("lastunit", &[("LAST", 1)]).await;
    let (stack, api) = (&saga.stack, saga.api());
    let (a, b) = tokio::join!(
        api.place("c-a", &[("LAST", 1)]),
        api.place("c-b", &[("LAST", 1)])
    );
    saga.settle().await;

    let mut outcomes = Vec::new();
    for order in [&a, &b] {
        outcomes.push(stack.types("Order", order).await.pop().unwrap());
    }
    outcomes.sort();
    assert_eq!(outcomes, ["order.cancelled", "order.confirmed"]);
    let (level, _) = stack.inventory().stock("LAST").await.unwrap();
    assert_eq!((level.available, level.allocated), (0, 1));
    saga.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_order_at_each_version_and_its_history_match_the_stored_events() {
    let saga = RunningStack::start("history", &[("HAPPY", 5)]).await;
    let (stack, api) = (&saga.stack, saga.api());
    let order = api.place("c-happy", &[("HAPPY", 2)]).await;
    saga.settle().await;

    let history = stack.stream("Order", &order).await;
    assert_eq!(history.len(), 2, "placed and confirmed");
    for (at, event) in history.iter().enumerate() {
        let version = (at + 1).to_string();
        let (_, state) = api
            .call(api_request(
                "c-happy",
                "GET",
                &format!("/orders/{order}"),
                &[("version", &version)],
            ))
            .await;
        assert_eq!(state["version"], json!(at + 1));
        let status = if event.event_type == "order.confirmed" {
            "confirmed"
        } else {
            "placed"
        };
        assert_eq!(state["order"]["status"], status);
    }
    let (_, events) = api
        .call(api_request(
            "c-happy",
            "GET",
            &format!("/orders/{order}/events"),
            &[],
        ))
        .await;
    assert_eq!(events["events"].as_array().unwrap().len(), history.len());
    saga.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_order_outcome_is_told_to_its_customer_once() {
    let saga = RunningStack::start("told", THREE_PATHS).await;
    let (stack, api) = (&saga.stack, saga.api());
    let inbox = stack.inbox("NotificationsTopic").await;
    api.place("c-happy", &[("HAPPY", 2)]).await;
    api.place("c-scarce", &[("SCARCE", 2)]).await;
    api.place("declined-c-1", &[("DECLINE", 2)]).await;
    saga.settle().await;

    let sent = inbox.drain().await;
    assert_eq!(
        sent.len(),
        3,
        "confirmed, out of stock, declined: {sent:#?}"
    );
    saga.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_delivered_again_to_every_consumer_changes_nothing() {
    let saga = RunningStack::start("twice", THREE_PATHS).await;
    let (stack, api) = (&saga.stack, saga.api());
    let inbox = stack.inbox("NotificationsTopic").await;
    let orders = [
        api.place("c-happy", &[("HAPPY", 2)]).await,
        api.place("c-scarce", &[("SCARCE", 2)]).await,
        api.place("declined-c-1", &[("DECLINE", 2)]).await,
    ];
    saga.settle().await;
    inbox.drain().await;

    let mut before = Vec::new();
    let mut everything: Vec<Envelope> = Vec::new();
    for order in &orders {
        for aggregate in ["Order", "Reservation", "Payment"] {
            let stream = stack.stream(aggregate, order).await;
            before.push((aggregate, order, stream.len()));
            everything.extend(stream);
        }
    }
    let topic = stack.deployment.topic("DomainEventsTopic").unwrap();
    let report = SnsPublisher::new(stack.clients.sns.clone(), topic.arn.clone())
        .publish(&everything)
        .await;
    assert!(report.all_published(), "{report:?}");
    saga.settle().await;

    for (aggregate, order, length) in before {
        assert_eq!(
            stack.stream(aggregate, order).await.len(),
            length,
            "{aggregate}#{order} changed on redelivery"
        );
    }
    assert!(inbox.drain().await.is_empty(), "no customer is told twice");
    assert_eq!(stack.dead_lettered().await, 0, "nothing dead-lettered");
    saga.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_cancelled_before_payment_gets_its_stock_back_and_is_never_charged() {
    let without_payments: Vec<&str> = ALL_FUNCTIONS
        .iter()
        .copied()
        .filter(|b| *b != "payments")
        .collect();
    let saga = RunningStack::start_only("cancel", &[("SKU", 4)], &without_payments).await;
    let (stack, api) = (&saga.stack, saga.api());
    let order = api.place("c-1", &[("SKU", 3)]).await;
    ripple_e2e::eventually("the reservation", QUIET, || async {
        (!stack.types("Reservation", &order).await.is_empty()).then_some(())
    })
    .await;
    let cancel = || api_request("c-1", "POST", &format!("/orders/{order}/cancel"), &[]);
    let (code, reply) = api.call(cancel()).await;
    assert_eq!((code, &reply["changed"]), (202, &json!(true)), "{reply}");
    let (code, reply) = api.call(cancel()).await;
    assert_eq!(
        (code, &reply["changed"]),
        (200, &json!(false)),
        "a second cancel is a no-op: {reply}"
    );
    saga.settle().await;
    assert_eq!(
        stack.types("Reservation", &order).await,
        ["stock.reserved", "stock.released"]
    );
    let (level, _) = stack.inventory().stock("SKU").await.unwrap();
    assert_eq!((level.available, level.allocated), (4, 0));
    let RunningStack { stack, runtime } = saga;
    runtime.stop().await;

    // Payments comes up late and finds the reservation in its queue: the order is cancelled.
    let late = RunningStack {
        runtime: stack.run(&["payments"]).await,
        stack,
    };
    late.settle().await;
    assert!(
        late.stack.types("Payment", &order).await.is_empty(),
        "a cancelled order is never charged"
    );
    late.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_projection_fed_events_out_of_order_and_twice_ends_correct() {
    let stack = TestStack::deploy("views").await;
    // One order's story, as the sample events tell it: placed, reserved, captured, confirmed.
    let events: Vec<Envelope> = [
        "projections-order-placed.json",
        "payments-stock-reserved.json",
        "order-saga-payment-captured.json",
        "notifications-order-confirmed.json",
    ]
    .into_iter()
    .map(fixture_envelope)
    .collect();
    let order = events[0].subject.clone();
    let store = stack.store();
    for e in &events {
        store
            .append(ripple_kit::Append::events(vec![e.clone()]))
            .await
            .unwrap();
    }
    let invoke = stack.invoke("projections");
    let mut deliveries: Vec<&Envelope> = events.iter().rev().collect();
    deliveries.extend(events.iter());
    for (i, e) in deliveries.iter().enumerate() {
        let batch = sqs_event(&[(&format!("m-{i}"), e.to_json())]);
        let response = invoke(batch, context()).await.unwrap();
        assert!(
            response["batchItemFailures"].as_array().unwrap().is_empty(),
            "{response}"
        );
    }
    let env = stack.env("ProjectionsFunction");
    let projections = projections::handler(
        projections::Config::from_lookup(|k| env.get(k).cloned()).unwrap(),
        &stack.aws,
    );
    let stored = projections
        .consumer()
        .views()
        .view(&order)
        .await
        .unwrap()
        .expect("a view was written");
    let rebuilt = projections.consumer().rebuild(&order).await.unwrap();
    assert_eq!(stored, rebuilt);
    assert_eq!(serde_json::to_value(stored.status).unwrap(), "confirmed");
    stack.teardown().await;
}
