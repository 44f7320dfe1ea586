//! The order saga's domain: commands, events and aggregates, and the adapters only this
//! application needs.
//!
//! Events are past tense and serialise as `{"type": .., "data": ..}`, which is exactly the pair of
//! CloudEvents attributes they travel in. Every aggregate ([`order::Order`],
//! [`inventory::Stock`], [`inventory::Reservation`], [`payment::Payment`]) is a
//! [`ripple_kit::Aggregate`]: it folds its events with `apply`, and the kit counts its version.
//! Decisions are pure functions named `decide_*` from the current state to the new events; the
//! functions own the I/O around them. [`views`] is the one adapter: the order read model's table.
//!
//! Prices are the system's: the [`catalog`] holds one `Product` stream per sku, and an order is
//! priced from it, in a currency of [`money::CURRENCIES`]. Who may write which events is declared
//! once, in [`producers`], from the [`sources`] and the event enums.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod catalog;
#[cfg(feature = "schemas")]
pub mod contracts;
pub mod inventory;
pub mod money;
pub mod order;
pub mod payment;
pub mod saga;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod view;
pub mod views;

use ripple_kit::Aggregate;
use ripple_kit::producers::Producers;

/// The `source` of each producer of the system: one function, or the operators' catalog tool.
pub mod sources {
    /// The HTTP API: places orders and cancels them for their customers.
    pub const ORDERS_API: &str = "ripple/orders-api";
    /// Inventory: stock levels and reservations.
    pub const INVENTORY: &str = "ripple/inventory";
    /// Payments: charges and refunds.
    pub const PAYMENTS: &str = "ripple/payments";
    /// The order saga: confirms and cancels orders on what inventory and payments decided.
    pub const ORDER_SAGA: &str = "ripple/order-saga";
    /// The sweeper: cancels an order still undecided at its deadline.
    pub const SWEEPER: &str = "ripple/sweeper";
    /// The catalog: prices, set by operators (`ripple dev` seeds them).
    pub const CATALOG: &str = "ripple/catalog";
}

/// Who may write what: every producer's aggregate types and event types, from the event enums.
/// The outbox publishes, and consumers act on, only what this allows; a template test holds each
/// function role's `dynamodb:LeadingKeys` to it.
pub fn producers() -> Producers {
    use catalog::Product;
    use inventory::{Reservation, Stock};
    use order::{CancelReason, Order, OrderEvent, OrderPlaced};
    use payment::Payment;
    let cancelled = || OrderEvent::Cancelled {
        order_id: String::new(),
        reason: CancelReason::CustomerRequest,
    };
    let placed = OrderEvent::Placed(OrderPlaced {
        order_id: String::new(),
        customer_id: String::new(),
        lines: Vec::new(),
        total: money::Money::new("", 0),
    });
    let confirmed = OrderEvent::Confirmed {
        order_id: String::new(),
    };
    // Only the saga confirms an order: the API that places it never can.
    Producers::new()
        .allow::<Order>(sources::ORDERS_API, &[placed, cancelled()])
        .allow::<Order>(sources::ORDER_SAGA, &[confirmed, cancelled()])
        .allow::<Order>(sources::SWEEPER, &[cancelled()])
        .allow_all::<Stock>(sources::INVENTORY)
        .allow_all::<Reservation>(sources::INVENTORY)
        .allow_all::<Payment>(sources::PAYMENTS)
        .allow_all::<Product>(sources::CATALOG)
}

/// The aggregate types of the system, for checks that must cover every one.
pub const AGGREGATE_TYPES: [&str; 5] = [
    order::Order::TYPE,
    inventory::Stock::TYPE,
    inventory::Reservation::TYPE,
    payment::Payment::TYPE,
    catalog::Product::TYPE,
];

/// Limits the API enforces on an order.
pub mod limits {
    /// Most lines in one order (also keeps inventory's transaction under DynamoDB's 100 items).
    pub const MAX_LINES: usize = 50;
    /// Most units of one sku in one order.
    pub const MAX_QUANTITY: u32 = 10_000;
    /// Highest unit price the catalog takes, in cents.
    pub const MAX_UNIT_PRICE_CENTS: u64 = 100_000_000;
    /// Longest id (order, sku).
    pub const MAX_ID_LEN: usize = 64;
    /// Longest customer id (a token's subject).
    pub const MAX_SUBJECT_LEN: usize = 255;
}

/// True for a customer id as identity providers issue them (a token's `sub`): 1 to
/// `limits::MAX_SUBJECT_LEN` visible ASCII characters, e.g. a Cognito UUID or `auth0|5fe4`.
pub fn is_valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.len() <= limits::MAX_SUBJECT_LEN
        && subject.bytes().all(|b| b.is_ascii_graphic())
}

/// True for a non-empty id of at most `limits::MAX_ID_LEN` letters, digits, `-`, `_` or `.`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= limits::MAX_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
