//! The catalog: what each sku costs, held in the store as one `Product` stream per sku.
//!
//! Prices are the system's, never the client's: an order names skus and quantities, and the API
//! prices it from here. Operators set prices (`product.priced`, one per sku and currency; a new one
//! replaces the old); a sku with no price in a currency is not sold in it.

use std::collections::BTreeMap;

use ripple_kit::{Aggregate, Loaded};
use serde::{Deserialize, Serialize};

use crate::{is_valid_id, limits, money};

/// Events of the `Product` aggregate (one stream per sku).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ProductEvent {
    /// The sku costs this much in this currency from now on.
    #[serde(rename = "product.priced")]
    Priced {
        /// The sku.
        sku: String,
        /// ISO 4217 code, one of [`money::CURRENCIES`].
        currency: String,
        /// Price of one unit in the currency's minor unit.
        unit_price_cents: u64,
    },
}

/// One sku's prices, by currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Product {
    /// Price of one unit in each currency it is sold in.
    pub prices: BTreeMap<String, u64>,
}

impl Product {
    /// The price of one unit in `currency`, if the sku is sold in it.
    pub fn price_in(&self, currency: &str) -> Option<u64> {
        self.prices.get(currency).copied()
    }
}

impl Aggregate for Product {
    const TYPE: &'static str = "Product";
    type Event = ProductEvent;

    fn apply(&mut self, event: &ProductEvent) {
        let ProductEvent::Priced {
            currency,
            unit_price_cents,
            ..
        } = event;
        self.prices.insert(currency.clone(), *unit_price_cents);
    }
}

/// A price the catalog refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceRefused {
    /// The sku is not a valid id.
    #[error("sku must be 1-64 letters, digits, '-', '_' or '.'")]
    InvalidSku,
    /// The currency is not one the system sells in.
    #[error("currency {0} is not one of {currencies:?}", currencies = money::CURRENCIES)]
    UnsupportedCurrency(String),
    /// Zero or above the limit.
    #[error("a unit price must be between 1 and {max}", max = limits::MAX_UNIT_PRICE_CENTS)]
    InvalidPrice,
}

/// Prices `product` at `unit_price_cents` in `currency`: `product.priced`, or `None` when that is
/// its price already.
pub fn decide_price(
    product: &Loaded<Product>,
    currency: &str,
    unit_price_cents: u64,
) -> Result<Option<ProductEvent>, PriceRefused> {
    if !is_valid_id(&product.id) {
        return Err(PriceRefused::InvalidSku);
    }
    if !money::is_supported_currency(currency) {
        return Err(PriceRefused::UnsupportedCurrency(currency.to_owned()));
    }
    if unit_price_cents == 0 || unit_price_cents > limits::MAX_UNIT_PRICE_CENTS {
        return Err(PriceRefused::InvalidPrice);
    }
    if product.state.price_in(currency) == Some(unit_price_cents) {
        return Ok(None);
    }
    Ok(Some(ProductEvent::Priced {
        sku: product.id.clone(),
        currency: currency.to_owned(),
        unit_price_cents,
    }))
}

/// The products an order's skus name, as loaded; a sku missing from it is not in the catalog.
pub type Catalog = BTreeMap<String, Product>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_price_in_each_currency_holds() {
        let history = [
            ProductEvent::Priced {
                sku: "A".into(),
                currency: "EUR".into(),
                unit_price_cents: 100,
            },
            ProductEvent::Priced {
                sku: "A".into(),
                currency: "USD".into(),
                unit_price_cents: 120,
            },
            ProductEvent::Priced {
                sku: "A".into(),
                currency: "EUR".into(),
                unit_price_cents: 90,
            },
        ];
        let product = Loaded::<Product>::fold("A", &history);
        assert_eq!(product.state.price_in("EUR"), Some(90));
        assert_eq!(product.state.price_in("USD"), Some(120));
        assert_eq!(product.state.price_in("GBP"), None);
    }

    #[test]
    fn a_price_is_set_once_and_only_within_the_rules() {
        let new = Loaded::<Product>::new("A");
        let priced = decide_price(&new, "EUR", 1250).unwrap().unwrap();
        let product = Loaded::<Product>::fold("A", [&priced]);
        assert_eq!(decide_price(&product, "EUR", 1250), Ok(None));
        assert_eq!(
            decide_price(&new, "XTS", 1),
            Err(PriceRefused::UnsupportedCurrency("XTS".into()))
        );
        assert_eq!(
            decide_price(&new, "EUR", 0),
            Err(PriceRefused::InvalidPrice)
        );
        assert_eq!(
            decide_price(&new, "EUR", limits::MAX_UNIT_PRICE_CENTS + 1),
            Err(PriceRefused::InvalidPrice)
        );
        assert_eq!(
            decide_price(&Loaded::new("a b"), "EUR", 1),
            Err(PriceRefused::InvalidSku)
        );
    }
}
