//! Benchmark: what one reservation costs as a sku's history grows (run by `make bench`).
//!
//! For each history length, a fresh stack in the emulator gets that many prior `stock.restocked`
//! events on one sku; then inventory's real handler reserves stock for orders of it, on a
//! DynamoDB client whose every call is counted by an SDK interceptor (calls by operation, items
//! returned). The first reservation folds the whole history and writes the snapshot; every one
//! after it reads the snapshot and the few events since (what a new execution environment pays).
//! Then the handler as deployed, over `store::Cached`, reserves as a warm execution environment
//! does: from its copy of the stream, with no read. Prints a table and writes
//! `target/bench/stock-history.json`.
//!
//! `cargo run --release -p ripple-e2e --example stock_history -- 10 1000 10000 100000`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use aws_lambda_events::sqs::SqsMessage;
use aws_sdk_dynamodb::config::interceptors::AfterDeserializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::ConfigBag;
use domain::inventory::StockEvent;
use domain::order::{Order, OrderEvent};
use domain::testing::{placed_with, stored};
use ripple_e2e::TestStack;
use ripple_kit::store::{Cached, DynamoEventStore};
use ripple_kit::{Append, Envelope, EventStore, StreamPosition};
use serde::Serialize;

const SKU: &str = "SKU-HOT";
/// Reservations measured after the first, per history length.
const WARM: usize = 5;

/// DynamoDB calls (every attempt) by operation, and the items their answers carried.
#[derive(Debug, Default, Clone)]
struct Counter(Arc<Mutex<Counts>>);

#[derive(Debug, Default, Clone, Serialize)]
struct Counts {
    calls: BTreeMap<String, u64>,
    items_read: u64,
}

impl Counter {
    fn take(&self) -> Counts {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "bench-counter"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map_or("unknown".to_owned(), |m| m.name().to_owned());
        let items = match context.output_or_error() {
            Ok(output) => output
                .downcast_ref::<QueryOutput>()
                .map(|q| q.items().len() as u64)
                .or_else(|| {
                    output
                        .downcast_ref::<GetItemOutput>()
                        .map(|g| u64::from(g.item().is_some()))
                })
                .unwrap_or(0),
            _ => 0,
        };
        let mut counts = self.0.lock().unwrap();
        *counts.calls.entry(operation).or_default() += 1;
        counts.items_read += items;
        Ok(())
    }
}

/// One history length's figures.
#[derive(Debug, Serialize)]
struct Row {
    prior_events: u64,
    /// Events between a sku's snapshots: a history shorter than this has none yet.
    snapshot_every: u64,
    first: Counts,
    first_ms: f64,
    after_snapshot: Counts,
    after_snapshot_ms: f64,
    /// Each reservation of a warm execution environment (the deployed handler, with copies).
    warm: Counts,
    warm_ms: f64,
}

fn total(counts: &Counts) -> u64 {
    counts.calls.values().sum()
}

/// `n` prior deliveries of two units (enough for every reservation measured, even after 10),
/// written as the store writes them, 99 to a transaction.
async fn history(store: &DynamoEventStore, n: u64) {
    let mut sequence = 1;
    while sequence <= n {
        let last = (sequence + 98).min(n);
        let events: Vec<Envelope> = (sequence..=last)
            .map(|s| {
                Envelope::encode(
                    domain::sources::INVENTORY,
                    StreamPosition::new("Stock", SKU, s),
                    &StockEvent::Restocked {
                        sku: SKU.into(),
                        quantity: 2,
                    },
                )
                .unwrap()
            })
            .collect();
        store.append(Append::events(events)).await.unwrap();
        sequence = last + 1;
    }
}

fn order_placed(n: usize) -> SqsMessage {
    let id = format!("o-{n}");
    let placed = stored::<Order>(&id, 1, &OrderEvent::Placed(placed_with(&id, &[(SKU, 1)])));
    let mut message = SqsMessage::default();
    message.message_id = Some(format!("m-{n}"));
    message.body = Some(placed.to_json());
    message
}

async fn measure(n: u64) -> Row {
    let stack = TestStack::deploy("stock-history").await;
    let table = stack.table("EventsTable");
    history(&stack.store(), n).await;
    let counter = Counter::default();
    let config = aws_sdk_dynamodb::config::Builder::from(&stack.aws)
        .interceptor(counter.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let handler = inventory::handler_with(DynamoEventStore::new(client.clone(), table.clone()));
    let deadline = SystemTime::now() + std::time::Duration::from_secs(600);

    let started = Instant::now();
    handler
        .handle_message(&order_placed(0), deadline)
        .await
        .unwrap();
    let first_ms = started.elapsed().as_secs_f64() * 1000.0;
    let first = counter.take();
    let started = Instant::now();
    for i in 1..=WARM {
        handler
            .handle_message(&order_placed(i), deadline)
            .await
            .unwrap();
    }
    let after_snapshot_ms = started.elapsed().as_secs_f64() * 1000.0 / WARM as f64;
    let after_snapshot = mean(counter.take());
    // The deployed handler: its first reservation fills its copy, the ones after use it.
    let cached = inventory::handler_with(Cached::new(DynamoEventStore::new(client, table)));
    cached
        .handle_message(&order_placed(WARM + 1), deadline)
        .await
        .unwrap();
    counter.take();
    let started = Instant::now();
    for i in WARM + 2..=2 * WARM + 1 {
        cached
            .handle_message(&order_placed(i), deadline)
            .await
            .unwrap();
    }
    let warm_ms = started.elapsed().as_secs_f64() * 1000.0 / WARM as f64;
    let warm = mean(counter.take());
    let (stock, version) = stack.inventory().stock(SKU).await.unwrap();
    assert_eq!(
        version,
        n + 2 + 2 * WARM as u64,
        "each reservation allocated once"
    );
    assert_eq!(stock.allocated, 2 + 2 * WARM as u64);
    stack.teardown().await;
    Row {
        prior_events: n,
        snapshot_every: <domain::inventory::Stock as ripple_kit::store::Snapshotted>::EVERY,
        first,
        first_ms,
        after_snapshot,
        after_snapshot_ms,
        warm,
        warm_ms,
    }
}

/// `counts` of `WARM` reservations, per reservation (rounded up).
fn mean(mut counts: Counts) -> Counts {
    for count in counts.calls.values_mut() {
        *count = count.div_ceil(WARM as u64);
    }
    counts.items_read = counts.items_read.div_ceil(WARM as u64);
    counts
}

fn calls(counts: &Counts) -> String {
    counts
        .calls
        .iter()
        .map(|(op, n)| format!("{op} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::main]
async fn main() {
    let lengths: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("history lengths are numbers"))
        .collect();
    let lengths = if lengths.is_empty() {
        vec![10, 1_000, 10_000, 100_000]
    } else {
        lengths
    };
    let mut rows = Vec::new();
    for n in lengths {
        eprintln!("stock history: {n} prior events…");
        rows.push(measure(n).await);
    }
    println!(
        "{:>12}  {:>22}  {:>26}  {:>26}",
        "prior events", "first reservation", "each one after, cold env", "each one after, warm env"
    );
    println!(
        "{:>12}  {:>8} {:>6} {:>6}  {:>8} {:>6} {:>10}  {:>8} {:>6} {:>10}",
        "", "items", "calls", "ms", "items", "calls", "ms", "items", "calls", "ms"
    );
    for row in &rows {
        println!(
            "{:>12}  {:>8} {:>6} {:>6.0}  {:>8} {:>6} {:>10.1}  {:>8} {:>6} {:>10.1}   (cold: {}; warm: {})",
            row.prior_events,
            row.first.items_read,
            total(&row.first),
            row.first_ms,
            row.after_snapshot.items_read,
            total(&row.after_snapshot),
            row.after_snapshot_ms,
            row.warm.items_read,
            total(&row.warm),
            row.warm_ms,
            calls(&row.after_snapshot),
            calls(&row.warm),
        );
    }
    let dir = ripple_e2e::repo_root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stock-history.json");
    std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
    eprintln!("wrote {}", path.display());
}
