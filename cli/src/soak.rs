//! `ripple soak`: the whole system in the local runner, as `ripple dev` runs it, under a seeded
//! fault plan, with the invariants checked at the end.
//!
//! The stack is provisioned from the template with its timeouts compressed ([`time`]); every
//! function runs in-process behind the emulated event sources, with its AWS clients behind the
//! plan's SDK faults ([`sdk`], at the [`crate::boundary`]) and its invocations behind the plan's
//! Lambda faults ([`lambda`]). The load ([`workload`]) goes through the HTTP API with a client
//! that retries as a careful customer does ([`client`]); poison is mixed into the queues and SNS
//! goes down for longer than the stream mapping retries. Once the pipeline is quiet, what the
//! emulator holds ([`truth`]) and what the topics delivered ([`tap`]) are checked against the
//! [`invariants`], and the [`report`] says what broke, with the seed and the command that
//! reruns it.

pub mod args;
pub mod client;
pub mod invariants;
pub mod lambda;
pub mod log;
pub mod plan;
pub mod ratios;
pub mod report;
pub mod sdk;
pub mod tap;
pub mod time;
pub mod truth;
pub mod workload;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use futures::StreamExt as _;
use ripple_kit::StoreError;
use ripple_kit::store::DynamoEventStore;
use tokio_util::sync::CancellationToken;

use crate::connect::{ConnectError, Connection, EMULATOR_HINT, connect, template_path};
use crate::dev::millis;
use crate::functions::{self, FunctionsError};
use crate::provision::{self, Clients, Deployment, ProvisionError};
use crate::runtime::issuer::{CUSTOMER_SCOPES, LocalIssuer};
use crate::runtime::{Invoke, RunOptions, Runtime, RuntimeError};
use crate::template::{EventSource, Template, TemplateError};

pub use args::{RateArgs, SoakArgs, rerun_command, seed_of};
pub use log::ReasonLog;
pub use report::{SoakReport, render, render_json};

use client::{Answer, ApiClient};
use plan::{Outage, Plan, Rates};
use tap::Tap;
use time::TimeScale;
use workload::{Shape, Workload};

/// Why a soak could not run (a soak that ran and found violations is not an error).
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
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
    /// A rate is not a probability.
    #[error("rates must be between 0 and 1: {}", .0.join(", "))]
    Rates(Vec<&'static str>),
    /// Time compression broke a ratio the template relies on.
    #[error("the compressed template breaks its own ratios: {}", .0.join("; "))]
    Ratios(Vec<String>),
    /// The template lacks something the soak drives or watches.
    #[error("the template has no {0}")]
    Missing(&'static str),
    /// A price could not be seeded.
    #[error("cannot price {sku}")]
    Price {
        /// The sku.
        sku: String,
        /// Why.
        #[source]
        source: orders_api::catalog::SetPriceError,
    },
    /// Stock could not be seeded.
    #[error("cannot seed stock for {sku}")]
    Seed {
        /// The sku.
        sku: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The emulator could not be read or written by the harness itself.
    #[error("the harness could not use {resource}")]
    Harness {
        /// What it was using.
        resource: String,
        /// Why.
        #[source]
        source: provision::BoxError,
    },
    /// Interrupted (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
}

impl SoakError {
    pub(crate) fn read<E>(resource: &str, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        SoakError::Harness {
            resource: resource.to_owned(),
            source: Box::new(source),
        }
    }

    /// What to do about it, when there is something to do.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            SoakError::Connect(_) => Some(EMULATOR_HINT),
            _ => None,
        }
    }
}

/// Runs a soak with `seed` (print it first: a crash of the harness must not lose it).
/// `reasons` is the log layer the process installed.
pub async fn run(args: &SoakArgs, seed: u64, reasons: ReasonLog) -> Result<SoakReport, SoakError> {
    let started = Instant::now();
    let rates = args.rates.rates();
    if !rates.invalid().is_empty() {
        return Err(SoakError::Rates(rates.invalid()));
    }
    let Connection { aws, clients, .. } = connect().await?;
    let template = Template::from_file(template_path(&args.template))?;
    let stack_name = args.stack.clone().unwrap_or_else(|| {
        let suffix: String = (0..6)
            .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
            .collect();
        format!("ripple-soak-{suffix}")
    });
    let scale = TimeScale::new(args.time_scale);
    let mut compressed = Vec::new();
    let resolver = provision::local_resolver(&template, provision::pseudo(&aws, &stack_name))?;
    let mut deployment = provision::provision_adjusted(&clients, resolver, |stack| {
        compressed = scale.compress_stack(stack);
    })
    .await?;
    compressed.extend(scale.compress_environment(&mut deployment));
    compressed.extend(scale.retry_figures(aws.retry_config()));
    let outage = outage_of(args, &deployment);
    let environments = ratios::environments(&deployment);
    let deadline = match args.order_deadline {
        Some(seconds) if seconds.is_finite() && seconds > 0.0 => Duration::from_secs_f64(seconds),
        _ => ratios::order_deadline(
            &deployment.stack,
            &environments,
            outage.map(|o| o.lasts).unwrap_or_default(),
        )
        .max(MIN_ORDER_DEADLINE),
    };
    set_order_deadline(&mut deployment, deadline, &mut compressed);
    let problems = ratios::problems(
        &deployment.stack,
        &ratios::environments(&deployment),
        outage.map(|o| o.lasts),
        Some(deadline),
    );
    let soak = Soak {
        args,
        seed,
        rates,
        scale,
        outage,
        deadline,
        aws: &aws,
        clients: &clients,
        deployment: &deployment,
        reasons,
    };
    let outcome = match problems {
        problems if !problems.is_empty() => Err(SoakError::Ratios(problems)),
        _ => soak.run().await,
    };
    if args.keep {
        tracing::info!(stack = %stack_name, "resources kept (--keep)");
    } else if let Err(err) = provision::teardown_with(&clients, &deployment).await {
        tracing::warn!(error = %ripple_kit::telemetry::error_chain(&err), "teardown");
    }
    let mut report = outcome?;
    report.compressed = compressed;
    report.wall_ms = millis(started.elapsed());
    Ok(report)
}

/// The shortest default order deadline: an order takes minutes end to end while the emulators
/// work through a backlog, and a shorter deadline would time out orders that are only queued.
const MIN_ORDER_DEADLINE: Duration = Duration::from_secs(300);

/// The sweeper's variable with the order deadline.
const ORDER_DEADLINE_VARIABLE: &str = "ORDER_DEADLINE_SECONDS";

/// Gives every function that reads the order deadline the soak's, in whole seconds (rounded up),
/// and says so in its entry of `compressed`.
fn set_order_deadline(
    deployment: &mut Deployment,
    deadline: Duration,
    compressed: &mut [time::Compressed],
) {
    let seconds = deadline.as_secs() + u64::from(deadline.subsec_nanos() > 0);
    for function in deployment.functions.values_mut() {
        if let Some(value) = function.environment.get_mut(ORDER_DEADLINE_VARIABLE) {
            *value = seconds.to_string();
            for entry in compressed
                .iter_mut()
                .filter(|c| c.resource == function.name && c.kind == ORDER_DEADLINE_VARIABLE)
            {
                entry.kind = format!("{ORDER_DEADLINE_VARIABLE} (the soak's order deadline)");
                entry.soak_s = seconds as f64;
            }
        }
    }
}

/// The SNS outage: longer than the outbox's stream mapping keeps retrying a failing batch
/// (the local runner waits at most [`RETRY_CAP`](crate::runtime::stream::RETRY_CAP) between
/// tries; a mapping that retries forever counts as ten retries), starting once a third of the
/// load is placed.
fn outage_of(args: &SoakArgs, deployment: &Deployment) -> Option<Outage> {
    let retries = deployment
        .functions
        .values()
        .flat_map(|f| &f.events)
        .find_map(|e| match e {
            EventSource::DynamoDb(source) => Some(source.maximum_retry_attempts),
            _ => None,
        })
        .flatten();
    let budget = crate::runtime::stream::RETRY_CAP * retries.unwrap_or(10);
    let lasts = match args.sns_outage {
        Some(seconds) if seconds <= 0.0 || !seconds.is_finite() => return None,
        Some(seconds) => Duration::from_secs_f64(seconds),
        None => (budget * 3).max(Duration::from_secs(15)),
    };
    Some(Outage {
        after_orders: args.orders / 3,
        lasts,
    })
}

/// One soak over a provisioned deployment.
struct Soak<'a> {
    args: &'a SoakArgs,
    seed: u64,
    rates: Rates,
    scale: TimeScale,
    outage: Option<Outage>,
    deadline: Duration,
    aws: &'a SdkConfig,
    clients: &'a Clients,
    deployment: &'a Deployment,
    reasons: ReasonLog,
}

/// What the load and the wait came to.
struct Driven {
    answers: BTreeMap<u32, Answer>,
    cancels: Vec<Answer>,
    not_quiet: Option<String>,
    load: Duration,
    settle: Duration,
}

/// What the topics delivered to the taps.
struct Delivered {
    published: Vec<String>,
    customer_messages: Vec<String>,
}

impl Soak<'_> {
    async fn run(&self) -> Result<SoakReport, SoakError> {
        let consumed = consumed_queue_urls(self.deployment);
        let workload = Workload::draw(self.seed, self.shape(consumed.len()));
        let plan = Arc::new(Plan::new(self.seed, self.rates, self.outage));
        tracing::info!(seed = self.seed, orders = self.args.orders, stack = %self.deployment.stack_name, "soak starts");
        // The taps subscribe first: they must see the restocks too.
        let events_tap = self
            .tap("events", "outbox-publisher", "TOPIC_ARN", true)
            .await?;
        let customers_tap = self
            .tap(
                "customers",
                "notifications",
                "NOTIFICATIONS_TOPIC_ARN",
                false,
            )
            .await?;
        self.seed_stock(&workload).await?;
        let runtime = Runtime::start(
            self.clients,
            self.deployment,
            self.faulty_handlers(&plan)?,
            RunOptions {
                http_port: Some(self.args.port),
                issuer_port: 0,
            },
        )
        .await?;
        let driven = tokio::select! {
            driven = self.drive(&runtime, &workload, &plan, &consumed) => driven,
            _ = tokio::signal::ctrl_c() => Err(SoakError::Interrupted),
        };
        let stats = runtime.stats().snapshot().total();
        runtime.stop().await;
        let delivered = Delivered {
            published: events_tap.close(self.clients).await,
            customer_messages: customers_tap.close(self.clients).await,
        };
        let driven = driven?;
        let stored = truth::read(self.clients, self.deployment).await?;
        let reason = |id: &str| self.reasons.reason(id);
        let invariants = invariants::check(&invariants::Evidence {
            stored: &stored,
            published: &delivered.published,
            customer_messages: &delivered.customer_messages,
            workload: &workload,
            answers: &driven.answers,
            reason: &reason,
            not_quiet: driven.not_quiet.clone(),
        });
        let figures = report::Figures {
            events_stored: stored.events.len() as u64,
            events_published: delivered.published.len() as u64,
            customer_messages: delivered.customer_messages.len() as u64,
            customer_message_copies: invariants::customer_message_copies(
                &delivered.customer_messages,
            ),
            dead_letters: stored.sinks.len() as u64,
            api_answers: answer_counts(driven.answers.values().chain(&driven.cancels)),
            cancellations: driven.cancels.len() as u64,
            invocations: stats.invocations,
            invocation_errors: stats.errors,
            messages_failed: stats.sqs_failed,
            stream_retries: stats.stream_retries,
            stream_discarded: stats.stream_discarded,
            reasons_logged: self.reasons.len() as u64,
        };
        Ok(self.report(&plan, &driven, figures, &invariants))
    }

    fn shape(&self, queues: usize) -> Shape {
        let at_least_one_of_each = 6;
        Shape {
            orders: self.args.orders,
            hot_share: self.args.hot_share.clamp(0.0, 1.0),
            poison: self
                .args
                .poison
                .unwrap_or((self.args.orders / 100).max(at_least_one_of_each)),
            queues,
            cancel_within: self.scale.of(Duration::from_secs(20)),
        }
    }

    /// A tap on the topic a function's variable names.
    async fn tap(
        &self,
        label: &str,
        binary: &str,
        variable: &'static str,
        raw: bool,
    ) -> Result<Tap, SoakError> {
        let topic = self
            .deployment
            .function_by_binary(binary)
            .and_then(|f| f.environment.get(variable))
            .ok_or(SoakError::Missing(variable))?;
        let name = format!("{}-soak-{label}-tap", self.deployment.stack_name);
        Tap::open(self.clients, &name, topic, raw).await
    }

    async fn seed_stock(&self, workload: &Workload) -> Result<(), SoakError> {
        let table = self
            .deployment
            .events_table()
            .ok_or(SoakError::Missing("events table"))?;
        let store = DynamoEventStore::new(self.clients.dynamodb.clone(), table);
        for (sku, price) in &workload.prices {
            orders_api::catalog::set_price(&store, sku, workload::CURRENCY, *price)
                .await
                .map_err(|source| SoakError::Price {
                    sku: sku.clone(),
                    source,
                })?;
        }
        for (sku, units) in &workload.stock {
            inventory::restock(&store, sku, *units)
                .await
                .map_err(|source| SoakError::Seed {
                    sku: sku.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Every function's handler, with its AWS clients behind the SDK faults (and the SDK's
    /// backoffs compressed) and its invocations behind the Lambda faults.
    fn faulty_handlers(&self, plan: &Arc<Plan>) -> Result<HashMap<String, Invoke>, SoakError> {
        let functions = self.deployment.functions.values();
        let longest_timeout = functions
            .clone()
            .map(|f| f.timeout)
            .max()
            .unwrap_or(Duration::from_secs(3));
        let hook: Arc<dyn crate::boundary::Hook> = Arc::new(sdk::SdkFaults::new(
            plan.clone(),
            longest_timeout.mul_f64(1.5),
        ));
        let queues = self
            .deployment
            .queues
            .values()
            .map(|q| (q.arn.clone(), q.url.clone()));
        let longest_visibility = self
            .deployment
            .stack
            .queues
            .iter()
            .filter_map(|q| q.visibility_timeout)
            .max()
            .unwrap_or(30);
        let lambda_faults = Arc::new(lambda::LambdaFaults::new(
            plan.clone(),
            self.clients.sqs.clone(),
            queues,
            Duration::from_secs(u64::from(longest_visibility) * 2),
        ));
        let retry = self.scale.retry_config(self.aws.retry_config());
        let mut handlers = HashMap::new();
        for function in functions {
            let aws = crate::boundary::with_hook(self.aws, &function.binary, hook.clone())
                .to_builder()
                .retry_config(retry.clone())
                .build();
            let invoke = functions::invoke_for(
                &function.logical_id,
                &function.binary,
                &function.environment,
                &aws,
            )?;
            handlers.insert(
                function.logical_id.clone(),
                lambda::wrap(&function.binary, invoke, lambda_faults.clone()),
            );
        }
        Ok(handlers)
    }

    /// Places the load (with the outage, the poison and the cancellations on their cues) and
    /// waits for the pipeline to go quiet.
    async fn drive(
        &self,
        runtime: &Runtime,
        workload: &Workload,
        plan: &Arc<Plan>,
        consumed: &[String],
    ) -> Result<Driven, SoakError> {
        let base = runtime.http_url().ok_or(SoakError::Missing("HTTP API"))?;
        let api = ApiClient::new(&base, self.scale.of(Duration::from_secs(2)));
        let placed = Arc::new(AtomicU32::new(0));
        let load_done = CancellationToken::new();
        let cues = tokio::spawn(cues(
            placed.clone(),
            plan.clone(),
            workload.poison.clone(),
            consumed.to_vec(),
            self.clients.sqs.clone(),
            load_done.clone(),
        ));
        let held = Arc::new(AtomicBool::new(false));
        let pacer = tokio::spawn(pace(
            self.clients.sqs.clone(),
            consumed.to_vec(),
            self.args.max_backlog,
            held.clone(),
            load_done.clone(),
        ));
        let started = Instant::now();
        let issuer = runtime
            .issuer()
            .ok_or(SoakError::Missing("local token issuer"))?;
        let (answers, cancels) = self.place(&api, issuer, workload, &placed, &held).await;
        load_done.cancel();
        let _ = tokio::join!(cues, pacer);
        let load = started.elapsed();
        let settled = Instant::now();
        let mut not_quiet = wait_for_quiet(self.args, runtime).await;
        if not_quiet.is_none() && self.sweep_for_stranded(settled).await? {
            not_quiet = wait_for_quiet(self.args, runtime).await;
        }
        Ok(Driven {
            answers,
            cancels,
            not_quiet,
            load,
            settle: settled.elapsed(),
        })
    }

    /// When orders are still undecided with the pipeline quiet, waits (within `--timeout` of
    /// `load_done`) until the sweeper has run twice past their deadline, so that it cancels them
    /// as it would on AWS. Whether there were any.
    async fn sweep_for_stranded(&self, load_done: Instant) -> Result<bool, SoakError> {
        let stored = truth::read_store(self.clients, self.deployment).await?;
        let stranded = invariants::unfinished(&stored.events);
        if stranded.is_empty() {
            return Ok(false);
        }
        let every = self
            .deployment
            .functions
            .values()
            .flat_map(|f| &f.events)
            .find_map(|e| match e {
                EventSource::Schedule(s) => Some(s.every),
                _ => None,
            })
            .ok_or(SoakError::Missing("sweeper schedule"))?;
        let horizon = (self.deadline + every * 2).min(Duration::from_secs(self.args.timeout));
        tracing::info!(
            stranded = stranded.len(),
            wait_s = horizon.saturating_sub(load_done.elapsed()).as_secs(),
            "orders undecided with the pipeline quiet: waiting for the sweeper"
        );
        let bar = crate::progress::bar(self.args.json, None, "{spinner} {msg}");
        bar.set_message(format!(
            "{} orders undecided: waiting for the sweeper's deadline",
            stranded.len()
        ));
        tokio::time::sleep_until((load_done + horizon).into()).await;
        bar.finish_and_clear();
        Ok(true)
    }

    /// Places every order, a few at a time, counting them into `placed`; each order a customer
    /// cancels is cancelled after its wait, meanwhile. What the API answered each placement (by
    /// order index) and each cancellation.
    async fn place(
        &self,
        api: &ApiClient,
        issuer: &LocalIssuer,
        workload: &Workload,
        placed: &AtomicU32,
        held: &AtomicBool,
    ) -> (BTreeMap<u32, Answer>, Vec<Answer>) {
        let bar = crate::progress::bar(
            self.args.json,
            Some(u64::from(self.args.orders)),
            "{spinner} placing orders {pos}/{len} {wide_bar}",
        );
        let mut cancels = Vec::new();
        let answers: BTreeMap<u32, Answer> = futures::stream::iter(&workload.orders)
            .map(|order| {
                let key = order.idempotency_key(self.seed);
                async move {
                    while held.load(Ordering::SeqCst) {
                        tokio::time::sleep(PACE_CHECK).await;
                    }
                    // Minted as the customer comes, so that no token outlives a long soak.
                    let token = match issuer.token(&order.customer, &CUSTOMER_SCOPES) {
                        Ok(token) => token,
                        Err(err) => {
                            tracing::error!(customer = %order.customer, error = %ripple_kit::telemetry::error_chain(&err), "no token: the order is not placed");
                            placed.fetch_add(1, Ordering::SeqCst);
                            return (order.index, Answer::none(), None);
                        }
                    };
                    let answer = api.place(&token, &order.body, &key).await;
                    placed.fetch_add(1, Ordering::SeqCst);
                    let cancel = match (order.cancel_after, answer.order_id()) {
                        (Some(after), Some(id)) => {
                            let (api, id) = (api.clone(), id.to_owned());
                            Some(tokio::spawn(async move {
                                tokio::time::sleep(after).await;
                                api.cancel(&token, &id).await
                            }))
                        }
                        _ => None,
                    };
                    (order.index, answer, cancel)
                }
            })
            .buffer_unordered(self.args.concurrency.max(1))
            .map(|(index, answer, cancel)| {
                bar.inc(1);
                cancels.extend(cancel);
                (index, answer)
            })
            .collect()
            .await;
        bar.finish_and_clear();
        let cancels = futures::future::join_all(cancels)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        (answers, cancels)
    }

    fn report(
        &self,
        plan: &Plan,
        driven: &Driven,
        figures: report::Figures,
        invariants: &[invariants::Invariant],
    ) -> SoakReport {
        let invariants: Vec<report::InvariantReport> = invariants
            .iter()
            .map(report::InvariantReport::from)
            .collect();
        let faults = plan.injected();
        SoakReport {
            seed: self.seed,
            orders: self.args.orders,
            stack: self.deployment.stack_name.clone(),
            time_scale: self.scale.factor,
            faults_injected: faults.values().sum(),
            faults,
            violations: invariants.iter().map(|i| i.violations).sum(),
            invariants,
            figures,
            compressed: Vec::new(),
            load_ms: millis(driven.load),
            settle_ms: millis(driven.settle),
            wall_ms: 0,
            rerun: rerun_command(self.args, self.seed),
        }
    }
}

/// The URLs of the queues functions consume, in a fixed order (by logical id).
fn consumed_queue_urls(deployment: &Deployment) -> Vec<String> {
    let mut consumed = truth::consumed_queues(deployment);
    consumed.sort();
    consumed.dedup();
    consumed
        .iter()
        .filter_map(|id| deployment.queue(id).map(|q| q.url.clone()))
        .collect()
}

/// Fires what is due as the load goes: the SNS outage and the poison, each once its number of
/// orders is placed; whatever is left once the load is done.
async fn cues(
    placed: Arc<AtomicU32>,
    plan: Arc<Plan>,
    mut poison: Vec<workload::Poison>,
    queues: Vec<String>,
    sqs: aws_sdk_sqs::Client,
    load_done: CancellationToken,
) {
    poison.sort_by_key(|p| p.after_orders);
    let mut poison = poison.into_iter().peekable();
    loop {
        let done = load_done.is_cancelled();
        let now = placed.load(Ordering::SeqCst);
        if plan.outage().is_some_and(|o| now >= o.after_orders) {
            plan.start_outage();
        }
        while let Some(next) = poison.next_if(|p| done || p.after_orders <= now) {
            let Some(url) = queues.get(next.queue) else {
                continue;
            };
            let mut send = sqs.send_message().queue_url(url).message_body(&next.body);
            if url.ends_with(".fifo") {
                // A poison message in a group of its own: it holds up no aggregate's events.
                send = send
                    .message_group_id(&next.token)
                    .message_deduplication_id(&next.token);
            }
            match send.send().await {
                Ok(_) => plan.count(plan::FaultKind::Poison),
                Err(err) => {
                    tracing::error!(token = %next.token, error = %ripple_kit::telemetry::error_chain(&err), "could not send a poison message");
                }
            }
        }
        if done {
            return;
        }
        tokio::select! {
            () = load_done.cancelled() => {}
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

/// How often the pacer looks at the queues, and a held-back order at the pacer.
const PACE_CHECK: Duration = Duration::from_millis(250);

/// Holds the load back (`held`) while the consumed queues hold more than `limit` messages. The
/// local emulators scan a whole queue on every receive: with deep queues every call slows down
/// until functions time out for the emulators' sake, and the soak would measure their saturation
/// instead of the fault plan.
async fn pace(
    sqs: aws_sdk_sqs::Client,
    queues: Vec<String>,
    limit: u64,
    held: Arc<AtomicBool>,
    load_done: CancellationToken,
) {
    while limit > 0 && !load_done.is_cancelled() {
        let mut backlog = 0;
        for url in &queues {
            backlog += crate::runtime::sqs::depth(&sqs, url).await.unwrap_or(0);
        }
        held.store(backlog > limit, Ordering::SeqCst);
        tokio::select! {
            () = load_done.cancelled() => {}
            () = tokio::time::sleep(PACE_CHECK) => {}
        }
    }
    held.store(false, Ordering::SeqCst);
}

/// Every status the API answered, over every attempt.
fn answer_counts<'a>(answers: impl Iterator<Item = &'a Answer>) -> BTreeMap<u16, u64> {
    let mut counts = BTreeMap::new();
    for status in answers.flat_map(|a| &a.statuses) {
        *counts.entry(*status).or_insert(0) += 1;
    }
    counts
}

/// Waits for the pipeline to go quiet within `--timeout`; why not, if it did not.
async fn wait_for_quiet(args: &SoakArgs, runtime: &Runtime) -> Option<String> {
    let bar = crate::progress::bar(args.json, None, "{spinner} waiting for the pipeline: {msg}");
    let waited = runtime
        .wait_until_quiet(Duration::from_secs(args.timeout), |activity, stats| {
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
    waited.err().map(|err| err.to_string())
}

#[cfg(test)]
mod tests;
