//! Handler tests over the in-memory event store: each saga rule, redelivery, and a customer
//! cancel racing the saga.

use super::*;
use domain::inventory::Shortage;
use domain::order::{CancelReason, OrderPlaced, OrderStatus};
use ripple_kit::store::InMemoryEventStore;
use ripple_kit::testing::{
    self, failed_message_ids, raw_sqs_message, sample_data, sqs_invocation, sqs_message as message,
};
use std::sync::Mutex;

const ORDER: &str = "o-1";
const SAMPLE_ORDER: &str = include_str!("../../../events/inventory-order-placed.json");

/// The sample order of `events/` (SKU-1 ×2 for 25.00 EUR), as order `ORDER`.
fn placed() -> OrderEvent {
    let mut placed: OrderPlaced = sample_data(SAMPLE_ORDER);
    placed.order_id = ORDER.into();
    OrderEvent::Placed(placed)
}

fn envelope<E: serde::Serialize>(aggregate_type: &str, sequence: u64, event: &E) -> Envelope {
    testing::envelope(aggregate_type, ORDER, sequence, event)
}

fn rejected() -> Envelope {
    let event = ReservationEvent::Rejected {
        order_id: ORDER.into(),
        shortages: vec![Shortage {
            sku: "SKU-1".into(),
            requested: 2,
            available: 0,
        }],
    };
    envelope("Reservation", 1, &event)
}

fn declined() -> Envelope {
    let event = PaymentEvent::Declined {
        order_id: ORDER.into(),
        amount_cents: 2500,
        reason: "card_declined".into(),
    };
    envelope("Payment", 1, &event)
}

fn captured() -> Envelope {
    let event = PaymentEvent::Captured {
        order_id: ORDER.into(),
        amount_cents: 2500,
        currency: "EUR".into(),
        payment_id: "p-1".into(),
    };
    envelope("Payment", 1, &event)
}

fn customer_cancel(sequence: u64) -> Envelope {
    let event = OrderEvent::Cancelled {
        order_id: ORDER.into(),
        reason: CancelReason::CustomerRequest,
    };
    envelope("Order", sequence, &event)
}

/// A handler whose store holds a placed order.
async fn given_a_placed_order() -> Handler<InMemoryEventStore> {
    let store = InMemoryEventStore::new();
    store
        .append(Append::events(vec![envelope("Order", 1, &placed())]))
        .await
        .unwrap();
    Handler::with_store(store)
}

async fn order_stream<S: EventStore>(h: &Handler<S>) -> Vec<Envelope> {
    h.store().read_stream("Order", ORDER, 1).await.unwrap()
}

async fn order<S: EventStore>(h: &Handler<S>) -> Order {
    let events: Vec<OrderEvent> = h.store().load("Order", ORDER).await.unwrap();
    Order::from_history(&events).unwrap()
}

#[tokio::test]
async fn stock_rejected_cancels_the_order_out_of_stock_exactly_once() {
    let h = given_a_placed_order().await;
    let source = rejected();
    let m = message(&source);
    assert_eq!(
        h.handle_message(&m).await.unwrap(),
        Outcome::Applied("order.cancelled")
    );
    assert_eq!(h.handle_message(&m).await.unwrap(), Outcome::Duplicate);

    let stream = order_stream(&h).await;
    assert_eq!(stream.len(), 2);
    assert_eq!(stream[1].causationid.as_deref(), Some(source.id.as_str()));
    assert_eq!(stream[1].correlationid, source.correlationid);
    assert_eq!(
        order(&h).await.cancel_reason,
        Some(CancelReason::OutOfStock)
    );
}

#[tokio::test]
async fn payment_declined_cancels_the_order_payment_declined() {
    let h = given_a_placed_order().await;
    let m = message(&declined());
    assert_eq!(
        h.handle_message(&m).await.unwrap(),
        Outcome::Applied("order.cancelled")
    );
    assert_eq!(h.handle_message(&m).await.unwrap(), Outcome::Duplicate);
    let order = order(&h).await;
    assert_eq!(
        (order.status, order.cancel_reason),
        (OrderStatus::Cancelled, Some(CancelReason::PaymentDeclined))
    );
    assert_eq!(order.version, 2);
}

#[tokio::test]
async fn payment_captured_confirms_the_order_once() {
    let h = given_a_placed_order().await;
    let m = message(&captured());
    assert_eq!(
        h.handle_message(&m).await.unwrap(),
        Outcome::Applied("order.confirmed")
    );
    assert_eq!(h.handle_message(&m).await.unwrap(), Outcome::Duplicate);
    assert_eq!(order(&h).await.status, OrderStatus::Confirmed);
    assert_eq!(order_stream(&h).await.len(), 2);
}

#[tokio::test]
async fn a_capture_after_the_customer_cancelled_confirms_nothing() {
    let h = given_a_placed_order().await;
    h.store()
        .append(Append::events(vec![customer_cancel(2)]))
        .await
        .unwrap();
    assert_eq!(
        h.handle_message(&message(&captured())).await.unwrap(),
        Outcome::Ignored
    );
    let order = order(&h).await;
    assert_eq!((order.status, order.version), (OrderStatus::Cancelled, 2));
}

/// A store where a customer cancel lands just before the saga's first append.
struct CancelRacesTheSaga {
    inner: InMemoryEventStore,
    cancel: Mutex<Option<Envelope>>,
}

impl EventStore for CancelRacesTheSaga {
    async fn append(&self, append: Append) -> Result<(), StoreError> {
        let cancel = self.cancel.lock().unwrap().take();
        if let Some(cancel) = cancel {
            self.inner.append(Append::events(vec![cancel])).await?;
        }
        self.inner.append(append).await
    }

    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from: u64,
    ) -> Result<Vec<Envelope>, StoreError> {
        self.inner
            .read_stream(aggregate_type, aggregate_id, from)
            .await
    }
}

#[tokio::test]
async fn a_customer_cancel_racing_the_capture_wins_and_the_saga_backs_off() {
    let inner = InMemoryEventStore::new();
    inner
        .append(Append::events(vec![envelope("Order", 1, &placed())]))
        .await
        .unwrap();
    let h = Handler::with_store(CancelRacesTheSaga {
        inner,
        cancel: Mutex::new(Some(customer_cancel(2))),
    });
    // The saga loads version 1, loses position 2 to the customer, reloads and sees a cancelled order.
    assert_eq!(
        h.handle_message(&message(&captured())).await.unwrap(),
        Outcome::Ignored
    );
    let order = order(&h).await;
    assert_eq!(
        (order.status, order.cancel_reason),
        (OrderStatus::Cancelled, Some(CancelReason::CustomerRequest))
    );
    assert_eq!(order.version, 2);
}

#[tokio::test]
async fn events_the_saga_does_not_act_on_change_nothing() {
    let h = given_a_placed_order().await;
    let refunded = PaymentEvent::Refunded {
        order_id: ORDER.into(),
        amount_cents: 2500,
        payment_id: "p-1".into(),
    };
    let m = message(&envelope("Payment", 2, &refunded));
    assert_eq!(h.handle_message(&m).await.unwrap(), Outcome::Ignored);
    assert_eq!(order_stream(&h).await.len(), 1);
}

#[tokio::test]
async fn an_event_for_an_unknown_order_fails_and_a_poison_message_fails_alone() {
    let h = Handler::with_store(InMemoryEventStore::new());
    let err = h.handle_message(&message(&captured())).await.unwrap_err();
    assert!(matches!(err, SagaError::OrderNotFound(ref id) if id == ORDER));

    let h = given_a_placed_order().await;
    let poison = raw_sqs_message("poison", "{\"not\": \"an envelope\"}");
    let mut order_event = message(&customer_cancel(9));
    order_event.message_id = Some("wrong-aggregate".into());
    let event = sqs_invocation(vec![poison, message(&captured()), order_event]);
    let response = h.handle(event).await.unwrap();
    let failed = failed_message_ids(&response);
    assert_eq!(failed, vec!["poison", "wrong-aggregate"]);
    assert_eq!(order(&h).await.status, OrderStatus::Confirmed);
}

#[test]
fn config_needs_the_events_table() {
    assert!(Config::from_lookup(|_| None).is_err());
    let config = Config::from_lookup(|k| (k == "EVENTS_TABLE").then(|| "t".to_owned())).unwrap();
    assert_eq!(config.events_table, "t");
}
