//! History stored before `order.placed` moved to schema version 2 (`tests/fixtures/v1-history.json`,
//! the event items a run of the version-1 code wrote) is still read by everyone: an order placed
//! at v1 with its saga still to run is reserved, charged for the v1 total and confirmed; two
//! finished v1 orders are left as they are, told to their customers once, projected into their
//! views and read back at each version. Not one stored v1 event is rewritten.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{SubsecRound, Utc};
use domain::contracts::{self, SCHEMA_DIR};
use domain::order::{Order, OrderEvent, PLACED};
use domain::payment::{Payment, PaymentEvent};
use ripple::history::{HistoryArgs, journey, run};
use ripple::stack::StackArgs;
use ripple_e2e::{ALL_FUNCTIONS, OrdersApi, QUIET, TestStack, api_request, repo_root};
use ripple_kit::{Append, Envelope, EventStore};
use serde_json::{Value, json};

/// The fixture: which order is which, and its items.
struct Fixture {
    confirmed: String,
    cancelled: String,
    in_flight: String,
    events: Vec<Envelope>,
}

impl Fixture {
    /// The fixture's events, each read from its item as the store reads one (the `envelope`
    /// attribute), after checking the item is keyed as the store keys it.
    fn load() -> Fixture {
        let path = repo_root().join("tests/fixtures/v1-history.json");
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let events = doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                let envelope = Envelope::from_json(item["envelope"]["S"].as_str().unwrap())
                    .unwrap_or_else(|e| panic!("{item}: {e}"));
                assert_eq!(item["pk"]["S"], envelope.stream_key().as_str());
                assert_eq!(item["sk"]["N"], envelope.sequence.to_string().as_str());
                assert_eq!(item["kind"]["S"], "event");
                assert_eq!(item["type"]["S"], envelope.event_type.as_str());
                envelope
            })
            .collect();
        let id = |key: &str| doc[key].as_str().unwrap().to_owned();
        Fixture {
            confirmed: id("confirmed"),
            cancelled: id("cancelled"),
            in_flight: id("in_flight"),
            events,
        }
    }

    /// The stored `order.placed` of `order`, as the version-1 code wrote it.
    fn placed(&self, order: &str) -> &Envelope {
        self.events
            .iter()
            .find(|e| e.event_type == PLACED && e.subject == order)
            .unwrap()
    }
}

/// The view of `order` the API answers to its customer.
async fn view(api: &OrdersApi<'_>, customer: &str, order: &str, query: &[(&str, &str)]) -> Value {
    let (status, body) = api
        .call(api_request(
            customer,
            "GET",
            &format!("/orders/{order}"),
            query,
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_stored_at_order_placed_v1_is_read_by_every_consumer_the_views_and_time_travel() {
    let fixture = Fixture::load();
    let v1: Vec<&Envelope> = fixture
        .events
        .iter()
        .filter(|e| e.event_type == PLACED)
        .collect();
    assert_eq!(v1.len(), 3);
    assert!(
        v1.iter()
            .all(|e| e.schemaversion == 1 && e.data.get("total_cents").is_some())
    );

    let stack = TestStack::deploy("v1-history").await;
    let in_flight = fixture.placed(&fixture.in_flight).data.clone();
    let skus: Vec<(&str, u64)> = in_flight["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["sku"].as_str().unwrap(), 100))
        .collect();
    stack.restock(&skus).await;
    let inbox = stack.inbox("NotificationsTopic").await;

    // The fixture's events, stored as they were, in the order they were written, before any
    // function runs (as an old history is: the publisher reads the stream from its trim
    // horizon), so that no reaction takes a position the fixture holds. Only their times move
    // to now: consumers admit events inside a 14-day replay window.
    let store = stack.store();
    let now = Utc::now().trunc_subsecs(3);
    let mut stored = Vec::new();
    for (i, event) in fixture.events.iter().enumerate() {
        let mut event = event.clone();
        event.time = now + chrono::Duration::milliseconds(i64::try_from(i).unwrap());
        store
            .append(Append::events(vec![event.clone()]))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", event.stream_key()));
        stored.push(event);
    }
    let runtime = stack.run(ALL_FUNCTIONS).await;
    let started = std::time::Instant::now();
    while stack.types("Order", &fixture.in_flight).await.len() < 2 {
        assert!(started.elapsed() < QUIET, "the v1 order was never decided");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    if let Err(busy) = runtime.wait_until_quiet(QUIET, |_, _| {}).await {
        panic!("{busy}");
    }

    // The saga of the order placed at v1 ran on from it: reserved, charged its v1 total in its
    // v1 currency, confirmed.
    let order = &fixture.in_flight;
    assert_eq!(
        stack.types("Order", order).await,
        ["order.placed", "order.confirmed"]
    );
    let reservation = stack.stream("Reservation", order).await;
    assert_eq!(reservation[0].event_type, "stock.reserved");
    assert_eq!(reservation[0].data["total_cents"], in_flight["total_cents"]);
    let payment = stack.stream("Payment", order).await;
    match payment[0].decode_for::<Payment>().unwrap() {
        PaymentEvent::Captured {
            amount_cents,
            currency,
            ..
        } => assert_eq!(
            (json!(amount_cents), json!(currency)),
            (
                in_flight["total_cents"].clone(),
                in_flight["currency"].clone()
            )
        ),
        other => panic!("not captured: {other:?}"),
    }
    for line in in_flight["lines"].as_array().unwrap() {
        let (level, _) = stack
            .inventory()
            .stock(line["sku"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(json!(level.allocated), line["quantity"], "{line}");
    }

    // The finished orders are left as they were: no second reservation, charge or outcome.
    for (order, types) in [
        (&fixture.confirmed, vec!["order.placed", "order.confirmed"]),
        (&fixture.cancelled, vec!["order.placed", "order.cancelled"]),
    ] {
        assert_eq!(stack.types("Order", order).await, types);
        assert_eq!(stack.types("Reservation", order).await.len(), 1);
    }
    assert_eq!(stack.types("Payment", &fixture.confirmed).await.len(), 1);
    assert!(stack.types("Payment", &fixture.cancelled).await.is_empty());

    // Stored history is never rewritten: each v1 event reads back exactly as it was stored.
    let mut by_stream: BTreeMap<String, Vec<Envelope>> = BTreeMap::new();
    for event in &stored {
        by_stream
            .entry(event.stream_key())
            .or_default()
            .push(event.clone());
    }
    for (key, events) in &by_stream {
        let (aggregate, id) = key.split_once('#').unwrap();
        let read = stack.stream(aggregate, id).await;
        assert_eq!(&read[..events.len()], events.as_slice(), "{key}");
    }
    for placed in v1 {
        let read = &stack.stream("Order", &placed.subject).await[0];
        assert_eq!((read.schemaversion, &read.data), (1, &placed.data));
    }

    // Each outcome told to its customer once: the two finished orders and the one that ran on.
    assert_eq!(inbox.drain().await.len(), 3);

    // The read model and time travel read v1 as v2.
    let api = OrdersApi::of(&runtime);
    for order in [&fixture.confirmed, &fixture.cancelled, &fixture.in_flight] {
        let placed = &fixture.placed(order).data;
        let customer = placed["customer_id"].as_str().unwrap();
        let read = view(&api, customer, order, &[]).await;
        assert_eq!(read["source"], "read_model", "{read}");
        assert_eq!(read["view"]["total_cents"], placed["total_cents"], "{read}");
        assert_eq!(read["view"]["currency"], placed["currency"], "{read}");
        let status = if order == &fixture.cancelled {
            "cancelled"
        } else {
            "confirmed"
        };
        assert_eq!(read["view"]["status"], status, "{read}");

        let first = view(&api, customer, order, &[("version", "1")]).await;
        assert_eq!(first["order"]["status"], "placed", "{first}");
        assert_eq!(
            first["order"]["placed"]["total"],
            json!({"currency": placed["currency"], "minor_units": placed["total_cents"]}),
            "{first}"
        );
    }
    let told = journey(&store, &fixture.cancelled).await.unwrap();
    let steps: Vec<&str> = told.steps.iter().map(|s| s.event_type.as_str()).collect();
    assert_eq!(steps, ["order.placed", "stock.rejected", "order.cancelled"]);
    let args = |at| HistoryArgs {
        order: fixture.confirmed.clone(),
        stack: StackArgs {
            stack: stack.deployment.stack_name.clone(),
            template: repo_root().join("template.yaml"),
        },
        at,
        json: true,
    };
    let at_first: Value = serde_json::from_str(&run(&args(Some(1))).await.unwrap()).unwrap();
    let at_last: Value = serde_json::from_str(&run(&args(None)).await.unwrap()).unwrap();
    assert_eq!(at_first["state"]["status"], "placed", "{at_first}");
    assert_eq!(at_last["state"]["status"], "confirmed", "{at_last}");

    // And every event in the store, v1 and v2 alike, meets the contract of its version.
    let committed = contracts::committed(Path::new(SCHEMA_DIR)).unwrap();
    for key in by_stream.keys() {
        let (aggregate, id) = key.split_once('#').unwrap();
        for event in stack.stream(aggregate, id).await {
            let value: Value = serde_json::from_str(&event.to_json()).unwrap();
            assert_eq!(
                contracts::check(&committed, &value).map_err(|v| v.to_string()),
                Ok(())
            );
        }
    }
    let decided = &stack.stream("Order", &fixture.in_flight).await[1];
    assert!(matches!(
        decided.decode_for::<Order>().unwrap(),
        OrderEvent::Confirmed { .. }
    ));
    runtime.stop().await;
    stack.teardown().await;
}
