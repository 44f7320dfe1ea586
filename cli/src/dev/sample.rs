//! The sample load: a small catalogue with two scarce skus, and orders drawn from it that are the
//! same for the same count, some of them from customers whose card the gateway declines.

use serde_json::json;

/// A sku of the sample catalogue: price and the stock seeded before the orders.
pub(super) struct Sku {
    pub(super) sku: &'static str,
    unit_price_cents: u64,
    pub(super) stock: u64,
}

/// Two skus are scarce, so that some orders are rejected and the saga compensates.
pub(super) const CATALOGUE: &[Sku] = &[
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
pub fn sample_orders(count: u32) -> Vec<serde_json::Value> {
    let mut rng = fastrand::Rng::with_seed(0x5249_5050_4c45 ^ u64::from(count));
    (0..count)
        .map(|i| {
            let line_count = rng.usize(1..=3);
            let mut skus: Vec<&Sku> = CATALOGUE.iter().collect();
            rng.shuffle(&mut skus);
            let lines: Vec<_> = skus
                .iter()
                .take(line_count)
                .map(|s| json!({"sku": s.sku, "quantity": rng.u32(1..=3), "unit_price_cents": s.unit_price_cents}))
                .collect();
            // Every eighth customer's card is declined by the simulated gateway, so the
            // compensation path (release the stock, cancel the order) shows in every run.
            let customer = if i % 8 == 7 {
                format!("{}c-{}", payments::gateway::DECLINED_CUSTOMER_PREFIX, i % 7 + 1)
            } else {
                format!("c-{}", i % 7 + 1)
            };
            json!({"customer_id": customer, "currency": "EUR", "lines": lines})
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
            let lines = order["lines"].as_array().unwrap();
            assert!((1..=3).contains(&lines.len()));
            let mut skus: Vec<_> = lines.iter().map(|l| l["sku"].as_str().unwrap()).collect();
            skus.sort_unstable();
            skus.dedup();
            assert_eq!(skus.len(), lines.len(), "one line per sku");
        }
        let scarce = a
            .iter()
            .filter(|o| {
                o["lines"]
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
            .filter(|o| o["customer_id"].as_str().unwrap().starts_with("declined-"))
            .count();
        assert_eq!(declined, 2);
    }
}
