//! The saga's events for tests (feature `test-support`), built once here so that every
//! function's tests tell the same story: the sample order of `events/` (2 × `SKU-1` at 12.50 EUR,
//! customer `c-1`), and what inventory, payments and the saga decide about it.
// A fixture that cannot be built is a broken test: panicking says so at the right line.
#![allow(clippy::expect_used)]

use ripple_kit::envelope::event_type_of;
use ripple_kit::{Aggregate, Envelope, StreamPosition};

use crate::inventory::{ReservationEvent, Shortage, SkuQuantity, StockEvent, StockReserved};
use crate::order::{CancelReason, Order, OrderEvent, OrderLine, OrderPlaced};
use crate::payment::PaymentEvent;

/// The SQS delivery of the sample `order.placed` (`events/inventory-order-placed.json`).
pub const SAMPLE_ORDER_PLACED: &str = include_str!("../../../events/inventory-order-placed.json");

/// The sample order's customer.
pub const CUSTOMER: &str = "c-1";

/// The sample order's `order.placed` payload, as order `order_id`.
pub fn placed(order_id: &str) -> OrderPlaced {
    let sample: serde_json::Value =
        serde_json::from_str(SAMPLE_ORDER_PLACED).expect("the sample is JSON");
    let body = sample["Records"][0]["body"]
        .as_str()
        .expect("the sample record has a body");
    let envelope = Envelope::from_json(body).expect("the sample body is an envelope");
    let OrderEvent::Placed(mut placed) = envelope
        .decode_for::<Order>()
        .expect("the sample is order.placed")
    else {
        panic!("the sample is not order.placed");
    };
    placed.order_id = order_id.to_owned();
    placed
}

/// An order `order_id` of `lines` (sku, quantity) at 1.00 per unit, by [`CUSTOMER`].
pub fn placed_with(order_id: &str, lines: &[(&str, u32)]) -> OrderPlaced {
    let lines: Vec<OrderLine> = lines
        .iter()
        .map(|(sku, quantity)| OrderLine {
            sku: (*sku).to_owned(),
            quantity: *quantity,
            unit_price_cents: 100,
        })
        .collect();
    OrderPlaced {
        order_id: order_id.to_owned(),
        customer_id: CUSTOMER.to_owned(),
        total: crate::money::Money::new(
            "EUR",
            lines
                .iter()
                .map(|l| u64::from(l.quantity) * l.unit_price_cents)
                .sum(),
        ),
        lines,
    }
}

/// `stock.reserved` for every line of `placed`.
pub fn reserved(placed: &OrderPlaced) -> ReservationEvent {
    ReservationEvent::Reserved(StockReserved {
        order_id: placed.order_id.clone(),
        customer_id: placed.customer_id.clone(),
        total_cents: placed.total.minor_units,
        currency: placed.total.currency.clone(),
        lines: placed
            .lines
            .iter()
            .map(|l| SkuQuantity {
                sku: l.sku.clone(),
                quantity: u64::from(l.quantity),
            })
            .collect(),
    })
}

/// `stock.rejected` for `order_id`: one unit of `SKU-1` short.
pub fn rejected(order_id: &str) -> ReservationEvent {
    ReservationEvent::Rejected {
        order_id: order_id.to_owned(),
        shortages: vec![Shortage {
            sku: "SKU-1".to_owned(),
            requested: 2,
            available: 1,
        }],
    }
}

/// `stock.restocked`: `quantity` units of `sku` arrived.
pub fn restocked(sku: &str, quantity: u64) -> StockEvent {
    StockEvent::Restocked {
        sku: sku.to_owned(),
        quantity,
    }
}

/// `payment.captured` of `amount_cents` EUR for `order_id`, payment `p-1`.
pub fn captured(order_id: &str, amount_cents: u64) -> PaymentEvent {
    PaymentEvent::Captured {
        order_id: order_id.to_owned(),
        amount_cents,
        currency: "EUR".to_owned(),
        payment_id: "p-1".to_owned(),
    }
}

/// `payment.declined` of `amount_cents` for `order_id`: the card was declined.
pub fn declined(order_id: &str, amount_cents: u64) -> PaymentEvent {
    PaymentEvent::Declined {
        order_id: order_id.to_owned(),
        amount_cents,
        reason: "card_declined".to_owned(),
    }
}

/// `order.confirmed` for `order_id`.
pub fn confirmed(order_id: &str) -> OrderEvent {
    OrderEvent::Confirmed {
        order_id: order_id.to_owned(),
    }
}

/// `order.cancelled` for `order_id`, for `reason`.
pub fn cancelled(order_id: &str, reason: CancelReason) -> OrderEvent {
    OrderEvent::Cancelled {
        order_id: order_id.to_owned(),
        reason,
    }
}

/// `event` as stored: event `sequence` of the stream of `A` with id `id`, from the first producer
/// [`crate::producers`] lets write it.
pub fn stored<A: Aggregate>(id: &str, sequence: u64, event: &A::Event) -> Envelope {
    let event_type = event_type_of(event).expect("a test event has a type");
    let producers = crate::producers();
    let source = producers
        .producer_of(A::TYPE, event_type)
        .expect("some producer writes the test event");
    Envelope::encode(source, StreamPosition::of::<A>(id, sequence), event)
        .expect("a test event encodes")
}

/// A catalog holding `skus` (sku, price of one unit in EUR), as the API loads it.
pub fn catalog(skus: &[(&str, u64)]) -> crate::catalog::Catalog {
    skus.iter()
        .map(|(sku, price)| {
            let mut product = crate::catalog::Product::default();
            product.prices.insert("EUR".to_owned(), *price);
            ((*sku).to_owned(), product)
        })
        .collect()
}

/// The stored events of the sample order `order_id` going through: placed, reserved, captured,
/// confirmed, in the order they were appended.
pub fn confirmed_flow(order_id: &str) -> Vec<Envelope> {
    use crate::inventory::Reservation;
    use crate::order::Order;
    use crate::payment::Payment;
    let placed = placed(order_id);
    vec![
        stored::<Order>(order_id, 1, &OrderEvent::Placed(placed.clone())),
        stored::<Reservation>(order_id, 1, &reserved(&placed)),
        stored::<Payment>(order_id, 1, &captured(order_id, placed.total.minor_units)),
        stored::<Order>(order_id, 2, &confirmed(order_id)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_order_is_two_units_of_sku_1_for_25_eur() {
        let placed = placed("o-9");
        assert_eq!(placed.order_id, "o-9");
        assert_eq!(placed.customer_id, CUSTOMER);
        assert_eq!((placed.total.minor_units, placed.lines.len()), (2500, 1));
    }

    #[test]
    fn stored_events_come_from_a_producer_allowed_to_write_them() {
        use crate::order::Order;
        let placed = stored::<Order>("o-1", 1, &OrderEvent::Placed(placed("o-1")));
        let confirmed = stored::<Order>("o-1", 2, &confirmed("o-1"));
        assert_eq!(placed.source, crate::sources::ORDERS_API);
        assert_eq!(confirmed.source, crate::sources::ORDER_SAGA);
        for event in confirmed_flow("o-1") {
            assert_eq!(crate::producers().check(&event), Ok(()));
        }
    }

    #[test]
    fn the_confirmed_flow_holds_each_stream_in_sequence() {
        let flow = confirmed_flow("o-1");
        let positions: Vec<_> = flow
            .iter()
            .map(|e| (e.aggregatetype.as_str(), e.sequence))
            .collect();
        assert_eq!(
            positions,
            [
                ("Order", 1),
                ("Reservation", 1),
                ("Payment", 1),
                ("Order", 2)
            ]
        );
    }
}
