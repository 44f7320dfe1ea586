//! Handler tests over the in-memory event store: each saga rule, redelivery, and a customer
//! cancel racing the saga.

use super::*;
use domain::order::{CancelReason, OrderEvent, OrderStatus};
use domain::payment::PaymentEvent;
use domain::testing::{self as story, stored};
use ripple_kit::consumer::Handled;
use ripple_kit::store::InMemoryEventStore;
use ripple_kit::testing::{
    deadline, failed_message_ids, raw_sqs_message, sqs_invocation, sqs_message as message,
};
use ripple_kit::{Append, StoreError};
use std::sync::Mutex;

const ORDER: &str = "o-1";

fn placed() -> Envelope {
    stored::<Order>(ORDER, 1, &OrderEvent::Placed(story::placed(ORDER)))
}

fn rejected() -> Envelope {
    stored::<Reservation>(ORDER, 1, &story::rejected(ORDER))
}

fn declined() -> Envelope {
    stored::<Payment>(ORDER, 1, &story::declined(ORDER, 2500))
}

fn captured() -> Envelope {
    stored::<Payment>(ORDER, 1, &story::captured(ORDER, 2500))
}

fn customer_cancel(sequence: u64) -> Envelope {
    stored::<Order>(
        ORDER,
        sequence,
        &story::cancelled(ORDER, CancelReason::CustomerRequest),
    )
}

type TestHandler<S = InMemoryEventStore> = Handler<S>;

async fn handle<S: EventStore>(
    h: &TestHandler<S>,
    source: &Envelope,
) -> Result<Handled, ConsumerError> {
    h.handle_message(&message(source), deadline()).await
}

/// A handler whose store holds a placed order.
async fn given_a_placed_order() -> TestHandler {
    let store = InMemoryEventStore::new();
    store.append(Append::events(vec![placed()])).await.unwrap();
    handler_with(store)
}

async fn order_stream<S: EventStore>(h: &TestHandler<S>) -> Vec<Envelope> {
    h.consumer()
        .store()
        .read_stream(Order::TYPE, ORDER, 1)
        .await
        .unwrap()
}

async fn order<S: EventStore>(h: &TestHandler<S>) -> Loaded<Order> {
    h.consumer().store().load(ORDER).await.unwrap()
}

#[tokio::test]
async fn stock_rejected_cancels_the_order_out_of_stock_exactly_once() {
    let h = given_a_placed_order().await;
    let source = rejected();
    assert_eq!(
        handle(&h, &source).await.unwrap(),
        Handled::Applied("order.cancelled")
    );
    assert_eq!(handle(&h, &source).await.unwrap(), Handled::Duplicate);
    // Both written presuming the order placed: the order was never read.
    assert_eq!(h.consumer().store().reads(), 0, "nothing read");

    let stream = order_stream(&h).await;
    assert_eq!(stream.len(), 2);
    assert_eq!(stream[1].causationid.as_deref(), Some(source.id.as_str()));
    assert_eq!(stream[1].correlationid, source.correlationid);
    assert_eq!(
        order(&h).await.state.cancel_reason,
        Some(CancelReason::OutOfStock)
    );
}

#[tokio::test]
async fn payment_declined_cancels_the_order_payment_declined() {
    let h = given_a_placed_order().await;
    let source = declined();
    assert_eq!(
        handle(&h, &source).await.unwrap(),
        Handled::Applied("order.cancelled")
    );
    assert_eq!(handle(&h, &source).await.unwrap(), Handled::Duplicate);
    let order = order(&h).await;
    assert_eq!(
        (order.state.status, order.state.cancel_reason),
        (OrderStatus::Cancelled, Some(CancelReason::PaymentDeclined))
    );
    assert_eq!(order.version, 2);
}

#[tokio::test]
async fn payment_captured_confirms_the_order_once() {
    let h = given_a_placed_order().await;
    let source = captured();
    assert_eq!(
        handle(&h, &source).await.unwrap(),
        Handled::Applied("order.confirmed")
    );
    assert_eq!(handle(&h, &source).await.unwrap(), Handled::Duplicate);
    assert_eq!(order(&h).await.state.status, OrderStatus::Confirmed);
    assert_eq!(order_stream(&h).await.len(), 2);
}

#[tokio::test]
async fn an_order_this_very_event_decided_is_read_and_left_alone() {
    // Where the order stands elsewhere, the saga reads it: here it was confirmed by this very
    // capture before, and the marker is gone (expired), so only the causation tells.
    let h = given_a_placed_order().await;
    let capture = captured();
    let mut confirmed = stored::<Order>(
        ORDER,
        2,
        &OrderEvent::Confirmed {
            order_id: ORDER.into(),
        },
    );
    confirmed.causationid = Some(capture.id.clone());
    let store = h.consumer().store();
    store.append(Append::events(vec![confirmed])).await.unwrap();
    assert_eq!(handle(&h, &capture).await.unwrap(), Handled::Duplicate);
    assert_eq!(store.reads(), 1, "the order read once");
    assert_eq!(order_stream(&h).await.len(), 2);
}

#[tokio::test]
async fn a_capture_after_the_customer_cancelled_confirms_nothing() {
    let h = given_a_placed_order().await;
    h.consumer()
        .store()
        .append(Append::events(vec![customer_cancel(2)]))
        .await
        .unwrap();
    assert_eq!(handle(&h, &captured()).await.unwrap(), Handled::Ignored);
    let order = order(&h).await;
    assert_eq!(
        (order.state.status, order.version),
        (OrderStatus::Cancelled, 2)
    );
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
    inner.append(Append::events(vec![placed()])).await.unwrap();
    let h = handler_with(CancelRacesTheSaga {
        inner,
        cancel: Mutex::new(Some(customer_cancel(2))),
    });
    // The saga writes at position 2 presuming the order placed, loses it to the customer, reads
    // the order and sees it cancelled.
    assert_eq!(handle(&h, &captured()).await.unwrap(), Handled::Ignored);
    let order = order(&h).await;
    assert_eq!(
        (order.state.status, order.state.cancel_reason),
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
    let source = stored::<Payment>(ORDER, 2, &refunded);
    assert_eq!(handle(&h, &source).await.unwrap(), Handled::Ignored);
    assert_eq!(order_stream(&h).await.len(), 1);
}

#[tokio::test]
async fn an_event_for_an_unknown_order_fails_and_a_poison_message_fails_alone() {
    let h = handler_with(InMemoryEventStore::new());
    let err = handle(&h, &captured()).await.unwrap_err();
    assert!(matches!(err, ConsumerError::NotFound { ref stream } if stream == "Order#o-1"));
    // The write presuming the order placed was refused: no order.confirmed without an order.
    assert!(h.consumer().store().all_events().is_empty());

    let h = given_a_placed_order().await;
    let poison = raw_sqs_message("poison", "{\"not\": \"an envelope\"}");
    let mut order_event = message(&customer_cancel(9));
    order_event.message_id = Some("wrong-aggregate".into());
    let event = sqs_invocation(vec![poison, message(&captured()), order_event]);
    let response = h.handle(event).await.unwrap();
    let failed = failed_message_ids(&response);
    assert_eq!(failed, vec!["poison", "wrong-aggregate"]);
    assert_eq!(order(&h).await.state.status, OrderStatus::Confirmed);
}

#[test]
fn config_needs_the_events_table() {
    assert!(Config::from_lookup(|_| None).is_err());
    let config = Config::from_lookup(|k| (k == "EVENTS_TABLE").then(|| "t".to_owned())).unwrap();
    assert_eq!(config.events_table, "t");
}

#[tokio::test]
async fn a_capture_not_written_by_payments_confirms_nothing() {
    let h = given_a_placed_order().await;
    // Inventory's role may write events, but not a Payment's: a forged capture is refused.
    let mut forged = captured();
    forged.source = domain::sources::INVENTORY.into();
    let err = handle(&h, &forged).await.unwrap_err();
    assert!(matches!(err, ConsumerError::Parse(_)), "{err:?}");
    assert_eq!(order_stream(&h).await.len(), 1, "still only placed");
}
