//! The load a soak puts through the pipeline, drawn from its seed: the catalogue (prices) and the
//! stock seeded, the orders (a share of them on one hot sku, some from customers whose card is declined,
//! some cancelled by their customer a little later), and the poison messages mixed into the
//! queues.
//!
//! Each order is placed by a customer of its own whose id carries the order's index (`soak-17`,
//! `declined-soak-23`): the subject of the token it is sent with, which the API makes the order's
//! customer. What the event store holds can so be matched to what was asked for without trusting
//! the API's answers. An order names skus and quantities; the API prices it from the catalogue.

use std::time::Duration;

use serde_json::{Value, json};

/// The sku most orders fight over.
pub const HOT_SKU: &str = "SKU-HOT";
/// Skus with little stock: orders for them are rejected once it is gone.
const SCARCE: &[(&str, u64, u64)] = &[("SKU-RARE-1", 4, 24_900), ("SKU-RARE-2", 9, 8_900)];
/// Skus with stock for every order, and their prices in cents.
const PLENTIFUL: &[(&str, u64)] = &[
    ("SKU-TEE", 1_999),
    ("SKU-MUG", 1_250),
    ("SKU-CAP", 1_500),
    ("SKU-SOCKS", 899),
    ("SKU-BAG", 3_499),
    ("SKU-PEN", 299),
    ("SKU-BOOK", 2_450),
    ("SKU-LAMP", 4_999),
];
const HOT_PRICE_CENTS: u64 = 5_900;
/// Share of orders from customers the simulated gateway declines.
const DECLINED_SHARE: f64 = 0.1;
/// Share of orders their customer cancels soon after placing them.
const CANCELLED_SHARE: f64 = 0.1;
/// Of the hot sku's expected demand, the share that is in stock: the last orders on it are
/// rejected, so the compensation path runs under contention too.
const HOT_STOCK_SHARE: f64 = 0.8;

/// The currency the catalogue is priced in and every order pays in.
pub const CURRENCY: &str = "EUR";

/// One order of the load.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderSpec {
    /// Its position in the load (and in its customer id).
    pub index: u32,
    /// Who places it: the subject of its token.
    pub customer: String,
    /// The `POST /orders` body.
    pub body: Value,
    /// Whether it has a line of the hot sku.
    pub hot: bool,
    /// When its customer cancels it, after it was placed.
    pub cancel_after: Option<Duration>,
}

impl OrderSpec {
    /// The customer id of the order at `index`, declined or not.
    pub fn customer(index: u32, declined: bool) -> String {
        let prefix = if declined {
            payments::gateway::DECLINED_CUSTOMER_PREFIX
        } else {
            ""
        };
        format!("{prefix}soak-{index}")
    }

    /// The order index a customer id names, if it is one of the soak's.
    pub fn index_of(customer: &str) -> Option<u32> {
        customer
            .strip_prefix(payments::gateway::DECLINED_CUSTOMER_PREFIX)
            .unwrap_or(customer)
            .strip_prefix("soak-")?
            .parse()
            .ok()
    }

    /// The `Idempotency-Key` the client sends (and resends) for this order.
    pub fn idempotency_key(&self, seed: u64) -> String {
        format!("soak-{seed}-order-{}", self.index)
    }
}

/// A poison message: one no consumer can handle, which must end in its queue's DLQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poison {
    /// The token its body carries (`soak-poison-<n>`), how it is recognised in a DLQ.
    pub token: String,
    /// Which consumer queue it is sent to (an index into the consumed queues).
    pub queue: usize,
    /// What is wrong with it.
    pub kind: &'static str,
    /// The message body.
    pub body: String,
    /// Sent once this many orders were placed.
    pub after_orders: u32,
}

/// What a soak sends.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The orders, in the order they are placed.
    pub orders: Vec<OrderSpec>,
    /// Stock seeded before the orders: sku and units.
    pub stock: Vec<(String, u64)>,
    /// Prices seeded before the orders: sku and unit price in [`CURRENCY`]'s cents.
    pub prices: Vec<(String, u64)>,
    /// Poison messages.
    pub poison: Vec<Poison>,
}

/// How the load is drawn.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Orders.
    pub orders: u32,
    /// Share of orders with a line of the hot sku.
    pub hot_share: f64,
    /// Poison messages.
    pub poison: u32,
    /// Queues the poison is spread over.
    pub queues: usize,
    /// Longest wait before a customer cancels.
    pub cancel_within: Duration,
}

impl Workload {
    /// The load of `seed`: the same seed and shape give the same load.
    pub fn draw(seed: u64, shape: Shape) -> Workload {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x534f_414b);
        let orders: Vec<OrderSpec> = (0..shape.orders)
            .map(|index| draw_order(&mut rng, index, shape))
            .collect();
        let hot_units: u64 = orders
            .iter()
            .filter(|o| o.hot)
            .map(|o| line_quantity(&o.body, HOT_SKU))
            .sum();
        let mut stock: Vec<(String, u64)> = PLENTIFUL
            .iter()
            .map(|(sku, _)| ((*sku).to_owned(), u64::from(shape.orders) * 3 + 10))
            .collect();
        stock.extend(
            SCARCE
                .iter()
                .map(|(sku, units, _)| ((*sku).to_owned(), *units)),
        );
        stock.push((
            HOT_SKU.to_owned(),
            ((hot_units as f64) * HOT_STOCK_SHARE).ceil() as u64,
        ));
        let poison = (0..shape.poison)
            .map(|n| draw_poison(&mut rng, n, shape))
            .collect();
        let prices = PLENTIFUL
            .iter()
            .copied()
            .chain(SCARCE.iter().map(|(sku, _, price)| (*sku, *price)))
            .chain([(HOT_SKU, HOT_PRICE_CENTS)])
            .map(|(sku, price)| (sku.to_owned(), price))
            .collect();
        Workload {
            orders,
            stock,
            prices,
            poison,
        }
    }
}

fn draw_order(rng: &mut fastrand::Rng, index: u32, shape: Shape) -> OrderSpec {
    let hot = rng.f64() < shape.hot_share;
    let mut catalogue: Vec<&str> = PLENTIFUL.iter().map(|(sku, _)| *sku).collect();
    catalogue.extend(SCARCE.iter().map(|(sku, _, _)| *sku));
    rng.shuffle(&mut catalogue);
    let others = rng.usize(usize::from(!hot)..=2);
    let mut lines: Vec<Value> = catalogue
        .iter()
        .take(others)
        .map(|sku| json!({"sku": sku, "quantity": rng.u32(1..=3)}))
        .collect();
    if hot {
        lines.insert(
            rng.usize(0..=lines.len()),
            json!({"sku": HOT_SKU, "quantity": rng.u32(1..=2)}),
        );
    }
    let declined = rng.f64() < DECLINED_SHARE;
    let cancel_after =
        (rng.f64() < CANCELLED_SHARE).then(|| shape.cancel_within.mul_f64(rng.f64()));
    OrderSpec {
        index,
        customer: OrderSpec::customer(index, declined),
        body: json!({"currency": CURRENCY, "lines": lines}),
        hot,
        cancel_after,
    }
}

fn line_quantity(body: &Value, sku: &str) -> u64 {
    body["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["sku"] == sku)
        .filter_map(|l| l["quantity"].as_u64())
        .sum()
}

/// Kinds of poison, each refused by every consumer for its own reason.
const POISON_KINDS: &[&str] = &[
    "malformed JSON",
    "unknown event type",
    "payload of the wrong shape",
    "not an envelope",
    "SNS notification without a message",
    "envelope breaking the contract",
];

/// When the poison says it happened: fixed, so that a seed always draws the same bodies.
const POISON_TIME: &str = "2026-01-01T00:00:00.000Z";

fn draw_poison(rng: &mut fastrand::Rng, n: u32, shape: Shape) -> Poison {
    let token = format!("soak-poison-{n}");
    let kind_index = n as usize % POISON_KINDS.len();
    let envelope = |event_type: &str, data: Value| {
        json!({
            "specversion": "1.0",
            "id": token,
            "source": "ripple/soak",
            "type": event_type,
            "subject": format!("order-{token}"),
            "time": POISON_TIME,
            "datacontenttype": "application/json",
            "data": data,
            "aggregatetype": "Order",
            "sequence": 1,
            "schemaversion": 1,
            "correlationid": token,
        })
    };
    let body = match kind_index {
        0 => format!("{{\"{token}\": [1, 2"),
        1 => envelope("order.teleported", json!({"order_id": token})).to_string(),
        2 => envelope("order.placed", json!({"order_id": n, "lines": "many"})).to_string(),
        3 => json!({"hello": token}).to_string(),
        4 => json!({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:000000000000:soak", "Subject": token}).to_string(),
        _ => {
            let mut bad = envelope("order.confirmed", json!({"order_id": token}));
            bad["specversion"] = json!("0.3");
            bad["sequence"] = json!(0);
            bad.to_string()
        }
    };
    Poison {
        kind: POISON_KINDS[kind_index],
        queue: n as usize % shape.queues.max(1),
        after_orders: rng.u32(0..shape.orders.max(1)),
        token,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            orders: 400,
            hot_share: 0.3,
            poison: 12,
            queues: 5,
            cancel_within: Duration::from_secs(2),
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_load() {
        let a = Workload::draw(11, shape());
        let b = Workload::draw(11, shape());
        assert_eq!(a.orders, b.orders);
        assert_eq!(a.stock, b.stock);
        assert_eq!(a.poison, b.poison);
        assert_ne!(a.orders, Workload::draw(12, shape()).orders);
    }

    #[test]
    fn every_order_is_valid_and_names_its_index() {
        let load = Workload::draw(3, shape());
        let catalog: domain::catalog::Catalog = load
            .prices
            .iter()
            .map(|(sku, price)| {
                let product = domain::catalog::Product {
                    prices: [(CURRENCY.to_owned(), *price)].into(),
                };
                (sku.clone(), product)
            })
            .collect();
        for order in &load.orders {
            let command = domain::order::PlaceOrder::from_json(&order.body).unwrap();
            domain::order::decide_place(command, &order.customer, "o-1", &catalog).unwrap();
            assert_eq!(OrderSpec::index_of(&order.customer), Some(order.index));
        }
        assert_eq!(OrderSpec::index_of("declined-soak-9"), Some(9));
        assert_eq!(OrderSpec::index_of("c-1"), None);
    }

    #[test]
    fn a_share_of_orders_fights_over_the_hot_sku_which_runs_short() {
        let load = Workload::draw(5, shape());
        let hot = load.orders.iter().filter(|o| o.hot).count();
        assert!((80..160).contains(&hot), "{hot}");
        let demand: u64 = load
            .orders
            .iter()
            .map(|o| line_quantity(&o.body, HOT_SKU))
            .sum();
        let stock = load.stock.iter().find(|(s, _)| s == HOT_SKU).unwrap().1;
        assert!(stock < demand && stock > demand / 2, "{stock} of {demand}");
        let cancelled = load
            .orders
            .iter()
            .filter(|o| o.cancel_after.is_some())
            .count();
        assert!(cancelled > 10, "{cancelled}");
        let declined = load
            .orders
            .iter()
            .filter(|o| o.customer.starts_with("declined-"))
            .count();
        assert!(declined > 10, "{declined}");
    }

    #[test]
    fn poison_covers_every_kind_and_every_queue_and_carries_its_token() {
        let load = Workload::draw(1, shape());
        for kind in POISON_KINDS {
            assert!(load.poison.iter().any(|p| p.kind == *kind), "{kind}");
        }
        for queue in 0..5 {
            assert!(load.poison.iter().any(|p| p.queue == queue), "{queue}");
        }
        for poison in &load.poison {
            assert!(poison.body.contains(&poison.token), "{poison:?}");
            assert!(
                ripple_kit::Envelope::from_json(&poison.body).is_err()
                    || poison.kind != "malformed JSON"
            );
        }
    }
}
