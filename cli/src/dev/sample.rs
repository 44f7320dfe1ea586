//! The sample load: a small catalogue with two scarce skus, and orders drawn from it that are the
//! same for the same count, some of them from customers whose card the gateway declines.
//!
//! The catalogue's prices are seeded into the store with the stock; an order names skus and
//! quantities only, and is placed by its customer (the subject of the token it is sent with).

use serde_json::json;

/// The currency the sample catalogue is priced in.
pub(super) const CURRENCY: &str = "EUR";

/// A sku of the sample catalogue: price and the stock seeded before the orders.
pub(crate) struct Sku {
    pub(crate) sku: &'static str,
    pub(crate) unit_price_cents: u64,
    pub(crate) stock: u64,
}

/// One sample order: who places it and the body they send.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOrder {
    /// The customer: the subject of the token the order is sent with.
    pub customer: String,
    /// The `POST /orders` body.
    pub body: serde_json::Value,
}

/// Two skus are scarce, so that some orders are rejected and the saga compensates.
pub(crate) const CATALOGUE: &[Sku] = &[
    Sku {
        sku: "SKU-TEE",
        unit_price_cents: 1999,
        stock: 1000,
    },
    Sku {
        sku: "SKU-MUG",
        unit_price_cents: 1250,
        stock: 1000,
    },
    Sku {
        sku: "SKU-CAP",
        unit_price_cents: 1500,
        stock: 500,
    },
    Sku {
        sku: "SKU-LAMP",
        unit_price_cents: 4999,
        stock: 5,
    },
    Sku {
        sku: "SKU-WATCH",
        unit_price_cents: 19900,
        stock: 2,
    },
];

/// The sample orders: the same `count` always gives the same orders.
pub fn sample_orders(count: u32) -> Vec<SampleOrder> {
    let mut rng = fastrand::Rng::with_seed(0x5249_5050_4c45 ^ u64::from(count));
    (0..count)
        .map(|i| {
            let line_count = rng.usize(1..=3);
            let mut skus: Vec<&Sku> = CATALOGUE.iter().collect();
            rng.shuffle(&mut skus);
            let lines: Vec<_> = skus
                .iter()
                .take(line_count)
                .map(|s| json!({"sku": s.sku, "quantity": rng.u32(1..=3)}))
                .collect();
            // Every eighth customer's card is declined by the simulated gateway, so the
            // compensation path (release the stock, cancel the order) shows in every run.
            let customer = if i % 8 == 7 {
                format!(
                    "{}c-{}",
                    payments::gateway::DECLINED_CUSTOMER_PREFIX,
                    i % 7 + 1
                )
            } else {
                format!("c-{}", i % 7 + 1)
            };
            SampleOrder {
                customer,
                body: json!({"currency": CURRENCY, "lines": lines}),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_orders_are_deterministic_and_valid() {
        let a = sample_orders(20);
        assert_eq!(a, sample_orders(20));
        assert_eq!(a.len(), 20);
        for order in &a {
            let lines = order.body["lines"].as_array().unwrap();
            assert!((1..=3).contains(&lines.len()));
            let mut skus: Vec<_> = lines.iter().map(|l| l["sku"].as_str().unwrap()).collect();
            skus.sort_unstable();
            skus.dedup();
            assert_eq!(skus.len(), lines.len(), "one line per sku");
            // Skus and quantities only: the customer is the token's, the prices the catalog's.
            assert!(
                domain::order::PlaceOrder::from_json(&order.body).is_ok(),
                "{:?}",
                order.body
            );
        }
        let scarce = a
            .iter()
            .filter(|o| {
                o.body["lines"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l["sku"] == "SKU-LAMP" || l["sku"] == "SKU-WATCH")
            })
            .count();
        assert!(
            scarce > 3,
            "enough orders compete for the scarce skus: {scarce}"
        );
    }

    #[test]
    fn the_default_sample_has_declined_customers() {
        let orders = sample_orders(16);
        let declined = orders
            .iter()
            .filter(|o| o.customer.starts_with("declined-"))
            .count();
        assert_eq!(declined, 2);
    }
}
