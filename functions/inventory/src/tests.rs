//! Handler tests over the in-memory event store, starting from the sample SQS event in `events/`.

use super::*;
use domain::order::{CancelReason, Order};
use domain::testing::{SAMPLE_ORDER_PLACED, cancelled, placed_with, stored};
use ripple_kit::consumer::Handled;
use ripple_kit::store::InMemoryEventStore;
use ripple_kit::testing::{
    carrying, deadline, failed_message_ids, first_sqs_record, restamped, sqs_invocation,
};

type TestHandler = Handler<InMemoryEventStore>;

fn sample_message() -> aws_lambda_events::event::sqs::SqsMessage {
    restamped(first_sqs_record(SAMPLE_ORDER_PLACED))
}

/// A delivery of `event`, the `sequence`-th of order `order_id`.
fn message_for(
    event: &OrderEvent,
    order_id: &str,
    sequence: u64,
) -> aws_lambda_events::event::sqs::SqsMessage {
    carrying(
        sample_message(),
        &stored::<Order>(order_id, sequence, event),
    )
}

/// A new order `order_id` for `lines` (sku, quantity).
fn order(order_id: &str, lines: &[(&str, u32)]) -> OrderEvent {
    OrderEvent::Placed(placed_with(order_id, lines))
}

fn handler() -> TestHandler {
    handler_with(InMemoryEventStore::new())
}

fn store(h: &TestHandler) -> &InMemoryEventStore {
    h.consumer().store()
}

async fn handle(h: &TestHandler, message: &aws_lambda_events::event::sqs::SqsMessage) -> Handled {
    h.handle_message(message, deadline()).await.unwrap()
}

async fn reservation_types(h: &TestHandler, order_id: &str) -> Vec<String> {
    store(h)
        .read_stream(Reservation::TYPE, order_id, 1)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

async fn levels(h: &TestHandler, sku: &str) -> (u64, u64) {
    let stock = stock(store(h), sku).await.unwrap();
    (stock.state.available, stock.state.allocated)
}

#[tokio::test]
async fn given_stock_when_the_sample_order_arrives_then_it_is_reserved_exactly_once() {
    let h = handler();
    let message = sample_message();
    let source = ripple_kit::parse::envelope_from_sqs(&message).unwrap();
    let OrderEvent::Placed(order) = source.decode_for::<Order>().unwrap() else {
        panic!("the sample is order.placed");
    };
    for line in &order.lines {
        restock(store(&h), &line.sku, u64::from(line.quantity) + 1)
            .await
            .unwrap();
    }
    assert_eq!(
        handle(&h, &message).await,
        Handled::Applied("stock.reserved")
    );
    assert_eq!(handle(&h, &message).await, Handled::Duplicate);

    assert_eq!(
        reservation_types(&h, &order.order_id).await,
        vec!["stock.reserved"]
    );
    let reserved = &store(&h)
        .read_stream(Reservation::TYPE, &order.order_id, 1)
        .await
        .unwrap()[0];
    assert_eq!(reserved.source, domain::sources::INVENTORY);
    assert_eq!(reserved.causationid.as_deref(), Some(source.id.as_str()));
    assert_eq!(reserved.correlationid, source.correlationid);
    for line in &order.lines {
        assert_eq!(levels(&h, &line.sku).await, (1, u64::from(line.quantity)));
    }
}

#[tokio::test]
async fn given_too_little_stock_then_the_order_is_rejected_and_stock_untouched() {
    let h = handler();
    restock(store(&h), "A", 1).await.unwrap();
    let m = message_for(&order("o-1", &[("A", 2)]), "o-1", 1);
    assert_eq!(handle(&h, &m).await, Handled::Applied("stock.rejected"));
    assert_eq!(levels(&h, "A").await, (1, 0));
    assert_eq!(reservation_types(&h, "o-1").await, vec!["stock.rejected"]);
}

#[tokio::test]
async fn two_orders_racing_for_the_last_unit_one_wins() {
    let h = handler();
    restock(store(&h), "LAST", 1).await.unwrap();
    let a = message_for(&order("o-a", &[("LAST", 1)]), "o-a", 1);
    let b = message_for(&order("o-b", &[("LAST", 1)]), "o-b", 1);
    let (ra, rb) = tokio::join!(handle(&h, &a), handle(&h, &b));
    let mut outcomes = vec![ra, rb];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outcomes,
        vec![
            Handled::Applied("stock.rejected"),
            Handled::Applied("stock.reserved")
        ]
    );
    assert_eq!(levels(&h, "LAST").await, (0, 1));
}

#[tokio::test]
async fn a_cancelled_order_gets_its_stock_back_once() {
    let h = handler();
    restock(store(&h), "A", 5).await.unwrap();
    handle(&h, &message_for(&order("o-1", &[("A", 3)]), "o-1", 1)).await;
    let cancel = cancelled("o-1", CancelReason::PaymentDeclined);
    let first = message_for(&cancel, "o-1", 2);
    let again = message_for(&cancel, "o-1", 2);
    assert_eq!(handle(&h, &first).await, Handled::Applied("stock.released"));
    // A redelivery, and a second cancellation, find nothing held any more.
    assert_eq!(handle(&h, &first).await, Handled::Ignored);
    assert_eq!(handle(&h, &again).await, Handled::Ignored);
    assert_eq!(levels(&h, "A").await, (5, 0));
    assert_eq!(
        reservation_types(&h, "o-1").await,
        vec!["stock.reserved", "stock.released"]
    );
}

#[tokio::test]
async fn a_cancel_that_overtakes_its_order_leaves_the_stock_alone() {
    let h = handler();
    restock(store(&h), "A", 1).await.unwrap();
    let cancel = cancelled("o-2", CancelReason::CustomerRequest);
    // The cancel is handled first: it closes the reservation with nothing in it.
    assert_eq!(
        handle(&h, &message_for(&cancel, "o-2", 2)).await,
        Handled::Applied("stock.released")
    );
    // The order it cancelled arrives late and must not take the stock for ever.
    assert_eq!(
        handle(&h, &message_for(&order("o-2", &[("A", 1)]), "o-2", 1)).await,
        Handled::Ignored
    );
    let stock = stock(store(&h), "A").await.unwrap();
    assert_eq!(
        (stock.state.available, stock.state.allocated, stock.version),
        (1, 0, 1)
    );
    assert_eq!(reservation_types(&h, "o-2").await, vec!["stock.released"]);
}

#[tokio::test]
async fn a_poison_message_fails_alone_and_the_rest_of_the_batch_is_applied() {
    let h = handler();
    restock(store(&h), "A", 10).await.unwrap();
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

#[tokio::test]
async fn an_order_event_from_outside_the_order_stream_reserves_nothing() {
    let h = handler();
    restock(store(&h), "A", 5).await.unwrap();
    let mut misplaced = stored::<Order>("o-1", 1, &order("o-1", &[("A", 1)]));
    misplaced.aggregatetype = "Stock".into();
    assert!(
        h.handle_message(&carrying(sample_message(), &misplaced), deadline())
            .await
            .is_err()
    );
    let mut forged = stored::<Order>("o-1", 1, &order("o-1", &[("A", 1)]));
    forged.source = domain::sources::PAYMENTS.into();
    assert!(
        h.handle_message(&carrying(sample_message(), &forged), deadline())
            .await
            .is_err()
    );
    assert!(reservation_types(&h, "o-1").await.is_empty());
    assert_eq!(levels(&h, "A").await, (5, 0));
}

/// The handler as deployed: over copies of the streams it reads, kept between invocations.
fn cached_handler() -> Handler<Cached<std::sync::Arc<InMemoryEventStore>>> {
    handler_with(Cached::new(std::sync::Arc::new(InMemoryEventStore::new())))
}

#[tokio::test]
async fn a_rejection_decided_on_a_stale_copy_is_decided_again_on_fresh_stock() {
    let h = cached_handler();
    let store = h.consumer().store();
    restock(store.inner(), "A", 1).await.unwrap();
    let first = message_for(&order("o-1", &[("A", 1)]), "o-1", 1);
    h.handle_message(&first, deadline()).await.unwrap();
    // An operator restocks through the store itself, behind the copy's back.
    restock(store.inner(), "A", 5).await.unwrap();

    let second = message_for(&order("o-2", &[("A", 3)]), "o-2", 1);
    let handled = h.handle_message(&second, deadline()).await.unwrap();

    assert_eq!(handled, Handled::Applied("stock.reserved"));
    let a = stock(store.inner(), "A").await.unwrap();
    assert_eq!((a.state.available, a.state.allocated), (2, 4));
}

#[tokio::test]
async fn a_reservation_on_a_stale_copy_loses_at_the_append_and_is_decided_on_fresh_stock() {
    let h = cached_handler();
    let store = h.consumer().store();
    restock(store.inner(), "A", 2).await.unwrap();
    let first = message_for(&order("o-1", &[("A", 1)]), "o-1", 1);
    h.handle_message(&first, deadline()).await.unwrap();
    // Another execution environment takes the last unit behind the copy's back.
    let other = handler_with(store.inner().clone());
    let racing = message_for(&order("o-2", &[("A", 1)]), "o-2", 1);
    other.handle_message(&racing, deadline()).await.unwrap();

    let late = message_for(&order("o-3", &[("A", 1)]), "o-3", 1);
    let handled = h.handle_message(&late, deadline()).await.unwrap();

    assert_eq!(
        handled,
        Handled::Applied("stock.rejected"),
        "no unit is sold twice"
    );
    let a = stock(store.inner(), "A").await.unwrap();
    assert_eq!((a.state.available, a.state.allocated), (0, 2));
}

#[tokio::test]
async fn a_warm_reservation_reads_nothing_and_an_order_decided_before_is_read_and_left_alone() {
    let h = cached_handler();
    let store = h.consumer().store();
    restock(store.inner(), "A", 3).await.unwrap();
    let first = message_for(&order("o-1", &[("A", 1)]), "o-1", 1);
    h.handle_message(&first, deadline()).await.unwrap();
    let reads = store.inner().reads();

    let second = message_for(&order("o-2", &[("A", 1)]), "o-2", 1);
    let handled = h.handle_message(&second, deadline()).await.unwrap();
    assert_eq!(handled, Handled::Applied("stock.reserved"));
    assert_eq!(store.inner().reads(), reads, "nothing read when warm");

    // The same order again under another message id (its marker no help): its reservation's
    // first position is taken, so it is read, found decided, and nothing more is set aside.
    let again = message_for(&order("o-2", &[("A", 1)]), "o-2", 1);
    assert_ne!(again.body, second.body);
    assert_eq!(
        h.handle_message(&again, deadline()).await.unwrap(),
        Handled::Duplicate
    );
    let a = stock(store.inner(), "A").await.unwrap();
    assert_eq!((a.state.available, a.state.allocated), (1, 2));
}
