//! Handler tests over the in-memory event store, starting from the sample SQS event in `events/`.

use super::*;
use domain::order::CancelReason;
use ripple_kit::store::InMemoryEventStore;
use ripple_kit::testing::{
    carrying, envelope, failed_message_ids, first_sqs_record, sqs_invocation,
};

const ORDER_PLACED: &str = include_str!("../../../events/inventory-order-placed.json");

fn sample_message() -> SqsMessage {
    first_sqs_record(ORDER_PLACED)
}

fn placed(message: &SqsMessage) -> (Envelope, OrderPlaced) {
    let envelope = envelope_from_sqs(message).unwrap();
    match envelope.decode().unwrap() {
        OrderEvent::Placed(p) => (envelope, p),
        other => panic!("fixture holds {other:?}"),
    }
}

/// A message carrying `event` as a new order event caused by nothing.
fn message_for(event: &OrderEvent, order_id: &str, sequence: u64) -> SqsMessage {
    carrying(
        sample_message(),
        &envelope("Order", order_id, sequence, event),
    )
}

/// A fresh order for `lines` (sku, quantity).
fn order(order_id: &str, lines: &[(&str, u32)]) -> OrderEvent {
    let (_, mut p) = placed(&sample_message());
    p.order_id = order_id.into();
    p.lines = lines
        .iter()
        .map(|(sku, q)| domain::order::OrderLine {
            sku: (*sku).into(),
            quantity: *q,
            unit_price_cents: 100,
        })
        .collect();
    OrderEvent::Placed(p)
}

fn handler() -> Handler<InMemoryEventStore> {
    Handler::with_store(InMemoryEventStore::new())
}

async fn reservation_types(h: &Handler<InMemoryEventStore>, order_id: &str) -> Vec<String> {
    h.store
        .read_stream("Reservation", order_id, 1)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

#[tokio::test]
async fn given_stock_when_the_sample_order_arrives_then_it_is_reserved_exactly_once() {
    let h = handler();
    let message = sample_message();
    let (source, order) = placed(&message);
    for line in &order.lines {
        h.restock(&line.sku, u64::from(line.quantity) + 1)
            .await
            .unwrap();
    }
    assert_eq!(
        h.handle_message(&message).await.unwrap(),
        Outcome::Applied("stock.reserved")
    );
    assert_eq!(
        h.handle_message(&message).await.unwrap(),
        Outcome::Duplicate
    );

    assert_eq!(
        reservation_types(&h, &order.order_id).await,
        vec!["stock.reserved"]
    );
    let reserved = &h
        .store
        .read_stream("Reservation", &order.order_id, 1)
        .await
        .unwrap()[0];
    assert_eq!(reserved.causationid.as_deref(), Some(source.id.as_str()));
    assert_eq!(reserved.correlationid, source.correlationid);
    for line in &order.lines {
        let stock = h.stock(&line.sku).await.unwrap();
        assert_eq!(
            (stock.available, stock.allocated),
            (1, u64::from(line.quantity))
        );
    }
}

#[tokio::test]
async fn given_too_little_stock_then_the_order_is_rejected_and_stock_untouched() {
    let h = handler();
    h.restock("A", 1).await.unwrap();
    let m = message_for(&order("o-1", &[("A", 2)]), "o-1", 1);
    assert_eq!(
        h.handle_message(&m).await.unwrap(),
        Outcome::Applied("stock.rejected")
    );
    assert_eq!(h.stock("A").await.unwrap().available, 1);
    assert_eq!(reservation_types(&h, "o-1").await, vec!["stock.rejected"]);
}

#[tokio::test]
async fn two_orders_racing_for_the_last_unit_one_wins() {
    let h = handler();
    h.restock("LAST", 1).await.unwrap();
    let a = message_for(&order("o-a", &[("LAST", 1)]), "o-a", 1);
    let b = message_for(&order("o-b", &[("LAST", 1)]), "o-b", 1);
    let (ra, rb) = tokio::join!(h.handle_message(&a), h.handle_message(&b));
    let mut outcomes = vec![ra.unwrap(), rb.unwrap()];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outcomes,
        vec![
            Outcome::Applied("stock.rejected"),
            Outcome::Applied("stock.reserved")
        ]
    );
    let stock = h.stock("LAST").await.unwrap();
    assert_eq!((stock.available, stock.allocated), (0, 1));
}

#[tokio::test]
async fn a_cancelled_order_gets_its_stock_back_once() {
    let h = handler();
    h.restock("A", 5).await.unwrap();
    h.handle_message(&message_for(&order("o-1", &[("A", 3)]), "o-1", 1))
        .await
        .unwrap();
    let cancel = OrderEvent::Cancelled {
        order_id: "o-1".into(),
        reason: CancelReason::PaymentDeclined,
    };
    let first = message_for(&cancel, "o-1", 2);
    let again = message_for(&cancel, "o-1", 2);
    assert_eq!(
        h.handle_message(&first).await.unwrap(),
        Outcome::Applied("stock.released")
    );
    // A redelivery, and a second cancellation, find nothing held any more.
    assert_eq!(h.handle_message(&first).await.unwrap(), Outcome::Ignored);
    assert_eq!(h.handle_message(&again).await.unwrap(), Outcome::Ignored);
    let stock = h.stock("A").await.unwrap();
    assert_eq!((stock.available, stock.allocated), (5, 0));
    assert_eq!(
        reservation_types(&h, "o-1").await,
        vec!["stock.reserved", "stock.released"]
    );
}

#[tokio::test]
async fn a_cancel_that_overtakes_its_order_leaves_the_stock_alone() {
    let h = handler();
    h.restock("A", 1).await.unwrap();
    let cancel = OrderEvent::Cancelled {
        order_id: "o-2".into(),
        reason: CancelReason::CustomerRequest,
    };
    // The cancel is handled first: it closes the reservation with nothing in it.
    assert_eq!(
        h.handle_message(&message_for(&cancel, "o-2", 2))
            .await
            .unwrap(),
        Outcome::Applied("stock.released")
    );
    // The order it cancelled arrives late and must not take the stock for ever.
    assert_eq!(
        h.handle_message(&message_for(&order("o-2", &[("A", 1)]), "o-2", 1))
            .await
            .unwrap(),
        Outcome::Ignored
    );
    let stock = h.stock("A").await.unwrap();
    assert_eq!((stock.available, stock.allocated, stock.version), (1, 0, 1));
    assert_eq!(reservation_types(&h, "o-2").await, vec!["stock.released"]);
}

#[tokio::test]
async fn a_poison_message_fails_alone_and_the_rest_of_the_batch_is_applied() {
    let h = handler();
    h.restock("A", 10).await.unwrap();
    let mut poison = sample_message();
    poison.message_id = Some("poison".into());
    poison.body = Some("{\"not\": \"an envelope\"".into());
    let mut unknown = message_for(&order("o-u", &[("A", 1)]), "o-u", 1);
    unknown.message_id = Some("unknown-type".into());
    unknown.body = Some(
        unknown
            .body
            .unwrap()
            .replace("order.placed", "order.teleported"),
    );
    let event = sqs_invocation(vec![
        message_for(&order("o-1", &[("A", 1)]), "o-1", 1),
        poison,
        unknown,
        message_for(&order("o-2", &[("A", 1)]), "o-2", 1),
    ]);
    let response = h.handle(event).await.unwrap();
    let failed = failed_message_ids(&response);
    assert_eq!(failed, vec!["poison", "unknown-type"]);
    assert_eq!(reservation_types(&h, "o-1").await, vec!["stock.reserved"]);
    assert_eq!(reservation_types(&h, "o-2").await, vec!["stock.reserved"]);
}
