//! `ripple load --stack S` against a deployed stack: the orders go to its API (the stack's
//! `ApiUrl` output, or `--api`) with a customer's token, and what they did is read back from the
//! stack itself: each order's stream for its outcome and saga latency, the catalogue's stock
//! before and after, every dead-letter queue's depth.
//!
//! The functions run in Lambda here, so their AWS requests cannot be counted from this process:
//! the report has no request table and no cost (the local runner's `ripple load` measures
//! those). Stock is checked as a difference: what the run's confirmed orders took is what the
//! skus lost, which holds when nothing else orders those skus during the run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use domain::inventory::Stock;
use serde::Serialize;

use super::Invariant;
use crate::dev::orders::place_all;
use crate::dev::sample::CATALOGUE;
use crate::dev::summary::{QueueDepths, latency, outcomes, stock_levels};
use crate::dev::{DevError, Latency, OrderOutcomes, millis, sample_orders};
use crate::provision::{Clients, Deployment};

/// How often the orders' streams are read while waiting for them to go terminal.
const POLL: Duration = Duration::from_secs(2);

/// What to place, where, and how long to wait.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The API's base URL (`…/orders` is posted to).
    pub api: String,
    /// The customer's bearer token.
    pub token: String,
    /// Orders to place.
    pub orders: u32,
    /// Orders a second.
    pub rate: f64,
    /// How long to wait for every order to go terminal, after the last one is placed.
    pub timeout: Duration,
    /// Whether a progress bar may be drawn.
    pub json: bool,
}

/// One sku's stock before and after the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockChange {
    /// The sku.
    pub sku: String,
    /// Units available before the first order.
    pub available_before: u64,
    /// Units available at the end.
    pub available_after: u64,
    /// Units allocated (to confirmed orders) before.
    pub allocated_before: u64,
    /// Units allocated at the end.
    pub allocated_after: u64,
    /// Units on this run's confirmed orders.
    pub confirmed_units: u64,
}

impl StockChange {
    /// The run's confirmed orders took exactly what the sku lost and what it allocated.
    pub fn conserved(&self) -> bool {
        let taken = self.available_before.checked_sub(self.available_after);
        let allocated = self.allocated_after.checked_sub(self.allocated_before);
        taken == Some(self.confirmed_units) && allocated == Some(self.confirmed_units)
    }
}

/// What `ripple load --stack` found on a deployed stack.
#[derive(Debug, Clone, Serialize)]
pub struct DeployedReport {
    /// The stack.
    pub stack: String,
    /// The API the orders went to.
    pub api: String,
    /// The rate asked for, orders a second.
    pub rate: f64,
    /// The rate achieved while placing.
    pub placed_per_second: f64,
    /// Orders POSTed.
    pub orders_sent: u64,
    /// Orders the API accepted.
    pub orders_placed: u64,
    /// Orders refused, by status (0: no answer).
    pub orders_refused: BTreeMap<u16, u64>,
    /// Where the accepted orders ended up.
    #[serde(flatten)]
    pub outcomes: OrderOutcomes,
    /// Placed to terminal, and per saga step, from the orders' streams.
    pub latency: Latency,
    /// The catalogue's stock before and after.
    pub stock: Vec<StockChange>,
    /// Messages in dead-letter queues at the end.
    pub dlq_messages: u64,
    /// Records in on-failure destinations at the end.
    pub failure_records: u64,
    /// Milliseconds from the first order to the last one answered.
    pub placing_ms: u64,
    /// Milliseconds from the first order to the last one terminal (or the wait's end).
    pub elapsed_ms: u64,
    /// The invariants, each with its figures.
    pub invariants: Vec<Invariant>,
}

/// Places the orders on the deployed stack and reads back what they did.
pub async fn run(
    clients: &Clients,
    deployment: &Deployment,
    plan: &Plan,
) -> Result<DeployedReport, DevError> {
    let before = stock_levels(clients, deployment).await?;
    let run_id: String = (0..8)
        .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
        .collect();
    let token = plan.token.clone();
    let bar = crate::progress::bar(
        plan.json,
        Some(u64::from(plan.orders)),
        "{spinner} placing orders {pos}/{len} {wide_bar} {per_sec} eta {eta}",
    );
    let started = Instant::now();
    let placed = place_all(
        &format!("{}/orders", plan.api.trim_end_matches('/')),
        &format!("{}-load-{run_id}", deployment.stack_name),
        sample_orders(plan.orders),
        Some(plan.rate),
        |_| Some(token.clone()),
        || bar.inc(1),
    )
    .await;
    bar.finish_and_clear();
    let placing = started.elapsed();
    let order_ids: Vec<&str> = placed.iter().filter_map(|(_, id)| id.as_deref()).collect();

    let waiting = crate::progress::bar(
        plan.json,
        Some(order_ids.len() as u64),
        "{spinner} orders terminal {pos}/{len} {wide_bar} {elapsed}",
    );
    let deadline = Instant::now() + plan.timeout;
    let (outcomes, confirmed_units) = loop {
        let (outcomes, units) = outcomes(clients, deployment, &order_ids)
            .await?
            .unwrap_or_default();
        waiting.set_position(order_ids.len() as u64 - outcomes.pending);
        if outcomes.pending == 0 || Instant::now() >= deadline {
            break (outcomes, units);
        }
        tokio::time::sleep(POLL).await;
    };
    waiting.finish_and_clear();
    let elapsed = started.elapsed();

    let after = stock_levels(clients, deployment).await?;
    let stock = stock_changes(&before, &after, &confirmed_units);
    let queues = QueueDepths::read(clients, deployment).await;
    let mut orders_refused = BTreeMap::new();
    for (status, _) in placed.iter().filter(|(s, _)| !(200..300).contains(s)) {
        *orders_refused.entry(*status).or_insert(0) += 1;
    }
    let mut report = DeployedReport {
        stack: deployment.stack_name.clone(),
        api: plan.api.clone(),
        rate: plan.rate,
        placed_per_second: per_second(order_ids.len(), placing),
        orders_sent: placed.len() as u64,
        orders_placed: order_ids.len() as u64,
        orders_refused,
        latency: latency(clients, deployment, &order_ids).await?,
        outcomes,
        stock,
        dlq_messages: queues.dead_letter,
        failure_records: queues.on_failure,
        placing_ms: millis(placing),
        elapsed_ms: millis(elapsed),
        invariants: Vec::new(),
    };
    report.invariants = invariants(&report);
    Ok(report)
}

fn per_second(count: usize, took: Duration) -> f64 {
    if took.is_zero() {
        0.0
    } else {
        count as f64 / took.as_secs_f64()
    }
}

/// Each catalogue sku's change, from the levels read before and after (in catalogue order).
fn stock_changes(
    before: &[Stock],
    after: &[Stock],
    confirmed_units: &BTreeMap<String, u64>,
) -> Vec<StockChange> {
    CATALOGUE
        .iter()
        .zip(before.iter().zip(after))
        .map(|(item, (b, a))| StockChange {
            sku: item.sku.to_owned(),
            available_before: b.available,
            available_after: a.available,
            allocated_before: b.allocated,
            allocated_after: a.allocated,
            confirmed_units: confirmed_units.get(item.sku).copied().unwrap_or(0),
        })
        .collect()
}

/// What must hold after a load on a deployed stack.
pub fn invariants(r: &DeployedReport) -> Vec<Invariant> {
    vec![
        Invariant::every_order_accepted(r.orders_placed, r.orders_sent),
        Invariant {
            name: "every order terminal",
            holds: r.outcomes.pending == 0,
            detail: format!("{} pending", r.outcomes.pending),
        },
        Invariant {
            name: "stock conserved",
            holds: r.stock.iter().all(StockChange::conserved),
            detail: "each sku lost and allocated exactly the units of this run's confirmed orders"
                .to_owned(),
        },
        Invariant::nothing_dead_lettered(r.dlq_messages, r.failure_records),
    ]
}

/// The report for people.
pub fn render(r: &DeployedReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ripple load: deployed stack {} at {}  ({} orders at {:.1}/s asked, {:.1}/s placed; {:.1} s to the last terminal order)\n",
        r.stack,
        r.api,
        r.orders_sent,
        r.rate,
        r.placed_per_second,
        r.elapsed_ms as f64 / 1000.0
    );
    super::render::outcomes_line(&mut out, &r.outcomes);
    let refused: u64 = r.orders_refused.values().sum();
    let _ = writeln!(
        out,
        "errors     {refused} orders refused {:?}, {} dead-lettered, {} stream batches given up\n",
        r.orders_refused, r.dlq_messages, r.failure_records
    );
    super::render::latency_table(&mut out, &r.latency);
    super::render::invariant_lines(&mut out, &r.invariants);
    let _ = writeln!(
        out,
        "requests and cost: not counted here (the functions run in Lambda); `ripple load` without --stack measures them in the local runner"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(before: (u64, u64), after: (u64, u64), confirmed: u64) -> StockChange {
        StockChange {
            sku: "s".into(),
            available_before: before.0,
            allocated_before: before.1,
            available_after: after.0,
            allocated_after: after.1,
            confirmed_units: confirmed,
        }
    }

    #[test]
    fn stock_is_conserved_when_the_confirmed_units_are_what_the_sku_lost_and_allocated() {
        assert!(change((100, 10), (94, 16), 6).conserved());
        assert!(change((5, 0), (5, 0), 0).conserved());
        assert!(
            !change((100, 10), (95, 16), 6).conserved(),
            "a unit appeared"
        );
        assert!(
            !change((100, 10), (94, 15), 6).conserved(),
            "a unit not allocated"
        );
        assert!(!change((100, 10), (94, 16), 5).conserved(), "a unit lost");
        assert!(
            !change((4, 0), (6, 0), 0).conserved(),
            "restocked during the run"
        );
    }
}
