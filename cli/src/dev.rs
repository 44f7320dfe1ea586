//! `ripple dev`: the whole system on one machine, against an emulator, with sample orders.
//!
//! Provision the template as a fresh stack, seed stock, run every function behind its event
//! sources and the HTTP API, POST sample orders over real HTTP, wait until the pipeline is quiet,
//! and report what flowed where. Then tear the stack down unless asked to keep it.
//!
//! This module runs those steps; the sample load is in `sample`, placing it in `orders`, what
//! the run did in [`summary`](Summary) and how it is written out in `render`.

mod latency;
pub(crate) mod orders;
mod render;
pub(crate) mod sample;
pub(crate) mod summary;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use indicatif::ProgressBar;
use ripple_kit::StoreError;

use crate::connect::{ConnectError, Connection, DEFAULT_STACK, connect, template_path};
use crate::functions::{self, FunctionsError};
use crate::provision::{self, Clients, Deployment, ProvisionError};
use crate::runtime::{self, NotQuiet, RunOptions, Runtime, RuntimeError};
use crate::template::{EventSource, Template, TemplateError};

pub use latency::{Latency, Percentiles};
pub use render::{render, render_json};
pub use sample::{SampleOrder, sample_orders};
pub use summary::{FunctionSummary, OrderOutcomes, QueueSummary, StockLevel, Summary};

/// Options of `ripple dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Sample orders to send through the pipeline [default: 20]. Given, `ripple dev` sends them,
    /// reports and stops (what scripts and CI use); not given on a terminal, it goes on serving.
    #[arg(long)]
    pub orders: Option<u32>,
    /// Print one JSON object with the figures on stdout, and nothing else.
    #[arg(long)]
    pub json: bool,
    /// The SAM template to run.
    #[arg(long, default_value = "template.yaml")]
    pub template: PathBuf,
    /// Stack name, the prefix of every resource [default: ripple with --keep, the stack the other
    /// commands use; otherwise ripple-dev- and six random characters].
    #[arg(long)]
    pub stack: Option<String>,
    /// Leave the stack's resources in the emulator afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Port of the local HTTP API (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Port of the local token issuer (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub issuer_port: u16,
    /// After the sample orders, keep the API, the token issuer and every function running until
    /// Ctrl-C (for curl; see the README), then report. The default on a terminal without
    /// `--orders` or `--json`.
    #[arg(long)]
    pub serve: bool,
    /// Seconds to wait for the pipeline to go quiet.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// Sample orders when `--orders` is not given.
const DEFAULT_ORDERS: u32 = 20;

impl DevArgs {
    /// How many sample orders to send.
    pub fn sample_orders(&self) -> u32 {
        self.orders.unwrap_or(DEFAULT_ORDERS)
    }

    /// Whether to go on serving after the sample orders: asked for, or a person at a terminal
    /// who asked for nothing else.
    pub fn serves(&self) -> bool {
        self.serve
            || (self.orders.is_none()
                && !self.json
                && std::io::stdin().is_terminal()
                && std::io::stderr().is_terminal())
    }
}

/// Why `ripple dev` stopped.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// There is no emulator to talk to.
    #[error("no emulator")]
    Connect(#[from] ConnectError),
    /// The template could not be read.
    #[error("cannot use the template")]
    Template(#[from] TemplateError),
    /// Resources could not be created.
    #[error("provisioning failed")]
    Provision(#[from] ProvisionError),
    /// A function could not be set up.
    #[error("cannot set up the functions")]
    Functions(#[from] FunctionsError),
    /// The runtime could not start.
    #[error("cannot start the local runtime")]
    Runtime(#[from] RuntimeError),
    /// Stock could not be seeded.
    #[error("cannot seed stock for {sku}")]
    Seed {
        /// The sku.
        sku: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The catalogue could not be seeded.
    #[error("cannot price {sku}")]
    Price {
        /// The sku.
        sku: String,
        /// Why.
        #[source]
        source: orders_api::catalog::SetPriceError,
    },
    /// The API's routes need tokens and no issuer runs to mint them.
    #[error("the HTTP API needs tokens but the local issuer did not start")]
    NoIssuer,
    /// A token could not be minted.
    #[error("cannot mint a token")]
    Token(#[from] crate::runtime::issuer::IssuerError),
    /// Interrupted (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
    /// The template has no HTTP route to post orders to.
    #[error("the template has no POST /orders route")]
    NoOrdersRoute,
    /// The events table could not be counted.
    #[error("cannot count the events in {table}")]
    Count {
        /// The table.
        table: String,
        /// Why.
        #[source]
        source: aws_sdk_dynamodb::Error,
    },
    /// Order or stock streams could not be read back for the summary.
    #[error("cannot read the outcomes back from {table}")]
    ReadBack {
        /// The table.
        table: String,
        /// Why.
        #[source]
        source: StoreError,
    },
}

impl DevError {
    /// What to do about it, when there is something to do.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            DevError::Connect(e) => Some(e.hint()),
            _ => None,
        }
    }
}

/// Runs `ripple dev`. `Ok` carries the summary even if the pipeline did not go quiet (see
/// [`Summary::quiet`]); the caller reports that.
pub async fn run(args: &DevArgs) -> Result<(Summary, Option<NotQuiet>), DevError> {
    run_paced(args, None).await
}

/// [`run`], placing the orders at `rate` a second (`ripple load`); `None`: as fast as the API
/// answers a few at a time.
pub(crate) async fn run_paced(
    args: &DevArgs,
    rate: Option<f64>,
) -> Result<(Summary, Option<NotQuiet>), DevError> {
    let started = Instant::now();
    let Connection { aws, clients, .. } = connect().await?;
    let template = Template::from_file(template_path(&args.template))?;
    let stack_name = args.stack.clone().unwrap_or_else(|| {
        if args.keep {
            return DEFAULT_STACK.to_owned();
        }
        let suffix: String = (0..6)
            .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
            .collect();
        format!("ripple-dev-{suffix}")
    });
    let deployment = provision::provision(&aws, &template, &stack_name).await?;
    let outcome = run_deployment(args, rate, &aws, &clients, &deployment).await;
    if args.keep {
        tracing::info!(stack = %stack_name, "resources kept (--keep)");
    } else if let Err(err) = provision::teardown_with(&clients, &deployment).await {
        tracing::warn!(error = %ripple_kit::telemetry::error_chain(&err), "teardown");
    }
    let (mut summary, not_quiet) = outcome?;
    summary.total_ms = millis(started.elapsed());
    Ok((summary, not_quiet))
}

/// Whole milliseconds of `d`, for the reports.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn progress(args: &DevArgs, len: Option<u64>, template: &str) -> ProgressBar {
    crate::progress::bar(args.json, len, template)
}

async fn run_deployment(
    args: &DevArgs,
    rate: Option<f64>,
    aws: &SdkConfig,
    clients: &Clients,
    deployment: &Deployment,
) -> Result<(Summary, Option<NotQuiet>), DevError> {
    let handlers = functions::handlers(deployment, aws)?;
    seed(&functions::inventory_store(deployment, aws)?).await?;
    let options = RunOptions {
        http_port: Some(args.port),
        issuer_port: args.issuer_port,
    };
    // The functions' requests from their start, over the same window as the runtime's counters
    // (the outbox publishes the seeded events too); seeding used the runner's own clients.
    let requests_before = ripple_kit::requests::RequestCounter::global().snapshot();
    let runtime = Runtime::start(clients, deployment, handlers, options).await?;
    let result = tokio::select! {
        result = drive(args, rate, &requests_before, clients, deployment, &runtime) => result,
        // Ctrl-C still stops the functions and removes the stack.
        _ = tokio::signal::ctrl_c() => Err(DevError::Interrupted),
    };
    if args.serves()
        && let Ok((summary, _)) = &result
        && let (Some(api), Some(issuer)) = (runtime.http_url(), runtime.issuer())
    {
        let outcomes = &summary.outcomes;
        eprintln!(
            "\n{} sample orders: {} confirmed, {} cancelled, {} pending (the full summary prints when you stop)",
            summary.orders_sent,
            outcomes.confirmed,
            outcomes.cancelled_out_of_stock
                + outcomes.cancelled_payment_declined
                + outcomes.cancelled_customer_request
                + outcomes.cancelled_timed_out,
            outcomes.pending
        );
        serve_until_interrupted(clients, deployment, &runtime, &api, issuer.url()).await;
    }
    runtime.stop().await;
    result
}

/// The sample catalogue: its prices (the system's, in the store) and its stock.
pub(crate) async fn seed(store: &ripple_kit::store::DynamoEventStore) -> Result<(), DevError> {
    for item in sample::CATALOGUE {
        orders_api::catalog::set_price(store, item.sku, sample::CURRENCY, item.unit_price_cents)
            .await
            .map_err(|source| DevError::Price {
                sku: item.sku.to_owned(),
                source,
            })?;
        inventory::restock(store, item.sku, item.stock)
            .await
            .map_err(|source| DevError::Seed {
                sku: item.sku.to_owned(),
                source,
            })?;
    }
    Ok(())
}

async fn drive(
    args: &DevArgs,
    rate: Option<f64>,
    requests_before: &ripple_kit::requests::RequestCounts,
    clients: &Clients,
    deployment: &Deployment,
    runtime: &Runtime,
) -> Result<(Summary, Option<NotQuiet>), DevError> {
    let base = runtime.http_url().ok_or(DevError::NoOrdersRoute)?;
    let has_route = deployment.functions.values().flat_map(|f| &f.events).any(|e| {
        matches!(e, EventSource::HttpApi(r) if r.path == "/orders" && (r.method == "POST" || r.method == "ANY"))
    });
    if !has_route {
        return Err(DevError::NoOrdersRoute);
    }
    tracing::info!(stack = %deployment.stack_name, api = %base, orders = args.sample_orders(), "sending sample orders");

    let pipeline_started = Instant::now();
    let bar = progress(
        args,
        Some(u64::from(args.sample_orders())),
        "{spinner} placing orders {pos}/{len} {wide_bar} {per_sec} eta {eta}",
    );
    let orders = sample_orders(args.sample_orders());
    let issuer = runtime.issuer().ok_or(DevError::NoIssuer)?;
    // Minted up front, one per customer, for the whole run.
    let mut tokens = std::collections::BTreeMap::new();
    for order in &orders {
        if !tokens.contains_key(&order.customer) {
            let token = issuer.token(&order.customer, &runtime::issuer::CUSTOMER_SCOPES)?;
            tokens.insert(order.customer.clone(), token);
        }
    }
    let placed = orders::place_all(
        &format!("{base}/orders"),
        &deployment.stack_name,
        orders,
        rate,
        |customer| tokens.get(customer).cloned(),
        || bar.inc(1),
    )
    .await;
    bar.finish_and_clear();
    let placing = pipeline_started.elapsed();
    let not_quiet = wait_for_quiet(args, runtime).await;
    let elapsed = pipeline_started.elapsed();
    let requests = ripple_kit::requests::RequestCounter::global()
        .snapshot()
        .since(requests_before);
    let mut summary = summary::summarize(clients, deployment, runtime, &placed, requests).await?;
    summary.quiet = not_quiet.is_none();
    summary.elapsed_ms = millis(elapsed);
    summary.placing_ms = millis(placing);
    Ok((summary, not_quiet))
}

/// `--serve`: says where the API and the issuer are and how to call them, and shows a live line
/// of counts until Ctrl-C.
async fn serve_until_interrupted(
    clients: &Clients,
    deployment: &Deployment,
    runtime: &Runtime,
    api: &str,
    issuer: &str,
) {
    eprintln!(
        "\nServing until Ctrl-C.\n  API:    {api}\n  issuer: {issuer} (keys at {issuer}/.well-known/jwks.json)\n\n  \
         TOKEN=$(curl -s -X POST {issuer}/token -d sub=c-1 | jq -r .access_token)\n  \
         curl -s -X POST {api}/orders -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n    \
         -d '{{\"currency\":\"EUR\",\"lines\":[{{\"sku\":\"SKU-TEE\",\"quantity\":1}}]}}'\n"
    );
    let line = crate::progress::bar(false, None, "{spinner} {msg}");
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                let total = runtime.stats().snapshot().total();
                let depths = summary::QueueDepths::read(clients, deployment).await;
                line.set_message(format!(
                    "{} HTTP requests, {} events published, {} messages consumed ({} failed), {} dead-lettered; Ctrl-C stops",
                    total.http_requests,
                    total.stream_succeeded,
                    total.sqs_succeeded,
                    total.sqs_failed,
                    depths.dead_letter
                ));
            }
        }
    }
    line.finish_and_clear();
}

/// Waits for the pipeline to go quiet within `--timeout`, showing what still moves.
async fn wait_for_quiet(args: &DevArgs, runtime: &Runtime) -> Option<NotQuiet> {
    let bar = progress(args, None, "{spinner} waiting for the pipeline: {msg}");
    let limit = Duration::from_secs(args.timeout);
    let waited = runtime
        .wait_until_quiet(limit, |activity, stats| {
            let total = stats.total();
            bar.set_message(format!(
                "{} records published, {} messages consumed; {}",
                total.stream_succeeded,
                total.sqs_succeeded,
                activity.brief()
            ));
        })
        .await;
    bar.finish_and_clear();
    waited.err()
}
