//! `ripple dev`: the whole system on one machine, against an emulator, with sample orders.
//!
//! Provision the template as a fresh stack, seed stock, run every function behind its event
//! sources and the HTTP API, POST sample orders over real HTTP, wait until the pipeline is quiet,
//! and report what flowed where. Then tear the stack down unless asked to keep it.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::json;

use domain::inventory::Stock;
use domain::order::{CancelReason, Order, OrderStatus};
use ripple_kit::store::DynamoEventStore;
use ripple_kit::{EventStore, Loaded, StoreError};

use crate::functions::{self, FunctionsError};
use crate::provision::{self, Clients, Deployment, ProvisionError};
use crate::runtime::{FunctionSnapshot, NotQuiet, RunOptions, Runtime, RuntimeError, sqs};
use crate::template::{EventSource, Template, TemplateError};

/// Orders in flight at once while loading the API.
const CONCURRENT_ORDERS: usize = 4;

/// Options of `ripple dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Sample orders to send through the pipeline.
    #[arg(long, default_value_t = 20)]
    pub orders: u32,
    /// Print one JSON object with the figures on stdout, and nothing else.
    #[arg(long)]
    pub json: bool,
    /// The SAM template to run.
    #[arg(long, default_value = "template.yaml")]
    pub template: PathBuf,
    /// Stack name, the prefix of every resource [default: ripple-dev-<random>].
    #[arg(long)]
    pub stack: Option<String>,
    /// Leave the stack's resources in the emulator afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Port of the local HTTP API (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Seconds to wait for the pipeline to go quiet.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// Why `ripple dev` stopped.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// No emulator endpoint is configured.
    #[error(
        "no emulator endpoint: AWS_ENDPOINT_URL is not set, and `ripple dev` does not create resources in a real account"
    )]
    NoEndpoint,
    /// The emulator does not answer.
    #[error("the AWS emulator is not reachable")]
    Unreachable(#[source] ProvisionError),
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
            DevError::NoEndpoint | DevError::Unreachable(_) => Some(
                "run `make dev`, which starts the local emulators and points ripple at them, or start them yourself:\n  \
                 bash tests/emulator/emulator.sh up && eval \"$(bash tests/emulator/emulator.sh env)\"",
            ),
            _ => None,
        }
    }
}

/// A sku of the sample catalogue: price and the stock seeded before the orders.
struct Sku {
    sku: &'static str,
    unit_price_cents: u64,
    stock: u64,
}

/// Two skus are scarce, so that some orders are rejected and the saga compensates.
const CATALOGUE: &[Sku] = &[
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

/// What one `ripple dev` run did.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The stack name.
    pub stack: String,
    /// Orders POSTed.
    pub orders_sent: u64,
    /// Orders the API accepted (2xx).
    pub orders_placed: u64,
    /// Orders the API refused or failed, by status code.
    pub orders_refused: BTreeMap<u16, u64>,
    /// Event items in the events table.
    pub events_stored: u64,
    /// Stored events by type.
    pub events_by_type: BTreeMap<String, u64>,
    /// Stream records the publisher handled (events published to the topic).
    pub events_published: u64,
    /// Queue messages consumers handled.
    pub messages_consumed: u64,
    /// Queue messages consumers failed (each failed receive).
    pub messages_failed: u64,
    /// Messages in dead-letter queues.
    pub dlq_messages: u64,
    /// Records in on-failure destinations (stream batches given up on).
    pub failure_records: u64,
    /// `stock.reserved` events.
    pub stock_reserved: u64,
    /// `stock.rejected` events.
    pub stock_rejected: u64,
    /// Failed invocations.
    pub invocation_errors: u64,
    /// Where the placed orders ended up (flattened into the JSON: `confirmed`, …).
    #[serde(flatten)]
    pub outcomes: OrderOutcomes,
    /// Per sku of the sample catalogue: seeded, available and allocated units.
    pub stock: Vec<StockLevel>,
    /// For every sku: seeded = available + units of confirmed orders, and allocated = those units.
    pub stock_conserved: bool,
    /// Whether the pipeline went quiet within the wait limit.
    pub quiet: bool,
    /// Milliseconds from the first order to a quiet pipeline.
    pub elapsed_ms: u64,
    /// Milliseconds of the whole run (provisioning and teardown included).
    pub total_ms: u64,
    /// Per function, by logical id.
    pub functions: BTreeMap<String, FunctionSummary>,
    /// Per queue, by name.
    pub queues: BTreeMap<String, QueueSummary>,
    /// The local HTTP API.
    pub http_url: Option<String>,
}

/// Where the placed orders ended up, read back from their streams.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OrderOutcomes {
    /// Stock reserved and payment captured.
    pub confirmed: u64,
    /// Cancelled: not enough stock.
    pub cancelled_out_of_stock: u64,
    /// Cancelled: the payment was declined (and the stock released).
    pub cancelled_payment_declined: u64,
    /// Cancelled by the customer.
    pub cancelled_customer_request: u64,
    /// Not yet in a terminal state.
    pub pending: u64,
}

impl OrderOutcomes {
    fn count(&mut self, order: &Order) {
        let slot = match (order.status, order.cancel_reason) {
            (OrderStatus::Confirmed, _) => &mut self.confirmed,
            (OrderStatus::Cancelled, Some(CancelReason::OutOfStock)) => {
                &mut self.cancelled_out_of_stock
            }
            (OrderStatus::Cancelled, Some(CancelReason::PaymentDeclined)) => {
                &mut self.cancelled_payment_declined
            }
            (OrderStatus::Cancelled, _) => &mut self.cancelled_customer_request,
            (OrderStatus::Placed | OrderStatus::Unplaced, _) => &mut self.pending,
        };
        *slot += 1;
    }
}

/// One sku's stock at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockLevel {
    /// The sku.
    pub sku: String,
    /// Units seeded before the orders.
    pub seeded: u64,
    /// Units free now.
    pub available: u64,
    /// Units set aside for orders now.
    pub allocated: u64,
    /// Units on confirmed orders.
    pub confirmed_units: u64,
}

impl StockLevel {
    /// Nothing created or lost: what was seeded is free or on a confirmed order.
    pub fn conserved(&self) -> bool {
        self.seeded == self.available + self.confirmed_units
            && self.allocated == self.confirmed_units
    }
}

/// One function's part.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionSummary {
    /// Its binary.
    pub binary: String,
    /// What triggers it.
    pub triggers: Vec<String>,
    /// Its counters.
    #[serde(flatten)]
    pub stats: FunctionSnapshot,
}

/// One queue's state at the end.
#[derive(Debug, Clone, Serialize)]
pub struct QueueSummary {
    /// `consumed`, `dead-letter`, `on-failure` or `unused`.
    pub role: &'static str,
    /// Messages waiting, in flight or delayed.
    pub messages: u64,
}

/// Runs `ripple dev`. `Ok` carries the summary even if the pipeline did not go quiet (see
/// [`Summary::quiet`]); the caller reports that.
pub async fn run(args: &DevArgs) -> Result<(Summary, Option<NotQuiet>), DevError> {
    let started = Instant::now();
    let endpoint_set =
        std::env::vars().any(|(k, v)| k.starts_with("AWS_ENDPOINT_URL") && !v.is_empty());
    if !endpoint_set {
        return Err(DevError::NoEndpoint);
    }
    let aws = ripple_kit::config::load_sdk_config().await;
    let clients = Clients::new(&aws);
    provision::check_reachable(&clients)
        .await
        .map_err(DevError::Unreachable)?;
    let template = Template::from_file(template_path(&args.template))?;
    let stack_name = args.stack.clone().unwrap_or_else(|| {
        let suffix: String = (0..6)
            .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
            .collect();
        format!("ripple-dev-{suffix}")
    });
    let deployment = provision::provision(&aws, &template, &stack_name).await?;
    let outcome = run_deployment(args, &aws, &clients, &deployment).await;
    if args.keep {
        tracing::info!(stack = %stack_name, "resources kept (--keep)");
    } else if let Err(err) = provision::teardown_with(&clients, &deployment).await {
        tracing::warn!(error = %ripple_kit::telemetry::error_chain(&err), "teardown");
    }
    let (mut summary, not_quiet) = outcome?;
    summary.total_ms = millis(started.elapsed());
    Ok((summary, not_quiet))
}

fn template_path(path: &Path) -> PathBuf {
    // `cargo run -p ripple` from anywhere in the checkout still finds the project's template.
    if path == Path::new("template.yaml") && !path.exists() {
        let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        if fallback.exists() {
            return fallback;
        }
    }
    path.to_owned()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn progress(args: &DevArgs, len: Option<u64>, template: &str) -> ProgressBar {
    if args.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::new_spinner(),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

async fn run_deployment(
    args: &DevArgs,
    aws: &SdkConfig,
    clients: &Clients,
    deployment: &Deployment,
) -> Result<(Summary, Option<NotQuiet>), DevError> {
    let handlers = functions::handlers(deployment, aws)?;
    let stock = functions::inventory_store(deployment, aws)?;
    for item in CATALOGUE {
        inventory::restock(&stock, item.sku, item.stock)
            .await
            .map_err(|source| DevError::Seed {
                sku: item.sku.to_owned(),
                source,
            })?;
    }
    let options = RunOptions {
        http_port: Some(args.port),
    };
    let runtime = Runtime::start(clients, deployment, handlers, options).await?;
    let result = tokio::select! {
        result = drive(args, clients, deployment, &runtime) => result,
        // Ctrl-C still stops the functions and removes the stack.
        _ = tokio::signal::ctrl_c() => Err(DevError::Interrupted),
    };
    runtime.stop().await;
    result
}

async fn drive(
    args: &DevArgs,
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
    tracing::info!(stack = %deployment.stack_name, api = %base, orders = args.orders, "sending sample orders");

    let pipeline_started = Instant::now();
    let bar = progress(
        args,
        Some(u64::from(args.orders)),
        "{spinner} placing orders {pos}/{len} {wide_bar}",
    );
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("{base}/orders");
    let placed: Vec<(u16, Option<String>)> =
        futures::stream::iter(sample_orders(args.orders).into_iter().enumerate())
            .map(|(i, order)| {
                let client = &client;
                let url = &url;
                let bar = &bar;
                let key = format!("{}-order-{i}", deployment.stack_name);
                async move {
                    let status = post_order(client, url, &key, &order).await;
                    bar.inc(1);
                    status
                }
            })
            .buffer_unordered(CONCURRENT_ORDERS)
            .collect()
            .await;
    bar.finish_and_clear();

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
    let elapsed = pipeline_started.elapsed();
    let not_quiet = waited.err();

    let mut summary = summarize(clients, deployment, runtime, &placed).await?;
    summary.quiet = not_quiet.is_none();
    summary.elapsed_ms = millis(elapsed);
    Ok((summary, not_quiet))
}

/// POSTs one order; the status (0 when no response came back) and the new order's id.
async fn post_order(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: &str,
    idempotency_key: &str,
    order: &serde_json::Value,
) -> (u16, Option<String>) {
    let request = hyper::Request::post(url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", idempotency_key)
        .header(
            hyper::header::USER_AGENT,
            concat!("ripple-dev/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(order.to_string())));
    let request = match request {
        Ok(request) => request,
        Err(err) => {
            tracing::warn!(error = %err, "cannot build an order request");
            return (0, None);
        }
    };
    match client.request(request).await {
        Ok(response) => {
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if !status.is_success() {
                tracing::warn!(status = status.as_u16(), body = %String::from_utf8_lossy(&body), "order refused");
                return (status.as_u16(), None);
            }
            let order_id = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|b| b["order_id"].as_str().map(str::to_owned));
            (status.as_u16(), order_id)
        }
        Err(err) => {
            tracing::warn!(error = %ripple_kit::telemetry::error_chain(&err), "order request failed");
            (0, None)
        }
    }
}

async fn summarize(
    clients: &Clients,
    deployment: &Deployment,
    runtime: &Runtime,
    placed: &[(u16, Option<String>)],
) -> Result<Summary, DevError> {
    let statuses: Vec<u16> = placed.iter().map(|(status, _)| *status).collect();
    let order_ids: Vec<&str> = placed.iter().filter_map(|(_, id)| id.as_deref()).collect();
    let snapshot = runtime.stats().snapshot();
    let total = snapshot.total();
    let mut orders_refused = BTreeMap::new();
    for status in statuses.iter().filter(|s| !(200..300).contains(*s)) {
        *orders_refused.entry(*status).or_insert(0) += 1;
    }

    let mut functions = BTreeMap::new();
    for (id, function) in &deployment.functions {
        let triggers = function
            .events
            .iter()
            .map(|event| match event {
                EventSource::HttpApi(route) => route.route_key(),
                EventSource::Sqs(s) => format!(
                    "queue {}",
                    deployment
                        .queue(&s.queue)
                        .map_or(s.queue.as_str(), |q| q.name.as_str())
                ),
                EventSource::DynamoDb(s) => format!(
                    "stream of {}",
                    deployment
                        .table(&s.table)
                        .map_or(s.table.as_str(), |t| t.name.as_str())
                ),
                EventSource::Other { name, event_type } => {
                    format!("{event_type} {name} (not emulated)")
                }
            })
            .collect();
        functions.insert(
            id.clone(),
            FunctionSummary {
                binary: function.binary.clone(),
                triggers,
                stats: snapshot.functions.get(id).copied().unwrap_or_default(),
            },
        );
    }

    let consumed: Vec<&str> = deployment
        .functions
        .values()
        .flat_map(|f| &f.events)
        .filter_map(|e| match e {
            EventSource::Sqs(s) => Some(s.queue.as_str()),
            _ => None,
        })
        .collect();
    let on_failure: Vec<&str> = deployment
        .functions
        .values()
        .flat_map(|f| &f.events)
        .filter_map(|e| match e {
            EventSource::DynamoDb(s) => s.on_failure.as_deref(),
            _ => None,
        })
        .collect();
    let mut queues = BTreeMap::new();
    let (mut dlq_messages, mut failure_records) = (0, 0);
    for queue in deployment.queues.values() {
        let messages = sqs::depth(&clients.sqs, &queue.url)
            .await
            .unwrap_or_default();
        let role = if queue.dead_letter {
            dlq_messages += messages;
            "dead-letter"
        } else if on_failure.contains(&queue.logical_id.as_str()) {
            failure_records += messages;
            "on-failure"
        } else if consumed.contains(&queue.logical_id.as_str()) {
            "consumed"
        } else {
            "unused"
        };
        queues.insert(queue.name.clone(), QueueSummary { role, messages });
    }

    let events_by_type = count_events(clients, deployment).await?;
    let (outcomes, stock) = outcomes_and_stock(clients, deployment, &order_ids).await?;
    let count = |t: &str| events_by_type.get(t).copied().unwrap_or(0);
    let publishers: u64 = deployment
        .functions
        .values()
        .filter(|f| {
            f.events
                .iter()
                .any(|e| matches!(e, EventSource::DynamoDb(_)))
        })
        .filter_map(|f| snapshot.functions.get(&f.logical_id))
        .map(|s| s.stream_succeeded)
        .sum();
    Ok(Summary {
        stack: deployment.stack_name.clone(),
        orders_sent: statuses.len() as u64,
        orders_placed: statuses.iter().filter(|s| (200..300).contains(*s)).count() as u64,
        orders_refused,
        events_stored: events_by_type.values().sum(),
        stock_reserved: count("stock.reserved"),
        stock_rejected: count("stock.rejected"),
        events_by_type,
        events_published: publishers,
        messages_consumed: total.sqs_succeeded,
        messages_failed: total.sqs_failed,
        dlq_messages,
        failure_records,
        invocation_errors: total.errors,
        outcomes,
        stock_conserved: stock.iter().all(StockLevel::conserved),
        stock,
        quiet: false,
        elapsed_ms: 0,
        total_ms: 0,
        functions,
        queues,
        http_url: runtime.http_url(),
    })
}

/// Folds every placed order's stream into its outcome, and reads each catalogue sku's stock.
async fn outcomes_and_stock(
    clients: &Clients,
    deployment: &Deployment,
    order_ids: &[&str],
) -> Result<(OrderOutcomes, Vec<StockLevel>), DevError> {
    let mut outcomes = OrderOutcomes::default();
    let mut confirmed_units: BTreeMap<String, u64> = BTreeMap::new();
    let Some(table) = events_table(deployment) else {
        return Ok((outcomes, Vec::new()));
    };
    let store = DynamoEventStore::new(clients.dynamodb.clone(), table.clone());
    let read_failed = |source: StoreError| DevError::ReadBack {
        table: table.clone(),
        source,
    };
    for id in order_ids {
        let order: Loaded<Order> = store.load(id).await.map_err(read_failed)?;
        let Some(placed) = order.state.placed.as_ref() else {
            outcomes.pending += 1;
            continue;
        };
        outcomes.count(&order.state);
        if order.state.status == OrderStatus::Confirmed {
            for line in &placed.lines {
                *confirmed_units.entry(line.sku.clone()).or_default() += u64::from(line.quantity);
            }
        }
    }
    let mut stock = Vec::new();
    for item in CATALOGUE {
        let level: Loaded<Stock> = store.load(item.sku).await.map_err(read_failed)?;
        stock.push(StockLevel {
            sku: item.sku.to_owned(),
            seeded: item.stock,
            available: level.state.available,
            allocated: level.state.allocated,
            confirmed_units: confirmed_units.get(item.sku).copied().unwrap_or(0),
        });
    }
    Ok((outcomes, stock))
}

/// The events table: the one orders-api appends to, else the one the outbox publisher reads.
fn events_table(deployment: &Deployment) -> Option<String> {
    if let Some(name) = deployment
        .function_by_binary("orders-api")
        .and_then(|f| f.environment.get("EVENTS_TABLE"))
    {
        return Some(name.clone());
    }
    deployment
        .functions
        .values()
        .flat_map(|f| &f.events)
        .find_map(|e| match e {
            EventSource::DynamoDb(s) => deployment.table(&s.table).map(|t| t.name.clone()),
            _ => None,
        })
}

/// Event items (kind = "event") in the events table, by type; pages through the whole scan.
async fn count_events(
    clients: &Clients,
    deployment: &Deployment,
) -> Result<BTreeMap<String, u64>, DevError> {
    let mut by_type = BTreeMap::new();
    let Some(table) = events_table(deployment) else {
        return Ok(by_type);
    };
    let mut pages = clients
        .dynamodb
        .scan()
        .table_name(&table)
        .filter_expression("#kind = :event")
        .projection_expression("#type")
        .expression_attribute_names("#kind", "kind")
        .expression_attribute_names("#type", "type")
        .expression_attribute_values(":event", AttributeValue::S("event".into()))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| DevError::Count {
            table: table.clone(),
            source: e.into(),
        })?;
        for item in page.items() {
            let event_type = item
                .get("type")
                .and_then(|t| t.as_s().ok())
                .cloned()
                .unwrap_or_else(|| "(untyped)".to_owned());
            *by_type.entry(event_type).or_insert(0) += 1;
        }
    }
    Ok(by_type)
}

/// The summary for people.
pub fn render(summary: &Summary) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let secs = |ms: u64| ms as f64 / 1000.0;
    let waited = if summary.quiet {
        "pipeline quiet after"
    } else {
        "pipeline STILL BUSY after"
    };
    let _ = writeln!(
        out,
        "ripple dev: stack {}  ({} orders, {waited} {:.1} s, {:.1} s in all)",
        summary.stack,
        summary.orders_sent,
        secs(summary.elapsed_ms),
        secs(summary.total_ms)
    );
    let _ = writeln!(out);
    let refused = if summary.orders_refused.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = summary
            .orders_refused
            .iter()
            .map(|(status, n)| {
                format!(
                    "{n} × {}",
                    if *status == 0 {
                        "no response".to_owned()
                    } else {
                        status.to_string()
                    }
                )
            })
            .collect();
        format!(", refused {}", parts.join(", "))
    };
    let _ = writeln!(out, "orders   placed {}{refused}", summary.orders_placed);
    let o = &summary.outcomes;
    let _ = writeln!(
        out,
        "outcome  {} confirmed, {} cancelled out of stock, {} cancelled payment declined, {} cancelled by the customer, {} pending",
        o.confirmed,
        o.cancelled_out_of_stock,
        o.cancelled_payment_declined,
        o.cancelled_customer_request,
        o.pending
    );
    let _ = writeln!(
        out,
        "stock    reserved for {} order(s), rejected for {}; {}",
        summary.stock_reserved,
        summary.stock_rejected,
        if summary.stock_conserved {
            "conserved (seeded = available + on confirmed orders, for every sku)"
        } else {
            "NOT CONSERVED, see the table below"
        }
    );
    let _ = writeln!(
        out,
        "events   {} stored, {} published, {} queue messages consumed ({} failed receives), {} invocation errors",
        summary.events_stored,
        summary.events_published,
        summary.messages_consumed,
        summary.messages_failed,
        summary.invocation_errors
    );
    let _ = writeln!(
        out,
        "failures {} in dead-letter queues, {} stream batch(es) given up",
        summary.dlq_messages, summary.failure_records
    );
    if let Some(url) = &summary.http_url {
        let _ = writeln!(out, "api      {url}");
    }

    let _ = writeln!(
        out,
        "\n{:<26} {:>11} {:>6} {:>8} {:>6} {:>6} {:>8}  trigger",
        "function", "invocations", "errors", "received", "ok", "failed", "filtered"
    );
    for (id, f) in &summary.functions {
        let s = &f.stats;
        // What the function was given: HTTP requests, stream records or queue messages.
        let (received, ok, failed, filtered) = if s.stream_received > 0 {
            (
                s.stream_received,
                s.stream_succeeded,
                s.stream_discarded,
                s.stream_filtered,
            )
        } else if s.sqs_received > 0 {
            (
                s.sqs_received,
                s.sqs_succeeded,
                s.sqs_failed,
                s.sqs_filtered,
            )
        } else {
            (s.http_requests, s.invocations - s.errors, s.errors, 0)
        };
        let _ = writeln!(
            out,
            "{id:<26} {:>11} {:>6} {received:>8} {ok:>6} {failed:>6} {filtered:>8}  {}",
            s.invocations,
            s.errors,
            f.triggers.join(", ")
        );
    }

    let _ = writeln!(
        out,
        "\nqueue                                         messages  role"
    );
    for (name, q) in &summary.queues {
        let _ = writeln!(out, "{name:<45} {:>8}  {}", q.messages, q.role);
    }

    let _ = writeln!(
        out,
        "\n{:<12} {:>7} {:>10} {:>10} {:>10}",
        "sku", "seeded", "available", "allocated", "confirmed"
    );
    for level in &summary.stock {
        let _ = writeln!(
            out,
            "{:<12} {:>7} {:>10} {:>10} {:>10}{}",
            level.sku,
            level.seeded,
            level.available,
            level.allocated,
            level.confirmed_units,
            if level.conserved() {
                ""
            } else {
                "  <- not conserved"
            }
        );
    }

    let _ = writeln!(out, "\nevents stored by type");
    for (event_type, n) in &summary.events_by_type {
        let _ = writeln!(out, "  {event_type:<28} {n:>6}");
    }
    out
}

/// The figures as one JSON object.
pub fn render_json(summary: &Summary) -> String {
    serde_json::to_string(summary).unwrap_or_else(|e| json!({"error": e.to_string()}).to_string())
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
    fn the_json_summary_has_the_agreed_fields() {
        let summary = Summary {
            stack: "s".into(),
            orders_sent: 2,
            orders_placed: 2,
            orders_refused: BTreeMap::new(),
            events_stored: 5,
            events_by_type: BTreeMap::new(),
            events_published: 5,
            messages_consumed: 3,
            messages_failed: 0,
            dlq_messages: 0,
            failure_records: 0,
            stock_reserved: 1,
            stock_rejected: 1,
            invocation_errors: 0,
            outcomes: OrderOutcomes {
                confirmed: 1,
                cancelled_out_of_stock: 1,
                ..OrderOutcomes::default()
            },
            stock: vec![StockLevel {
                sku: "A".into(),
                seeded: 5,
                available: 4,
                allocated: 1,
                confirmed_units: 1,
            }],
            stock_conserved: true,
            quiet: true,
            elapsed_ms: 10,
            total_ms: 20,
            functions: BTreeMap::new(),
            queues: BTreeMap::new(),
            http_url: None,
        };
        let value: serde_json::Value = serde_json::from_str(&render_json(&summary)).unwrap();
        for field in [
            "orders_placed",
            "events_stored",
            "events_published",
            "messages_consumed",
            "dlq_messages",
            "elapsed_ms",
            "confirmed",
            "cancelled_out_of_stock",
            "cancelled_payment_declined",
        ] {
            assert!(value[field].is_u64(), "{field}");
        }
        assert_eq!(value["stock_conserved"], true);
        assert!(render(&summary).contains("placed 2"));
        assert!(render(&summary).contains("1 confirmed, 1 cancelled out of stock"));
    }

    #[test]
    fn stock_is_conserved_only_when_every_unit_is_accounted_for() {
        let level = |available, allocated, confirmed_units| StockLevel {
            sku: "A".into(),
            seeded: 10,
            available,
            allocated,
            confirmed_units,
        };
        assert!(level(7, 3, 3).conserved());
        assert!(
            !level(7, 3, 2).conserved(),
            "units allocated to no confirmed order"
        );
        assert!(!level(8, 3, 3).conserved(), "a unit created");
        assert!(!level(6, 3, 3).conserved(), "a unit lost");
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
