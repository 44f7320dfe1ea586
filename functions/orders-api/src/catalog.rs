//! The catalog in the event store: the products an order names, loaded to price it, and the
//! operators' action that sets a price.
//!
//! The API only reads `Product` streams (its role may query `Product#*` and write nothing there);
//! prices are set by [`set_price`], run by an operator's tool with its own credentials
//! (`ripple dev` seeds the sample catalog with it).

use std::collections::BTreeSet;

use domain::catalog::{Catalog, PriceRefused, Product, decide_price};
use ripple_kit::store::{Conflicting, RetryPolicy, Unchanged, retry_on_conflict};
use ripple_kit::{Append, Envelope, EventStore, Loaded, StoreError};

/// The catalog an order was priced from, and the product streams as they were read.
#[derive(Debug)]
pub struct Priced {
    /// The products of the order's skus; a sku without a product stream is left out.
    pub catalog: Catalog,
    /// Every product stream read, at the version read: the order is appended only if none has
    /// moved on since ([`Append::given_unchanged`]), so no order is priced from an old price.
    pub read: Vec<Unchanged>,
}

/// The products of `skus`, loaded at once.
pub async fn load<S: EventStore>(
    store: &S,
    skus: impl IntoIterator<Item = &str>,
) -> Result<Priced, StoreError> {
    let skus: BTreeSet<&str> = skus.into_iter().collect();
    let loads = skus.into_iter().map(|sku| async move {
        let product: Loaded<Product> = store.load(sku).await?;
        Ok::<_, StoreError>((sku.to_owned(), product))
    });
    let loaded = futures::future::try_join_all(loads).await?;
    let read = loaded
        .iter()
        .map(|(_, product)| Unchanged::of(product))
        .collect();
    let catalog = loaded
        .into_iter()
        .filter(|(_, product)| product.exists())
        .map(|(sku, product)| (sku, product.state))
        .collect();
    Ok(Priced { catalog, read })
}

/// Whether an order's refused append was refused for something other than its own stream
/// (`order_stream`): a product stream that moved on since the order was priced (a price set),
/// or a transaction racing on one. Pricing again answers both.
pub fn repriced(err: &StoreError, order_stream: &str) -> bool {
    matches!(err, StoreError::Conflict { stream } if stream != order_stream)
}

/// Why a price could not be set.
#[derive(Debug, thiserror::Error)]
pub enum SetPriceError {
    /// The catalog's rules refuse it.
    #[error("price refused")]
    Refused(#[from] PriceRefused),
    /// The event store failed.
    #[error("event store")]
    Store(#[from] StoreError),
}

impl Conflicting for SetPriceError {
    fn is_conflict(&self) -> bool {
        matches!(self, SetPriceError::Store(err) if err.is_conflict())
    }
}

/// Prices one unit of `sku` at `unit_price_cents` in `currency` (an operator's action). Setting
/// the price it already has changes nothing.
pub async fn set_price<S: EventStore>(
    store: &S,
    sku: &str,
    currency: &str,
    unit_price_cents: u64,
) -> Result<(), SetPriceError> {
    retry_on_conflict(&RetryPolicy::default(), || async {
        let product: Loaded<Product> = store.load(sku).await?;
        let Some(priced) = decide_price(&product, currency, unit_price_cents)? else {
            return Ok(());
        };
        let event = Envelope::encode(domain::sources::CATALOG, product.next(), &priced)
            .map_err(|e| StoreError::InvalidAppend(e.to_string()))?;
        store.append(Append::events(vec![event])).await?;
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use ripple_kit::store::InMemoryEventStore;

    #[tokio::test]
    async fn set_prices_are_what_an_order_is_priced_from() {
        let store = InMemoryEventStore::new();
        set_price(&store, "A", "EUR", 1250).await.unwrap();
        set_price(&store, "A", "EUR", 1250).await.unwrap();
        set_price(&store, "B", "USD", 99).await.unwrap();
        assert_eq!(
            store.all_events().len(),
            2,
            "an unchanged price appends nothing"
        );
        let Priced { catalog, read } = load(&store, ["A", "B", "Z", "A"]).await.unwrap();
        assert_eq!(catalog.len(), 2, "Z is not in the catalog");
        let versions: Vec<_> = read
            .iter()
            .map(|r| (r.aggregate_id.as_str(), r.version))
            .collect();
        assert_eq!(
            versions,
            [("A", 1), ("B", 1), ("Z", 0)],
            "every stream read, once"
        );
        assert_eq!(catalog["A"].price_in("EUR"), Some(1250));
        assert!(matches!(
            set_price(&store, "A", "XTS", 1).await,
            Err(SetPriceError::Refused(PriceRefused::UnsupportedCurrency(_)))
        ));
        assert_eq!(
            store.all_events()[0].source,
            domain::sources::CATALOG,
            "written as the catalog"
        );
    }
}
