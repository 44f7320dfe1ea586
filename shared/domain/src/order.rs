//! The `Order` aggregate: placing an order and the events of its life.

use std::collections::HashSet;

use std::sync::LazyLock;

use ripple_kit::envelope::{UpcastChain, Upcaster};
use ripple_kit::{Aggregate, Loaded};
use serde::{Deserialize, Serialize};

use serde_json::{Value, json};

use crate::catalog::Catalog;
use crate::money::Money;
use crate::{is_valid_id, is_valid_subject, limits, money};

/// The body of `POST /orders`: what a customer asks for. The customer is whoever the request is
/// authenticated as, and the prices are the catalog's, so neither is part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// ISO 4217 code, one of [`money::CURRENCIES`].
    pub currency: String,
    /// What is ordered.
    pub lines: Vec<RequestedLine>,
}

/// One line of an order as asked for: a sku and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedLine {
    /// Stock keeping unit.
    pub sku: String,
    /// Units, at least 1.
    pub quantity: u32,
}

/// One line of a placed order, priced from the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
pub struct OrderLine {
    /// Stock keeping unit.
    pub sku: String,
    /// Units, at least 1.
    pub quantity: u32,
    /// Price of one unit in the currency's minor unit, as the catalog had it.
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
///
/// Schema version 2: the total is one [`Money`], its currency with it. Version 1 (stored history
/// before it) had `currency` and `total_cents` side by side; [`Order::upcaster`] reads it as
/// version 2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
pub struct OrderPlaced {
    /// The new order's id.
    pub order_id: String,
    /// Who ordered, and the only one who may see or cancel the order: the subject of the token
    /// the order was placed with.
    pub customer_id: String,
    /// What was ordered, each unit priced in the total's currency.
    pub lines: Vec<OrderLine>,
    /// Sum of quantity × unit price in the order's currency, computed by [`decide_place`].
    pub total: Money,
}

/// The event type of [`OrderEvent::Placed`].
pub const PLACED: &str = "order.placed";

/// `order.placed` version 1 as version 2: `currency` and `total_cents` become
/// `total: {currency, minor_units}`. Every other field, known or not, is kept as it is.
fn placed_v1_to_v2(mut data: Value) -> Result<Value, String> {
    let fields = data
        .as_object_mut()
        .ok_or("the payload is not a JSON object")?;
    let currency = match fields.remove("currency") {
        Some(Value::String(currency)) => currency,
        Some(_) => return Err("currency is not a string".into()),
        None => return Err("currency is missing".into()),
    };
    let total = match fields.remove("total_cents") {
        Some(total) => total
            .as_u64()
            .ok_or("total_cents is not a whole number of cents")?,
        None => return Err("total_cents is missing".into()),
    };
    fields.insert(
        "total".into(),
        json!({"currency": currency, "minor_units": total}),
    );
    Ok(data)
}

static UPCASTER: LazyLock<UpcastChain> =
    LazyLock::new(|| UpcastChain::new().step(PLACED, 1, placed_v1_to_v2));

impl OrderPlaced {
    /// True when `other` asks for the same order: the same customer, currency, skus and
    /// quantities (prices are the catalog's at the time, so they may differ).
    pub fn is_the_same_order_as(&self, other: &OrderPlaced) -> bool {
        let asked = |p: &OrderPlaced| -> Vec<(String, u32)> {
            p.lines
                .iter()
                .map(|l| (l.sku.clone(), l.quantity))
                .collect()
        };
        self.customer_id == other.customer_id
            && self.total.currency == other.total.currency
            && asked(self) == asked(other)
    }
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
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

/// Fields of a `POST /orders` body that only the system may set: the customer is the caller and
/// prices are the catalog's. A body that sends one is refused, never silently repriced.
const SYSTEM_FIELDS: [(&str, &str, &str); 3] = [
    (
        "customer_id",
        "customer_not_accepted",
        "the customer is the authenticated caller; leave customer_id out",
    ),
    (
        "total_cents",
        "price_not_accepted",
        "totals are computed from the catalog; leave total_cents out",
    ),
    (
        "total",
        "price_not_accepted",
        "totals are computed from the catalog; leave total out",
    ),
];

impl PlaceOrder {
    /// The command in a request body, refusing with its own code a field that is the system's to
    /// set (the customer, a price, a total).
    pub fn from_json(body: &Value) -> Result<PlaceOrder, ValidationError> {
        for (field, code, message) in SYSTEM_FIELDS {
            if body.get(field).is_some() {
                return Err(invalid(code, field, message));
            }
        }
        let lines = body.get("lines").and_then(Value::as_array);
        for (i, line) in lines.into_iter().flatten().enumerate() {
            if line.get("unit_price_cents").is_some() {
                return Err(invalid(
                    "price_not_accepted",
                    format!("lines[{i}].unit_price_cents"),
                    "prices come from the catalog; send sku and quantity only",
                ));
            }
        }
        serde_json::from_value(body.clone())
            .map_err(|e| invalid("invalid_request", "body", e.to_string()))
    }
}

/// Places `command` for `customer_id` as the order `order_id`, priced from `catalog` (the
/// products of its skus): checks every rule and gives the `order.placed` payload, totalled with
/// checked arithmetic.
pub fn decide_place(
    command: PlaceOrder,
    customer_id: &str,
    order_id: &str,
    catalog: &Catalog,
) -> Result<OrderPlaced, ValidationError> {
    if !is_valid_subject(customer_id) {
        return Err(invalid(
            "invalid_customer",
            "customer",
            "the caller's subject is not a usable customer id",
        ));
    }
    if !money::is_supported_currency(&command.currency) {
        return Err(invalid(
            "unsupported_currency",
            "currency",
            format!("must be one of {}", money::CURRENCIES.join(", ")),
        ));
    }
    check_lines(&command.lines)?;
    let mut total: u64 = 0;
    let mut lines = Vec::with_capacity(command.lines.len());
    for (i, line) in command.lines.into_iter().enumerate() {
        let unit_price_cents = price_of(catalog, &line.sku, &command.currency, i)?;
        total = money::add_line(total, line.quantity, unit_price_cents)
            .ok_or_else(|| invalid("total_too_large", "lines", "the order's total is too large"))?;
        lines.push(OrderLine {
            sku: line.sku,
            quantity: line.quantity,
            unit_price_cents,
        });
    }
    Ok(OrderPlaced {
        order_id: order_id.to_owned(),
        customer_id: customer_id.to_owned(),
        lines,
        total: Money {
            currency: command.currency,
            minor_units: total,
        },
    })
}

/// The rules of an order's lines that need no catalog: count, skus, quantities.
fn check_lines(lines: &[RequestedLine]) -> Result<(), ValidationError> {
    if lines.is_empty() {
        return Err(invalid(
            "no_lines",
            "lines",
            "an order needs at least one line",
        ));
    }
    if lines.len() > limits::MAX_LINES {
        return Err(invalid(
            "too_many_lines",
            "lines",
            format!("at most {} lines per order", limits::MAX_LINES),
        ));
    }
    let mut skus = HashSet::new();
    for (i, line) in lines.iter().enumerate() {
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
    }
    Ok(())
}

/// The catalog's price of one unit of line `i`'s `sku` in `currency`.
fn price_of(
    catalog: &Catalog,
    sku: &str,
    currency: &str,
    i: usize,
) -> Result<u64, ValidationError> {
    let field = || format!("lines[{i}].sku");
    let product = catalog
        .get(sku)
        .filter(|p| !p.prices.is_empty())
        .ok_or_else(|| {
            invalid(
                "unknown_sku",
                field(),
                format!("{sku} is not in the catalog"),
            )
        })?;
    product.price_in(currency).ok_or_else(|| {
        invalid(
            "not_sold_in_currency",
            field(),
            format!("{sku} is not sold in {currency}"),
        )
    })
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

impl Order {
    /// The customer who placed it: the only one who may see or cancel it.
    pub fn owner(&self) -> Option<&str> {
        self.placed.as_ref().map(|p| p.customer_id.as_str())
    }

    /// True when `customer_id` placed this order (an order not placed belongs to nobody).
    pub fn is_owned_by(&self, customer_id: &str) -> bool {
        self.owner() == Some(customer_id)
    }
}

impl Aggregate for Order {
    const TYPE: &'static str = "Order";
    type Event = OrderEvent;

    fn upcaster() -> &'static dyn Upcaster {
        &*UPCASTER
    }

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
    use crate::catalog::Product;
    use serde_json::json;

    fn line(sku: &str, quantity: u32) -> RequestedLine {
        RequestedLine {
            sku: sku.into(),
            quantity,
        }
    }

    fn command(lines: Vec<RequestedLine>) -> PlaceOrder {
        PlaceOrder {
            currency: "EUR".into(),
            lines,
        }
    }

    /// A catalog of `skus` (sku, EUR price).
    fn catalog(skus: &[(&str, u64)]) -> Catalog {
        skus.iter()
            .map(|(sku, price)| {
                let mut product = Product::default();
                product.prices.insert("EUR".into(), *price);
                ((*sku).to_owned(), product)
            })
            .collect()
    }

    fn place(cmd: PlaceOrder, skus: &[(&str, u64)]) -> Result<OrderPlaced, ValidationError> {
        decide_place(cmd, "c-1", "o-1", &catalog(skus))
    }

    #[test]
    fn a_valid_order_is_priced_from_the_catalog_and_totalled() {
        let placed = place(
            command(vec![line("A", 2), line("B", 1)]),
            &[("A", 1250), ("B", 99)],
        )
        .unwrap();
        assert_eq!(placed.total, Money::new("EUR", 2599));
        assert_eq!(
            (placed.order_id.as_str(), placed.customer_id.as_str()),
            ("o-1", "c-1")
        );
        assert_eq!(placed.lines[0].unit_price_cents, 1250);
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        let skus = &[("A", 1)];
        let cases = [
            (command(vec![]), "no_lines", "lines"),
            (
                command(vec![line("A", 0)]),
                "invalid_quantity",
                "lines[0].quantity",
            ),
            (
                command(vec![line("A", 1), line("A", 1)]),
                "duplicate_sku",
                "lines[1].sku",
            ),
            (command(vec![line("", 1)]), "invalid_sku", "lines[0].sku"),
            (
                command(vec![line("A", 1), line("Z", 1)]),
                "unknown_sku",
                "lines[1].sku",
            ),
            (
                command((0..51).map(|i| line(&format!("S{i}"), 1)).collect()),
                "too_many_lines",
                "lines",
            ),
            (
                PlaceOrder {
                    currency: "euro".into(),
                    ..command(vec![line("A", 1)])
                },
                "unsupported_currency",
                "currency",
            ),
            (
                PlaceOrder {
                    currency: "USD".into(),
                    ..command(vec![line("A", 1)])
                },
                "not_sold_in_currency",
                "lines[0].sku",
            ),
        ];
        for (cmd, code, field) in cases {
            let err = place(cmd, skus).unwrap_err();
            assert_eq!((err.code, err.field.as_str()), (code, field));
        }
        let err =
            decide_place(command(vec![line("A", 1)]), "a b", "o", &catalog(skus)).unwrap_err();
        assert_eq!(err.code, "invalid_customer");
    }

    #[test]
    fn the_same_order_is_the_same_customer_currency_and_lines_whatever_the_price() {
        let first = place(command(vec![line("A", 2)]), &[("A", 100)]).unwrap();
        let repriced = place(command(vec![line("A", 2)]), &[("A", 90)]).unwrap();
        assert!(first.is_the_same_order_as(&repriced));
        let more = place(command(vec![line("A", 3)]), &[("A", 100)]).unwrap();
        assert!(!first.is_the_same_order_as(&more));
        let other_customer = decide_place(
            command(vec![line("A", 2)]),
            "c-2",
            "o-1",
            &catalog(&[("A", 100)]),
        )
        .unwrap();
        assert!(!first.is_the_same_order_as(&other_customer));
    }

    #[test]
    fn the_largest_allowed_order_does_not_overflow() {
        let skus: Vec<(String, u64)> = (0..limits::MAX_LINES)
            .map(|i| (format!("S{i}"), limits::MAX_UNIT_PRICE_CENTS))
            .collect();
        let skus: Vec<(&str, u64)> = skus.iter().map(|(s, p)| (s.as_str(), *p)).collect();
        let lines = (0..limits::MAX_LINES)
            .map(|i| line(&format!("S{i}"), limits::MAX_QUANTITY))
            .collect();
        let placed = place(command(lines), &skus).unwrap();
        assert_eq!(placed.total.minor_units, 50 * 10_000 * 100_000_000);
    }

    #[test]
    fn a_total_past_u64_is_refused_not_wrapped() {
        let err = place(command(vec![line("A", 2)]), &[("A", u64::MAX / 2 + 1)]).unwrap_err();
        assert_eq!(err.code, "total_too_large");
    }

    #[test]
    fn a_body_that_sets_the_customer_or_a_price_is_refused_with_its_own_code() {
        let cases = [
            (
                json!({"customer_id": "c-2", "currency": "EUR", "lines": [{"sku": "A", "quantity": 1}]}),
                "customer_not_accepted",
                "customer_id",
            ),
            (
                json!({"currency": "EUR", "lines": [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1, "unit_price_cents": 1}]}),
                "price_not_accepted",
                "lines[1].unit_price_cents",
            ),
            (
                json!({"currency": "EUR", "total_cents": 1, "lines": []}),
                "price_not_accepted",
                "total_cents",
            ),
            (
                json!({"currency": "EUR", "lines": [], "coupon": "x"}),
                "invalid_request",
                "body",
            ),
        ];
        for (body, code, field) in cases {
            let err = PlaceOrder::from_json(&body).unwrap_err();
            assert_eq!((err.code, err.field.as_str()), (code, field), "{body}");
        }
        let ok = PlaceOrder::from_json(
            &json!({"currency": "EUR", "lines": [{"sku": "A", "quantity": 2}]}),
        );
        assert_eq!(ok.unwrap(), command(vec![line("A", 2)]));
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
    fn an_order_folds_to_its_latest_status_and_belongs_to_its_customer() {
        let placed = place(command(vec![line("A", 1)]), &[("A", 5)]).unwrap();
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
        assert!(order.state.is_owned_by("c-1"));
        assert!(!order.state.is_owned_by("c-2"));
        let nobody = Loaded::<Order>::new("o");
        assert_eq!(nobody.state.status, OrderStatus::Unplaced);
        assert!(!nobody.state.is_owned_by(""));
    }

    #[test]
    fn a_placed_order_is_cancelled_once_and_a_confirmed_one_never() {
        let placed = OrderEvent::Placed(place(command(vec![line("A", 1)]), &[("A", 5)]).unwrap());
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

    #[test]
    fn order_placed_is_written_at_v2_and_v1_history_reads_as_v2_keeping_unknown_fields() {
        use ripple_kit::Envelope;
        assert_eq!(Order::upcaster().current_version(PLACED), 2);
        assert_eq!(Order::upcaster().current_version("order.confirmed"), 1);
        let placed = place(command(vec![line("A", 2)]), &[("A", 150)]).unwrap();
        let written = Envelope::encode(
            "ripple/orders-api",
            Loaded::<Order>::new("o-1").next(),
            &OrderEvent::Placed(placed.clone()),
        )
        .unwrap();
        assert_eq!(written.schemaversion, 2);
        assert_eq!(
            written.data["total"],
            json!({"currency": "EUR", "minor_units": 300})
        );

        let mut v1 = written.clone();
        v1.schemaversion = 1;
        v1.data = json!({
            "order_id": "o-1", "customer_id": "c-1", "currency": "EUR", "total_cents": 300,
            "lines": [{"sku": "A", "quantity": 2, "unit_price_cents": 150}],
            "gift_wrap": true
        });
        assert_eq!(
            v1.decode_for::<Order>().unwrap(),
            OrderEvent::Placed(placed.clone())
        );
        let (version, upcast) = Order::upcaster()
            .upcast(PLACED, 1, v1.data.clone())
            .unwrap();
        assert_eq!(version, 2);
        assert_eq!(upcast["gift_wrap"], json!(true), "{upcast}");
        assert!(upcast.get("total_cents").is_none() && upcast.get("currency").is_none());
        assert!(
            v1.decode::<OrderEvent>().is_err(),
            "read without its upcaster, v1 is not v2"
        );
        assert_eq!(
            written.decode_for::<Order>().unwrap(),
            OrderEvent::Placed(placed)
        );
    }

    #[test]
    fn a_v1_order_placed_the_upcaster_cannot_read_is_refused_saying_why() {
        use ripple_kit::Envelope;
        let mut v1 = Envelope::encode(
            "ripple/orders-api",
            ripple_kit::StreamPosition::new(Order::TYPE, "o-1", 1),
            &OrderEvent::Confirmed {
                order_id: "o-1".into(),
            },
        )
        .unwrap();
        v1.event_type = PLACED.into();
        for (data, reason) in [
            (
                json!({"order_id": "o-1", "total_cents": 1}),
                "currency is missing",
            ),
            (
                json!({"currency": 7, "total_cents": 1}),
                "currency is not a string",
            ),
            (json!({"currency": "EUR"}), "total_cents is missing"),
            (
                json!({"currency": "EUR", "total_cents": -1}),
                "not a whole number",
            ),
            (json!([1]), "not a JSON object"),
        ] {
            v1.data = data;
            let err = v1.decode_for::<Order>().unwrap_err().to_string();
            assert!(
                err.contains("upcasting order.placed from schema 1") && err.contains(reason),
                "{err}"
            );
        }
    }
}
