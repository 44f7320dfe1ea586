//! The order saga's domain: commands, events and aggregates, and the adapters only this
//! application needs.
//!
//! Events are past tense and serialise as `{"type": .., "data": ..}`, which is exactly the pair of
//! CloudEvents attributes they travel in. Every aggregate ([`order::Order`],
//! [`inventory::Stock`], [`inventory::Reservation`], [`payment::Payment`]) is a
//! [`ripple_kit::Aggregate`]: it folds its events with `apply`, and the kit counts its version.
//! Decisions are pure functions named `decide_*` from the current state to the new events; the
//! functions own the I/O around them. [`views`] is the one adapter: the order read model's table.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod inventory;
pub mod order;
pub mod payment;
pub mod saga;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod view;
pub mod views;

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
