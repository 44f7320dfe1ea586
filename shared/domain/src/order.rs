//! The `Order` aggregate: placing an order and the events of its life.

use std::collections::HashSet;

use ripple_kit::{Aggregate, Loaded};
use serde::{Deserialize, Serialize};

use crate::{is_valid_id, limits};

/// The body of `POST /orders`: what a client asks for, unchecked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// Who orders.
    pub customer_id: String,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
    /// What is ordered.
    pub lines: Vec<OrderLine>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// Stock keeping unit.
    pub sku: String,
    /// Units, at least 1.
    pub quantity: u32,
    /// Price of one unit in the currency's minor unit.
    pub unit_price_cents: u64,
}

/// A rule of `PlaceOrder` that the input breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// Stable machine-readable code.
    pub code: &'static str,
    /// JSON path of the offending field, e.g. `lines[2].quantity`.
    pub field: String,
    /// What is wrong, for people.
    pub message: String,
}

fn invalid(
    code: &'static str,
    field: impl Into<String>,
    message: impl Into<String>,
) -> ValidationError {
    ValidationError {
        code,
        field: field.into(),
        message: message.into(),
    }
}

/// `order.placed`: an order was accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    /// The new order's id.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// ISO 4217 code.
    pub currency: String,
    /// What was ordered.
    pub lines: Vec<OrderLine>,
    /// Sum of quantity × unit price.
    pub total_cents: u64,
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// Inventory could not reserve every line.
    OutOfStock,
    /// The payment was declined.
    PaymentDeclined,
    /// The customer asked.
    CustomerRequest,
    /// Neither confirmed nor cancelled by its deadline (a message of its saga was lost to a
    /// dead-letter queue, or never delivered): cancelled so that it cannot hold stock or money.
    TimedOut,
}

/// Events of the `Order` aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum OrderEvent {
    /// The order was accepted.
    #[serde(rename = "order.placed")]
    Placed(OrderPlaced),
    /// Stock was reserved and payment captured: the order will be fulfilled.
    #[serde(rename = "order.confirmed")]
    Confirmed {
        /// The order.
        order_id: String,
    },
    /// The order will not be fulfilled.
    #[serde(rename = "order.cancelled")]
    Cancelled {
        /// The order.
        order_id: String,
        /// Why.
        reason: CancelReason,
    },
}

/// Places `command` as the order `order_id`: checks every rule and gives the `order.placed`
/// payload, totalled.
pub fn decide_place(command: PlaceOrder, order_id: &str) -> Result<OrderPlaced, ValidationError> {
    command.checked(order_id)
}

impl PlaceOrder {
    fn checked(self, order_id: &str) -> Result<OrderPlaced, ValidationError> {
        if !is_valid_id(&self.customer_id) {
            return Err(invalid(
                "invalid_customer_id",
                "customer_id",
                "must be 1-64 letters, digits, '-', '_' or '.'",
            ));
        }
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(invalid(
                "invalid_currency",
                "currency",
                "must be a 3-letter ISO 4217 code such as EUR",
            ));
        }
        if self.lines.is_empty() {
            return Err(invalid(
                "no_lines",
                "lines",
                "an order needs at least one line",
            ));
        }
        if self.lines.len() > limits::MAX_LINES {
            return Err(invalid(
                "too_many_lines",
                "lines",
                format!("at most {} lines per order", limits::MAX_LINES),
            ));
        }
        let mut skus = HashSet::new();
        let mut total: u64 = 0;
        for (i, line) in self.lines.iter().enumerate() {
            if !is_valid_id(&line.sku) {
                return Err(invalid(
                    "invalid_sku",
                    format!("lines[{i}].sku"),
                    "must be 1-64 letters, digits, '-', '_' or '.'",
                ));
            }
            if !skus.insert(line.sku.as_str()) {
                return Err(invalid(
                    "duplicate_sku",
                    format!("lines[{i}].sku"),
                    "each sku may appear on one line only",
                ));
            }
            if line.quantity == 0 || line.quantity > limits::MAX_QUANTITY {
                return Err(invalid(
                    "invalid_quantity",
                    format!("lines[{i}].quantity"),
                    format!("must be between 1 and {}", limits::MAX_QUANTITY),
                ));
            }
            if line.unit_price_cents == 0 || line.unit_price_cents > limits::MAX_UNIT_PRICE_CENTS {
                return Err(invalid(
                    "invalid_price",
                    format!("lines[{i}].unit_price_cents"),
                    format!("must be between 1 and {}", limits::MAX_UNIT_PRICE_CENTS),
                ));
            }
            // Bounded by the limits above (50 × 10^4 × 10^8 < 2^63), so this cannot overflow.
            total += u64::from(line.quantity) * line.unit_price_cents;
        }
        Ok(OrderPlaced {
            order_id: order_id.to_owned(),
            customer_id: self.customer_id,
            currency: self.currency,
            lines: self.lines,
            total_cents: total,
        })
    }
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// No `order.placed` yet: the order does not exist.
    #[default]
    Unplaced,
    /// Placed, waiting for stock and payment.
    Placed,
    /// Confirmed: stock reserved, payment captured.
    Confirmed,
    /// Cancelled, see the reason.
    Cancelled,
}

/// The state of an order, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// What was placed; `None` before `order.placed`.
    pub placed: Option<OrderPlaced>,
    /// Where it stands.
    pub status: OrderStatus,
    /// Why it was cancelled, if it was.
    pub cancel_reason: Option<CancelReason>,
}

impl Aggregate for Order {
    const TYPE: &'static str = "Order";
    type Event = OrderEvent;

    fn apply(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::Placed(placed) => {
                self.placed = Some(placed.clone());
                self.status = OrderStatus::Placed;
            }
            OrderEvent::Confirmed { .. } => self.status = OrderStatus::Confirmed,
            OrderEvent::Cancelled { reason, .. } => {
                self.status = OrderStatus::Cancelled;
                self.cancel_reason = Some(*reason);
            }
        }
    }
}

/// Why an order cannot be cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CancelRefused {
    /// There is no such order.
    #[error("no such order")]
    NotFound,
    /// It is confirmed: stock is allocated and the money taken.
    #[error("a confirmed order can no longer be cancelled")]
    Confirmed,
}

/// Cancels `order` for `reason`: `order.cancelled`, or `None` when it is cancelled already (a
/// repeated request changes nothing). A confirmed order stays confirmed.
pub fn decide_cancel(
    order: &Loaded<Order>,
    reason: CancelReason,
) -> Result<Option<OrderEvent>, CancelRefused> {
    match order.state.status {
        OrderStatus::Unplaced => Err(CancelRefused::NotFound),
        OrderStatus::Confirmed => Err(CancelRefused::Confirmed),
        OrderStatus::Cancelled => Ok(None),
        OrderStatus::Placed => Ok(Some(OrderEvent::Cancelled {
            order_id: order.id.clone(),
            reason,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(sku: &str, quantity: u32, price: u64) -> OrderLine {
        OrderLine {
            sku: sku.into(),
            quantity,
            unit_price_cents: price,
        }
    }

    fn command(lines: Vec<OrderLine>) -> PlaceOrder {
        PlaceOrder {
            customer_id: "c-1".into(),
            currency: "EUR".into(),
            lines,
        }
    }

    #[test]
    fn a_valid_order_totals_its_lines() {
        let placed =
            decide_place(command(vec![line("A", 2, 1250), line("B", 1, 99)]), "o-1").unwrap();
        assert_eq!(placed.total_cents, 2599);
        assert_eq!(placed.order_id, "o-1");
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        let cases = [
            (command(vec![]), "no_lines", "lines"),
            (
                command(vec![line("A", 0, 1)]),
                "invalid_quantity",
                "lines[0].quantity",
            ),
            (
                command(vec![line("A", 1, 0)]),
                "invalid_price",
                "lines[0].unit_price_cents",
            ),
            (
                command(vec![line("A", 1, 1), line("A", 1, 1)]),
                "duplicate_sku",
                "lines[1].sku",
            ),
            (command(vec![line("", 1, 1)]), "invalid_sku", "lines[0].sku"),
            (
                command((0..51).map(|i| line(&format!("S{i}"), 1, 1)).collect()),
                "too_many_lines",
                "lines",
            ),
            (
                PlaceOrder {
                    currency: "euro".into(),
                    ..command(vec![line("A", 1, 1)])
                },
                "invalid_currency",
                "currency",
            ),
            (
                PlaceOrder {
                    customer_id: "a b".into(),
                    ..command(vec![line("A", 1, 1)])
                },
                "invalid_customer_id",
                "customer_id",
            ),
        ];
        for (cmd, code, field) in cases {
            let err = decide_place(cmd, "o").unwrap_err();
            assert_eq!((err.code, err.field.as_str()), (code, field));
        }
    }

    #[test]
    fn the_largest_allowed_order_does_not_overflow() {
        let lines = (0..limits::MAX_LINES)
            .map(|i| {
                line(
                    &format!("S{i}"),
                    limits::MAX_QUANTITY,
                    limits::MAX_UNIT_PRICE_CENTS,
                )
            })
            .collect();
        let placed = decide_place(command(lines), "o").unwrap();
        assert_eq!(placed.total_cents, 50 * 10_000 * 100_000_000);
    }

    #[test]
    fn unknown_fields_in_the_command_are_rejected() {
        let body = json!({"customer_id": "c", "currency": "EUR", "lines": [], "coupon": "x"});
        assert!(serde_json::from_value::<PlaceOrder>(body).is_err());
    }

    #[test]
    fn events_serialise_as_type_and_data() {
        let e = OrderEvent::Cancelled {
            order_id: "o".into(),
            reason: CancelReason::OutOfStock,
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"type": "order.cancelled", "data": {"order_id": "o", "reason": "out_of_stock"}})
        );
    }

    #[test]
    fn an_order_folds_to_its_latest_status() {
        let placed = decide_place(command(vec![line("A", 1, 5)]), "o").unwrap();
        let history = [
            OrderEvent::Placed(placed),
            OrderEvent::Cancelled {
                order_id: "o".into(),
                reason: CancelReason::PaymentDeclined,
            },
        ];
        let order = Loaded::<Order>::fold("o", &history);
        assert_eq!(order.state.status, OrderStatus::Cancelled);
        assert_eq!(
            order.state.cancel_reason,
            Some(CancelReason::PaymentDeclined)
        );
        assert_eq!(order.version, 2);
        assert_eq!(
            Loaded::<Order>::new("o").state.status,
            OrderStatus::Unplaced
        );
    }

    #[test]
    fn a_placed_order_is_cancelled_once_and_a_confirmed_one_never() {
        let placed = OrderEvent::Placed(decide_place(command(vec![line("A", 1, 5)]), "o").unwrap());
        let order = Loaded::<Order>::fold("o", [&placed]);
        let cancelled = decide_cancel(&order, CancelReason::CustomerRequest).unwrap();
        assert_eq!(
            cancelled,
            Some(OrderEvent::Cancelled {
                order_id: "o".into(),
                reason: CancelReason::CustomerRequest
            })
        );
        let cancelled = Loaded::<Order>::fold("o", [&placed, &cancelled.unwrap()]);
        assert_eq!(
            decide_cancel(&cancelled, CancelReason::CustomerRequest),
            Ok(None)
        );
        let confirmed = Loaded::<Order>::fold(
            "o",
            [
                &placed,
                &OrderEvent::Confirmed {
                    order_id: "o".into(),
                },
            ],
        );
        assert_eq!(
            decide_cancel(&confirmed, CancelReason::CustomerRequest),
            Err(CancelRefused::Confirmed)
        );
        assert_eq!(
            decide_cancel(&Loaded::new("o"), CancelReason::CustomerRequest),
            Err(CancelRefused::NotFound)
        );
    }
}
