//! The order saga: how an order reacts to what inventory and payments decided.
//!
//! - `stock.rejected` → `order.cancelled` (out of stock);
//! - `payment.declined` → `order.cancelled` (payment declined);
//! - `payment.captured` → `order.confirmed`.
//!
//! Only an order that is still `placed` reacts. An order the customer cancelled meanwhile stays
//! cancelled: a late `payment.captured` confirms nothing, and payments refunds the capture when it
//! sees the cancellation. Compensation of reserved stock is inventory's reaction to
//! `order.cancelled`, so it needs nothing here.
//!
//! An order still `placed` past its deadline is cancelled as `timed_out` ([`decide_deadline`]):
//! a saga message lost to a dead-letter queue never leaves an order holding stock or money.

use ripple_kit::Loaded;

use crate::inventory::ReservationEvent;
use crate::order::{CancelReason, Order, OrderEvent, OrderStatus};
use crate::payment::PaymentEvent;

/// An event the saga listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SagaInput {
    /// Something inventory decided for an order.
    Reservation(ReservationEvent),
    /// Something payments decided for an order.
    Payment(PaymentEvent),
}

impl SagaInput {
    /// The order concerned.
    pub fn order_id(&self) -> &str {
        match self {
            SagaInput::Reservation(ReservationEvent::Reserved(r)) => &r.order_id,
            SagaInput::Reservation(
                ReservationEvent::Rejected { order_id, .. }
                | ReservationEvent::Released { order_id, .. },
            ) => order_id,
            SagaInput::Payment(p) => p.order_id(),
        }
    }
}

/// The order event `input` leads to, or `None` when the order does not change.
pub fn decide(order: &Loaded<Order>, input: &SagaInput) -> Option<OrderEvent> {
    if order.state.status != OrderStatus::Placed {
        return None;
    }
    decide_placed(&order.id, input)
}

/// The order event `input` leads to for an order still `placed`, which holds only its
/// `order.placed` (confirmed and cancelled are final): where nearly every order is when
/// inventory or payments decide, so the saga writes this at version 2 without reading first.
pub fn decide_placed(order_id: &str, input: &SagaInput) -> Option<OrderEvent> {
    let order_id = order_id.to_owned();
    match input {
        SagaInput::Reservation(ReservationEvent::Rejected { .. }) => Some(OrderEvent::Cancelled {
            order_id,
            reason: CancelReason::OutOfStock,
        }),
        SagaInput::Payment(PaymentEvent::Declined { .. }) => Some(OrderEvent::Cancelled {
            order_id,
            reason: CancelReason::PaymentDeclined,
        }),
        SagaInput::Payment(PaymentEvent::Captured { .. }) => {
            Some(OrderEvent::Confirmed { order_id })
        }
        SagaInput::Reservation(
            ReservationEvent::Reserved(_) | ReservationEvent::Released { .. },
        )
        | SagaInput::Payment(PaymentEvent::Refunded { .. }) => None,
    }
}

/// The order event an order past its deadline leads to: `order.cancelled` (timed out) if it is
/// still `placed`; `None` when it was decided meanwhile (or is not there). The cancellation is
/// the compensation's start: inventory releases what it holds, payments refunds what it took.
pub fn decide_deadline(order: &Loaded<Order>) -> Option<OrderEvent> {
    (order.state.status == OrderStatus::Placed).then(|| OrderEvent::Cancelled {
        order_id: order.id.clone(),
        reason: CancelReason::TimedOut,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{OrderLine, OrderPlaced};

    fn placed() -> OrderEvent {
        OrderEvent::Placed(OrderPlaced {
            order_id: "o-1".into(),
            customer_id: "c-1".into(),
            lines: vec![OrderLine {
                sku: "A".into(),
                quantity: 1,
                unit_price_cents: 500,
            }],
            total: crate::money::Money::new("EUR", 500),
        })
    }

    fn given(history: &[OrderEvent]) -> Loaded<Order> {
        Loaded::fold("o-1", history)
    }

    fn rejected() -> SagaInput {
        SagaInput::Reservation(ReservationEvent::Rejected {
            order_id: "o-1".into(),
            shortages: vec![],
        })
    }

    fn declined() -> SagaInput {
        SagaInput::Payment(PaymentEvent::Declined {
            order_id: "o-1".into(),
            amount_cents: 500,
            reason: "card_declined".into(),
        })
    }

    fn captured() -> SagaInput {
        SagaInput::Payment(PaymentEvent::Captured {
            order_id: "o-1".into(),
            amount_cents: 500,
            currency: "EUR".into(),
            payment_id: "p-1".into(),
        })
    }

    fn cancelled(reason: CancelReason) -> OrderEvent {
        OrderEvent::Cancelled {
            order_id: "o-1".into(),
            reason,
        }
    }

    #[test]
    fn given_a_placed_order_when_stock_is_rejected_then_it_is_cancelled_out_of_stock() {
        let then = decide(&given(&[placed()]), &rejected());
        assert_eq!(then, Some(cancelled(CancelReason::OutOfStock)));
    }

    #[test]
    fn given_a_placed_order_when_payment_is_declined_then_it_is_cancelled_payment_declined() {
        let then = decide(&given(&[placed()]), &declined());
        assert_eq!(then, Some(cancelled(CancelReason::PaymentDeclined)));
    }

    #[test]
    fn given_a_placed_order_when_payment_is_captured_then_it_is_confirmed() {
        let then = decide(&given(&[placed()]), &captured());
        assert_eq!(
            then,
            Some(OrderEvent::Confirmed {
                order_id: "o-1".into()
            })
        );
    }

    #[test]
    fn given_a_customer_cancelled_order_when_payment_is_captured_then_nothing_happens() {
        let order = given(&[placed(), cancelled(CancelReason::CustomerRequest)]);
        assert_eq!(decide(&order, &captured()), None);
    }

    #[test]
    fn given_a_decided_order_when_anything_arrives_again_then_nothing_happens() {
        let confirmed = given(&[
            placed(),
            OrderEvent::Confirmed {
                order_id: "o-1".into(),
            },
        ]);
        let cancelled = given(&[placed(), cancelled(CancelReason::OutOfStock)]);
        for input in [rejected(), declined(), captured()] {
            assert_eq!(decide(&confirmed, &input), None);
            assert_eq!(decide(&cancelled, &input), None);
        }
    }

    #[test]
    fn given_a_placed_order_past_its_deadline_then_it_is_cancelled_timed_out() {
        assert_eq!(
            decide_deadline(&given(&[placed()])),
            Some(cancelled(CancelReason::TimedOut))
        );
    }

    #[test]
    fn given_a_decided_or_missing_order_past_its_deadline_then_nothing_happens() {
        let confirmed = OrderEvent::Confirmed {
            order_id: "o-1".into(),
        };
        assert_eq!(decide_deadline(&given(&[placed(), confirmed])), None);
        let cancelled = cancelled(CancelReason::CustomerRequest);
        assert_eq!(decide_deadline(&given(&[placed(), cancelled])), None);
        assert_eq!(decide_deadline(&given(&[])), None);
    }

    #[test]
    fn reserved_released_and_refunded_change_no_order() {
        let order = given(&[placed()]);
        let released = SagaInput::Reservation(ReservationEvent::Released {
            order_id: "o-1".into(),
            lines: vec![],
        });
        let refunded = SagaInput::Payment(PaymentEvent::Refunded {
            order_id: "o-1".into(),
            amount_cents: 500,
            payment_id: "p-1".into(),
        });
        assert_eq!(decide(&order, &released), None);
        assert_eq!(decide(&order, &refunded), None);
        assert_eq!(refunded.order_id(), "o-1");
    }
}
