//! The in-process Lambda emulation: functions invoked with JSON payloads exactly as Lambda sends
//! them, behind emulated event source mappings (SQS polling, DynamoDB stream reading), EventBridge
//! schedules and an HTTP API, with counters of what flowed and a graceful stop.
//!
//! A handler runs in this process but sees what it would see in Lambda: the payload is built as
//! Lambda builds it and goes through JSON, so the handler's own deserialisation is exercised, its
//! context carries a request id, a deadline from its timeout and its function ARN, and its
//! response is read back as Lambda reads it (partial batch failures included).
//!
//! Here the [`Runtime`] starts the mappings and the API and knows when the pipeline is quiet; a
//! function as it is called is in `function`, the counters in `stats`, and each event source in
//! [`sqs`], [`stream`], [`http`] and [`schedule`].

pub mod filter;
mod function;
pub mod http;
pub mod issuer;
mod listen;
pub mod schedule;
pub mod sqs;
mod stats;
pub mod stream;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::provision::{Clients, Deployment};
use crate::template::{EventSource, HttpRoute, SqsSource, StreamSource};

pub use function::{Invoke, InvokeError, LocalFunction, invoke_fn};
pub(crate) use stats::add;
pub use stats::{FunctionSnapshot, FunctionStats, Stats, StatsSnapshot};

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
    /// The local issuer could not make its key.
    #[error("cannot start the local token issuer")]
    Issuer(#[source] issuer::IssuerError),
    /// The HTTP API could not read the local issuer's keys.
    #[error("the HTTP API cannot check tokens")]
    Discovery(#[from] http::auth::DiscoveryError),
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

/// How the runtime is started.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Port of the HTTP API on 127.0.0.1 (0: any free port); `None` starts no HTTP server.
    pub http_port: Option<u16>,
    /// Port of the local token issuer on 127.0.0.1 (0: any free port), started with an HTTP
    /// server whose routes need tokens.
    pub issuer_port: u16,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            http_port: Some(0),
            issuer_port: 0,
        }
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
    /// The SQS client of the queue mappings, counted apart: on AWS these are Lambda's pollers'
    /// requests, billed to the account.
    polling_sqs: aws_sdk_sqs::Client,
    event_sources: ripple_kit::requests::RequestCounter,
    stats: Arc<Stats>,
    functions: BTreeMap<String, Arc<LocalFunction>>,
    http_addr: Option<SocketAddr>,
    issuer: Option<Arc<issuer::LocalIssuer>>,
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
        let event_sources = ripple_kit::requests::RequestCounter::new();
        let polling_sqs = aws_sdk_sqs::Client::from_conf(
            clients
                .sqs
                .config()
                .to_builder()
                .interceptor(event_sources.clone())
                .build(),
        );
        let mut runtime = Runtime {
            clients: clients.clone(),
            polling_sqs,
            event_sources,
            stats: stats.clone(),
            functions,
            http_addr: None,
            issuer: None,
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
            let authorizer = runtime.start_issuer(&routes, options.issuer_port).await?;
            let api = http::HttpApi::new(routes, deployment, authorizer, stats);
            let (addr, task) = api.serve(port, runtime.stop.clone()).await?;
            tracing::info!(url = %format!("http://{addr}"), "HTTP API listening");
            runtime.http_addr = Some(addr);
            runtime.tasks.push(task);
        }
        Ok(runtime)
    }

    /// The local issuer, when a route needs tokens, and the authorizer that trusts it in place of
    /// the template's issuer (which, like Cognito, is not emulated).
    async fn start_issuer(
        &mut self,
        routes: &[(HttpRoute, Arc<LocalFunction>)],
        port: u16,
    ) -> Result<Option<http::JwtAuthorizer>, RuntimeError> {
        let protected = routes
            .iter()
            .any(|(route, _)| route.authorization != crate::template::Authorization::None);
        if !protected {
            return Ok(None);
        }
        let (issuer, task) = issuer::LocalIssuer::start(port, self.stop.clone()).await?;
        self.tasks.push(task);
        let audiences = vec![issuer::LOCAL_AUDIENCE.to_owned()];
        let authorizer = http::JwtAuthorizer::discover(issuer.url(), audiences).await?;
        tracing::info!(url = %issuer.url(), "local token issuer listening");
        self.issuer = Some(issuer);
        Ok(Some(authorizer))
    }

    fn start_source(
        &mut self,
        deployment: &Deployment,
        function: &Arc<LocalFunction>,
        event: &EventSource,
        routes: &mut Vec<(HttpRoute, Arc<LocalFunction>)>,
    ) -> Result<(), RuntimeError> {
        match event {
            EventSource::Sqs(source) => self.start_sqs(deployment, function, source),
            EventSource::DynamoDb(source) => self.start_stream(deployment, function, source),
            EventSource::HttpApi(route) => {
                routes.push((route.clone(), function.clone()));
                Ok(())
            }
            EventSource::Schedule(source) => {
                tracing::info!(function = %function.logical_id, every = ?source.every, "scheduled");
                let mapping = schedule::ScheduleMapping {
                    function: function.clone(),
                    source: source.clone(),
                    region: deployment.region.clone(),
                    stack_name: deployment.stack_name.clone(),
                };
                self.tasks
                    .push(tokio::spawn(mapping.run(self.stop.clone())));
                Ok(())
            }
            EventSource::Other { name, event_type } => {
                tracing::warn!(function = %function.logical_id, event = %name, r#type = %event_type, "event type not emulated; skipped");
                Ok(())
            }
        }
    }

    /// [`SQS_POLLERS`] pollers of the mapping's queue.
    fn start_sqs(
        &mut self,
        deployment: &Deployment,
        function: &Arc<LocalFunction>,
        source: &SqsSource,
    ) -> Result<(), RuntimeError> {
        let queue = deployment
            .queue(&source.queue)
            .ok_or_else(|| missing(function, &source.name, &source.queue))?;
        self.consumed_queues
            .push((queue.name.clone(), queue.url.clone()));
        let mapping = Arc::new(sqs::SqsMapping {
            sqs: self.polling_sqs.clone(),
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
        Ok(())
    }

    /// The reader of the mapping's table stream.
    fn start_stream(
        &mut self,
        deployment: &Deployment,
        function: &Arc<LocalFunction>,
        source: &StreamSource,
    ) -> Result<(), RuntimeError> {
        let table = deployment
            .table(&source.table)
            .ok_or_else(|| missing(function, &source.name, &source.table))?;
        let stream_arn = table.stream_arn.clone().ok_or_else(|| {
            missing(
                function,
                &source.name,
                &format!("the stream of {}", table.name),
            )
        })?;
        let on_failure = match &source.on_failure {
            Some(id) => Some(
                deployment
                    .queue(id)
                    .ok_or_else(|| missing(function, &source.name, id))?
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
        Ok(())
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The queue mappings' SQS requests (receives, deletes), counted since the start.
    pub fn event_source_requests(&self) -> ripple_kit::requests::RequestCounts {
        self.event_sources.snapshot()
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

    /// The local token issuer, when the HTTP API has routes that need tokens.
    pub fn issuer(&self) -> Option<&Arc<issuer::LocalIssuer>> {
        self.issuer.as_ref()
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

fn missing(function: &LocalFunction, source_name: &str, resource: &str) -> RuntimeError {
    RuntimeError::MissingResource {
        function: function.logical_id.clone(),
        source_name: source_name.to_owned(),
        resource: resource.to_owned(),
    }
}
