//! The `Payment` aggregate: what happened to the money of one order (id = order id).
//!
//! Payments charges an order once its stock is reserved (`payment.captured` or
//! `payment.declined`) and gives the money back when a captured order is cancelled after all
//! (`payment.refunded`). The gateway is outside the system, so what it is asked and what it
//! answers are plain data here ([`ChargeRequest`], [`ChargeResult`], [`RefundRequest`]); the
//! function that talks to it decides nothing, the functions below do.

use ripple_kit::Aggregate;
use serde::{Deserialize, Serialize};

use crate::order::{CancelReason, OrderPlaced};

/// Events of the `Payment` aggregate (one stream per order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(tag = "type", content = "data")]
pub enum PaymentEvent {
    /// The gateway took the money.
    #[serde(rename = "payment.captured")]
    Captured {
        /// The order.
        order_id: String,
        /// Amount taken, in the currency's minor unit.
        amount_cents: u64,
        /// ISO 4217 code.
        currency: String,
        /// The gateway's id of the payment (what a refund refers to).
        payment_id: String,
    },
    /// The gateway refused the charge.
    #[serde(rename = "payment.declined")]
    Declined {
        /// The order.
        order_id: String,
        /// Amount that was asked for.
        amount_cents: u64,
        /// The gateway's reason, e.g. `card_declined`.
        reason: String,
    },
    /// A captured payment was given back (the order was cancelled after the capture).
    #[serde(rename = "payment.refunded")]
    Refunded {
        /// The order.
        order_id: String,
        /// Amount given back.
        amount_cents: u64,
        /// The payment refunded.
        payment_id: String,
    },
}

impl PaymentEvent {
    /// The order the event belongs to.
    pub fn order_id(&self) -> &str {
        match self {
            PaymentEvent::Captured { order_id, .. }
            | PaymentEvent::Declined { order_id, .. }
            | PaymentEvent::Refunded { order_id, .. } => order_id,
        }
    }
}

/// Where the money of one order stands, folded from its `Payment` stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Payment {
    /// Nothing charged yet.
    #[default]
    None,
    /// The money was taken.
    Captured {
        /// The gateway's payment id.
        payment_id: String,
        /// Amount taken.
        amount_cents: u64,
    },
    /// The charge was refused; nothing was taken.
    Declined {
        /// The gateway's reason.
        reason: String,
    },
    /// The money was taken and given back.
    Refunded {
        /// The payment refunded.
        payment_id: String,
        /// Amount given back.
        amount_cents: u64,
    },
}

impl Aggregate for Payment {
    const TYPE: &'static str = "Payment";
    type Event = PaymentEvent;

    fn apply(&mut self, event: &PaymentEvent) {
        *self = match event {
            PaymentEvent::Captured {
                payment_id,
                amount_cents,
                ..
            } => Payment::Captured {
                payment_id: payment_id.clone(),
                amount_cents: *amount_cents,
            },
            PaymentEvent::Declined { reason, .. } => Payment::Declined {
                reason: reason.clone(),
            },
            PaymentEvent::Refunded {
                payment_id,
                amount_cents,
                ..
            } => Payment::Refunded {
                payment_id: payment_id.clone(),
                amount_cents: *amount_cents,
            },
        };
    }
}

/// What the gateway is asked to charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRequest {
    /// The order paid for.
    pub order_id: String,
    /// Who pays.
    pub customer_id: String,
    /// Amount, in the currency's minor unit.
    pub amount_cents: u64,
    /// ISO 4217 code.
    pub currency: String,
    /// Sent to the gateway so that it, too, charges at most once for this order.
    pub idempotency_key: String,
}

/// What the gateway answered to a charge. A decline is an answer, not an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ChargeResult {
    /// The money was taken.
    Captured {
        /// The gateway's payment id.
        payment_id: String,
    },
    /// The charge was refused.
    Declined {
        /// Why, e.g. `card_declined`.
        reason: String,
    },
}

/// What the gateway is asked to give back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    /// The order.
    pub order_id: String,
    /// The captured payment.
    pub payment_id: String,
    /// Amount to give back: all of it.
    pub amount_cents: u64,
    /// Sent to the gateway so that it refunds at most once for this order.
    pub idempotency_key: String,
}

/// The gateway's receipt for a refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundReceipt {
    /// The gateway's id of the refund.
    pub refund_id: String,
}

/// The gateway-side idempotency key of an order's charge.
pub fn charge_key(order_id: &str) -> String {
    format!("charge-{order_id}")
}

/// The gateway-side idempotency key of an order's refund.
pub fn refund_key(order_id: &str) -> String {
    format!("refund-{order_id}")
}

/// The charge for a reserved order, or `None` when its payment was already decided (a
/// redelivered `stock.reserved` charges nothing).
///
/// Who pays and how much come from the order's own `order.placed`, as stored, never from the
/// message that asked for the charge: a forged or garbled `stock.reserved` cannot choose them.
pub fn decide_charge(order: &OrderPlaced, payment: &Payment) -> Option<ChargeRequest> {
    (*payment == Payment::None).then(|| ChargeRequest {
        order_id: order.order_id.clone(),
        customer_id: order.customer_id.clone(),
        amount_cents: order.total.minor_units,
        currency: order.total.currency.clone(),
        idempotency_key: charge_key(&order.order_id),
    })
}

/// Whether an order cancelled for `reason` may hold a charge to refund. One cancelled for want of
/// stock was never charged (only a reserved order is), nor one whose charge was declined (a
/// payment is decided once); one its customer cancelled, or that timed out, may have been.
pub fn may_hold_a_charge(reason: CancelReason) -> bool {
    match reason {
        CancelReason::OutOfStock | CancelReason::PaymentDeclined => false,
        CancelReason::CustomerRequest | CancelReason::TimedOut => true,
    }
}

/// The event recording the gateway's answer to `request`.
pub fn charged(request: &ChargeRequest, result: ChargeResult) -> PaymentEvent {
    match result {
        ChargeResult::Captured { payment_id } => PaymentEvent::Captured {
            order_id: request.order_id.clone(),
            amount_cents: request.amount_cents,
            currency: request.currency.clone(),
            payment_id,
        },
        ChargeResult::Declined { reason } => PaymentEvent::Declined {
            order_id: request.order_id.clone(),
            amount_cents: request.amount_cents,
            reason,
        },
    }
}

/// The refund of a captured payment; `None` when nothing was taken or it was already given back.
pub fn decide_refund(order_id: &str, payment: &Payment) -> Option<RefundRequest> {
    match payment {
        Payment::Captured {
            payment_id,
            amount_cents,
        } => Some(RefundRequest {
            order_id: order_id.to_owned(),
            payment_id: payment_id.clone(),
            amount_cents: *amount_cents,
            idempotency_key: refund_key(order_id),
        }),
        _ => None,
    }
}

/// The event recording a refund the gateway accepted.
pub fn refunded(request: &RefundRequest) -> PaymentEvent {
    PaymentEvent::Refunded {
        order_id: request.order_id.clone(),
        amount_cents: request.amount_cents,
        payment_id: request.payment_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_cancellation_by_the_customer_or_the_clock_may_hold_a_charge() {
        let may: Vec<_> = [
            CancelReason::OutOfStock,
            CancelReason::PaymentDeclined,
            CancelReason::CustomerRequest,
            CancelReason::TimedOut,
        ]
        .map(may_hold_a_charge)
        .into();
        assert_eq!(may, [false, false, true, true]);
    }
    use ripple_kit::Loaded;
    use serde_json::json;

    fn placed() -> OrderPlaced {
        OrderPlaced {
            order_id: "o-1".into(),
            customer_id: "c-1".into(),
            total: crate::money::Money::new("EUR", 2500),
            lines: vec![],
        }
    }

    fn captured() -> PaymentEvent {
        PaymentEvent::Captured {
            order_id: "o-1".into(),
            amount_cents: 2500,
            currency: "EUR".into(),
            payment_id: "p-1".into(),
        }
    }

    #[test]
    fn events_serialise_as_type_and_data() {
        assert_eq!(
            serde_json::to_value(captured()).unwrap(),
            json!({"type": "payment.captured", "data": {
                "order_id": "o-1", "amount_cents": 2500, "currency": "EUR", "payment_id": "p-1"}})
        );
        let declined = PaymentEvent::Declined {
            order_id: "o-1".into(),
            amount_cents: 1,
            reason: "card_declined".into(),
        };
        assert_eq!(
            serde_json::to_value(&declined).unwrap()["type"],
            "payment.declined"
        );
    }

    #[test]
    fn given_no_payment_when_stock_is_reserved_then_the_orders_total_is_charged_once() {
        let request = decide_charge(&placed(), &Payment::None).unwrap();
        assert_eq!(request.amount_cents, 2500);
        assert_eq!(request.idempotency_key, "charge-o-1");
        let payment = Loaded::<Payment>::fold("o-1", [&captured()]);
        assert_eq!(payment.version, 1);
        assert!(decide_charge(&placed(), &payment.state).is_none());
    }

    #[test]
    fn the_gateway_answer_becomes_the_event() {
        let request = decide_charge(&placed(), &Payment::None).unwrap();
        let ok = charged(
            &request,
            ChargeResult::Captured {
                payment_id: "p-1".into(),
            },
        );
        assert_eq!(ok, captured());
        let no = charged(
            &request,
            ChargeResult::Declined {
                reason: "card_declined".into(),
            },
        );
        assert!(
            matches!(no, PaymentEvent::Declined { ref reason, amount_cents: 2500, .. } if reason == "card_declined")
        );
    }

    #[test]
    fn only_a_captured_payment_is_refunded_and_only_once() {
        assert!(decide_refund("o-1", &Payment::None).is_none());
        let declined = Payment::Declined { reason: "x".into() };
        assert!(decide_refund("o-1", &declined).is_none());
        let payment = Loaded::<Payment>::fold("o-1", [&captured()]);
        let request = decide_refund("o-1", &payment.state).unwrap();
        assert_eq!(
            (request.payment_id.as_str(), request.amount_cents),
            ("p-1", 2500)
        );
        let payment = Loaded::<Payment>::fold("o-1", [&captured(), &refunded(&request)]);
        assert_eq!(payment.version, 2);
        assert!(decide_refund("o-1", &payment.state).is_none());
    }

    #[test]
    fn charge_results_round_trip_for_the_idempotency_record() {
        let result = ChargeResult::Declined {
            reason: "amount_over_limit".into(),
        };
        let text = serde_json::to_string(&result).unwrap();
        assert_eq!(serde_json::from_str::<ChargeResult>(&text).unwrap(), result);
    }
}
