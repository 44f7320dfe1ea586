//! The order saga end to end, every function running: confirmation, compensation, the read
//! model, history and time travel, and a second delivery of everything at every consumer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use domain::views::ViewStore;
use ripple_e2e::{TestStack, api_request, body, context, place_order_request, sqs_event, unique};
use ripple_kit::publish::{Publisher, SnsPublisher};
use ripple_kit::{Envelope, EventStore, StreamPosition};
use serde_json::{Value, json};

const ALL: &[&str] = &[
    "orders-api",
    "outbox-publisher",
    "inventory",
    "payments",
    "order-saga",
    "projections",
    "notifications",
];
const QUIET: Duration = Duration::from_secs(120);

async fn place(
    runtime: &ripple::runtime::Runtime,
    customer: &str,
    lines: &[(&str, u32)],
) -> String {
    let response = runtime
        .function("OrdersApiFunction")
        .unwrap()
        .invoke(place_order_request(customer, lines))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 201, "{response}");
    body(&response)["order_id"].as_str().unwrap().to_owned()
}

async fn api(runtime: &ripple::runtime::Runtime, request: Value) -> (i64, Value) {
    let response = runtime
        .function("OrdersApiFunction")
        .unwrap()
        .invoke(request)
        .await
        .unwrap();
    (response["statusCode"].as_i64().unwrap(), body(&response))
}

/// A queue subscribed to the customer notifications topic, to count what customers are sent.
async fn notifications_inbox(stack: &TestStack) -> String {
    let sqs = &stack.clients.sqs;
    let url = sqs
        .create_queue()
        .queue_name(unique("inbox"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    stack
        .clients
        .sns
        .subscribe()
        .topic_arn(&stack.deployment.topic("NotificationsTopic").unwrap().arn)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    url
}

async fn drain(stack: &TestStack, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let out = stack
            .clients
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for m in messages {
            bodies.push(m.body.clone().unwrap_or_default());
            stack
                .clients
                .sqs
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_path_of_the_saga_ends_where_it_should_and_nothing_happens_twice() {
    let stack = TestStack::deploy("saga").await;
    let inventory = stack.inventory();
    for (sku, units) in [("HAPPY", 5), ("SCARCE", 1), ("DECLINE", 3), ("LAST", 1)] {
        inventory.restock(sku, units).await.unwrap();
    }
    let inbox = notifications_inbox(&stack).await;
    let runtime = stack.run(ALL).await;

    let happy = place(&runtime, "c-happy", &[("HAPPY", 2)]).await;
    let scarce = place(&runtime, "c-scarce", &[("SCARCE", 2)]).await;
    let declined = place(&runtime, "declined-c-1", &[("DECLINE", 2)]).await;
    let (last_a, last_b) = tokio::join!(
        place(&runtime, "c-a", &[("LAST", 1)]),
        place(&runtime, "c-b", &[("LAST", 1)])
    );
    runtime.wait_until_quiet(QUIET, |_, _| {}).await.unwrap();

    // Happy path: reserved, captured, confirmed.
    assert_eq!(
        stack.types("Order", &happy).await,
        vec!["order.placed", "order.confirmed"]
    );
    assert_eq!(
        stack.types("Payment", &happy).await,
        vec!["payment.captured"]
    );
    // Out of stock: cancelled, no payment attempted.
    assert_eq!(
        stack.types("Order", &scarce).await,
        vec!["order.placed", "order.cancelled"]
    );
    assert_eq!(
        stack.stream("Order", &scarce).await[1].data["reason"],
        "out_of_stock"
    );
    assert!(
        stack.types("Payment", &scarce).await.is_empty(),
        "no payment attempted"
    );
    // Declined: cancelled, and the stock back at exactly its prior level.
    assert_eq!(
        stack.types("Order", &declined).await,
        vec!["order.placed", "order.cancelled"]
    );
    assert_eq!(
        stack.stream("Order", &declined).await[1].data["reason"],
        "payment_declined"
    );
    assert_eq!(
        stack.types("Reservation", &declined).await,
        vec!["stock.reserved", "stock.released"]
    );
    let (level, _) = inventory.stock("DECLINE").await.unwrap();
    assert_eq!((level.available, level.allocated), (3, 0));
    // The last unit: exactly one of the two orders gets it.
    let mut outcomes = vec![
        stack
            .stream("Order", &last_a)
            .await
            .last()
            .unwrap()
            .event_type
            .clone(),
        stack
            .stream("Order", &last_b)
            .await
            .last()
            .unwrap()
            .event_type
            .clone(),
    ];
    outcomes.sort();
    assert_eq!(outcomes, vec!["order.cancelled", "order.confirmed"]);
    let (level, _) = inventory.stock("LAST").await.unwrap();
    assert_eq!((level.available, level.allocated), (0, 1));

    // The read model agrees with the store.
    let expected = [
        (&happy, "confirmed"),
        (&scarce, "cancelled"),
        (&declined, "cancelled"),
    ];
    for (order, status) in expected {
        let (code, view) = api(
            &runtime,
            api_request("GET", &format!("/orders/{order}"), &[]),
        )
        .await;
        assert_eq!(
            (code, view["source"].as_str()),
            (200, Some("read_model")),
            "{view}"
        );
        assert_eq!(view["view"]["status"], status, "{view}");
    }

    // Time travel matches the history, version by version.
    let history = stack.stream("Order", &happy).await;
    for (at, event) in history.iter().enumerate() {
        let version = (at + 1).to_string();
        let (_, state) = api(
            &runtime,
            api_request("GET", &format!("/orders/{happy}"), &[("version", &version)]),
        )
        .await;
        assert_eq!(state["version"], json!(at + 1));
        let status = if event.event_type == "order.confirmed" {
            "confirmed"
        } else {
            "placed"
        };
        assert_eq!(state["order"]["status"], status);
    }
    let (_, events) = api(
        &runtime,
        api_request("GET", &format!("/orders/{happy}/events"), &[]),
    )
    .await;
    assert_eq!(events["events"].as_array().unwrap().len(), history.len());

    // Customers hear once per order outcome.
    let sent = drain(&stack, &inbox).await;
    assert_eq!(sent.len(), 5, "{sent:#?}");

    // Every event delivered a second time to every consumer changes nothing.
    let orders = [&happy, &scarce, &declined, &last_a, &last_b];
    let mut before: BTreeMap<String, usize> = BTreeMap::new();
    let mut everything: Vec<Envelope> = Vec::new();
    for order in orders {
        for aggregate in ["Order", "Reservation", "Payment"] {
            let stream = stack.stream(aggregate, order).await;
            before.insert(format!("{aggregate}#{order}"), stream.len());
            everything.extend(stream);
        }
    }
    let topic = stack
        .deployment
        .topic("DomainEventsTopic")
        .unwrap()
        .arn
        .clone();
    let report = SnsPublisher::new(stack.clients.sns.clone(), topic)
        .publish(&everything)
        .await;
    assert!(report.all_published(), "{report:?}");
    runtime.wait_until_quiet(QUIET, |_, _| {}).await.unwrap();
    for order in orders {
        for aggregate in ["Order", "Reservation", "Payment"] {
            let key = format!("{aggregate}#{order}");
            assert_eq!(
                stack.stream(aggregate, order).await.len(),
                before[&key],
                "{key} changed on redelivery"
            );
        }
    }
    assert!(
        drain(&stack, &inbox).await.is_empty(),
        "no customer is told twice"
    );
    let dlq_depth = runtime_dlq_depth(&stack).await;
    assert_eq!(dlq_depth, 0, "nothing dead-lettered");

    runtime.stop().await;
    stack.teardown().await;
}

async fn runtime_dlq_depth(stack: &TestStack) -> u64 {
    let mut total = 0;
    for queue in stack.deployment.queues.values().filter(|q| q.dead_letter) {
        total += ripple::runtime::sqs::depth(&stack.clients.sqs, &queue.url)
            .await
            .unwrap();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_cancelled_before_payment_gets_its_stock_back_and_is_never_charged() {
    let stack = TestStack::deploy("cancel").await;
    let inventory = stack.inventory();
    inventory.restock("SKU", 4).await.unwrap();
    let without_payments: Vec<&str> = ALL.iter().copied().filter(|b| *b != "payments").collect();
    let runtime = stack.run(&without_payments).await;
    let order = place(&runtime, "c-1", &[("SKU", 3)]).await;
    ripple_e2e::eventually("the reservation", QUIET, || async {
        (!stack.types("Reservation", &order).await.is_empty()).then_some(())
    })
    .await;
    let (code, reply) = api(
        &runtime,
        api_request("POST", &format!("/orders/{order}/cancel"), &[]),
    )
    .await;
    assert_eq!((code, &reply["changed"]), (202, &json!(true)), "{reply}");
    let (code, reply) = api(
        &runtime,
        api_request("POST", &format!("/orders/{order}/cancel"), &[]),
    )
    .await;
    assert_eq!(
        (code, &reply["changed"]),
        (200, &json!(false)),
        "a second cancel is a no-op: {reply}"
    );
    runtime.wait_until_quiet(QUIET, |_, _| {}).await.unwrap();
    assert_eq!(
        stack.types("Reservation", &order).await,
        vec!["stock.reserved", "stock.released"]
    );
    let (level, _) = inventory.stock("SKU").await.unwrap();
    assert_eq!((level.available, level.allocated), (4, 0));
    runtime.stop().await;

    // Payments comes up late and finds the reservation in its queue: the order is cancelled.
    let payments = stack.run(&["payments"]).await;
    payments.wait_until_quiet(QUIET, |_, _| {}).await.unwrap();
    assert!(
        stack.types("Payment", &order).await.is_empty(),
        "a cancelled order is never charged"
    );
    payments.stop().await;
    stack.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_projection_fed_events_out_of_order_and_twice_ends_correct() {
    let stack = TestStack::deploy("views").await;
    let store = stack.store();
    let order = "o-out-of-order";
    let event = |aggregate: &str, seq: u64, value: Value| {
        let mut e =
            Envelope::encode("test", StreamPosition::new(aggregate, order, seq), &value).unwrap();
        e.subject = order.to_owned();
        e
    };
    let events = vec![
        event(
            "Order",
            1,
            json!({"type": "order.placed", "data": {"order_id": order, "customer_id": "c-1", "currency": "EUR",
            "lines": [{"sku": "A", "quantity": 1, "unit_price_cents": 700}], "total_cents": 700}}),
        ),
        event(
            "Reservation",
            1,
            json!({"type": "stock.reserved", "data": {"order_id": order, "customer_id": "c-1",
            "total_cents": 700, "currency": "EUR", "lines": [{"sku": "A", "quantity": 1}]}}),
        ),
        event(
            "Payment",
            1,
            json!({"type": "payment.captured", "data": {"order_id": order, "amount_cents": 700,
            "currency": "EUR", "payment_id": "pay-1"}}),
        ),
        event(
            "Order",
            2,
            json!({"type": "order.confirmed", "data": {"order_id": order}}),
        ),
    ];
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
        .view(order)
        .await
        .unwrap()
        .expect("a view was written");
    let rebuilt = projections.consumer().rebuild(order).await.unwrap();
    assert_eq!(stored, rebuilt);
    assert_eq!(serde_json::to_value(stored.status).unwrap(), "confirmed");
    stack.teardown().await;
}
