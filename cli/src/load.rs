//! `ripple load`: orders at a steady rate through the whole system in the local runner, then
//! what they took: latency percentiles, outcomes, errors, the invariants `ripple dev` checks, the
//! AWS requests each order made and what a million orders cost at list prices.
//!
//! It is `ripple dev` with a paced load and a longer report: the template is provisioned into
//! the emulator, every function runs in-process behind its event sources and the HTTP API (the
//! same machinery, [`crate::dev`]), the orders are POSTed at `--rate` a second, and the run
//! waits until the pipeline is quiet. The requests are counted by the kit's interceptor
//! ([`ripple_kit::requests`]) on every function's clients, and by a counter of its own on the
//! event source mappings' queue polling; the cost arithmetic is in [`cost`], the prices in
//! [`prices`], the report in `render`.

pub mod cost;
pub mod prices;
mod render;

use std::path::PathBuf;

use serde::Serialize;

use crate::dev::{DevArgs, DevError, Summary};
use crate::runtime::NotQuiet;

pub use render::{cost_line, render, render_json};

/// Options of `ripple load`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    ripple load --orders 100 --rate 10\n  \
    ripple load --orders 1000 --rate 20 --json > load.json\n\n\
    It runs against the local runner only (the emulator named by AWS_ENDPOINT_URL, as `ripple dev`);\n\
    a deployed stack's API is not supported yet. Exits 1 if an invariant fails.")]
pub struct LoadArgs {
    /// Orders to place.
    #[arg(long, default_value_t = 100)]
    pub orders: u32,
    /// Orders placed per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Print one JSON object with the report on stdout, and nothing else.
    #[arg(long)]
    pub json: bool,
    /// The SAM template to run.
    #[arg(long, default_value = "template.yaml")]
    pub template: PathBuf,
    /// Stack name, the prefix of every resource [default: ripple-load- and six random
    /// characters].
    #[arg(long)]
    pub stack: Option<String>,
    /// Leave the stack's resources in the emulator afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Seconds to wait, after the last order, for the pipeline to go quiet.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// One invariant and whether the run kept it.
#[derive(Debug, Clone, Serialize)]
pub struct Invariant {
    /// What must hold.
    pub name: &'static str,
    /// Whether it held.
    pub holds: bool,
    /// The figures behind it.
    pub detail: String,
}

/// What `ripple load` found.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The rate asked for, orders a second.
    pub rate: f64,
    /// The rate achieved while placing, orders a second.
    pub placed_per_second: f64,
    /// The run, as `ripple dev` reports it (usage and cost included).
    pub summary: Summary,
    /// The invariants, each with its figures.
    pub invariants: Vec<Invariant>,
}

impl LoadReport {
    /// Whether every invariant held.
    pub fn holds(&self) -> bool {
        self.invariants.iter().all(|i| i.holds)
    }
}

/// Runs `ripple load`. `Ok` carries the report even if the pipeline did not go quiet (an
/// invariant then fails, and the caller reports why).
pub async fn run(args: &LoadArgs) -> Result<(LoadReport, Option<NotQuiet>), DevError> {
    let stack = args.stack.clone().unwrap_or_else(|| {
        let suffix: String = (0..6)
            .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
            .collect();
        format!("ripple-load-{suffix}")
    });
    let dev = DevArgs {
        orders: Some(args.orders),
        json: args.json,
        template: args.template.clone(),
        stack: Some(stack),
        keep: args.keep,
        port: 0,
        issuer_port: 0,
        serve: false,
        timeout: args.timeout,
    };
    let (summary, not_quiet) = crate::dev::run_paced(&dev, Some(args.rate)).await?;
    let report = LoadReport {
        rate: args.rate,
        placed_per_second: if summary.placing_ms == 0 {
            0.0
        } else {
            summary.orders_sent as f64 * 1000.0 / summary.placing_ms as f64
        },
        invariants: invariants(&summary),
        summary,
    };
    Ok((report, not_quiet))
}

/// What must hold after every load, read from the store, the queues and the counters.
pub fn invariants(s: &Summary) -> Vec<Invariant> {
    let terminal = s.orders_placed.saturating_sub(s.outcomes.pending);
    let sns = &s.usage.requests;
    let batched = sns.operation("SNS", "PublishBatch").messages;
    let told = sns.operation("SNS", "Publish").messages;
    let dynamodb = sns.service("DynamoDB");
    let writes: u64 = ["PutItem", "TransactWriteItems", "UpdateItem"]
        .iter()
        .map(|op| sns.operation("DynamoDB", op).requests)
        .sum();
    vec![
        Invariant {
            name: "every order accepted",
            holds: s.orders_placed == s.orders_sent,
            detail: format!("{} of {} placed", s.orders_placed, s.orders_sent),
        },
        Invariant {
            name: "every order terminal",
            holds: s.outcomes.pending == 0 && s.quiet,
            detail: format!(
                "{} pending; pipeline {}",
                s.outcomes.pending,
                if s.quiet { "quiet" } else { "still busy" }
            ),
        },
        Invariant {
            name: "stock conserved",
            holds: s.stock_conserved,
            detail: "seeded = available + on confirmed orders, for every sku".to_owned(),
        },
        Invariant {
            name: "every stored event published",
            holds: s.events_published >= s.events_stored,
            detail: format!(
                "{} stored, {} published",
                s.events_stored, s.events_published
            ),
        },
        Invariant {
            name: "SNS accepted what the outbox published",
            holds: batched == s.events_published,
            detail: format!(
                "{batched} messages in PublishBatch, {} stream records published",
                s.events_published
            ),
        },
        Invariant {
            name: "one customer message per terminal order",
            holds: told == terminal,
            detail: format!("{told} published, {terminal} orders terminal"),
        },
        Invariant {
            name: "every order wrote to DynamoDB",
            holds: writes >= s.orders_placed && dynamodb.write_units > 0.0,
            detail: format!(
                "{writes} writes, {:.1} WRU for {} orders",
                dynamodb.write_units, s.orders_placed
            ),
        },
        Invariant {
            name: "nothing dead-lettered or given up",
            holds: s.dlq_messages == 0 && s.failure_records == 0,
            detail: format!(
                "{} in DLQs, {} stream batches given up",
                s.dlq_messages, s.failure_records
            ),
        },
    ]
}
