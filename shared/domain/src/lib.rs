//! The order saga's domain: commands, events and aggregates, with no I/O.
//!
//! Events are past tense and serialise as `{"type": .., "data": ..}`, which is exactly the pair of
//! CloudEvents attributes they travel in. Aggregates `apply` events to rebuild state and decide
//! new events from a command; the functions own the I/O around them.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod inventory;
pub mod order;
pub mod payment;
pub mod saga;
pub mod view;

/// Aggregate type names: the `<AggregateType>` part of a stream key.
pub mod aggregate {
    /// An order, id = order id.
    pub const ORDER: &str = "Order";
    /// The stock of one sku, id = sku.
    pub const STOCK: &str = "Stock";
    /// What inventory holds for one order, id = order id.
    pub const RESERVATION: &str = "Reservation";
    /// A payment, id = order id.
    pub const PAYMENT: &str = "Payment";
}

/// Limits the API enforces on an order.
pub mod limits {
    /// Most lines in one order (also keeps inventory's transaction under DynamoDB's 100 items).
    pub const MAX_LINES: usize = 50;
    /// Most units of one sku in one order.
    pub const MAX_QUANTITY: u32 = 10_000;
    /// Highest unit price, in cents.
    pub const MAX_UNIT_PRICE_CENTS: u64 = 100_000_000;
    /// Longest id (customer, sku).
    pub const MAX_ID_LEN: usize = 64;
}

/// True for a non-empty id of at most `limits::MAX_ID_LEN` letters, digits, `-`, `_` or `.`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= limits::MAX_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
