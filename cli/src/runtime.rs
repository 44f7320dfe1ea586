//! The in-process Lambda emulation: functions invoked with JSON payloads exactly as Lambda sends
//! them, behind emulated event source mappings (SQS polling, DynamoDB stream reading) and an HTTP
//! API, with counters of what flowed and a graceful stop.
//!
//! A handler runs in this process but sees what it would see in Lambda: the payload is built as
//! Lambda builds it and goes through JSON, so the handler's own deserialisation is exercised, its
//! context carries a request id, a deadline from its timeout and its function ARN, and its
//! response is read back as Lambda reads it (partial batch failures included).

pub mod filter;
pub mod http;
pub mod sqs;
pub mod stream;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::FutureExt as _;
use futures::future::BoxFuture;
use lambda_runtime::{Context, LambdaEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::provision::{Clients, DeployedFunction, Deployment};
use crate::template::EventSource;

/// A function as the runner calls it: a Lambda JSON payload and a context in, the JSON response
/// out.
pub type Invoke = Arc<
    dyn Fn(Value, Context) -> BoxFuture<'static, Result<Value, lambda_runtime::Error>>
        + Send
        + Sync,
>;

/// Wraps a typed handler (`LambdaEvent<In>` → `Out`) so that it speaks JSON, as the Lambda
/// runtime does: the payload is deserialised into `In` and the result serialised back.
pub fn invoke_fn<F, Fut, In, Out>(handler: F) -> Invoke
where
    F: Fn(LambdaEvent<In>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Out, lambda_runtime::Error>> + Send + 'static,
    In: DeserializeOwned + Send + 'static,
    Out: Serialize + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(
        move |payload: Value, context: Context| match serde_json::from_value::<In>(payload) {
            Err(err) => {
                let err: lambda_runtime::Error =
                    format!("failed to deserialize the incoming data into the function's payload type: {err}")
                        .into();
                async move { Err(err) }.boxed()
            }
            Ok(input) => {
                let future = handler(LambdaEvent::new(input, context));
                async move {
                    let output = future.await?;
                    Ok(serde_json::to_value(output)?)
                }
                .boxed()
            }
        },
    )
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The handler returned an error (Lambda's "function error").
    #[error("{function} returned an error")]
    Failed {
        /// The function.
        function: String,
        /// The handler's error.
        #[source]
        source: lambda_runtime::Error,
    },
    /// The handler ran past its timeout.
    #[error("{function} timed out after {} s", timeout.as_secs_f64())]
    TimedOut {
        /// The function.
        function: String,
        /// Its timeout.
        timeout: Duration,
    },
    /// The handler panicked (Lambda reports the runtime exiting).
    #[error("{function} panicked: {message}")]
    Panicked {
        /// The function.
        function: String,
        /// The panic message.
        message: String,
    },
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A handler was given for a function the deployment does not have.
    #[error("no function {0} in the deployment")]
    UnknownFunction(String),
    /// An event source refers to a resource that was not provisioned.
    #[error(
        "{function}: event source {source_name} refers to {resource}, which was not provisioned"
    )]
    MissingResource {
        /// The function.
        function: String,
        /// The event's name.
        source_name: String,
        /// The missing resource.
        resource: String,
    },
    /// The HTTP API could not listen.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Counters of one function's traffic.
#[derive(Debug, Default)]
pub struct FunctionStats {
    /// Invocations started.
    pub invocations: AtomicU64,
    /// Invocations that returned an error, timed out or panicked.
    pub errors: AtomicU64,
    /// HTTP requests routed to it.
    pub http_requests: AtomicU64,
    /// SQS messages received for it (each receive counts).
    pub sqs_received: AtomicU64,
    /// SQS messages it handled (deleted from the queue).
    pub sqs_succeeded: AtomicU64,
    /// SQS messages it failed (left for redelivery).
    pub sqs_failed: AtomicU64,
    /// SQS messages dropped by its filter criteria.
    pub sqs_filtered: AtomicU64,
    /// Stream records read for it.
    pub stream_received: AtomicU64,
    /// Stream records it handled.
    pub stream_succeeded: AtomicU64,
    /// Stream records dropped by its filter criteria.
    pub stream_filtered: AtomicU64,
    /// Retries of stream batches.
    pub stream_retries: AtomicU64,
    /// Stream records given up on and sent to the on-failure destination.
    pub stream_discarded: AtomicU64,
}

/// A plain copy of [`FunctionStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FunctionSnapshot {
    /// See [`FunctionStats::invocations`].
    pub invocations: u64,
    /// See [`FunctionStats::errors`].
    pub errors: u64,
    /// See [`FunctionStats::http_requests`].
    pub http_requests: u64,
    /// See [`FunctionStats::sqs_received`].
    pub sqs_received: u64,
    /// See [`FunctionStats::sqs_succeeded`].
    pub sqs_succeeded: u64,
    /// See [`FunctionStats::sqs_failed`].
    pub sqs_failed: u64,
    /// See [`FunctionStats::sqs_filtered`].
    pub sqs_filtered: u64,
    /// See [`FunctionStats::stream_received`].
    pub stream_received: u64,
    /// See [`FunctionStats::stream_succeeded`].
    pub stream_succeeded: u64,
    /// See [`FunctionStats::stream_filtered`].
    pub stream_filtered: u64,
    /// See [`FunctionStats::stream_retries`].
    pub stream_retries: u64,
    /// See [`FunctionStats::stream_discarded`].
    pub stream_discarded: u64,
}

impl FunctionStats {
    /// The counters now.
    pub fn snapshot(&self) -> FunctionSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FunctionSnapshot {
            invocations: get(&self.invocations),
            errors: get(&self.errors),
            http_requests: get(&self.http_requests),
            sqs_received: get(&self.sqs_received),
            sqs_succeeded: get(&self.sqs_succeeded),
            sqs_failed: get(&self.sqs_failed),
            sqs_filtered: get(&self.sqs_filtered),
            stream_received: get(&self.stream_received),
            stream_succeeded: get(&self.stream_succeeded),
            stream_filtered: get(&self.stream_filtered),
            stream_retries: get(&self.stream_retries),
            stream_discarded: get(&self.stream_discarded),
        }
    }
}

pub(crate) fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

/// Counters of everything that flowed through the runtime, shareable across tasks.
#[derive(Debug, Default)]
pub struct Stats {
    /// HTTP requests received.
    pub http_requests: AtomicU64,
    /// HTTP requests that matched no route.
    pub http_unmatched: AtomicU64,
    in_flight: AtomicI64,
    functions: BTreeMap<String, Arc<FunctionStats>>,
}

/// A plain copy of [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// See [`Stats::http_requests`].
    pub http_requests: u64,
    /// See [`Stats::http_unmatched`].
    pub http_unmatched: u64,
    /// Per function, by logical id.
    pub functions: BTreeMap<String, FunctionSnapshot>,
}

impl StatsSnapshot {
    /// The sum over every function.
    pub fn total(&self) -> FunctionSnapshot {
        self.functions
            .values()
            .fold(FunctionSnapshot::default(), |a, b| FunctionSnapshot {
                invocations: a.invocations + b.invocations,
                errors: a.errors + b.errors,
                http_requests: a.http_requests + b.http_requests,
                sqs_received: a.sqs_received + b.sqs_received,
                sqs_succeeded: a.sqs_succeeded + b.sqs_succeeded,
                sqs_failed: a.sqs_failed + b.sqs_failed,
                sqs_filtered: a.sqs_filtered + b.sqs_filtered,
                stream_received: a.stream_received + b.stream_received,
                stream_succeeded: a.stream_succeeded + b.stream_succeeded,
                stream_filtered: a.stream_filtered + b.stream_filtered,
                stream_retries: a.stream_retries + b.stream_retries,
                stream_discarded: a.stream_discarded + b.stream_discarded,
            })
    }
}

impl Stats {
    /// Counters for these functions (by logical id).
    pub fn new<'a>(functions: impl IntoIterator<Item = &'a str>) -> Self {
        Stats {
            functions: functions
                .into_iter()
                .map(|id| (id.to_owned(), Arc::default()))
                .collect(),
            ..Stats::default()
        }
    }

    /// One function's counters.
    pub fn function(&self, logical_id: &str) -> Option<&Arc<FunctionStats>> {
        self.functions.get(logical_id)
    }

    /// Invocations running right now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Every counter now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            http_requests: self.http_requests.load(Ordering::Relaxed),
            http_unmatched: self.http_unmatched.load(Ordering::Relaxed),
            functions: self
                .functions
                .iter()
                .map(|(id, s)| (id.clone(), s.snapshot()))
                .collect(),
        }
    }
}

/// One function running in this process.
pub struct LocalFunction {
    /// Its logical id.
    pub logical_id: String,
    /// Its function name.
    pub name: String,
    /// Its ARN (the context's invoked function ARN).
    pub arn: String,
    /// Its timeout.
    pub timeout: Duration,
    memory_size: i32,
    invoke: Invoke,
    stats: Arc<FunctionStats>,
    all: Arc<Stats>,
}

impl std::fmt::Debug for LocalFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFunction")
            .field("logical_id", &self.logical_id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl LocalFunction {
    /// A function of `deployment` behind `invoke`, counting into `stats`.
    pub fn new(function: &DeployedFunction, invoke: Invoke, stats: Arc<Stats>) -> Self {
        let own = stats
            .function(&function.logical_id)
            .cloned()
            .unwrap_or_default();
        LocalFunction {
            logical_id: function.logical_id.clone(),
            name: function.name.clone(),
            arn: function.arn.clone(),
            timeout: function.timeout,
            memory_size: function
                .environment
                .get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                .and_then(|m| m.parse().ok())
                .unwrap_or(128),
            invoke,
            stats: own,
            all: stats,
        }
    }

    /// Its counters.
    pub fn stats(&self) -> &FunctionStats {
        &self.stats
    }

    /// A fresh invocation context, as the Lambda runtime API would give it.
    pub fn context(&self) -> Context {
        let now = SystemTime::now();
        let deadline = (now + self.timeout)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let epoch = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut context = Context::default();
        context.request_id = uuid::Uuid::new_v4().to_string();
        context.deadline = deadline;
        context.invoked_function_arn = self.arn.clone();
        context.xray_trace_id = Some(format!(
            "Root=1-{epoch:08x}-{:024x};Parent={:016x};Sampled=1",
            fastrand::u128(..) >> 32,
            fastrand::u64(..)
        ));
        context.env_config = Arc::new(lambda_runtime::Config {
            function_name: self.name.clone(),
            memory: self.memory_size,
            version: "$LATEST".to_owned(),
            log_stream: format!("local/[$LATEST]{}", context.request_id.replace('-', "")),
            log_group: format!("/aws/lambda/{}", self.name),
        });
        context
    }

    /// Invokes the function with a Lambda payload; errors, timeouts and panics are reported as
    /// Lambda reports them, never propagated into the caller.
    pub async fn invoke(&self, payload: Value) -> Result<Value, InvokeError> {
        let context = self.context();
        let request_id = context.request_id.clone();
        self.stats.invocations.fetch_add(1, Ordering::Relaxed);
        self.all.in_flight.fetch_add(1, Ordering::SeqCst);
        let call = AssertUnwindSafe((self.invoke)(payload, context)).catch_unwind();
        let outcome = tokio::time::timeout(self.timeout, call).await;
        self.all.in_flight.fetch_sub(1, Ordering::SeqCst);
        let result = match outcome {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(source))) => Err(InvokeError::Failed {
                function: self.logical_id.clone(),
                source,
            }),
            Ok(Err(panic)) => Err(InvokeError::Panicked {
                function: self.logical_id.clone(),
                message: panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned()),
            }),
            Err(_) => Err(InvokeError::TimedOut {
                function: self.logical_id.clone(),
                timeout: self.timeout,
            }),
        };
        if let Err(err) = &result {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(function = %self.logical_id, request_id, error = %ripple_kit::telemetry::error_chain(err), "invocation failed");
        }
        result
    }
}

/// How the runtime is started.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Port of the HTTP API on 127.0.0.1 (0: any free port); `None` starts no HTTP server.
    pub http_port: Option<u16>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { http_port: Some(0) }
    }
}

/// Concurrent pollers per SQS mapping. Lambda starts with five; two keep the emulator light
/// while batches of one queue still run concurrently, as they do in Lambda.
const SQS_POLLERS: usize = 2;

/// What is still moving when the runtime is asked whether it is quiet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Activity {
    /// Invocations running.
    pub in_flight: i64,
    /// Messages in each consumed queue (visible, in flight or delayed), by queue name.
    pub queued: BTreeMap<String, u64>,
    /// Whether some stream has records not yet handled (or has not been read lately).
    pub streams_behind: bool,
}

impl Activity {
    /// Nothing is moving.
    pub fn is_quiet(&self) -> bool {
        self.in_flight == 0 && !self.streams_behind && self.queued.values().all(|n| *n == 0)
    }

    /// A one-line digest for progress displays.
    pub fn brief(&self) -> String {
        let mut parts = vec![
            format!("{} running", self.in_flight),
            format!("{} queued", self.queued_total()),
        ];
        if self.streams_behind {
            parts.push("stream behind".to_owned());
        }
        parts.join(", ")
    }

    /// Messages waiting in consumed queues.
    pub fn queued_total(&self) -> u64 {
        self.queued.values().sum()
    }
}

impl std::fmt::Display for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.in_flight > 0 {
            parts.push(format!("{} invocation(s) running", self.in_flight));
        }
        for (queue, n) in &self.queued {
            if *n > 0 {
                parts.push(format!("{n} message(s) in {queue}"));
            }
        }
        if self.streams_behind {
            parts.push("stream records not yet handled".to_owned());
        }
        if parts.is_empty() {
            f.write_str("quiet")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// The pipeline did not settle in time.
#[derive(Debug, thiserror::Error)]
#[error("the pipeline was still busy after {:.1} s: {activity}", waited.as_secs_f64())]
pub struct NotQuiet {
    /// How long it waited.
    pub waited: Duration,
    /// What was still moving.
    pub activity: Activity,
}

/// The running functions, their event source mappings and the HTTP API.
pub struct Runtime {
    clients: Clients,
    stats: Arc<Stats>,
    functions: BTreeMap<String, Arc<LocalFunction>>,
    http_addr: Option<SocketAddr>,
    consumed_queues: Vec<(String, String)>,
    streams: Vec<Arc<stream::Progress>>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Runtime {
    /// Starts `handlers` (by logical id) behind the event sources the template gives them.
    /// Functions of the deployment without a handler are not run.
    pub async fn start(
        clients: &Clients,
        deployment: &Deployment,
        handlers: HashMap<String, Invoke>,
        options: RunOptions,
    ) -> Result<Self, RuntimeError> {
        for id in handlers.keys() {
            if deployment.function(id).is_none() {
                return Err(RuntimeError::UnknownFunction(id.clone()));
            }
        }
        let stats = Arc::new(Stats::new(deployment.functions.keys().map(String::as_str)));
        let stop = CancellationToken::new();
        let mut functions = BTreeMap::new();
        for (id, invoke) in handlers {
            if let Some(deployed) = deployment.function(&id) {
                let function = LocalFunction::new(deployed, invoke, stats.clone());
                functions.insert(id, Arc::new(function));
            }
        }
        let mut runtime = Runtime {
            clients: clients.clone(),
            stats: stats.clone(),
            functions,
            http_addr: None,
            consumed_queues: Vec::new(),
            streams: Vec::new(),
            stop,
            tasks: Vec::new(),
        };
        let mut routes = Vec::new();
        let functions: Vec<_> = runtime.functions.values().cloned().collect();
        for function in functions {
            let Some(deployed) = deployment.function(&function.logical_id) else {
                continue;
            };
            for event in &deployed.events {
                runtime.start_source(deployment, &function, event, &mut routes)?;
            }
        }
        if let Some(port) = options.http_port
            && !routes.is_empty()
        {
            let api = http::HttpApi::new(routes, deployment, stats);
            let (addr, task) = api.serve(port, runtime.stop.clone()).await?;
            tracing::info!(url = %format!("http://{addr}"), "HTTP API listening");
            runtime.http_addr = Some(addr);
            runtime.tasks.push(task);
        }
        Ok(runtime)
    }

    fn start_source(
        &mut self,
        deployment: &Deployment,
        function: &Arc<LocalFunction>,
        event: &EventSource,
        routes: &mut Vec<(crate::template::HttpRoute, Arc<LocalFunction>)>,
    ) -> Result<(), RuntimeError> {
        let missing = |name: &str, resource: &str| RuntimeError::MissingResource {
            function: function.logical_id.clone(),
            source_name: name.to_owned(),
            resource: resource.to_owned(),
        };
        match event {
            EventSource::Sqs(source) => {
                let queue = deployment
                    .queue(&source.queue)
                    .ok_or_else(|| missing(&source.name, &source.queue))?;
                self.consumed_queues
                    .push((queue.name.clone(), queue.url.clone()));
                let mapping = Arc::new(sqs::SqsMapping {
                    sqs: self.clients.sqs.clone(),
                    function: function.clone(),
                    queue_url: queue.url.clone(),
                    queue_arn: queue.arn.clone(),
                    region: deployment.region.clone(),
                    batch_size: source.batch_size,
                    report_batch_item_failures: source.report_batch_item_failures,
                    filters: source.filters.clone(),
                });
                tracing::info!(function = %function.logical_id, queue = %queue.name, "polling queue");
                for _ in 0..SQS_POLLERS {
                    self.tasks
                        .push(tokio::spawn(mapping.clone().run(self.stop.clone())));
                }
            }
            EventSource::DynamoDb(source) => {
                let table = deployment
                    .table(&source.table)
                    .ok_or_else(|| missing(&source.name, &source.table))?;
                let stream_arn = table.stream_arn.clone().ok_or_else(|| {
                    missing(&source.name, &format!("the stream of {}", table.name))
                })?;
                let on_failure = match &source.on_failure {
                    Some(id) => Some(
                        deployment
                            .queue(id)
                            .ok_or_else(|| missing(&source.name, id))?
                            .url
                            .clone(),
                    ),
                    None => None,
                };
                let progress = Arc::new(stream::Progress::default());
                self.streams.push(progress.clone());
                let mapping = stream::StreamMapping {
                    streams: self.clients.streams.clone(),
                    sqs: self.clients.sqs.clone(),
                    function: function.clone(),
                    stream_arn,
                    region: deployment.region.clone(),
                    source: source.clone(),
                    on_failure,
                    progress,
                };
                tracing::info!(function = %function.logical_id, table = %table.name, "reading stream");
                self.tasks
                    .push(tokio::spawn(mapping.run(self.stop.clone())));
            }
            EventSource::HttpApi(route) => routes.push((route.clone(), function.clone())),
            EventSource::Other { name, event_type } => {
                tracing::warn!(function = %function.logical_id, event = %name, r#type = %event_type, "event type not emulated; skipped");
            }
        }
        Ok(())
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// A running function, to invoke directly.
    pub fn function(&self, logical_id: &str) -> Option<&Arc<LocalFunction>> {
        self.functions.get(logical_id)
    }

    /// Where the HTTP API listens.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The HTTP API's base URL (`http://127.0.0.1:<port>`).
    pub fn http_url(&self) -> Option<String> {
        self.http_addr.map(|a| format!("http://{a}"))
    }

    /// What is moving now. A stream counts as caught up only if every shard had an empty
    /// read that started after `since`.
    pub async fn activity(&self, since: Instant) -> Activity {
        let mut queued = BTreeMap::new();
        for (name, url) in &self.consumed_queues {
            queued.insert(
                name.clone(),
                sqs::depth(&self.clients.sqs, url).await.unwrap_or(1),
            );
        }
        Activity {
            in_flight: self.stats.in_flight(),
            queued,
            streams_behind: !self.streams.iter().all(|s| s.caught_up_since(since)),
        }
    }

    /// Waits until nothing moves: no invocation running, every consumed queue empty (in-flight
    /// messages included), no counter changing, and every stream read to its end after the
    /// counters last changed. `on_check` sees each check (for progress display).
    pub async fn wait_until_quiet(
        &self,
        limit: Duration,
        mut on_check: impl FnMut(&Activity, &StatsSnapshot),
    ) -> Result<Duration, NotQuiet> {
        const CHECK: Duration = Duration::from_millis(300);
        let started = Instant::now();
        let mut previous: Option<(Instant, StatsSnapshot)> = None;
        // Since when the counters have not moved. Every write to a table happens inside an
        // invocation (or before the wait), so a stream read that started after this instant
        // and came back empty proves the stream caught up.
        let mut still_since: Option<Instant> = None;
        loop {
            let checked_at = Instant::now();
            let snapshot = self.stats.snapshot();
            let unchanged = previous.as_ref().is_some_and(|(_, s)| *s == snapshot);
            let candidate = if unchanged {
                still_since.or(previous.as_ref().map(|(t, _)| *t))
            } else {
                None
            };
            let activity = self.activity(candidate.unwrap_or(checked_at)).await;
            on_check(&activity, &snapshot);
            still_since =
                candidate.filter(|_| activity.in_flight == 0 && activity.queued_total() == 0);
            if still_since.is_some() && activity.is_quiet() {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                return Err(NotQuiet {
                    waited: started.elapsed(),
                    activity,
                });
            }
            previous = Some((checked_at, snapshot));
            tokio::time::sleep(CHECK).await;
        }
    }

    /// Stops polling and serving; invocations already running finish first.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            if let Err(err) = task.await
                && err.is_panic()
            {
                tracing::error!(error = %err, "a runtime task panicked");
            }
        }
    }
}
