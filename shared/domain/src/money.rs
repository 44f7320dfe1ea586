//! Money: the currencies the system sells in, and totals that cannot overflow silently.

use serde::{Deserialize, Serialize};

/// An amount of money: minor units of one currency, never one without the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
pub struct Money {
    /// ISO 4217 code.
    pub currency: String,
    /// The amount in the currency's minor unit (cents for EUR, USD and GBP).
    pub minor_units: u64,
}

impl Money {
    /// `minor_units` of `currency`.
    pub fn new(currency: &str, minor_units: u64) -> Self {
        Money {
            currency: currency.to_owned(),
            minor_units,
        }
    }
}

/// The currencies orders may be placed and priced in (ISO 4217).
pub const CURRENCIES: [&str; 3] = ["EUR", "USD", "GBP"];

/// True for a currency of [`CURRENCIES`].
pub fn is_supported_currency(currency: &str) -> bool {
    CURRENCIES.contains(&currency)
}

/// `quantity` units at `unit_price_cents` each, added to `total`; `None` on overflow.
pub fn add_line(total: u64, quantity: u32, unit_price_cents: u64) -> Option<u64> {
    u64::from(quantity)
        .checked_mul(unit_price_cents)
        .and_then(|line| total.checked_add(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_currencies_are_supported() {
        assert!(is_supported_currency("EUR"));
        assert!(!is_supported_currency("XTS"));
        assert!(!is_supported_currency("eur"));
    }

    #[test]
    fn a_total_that_would_overflow_is_none() {
        assert_eq!(add_line(100, 3, 250), Some(850));
        assert_eq!(add_line(0, u32::MAX, u64::MAX), None);
        assert_eq!(add_line(u64::MAX, 1, 1), None);
    }
}
