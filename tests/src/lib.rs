//! Harness for the end-to-end tests: a stack of its own per test, provisioned from
//! `template.yaml` into whatever `AWS_ENDPOINT_URL` points at (the Makefile starts the local
//! emulators), functions run in-process by the same runtime as `ripple dev`.
//!
//! Every stack has a unique name, so tests run in parallel and never see each other's data or
//! depend on leftovers. A missing emulator is a failure with a hint, never a skip.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a harness: a failed setup should panic loudly

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use ripple::provision::{self, Clients, Deployment};
use ripple::runtime::{Invoke, RunOptions, Runtime};
use ripple::template::Template;
use ripple_kit::store::DynamoEventStore;
use ripple_kit::{Envelope, EventStore};
use serde_json::Value;

/// Every function of the template, by binary.
pub const ALL_FUNCTIONS: &[&str] = &[
    "orders-api",
    "outbox-publisher",
    "inventory",
    "payments",
    "order-saga",
    "projections",
    "notifications",
    "sweeper",
];

/// How long the whole pipeline may take to go quiet.
pub const QUIET: Duration = Duration::from_secs(120);

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A sample event from `events/`, parsed.
pub fn fixture(name: &str) -> Value {
    let path = repo_root().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The envelope the first message of a sample SQS event in `events/` carries, as if just
/// published (`time` now: consumers refuse events older than their replay window).
pub fn fixture_envelope(name: &str) -> Envelope {
    let event = fixture(name);
    let body = event["Records"][0]["body"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} is not an SQS event"));
    let mut envelope = Envelope::from_json(body).unwrap_or_else(|e| panic!("{name}: {e}"));
    envelope.time = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3);
    envelope
}

/// A sample SQS event from `events/` whose first message carries its envelope as if just
/// published (see [`fixture_envelope`]).
pub fn fixture_delivery(name: &str) -> Value {
    let mut event = fixture(name);
    event["Records"][0]["body"] = Value::String(fixture_envelope(name).to_json());
    event
}

/// The price every sku of the tests' catalog has, in EUR cents.
pub const UNIT_PRICE_CENTS: u64 = 1250;

/// A short random suffix for names that must not collide between tests and runs.
pub fn unique(prefix: &str) -> String {
    let suffix: String = (0..6)
        .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
        .collect();
    format!("{prefix}-{suffix}")
}

/// The stock of a stack, through inventory's event store.
pub struct Inventory {
    store: DynamoEventStore,
}

impl Inventory {
    /// Adds `quantity` units of `sku`.
    pub async fn restock(&self, sku: &str, quantity: u64) -> Result<(), ripple_kit::StoreError> {
        inventory::restock(&self.store, sku, quantity).await
    }

    /// The current stock of `sku` (its levels) and how many events its stream holds.
    pub async fn stock(
        &self,
        sku: &str,
    ) -> Result<(domain::inventory::Stock, u64), ripple_kit::StoreError> {
        let stock = inventory::stock(&self.store, sku).await?;
        Ok((stock.state, stock.version))
    }
}

/// One stack of the template in the emulator, deleted by [`TestStack::teardown`].
pub struct TestStack {
    /// The SDK configuration (endpoints from the environment).
    pub aws: SdkConfig,
    /// Clients for every service.
    pub clients: Clients,
    /// What was created.
    pub deployment: Deployment,
}

impl TestStack {
    /// Provisions `template.yaml` as a new stack named after `test`, with the parameter
    /// overrides of the environment (`RIPPLE_PARAMETER_OVERRIDES`, e.g. `Ordering=fifo`).
    pub async fn deploy(test: &str) -> TestStack {
        Self::deploy_with(test, &[]).await
    }

    /// The same with `overrides` (name, value) over those of the environment.
    pub async fn deploy_with(test: &str, overrides: &[(&str, &str)]) -> TestStack {
        let aws = ripple_kit::config::load_sdk_config().await;
        let clients = Clients::new(&aws);
        if let Err(err) = provision::check_reachable(&clients).await {
            panic!(
                "the AWS endpoint is not reachable ({err}); run the tests with `make test`, which \
                 starts the local emulators, or set AWS_ENDPOINT_URL to LocalStack"
            );
        }
        let template =
            Template::from_file(repo_root().join("template.yaml")).expect("template.yaml parses");
        let stack = unique(&format!("t{}", test.replace('_', "-")));
        let mut parameters = provision::parameter_overrides().expect("RIPPLE_PARAMETER_OVERRIDES");
        parameters.extend(
            overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let resolver = template
            .resolver_with(provision::pseudo(&aws, &stack), &parameters)
            .unwrap_or_else(|e| panic!("parameters {parameters:?}: {e}"));
        let deployment = provision::provision_with(&clients, resolver)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "provisioning {stack}: {}",
                    ripple_kit::telemetry::error_chain(&e)
                )
            });
        TestStack {
            aws,
            clients,
            deployment,
        }
    }

    /// Deletes everything the stack created.
    pub async fn teardown(self) {
        if let Err(err) = provision::teardown(&self.aws, &self.deployment).await {
            eprintln!(
                "teardown of {} left something behind: {err}",
                self.deployment.stack_name
            );
        }
    }

    /// The physical name of a table of the template.
    pub fn table(&self, logical_id: &str) -> String {
        self.deployment
            .table(logical_id)
            .unwrap_or_else(|| panic!("no table {logical_id} in the deployment"))
            .name
            .clone()
    }

    /// The URL of a queue of the template.
    pub fn queue_url(&self, logical_id: &str) -> String {
        self.deployment
            .queue(logical_id)
            .unwrap_or_else(|| panic!("no queue {logical_id} in the deployment"))
            .url
            .clone()
    }

    /// Sends `body` to the queue `logical_id`, as SNS would: in a FIFO queue in the message group
    /// of its event's stream (or a group of its own, for a body that is not an event).
    pub async fn send(&self, logical_id: &str, body: String) {
        let url = self.queue_url(logical_id);
        let mut send = self.clients.sqs.send_message().queue_url(&url);
        if url.ends_with(".fifo") {
            let group =
                Envelope::from_json(&body).map_or_else(|_| unique("body"), |e| e.stream_key());
            send = send
                .message_group_id(group)
                .message_deduplication_id(uuid::Uuid::now_v7().to_string());
        }
        send.message_body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("SendMessage to {logical_id}: {e:?}"));
    }

    /// The event store of this stack.
    pub fn store(&self) -> DynamoEventStore {
        DynamoEventStore::new(self.clients.dynamodb.clone(), self.table("EventsTable"))
    }

    /// The environment the template gives a function.
    pub fn env(&self, logical_id: &str) -> HashMap<String, String> {
        self.deployment
            .function(logical_id)
            .unwrap_or_else(|| panic!("no function {logical_id}"))
            .environment
            .clone()
            .into_iter()
            .collect()
    }

    /// The stock of this stack, for seeding it and reading levels.
    pub fn inventory(&self) -> Inventory {
        let env = self.env("InventoryFunction");
        let config =
            inventory::Config::from_lookup(|k| env.get(k).cloned()).expect("inventory config");
        Inventory {
            store: DynamoEventStore::new(self.clients.dynamodb.clone(), config.events_table),
        }
    }

    /// Seeds stock: `units` of each sku.
    pub async fn restock(&self, levels: &[(&str, u64)]) {
        let inventory = self.inventory();
        for (sku, units) in levels {
            inventory.restock(sku, *units).await.expect("restock");
        }
    }

    /// Puts `skus` in the catalog at [`UNIT_PRICE_CENTS`] EUR a unit.
    pub async fn price(&self, skus: &[&str]) {
        let store = self.store();
        for sku in skus {
            orders_api::catalog::set_price(&store, sku, "EUR", UNIT_PRICE_CENTS)
                .await
                .expect("price");
        }
    }

    /// Messages in every dead-letter queue.
    pub async fn dead_lettered(&self) -> u64 {
        let mut total = 0;
        for queue in self.deployment.queues.values().filter(|q| q.dead_letter) {
            total += ripple::runtime::sqs::depth(&self.clients.sqs, &queue.url)
                .await
                .expect("queue depth");
        }
        total
    }

    /// A queue of its own subscribed to one of the stack's topics: what its subscribers are sent.
    pub async fn inbox(&self, topic: &str) -> Inbox {
        let sqs = self.clients.sqs.clone();
        let topic_arn = &self
            .deployment
            .topic(topic)
            .unwrap_or_else(|| panic!("no topic {topic}"))
            .arn;
        // A FIFO topic delivers only to FIFO queues.
        let fifo = topic_arn.ends_with(".fifo");
        let mut create = sqs.create_queue();
        if fifo {
            create = create
                .queue_name(format!("{}.fifo", unique("inbox")))
                .attributes(QueueAttributeName::FifoQueue, "true");
        } else {
            create = create.queue_name(unique("inbox"));
        }
        let url = create
            .send()
            .await
            .expect("inbox queue")
            .queue_url
            .expect("queue url");
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("inbox attributes");
        let arn = attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .expect("queue arn")
            .clone();
        self.clients
            .sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .expect("subscribe the inbox");
        Inbox { sqs, url }
    }

    /// The handler of one function, speaking Lambda JSON, outside any event source.
    pub fn invoke(&self, binary: &str) -> Invoke {
        let handlers = ripple::functions::handlers_for(&self.deployment, &self.aws, &[binary])
            .expect("handler");
        handlers
            .into_values()
            .next()
            .unwrap_or_else(|| panic!("no function runs {binary}"))
    }

    /// Starts the functions built from `binaries` behind their event sources (no HTTP server).
    pub async fn run(&self, binaries: &[&str]) -> Runtime {
        let options = RunOptions {
            http_port: None,
            ..RunOptions::default()
        };
        self.start(binaries, options).await
    }

    async fn start(&self, binaries: &[&str], options: RunOptions) -> Runtime {
        let handlers = ripple::functions::handlers_for(&self.deployment, &self.aws, binaries)
            .expect("handlers");
        Runtime::start(&self.clients, &self.deployment, handlers, options)
            .await
            .expect("runtime starts")
    }

    /// Starts the functions built from `binaries` behind their event sources and the HTTP API,
    /// with the local token issuer its routes need.
    pub async fn serve(&self, binaries: &[&str]) -> Runtime {
        self.start(binaries, RunOptions::default()).await
    }

    /// Every event of one stream.
    pub async fn stream(&self, aggregate_type: &str, id: &str) -> Vec<Envelope> {
        self.store()
            .read_stream(aggregate_type, id, 1)
            .await
            .expect("stream reads")
    }

    /// The event types of one stream, in order.
    pub async fn types(&self, aggregate_type: &str, id: &str) -> Vec<String> {
        self.stream(aggregate_type, id)
            .await
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }
}

/// A stack with its stock seeded and functions running behind their event sources.
pub struct RunningStack {
    /// The stack.
    pub stack: TestStack,
    /// Its functions.
    pub runtime: Runtime,
}

impl RunningStack {
    /// A new stack for `test` with `stock`, every function of the template running.
    pub async fn start(test: &str, stock: &[(&str, u64)]) -> Self {
        Self::start_only(test, stock, ALL_FUNCTIONS).await
    }

    /// The same with only the functions built from `binaries` running.
    pub async fn start_only(test: &str, stock: &[(&str, u64)], binaries: &[&str]) -> Self {
        let stack = TestStack::deploy(test).await;
        stack.restock(stock).await;
        let skus: Vec<&str> = stock.iter().map(|(sku, _)| *sku).collect();
        stack.price(&skus).await;
        let runtime = stack.run(binaries).await;
        RunningStack { stack, runtime }
    }

    /// The orders API.
    pub fn api(&self) -> OrdersApi<'_> {
        OrdersApi::of(&self.runtime)
    }

    /// Waits until the pipeline is quiet (at most [`QUIET`]).
    pub async fn settle(&self) {
        if let Err(busy) = self.runtime.wait_until_quiet(QUIET, |_, _| {}).await {
            panic!("{busy}");
        }
    }

    /// Stops the functions and deletes the stack.
    pub async fn finish(self) {
        self.runtime.stop().await;
        self.stack.teardown().await;
    }
}

/// A queue subscribed to a topic (see [`TestStack::inbox`]).
pub struct Inbox {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl Inbox {
    /// Every message waiting, removed from the queue.
    pub async fn drain(&self) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return bodies;
            }
            for message in messages {
                bodies.push(message.body.unwrap_or_default());
                self.sqs
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(message.receipt_handle.unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }
}

/// The orders API of a running stack, invoked as API Gateway invokes it.
pub struct OrdersApi<'r>(&'r Runtime);

impl<'r> OrdersApi<'r> {
    /// The orders API function of `runtime`.
    pub fn of(runtime: &'r Runtime) -> Self {
        OrdersApi(runtime)
    }

    /// Places an order; its id.
    pub async fn place(&self, customer: &str, lines: &[(&str, u32)]) -> String {
        let (status, body) = self.call(place_order_request(customer, lines)).await;
        assert_eq!(status, 201, "{body}");
        body["order_id"].as_str().expect("order_id").to_owned()
    }

    /// Places an order of `quantity` units of one `sku` for `customer`; its id (for many
    /// orders placed at once).
    pub async fn place_owned(&self, customer: String, sku: &str, quantity: u32) -> String {
        self.place(&customer, &[(sku, quantity)]).await
    }

    /// The status code and JSON body of the answer to `request`.
    pub async fn call(&self, request: Value) -> (i64, Value) {
        let response = self
            .0
            .function("OrdersApiFunction")
            .expect("the orders API runs")
            .invoke(request)
            .await
            .expect("the orders API answers");
        (
            response["statusCode"].as_i64().expect("a status"),
            body(&response),
        )
    }
}

/// A Lambda context for a direct invocation, with ten seconds to run.
pub fn context() -> lambda_runtime::Context {
    let deadline = std::time::SystemTime::now() + Duration::from_secs(10);
    let mut context = lambda_runtime::Context::default();
    context.request_id = uuid::Uuid::now_v7().to_string();
    context.deadline = deadline
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    context
}

/// The JSON body of an API Gateway response.
pub fn body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().expect("a text body")).expect("a JSON body")
}

/// `request` as API Gateway passes it on for `customer`, verified with both scopes.
pub fn as_customer(mut request: Value, customer: &str) -> Value {
    let jwt = &mut request["requestContext"]["authorizer"]["jwt"];
    jwt["claims"]["sub"] = Value::String(customer.to_owned());
    jwt["claims"]["username"] = Value::String(customer.to_owned());
    request
}

/// An API Gateway v2 request of `customer` to `method path`, built from the GET sample.
pub fn api_request(customer: &str, method: &str, path: &str, query: &[(&str, &str)]) -> Value {
    let mut r = as_customer(fixture("orders-api-get-events.json"), customer);
    r["rawPath"] = Value::String(path.to_owned());
    r["requestContext"]["http"]["method"] = Value::String(method.to_owned());
    r["requestContext"]["http"]["path"] = Value::String(path.to_owned());
    r["routeKey"] = Value::String("$default".to_owned());
    if let Some(request) = r.as_object_mut() {
        request.remove("pathParameters");
    }
    let qs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    r["rawQueryString"] = Value::String(qs.join("&"));
    r["queryStringParameters"] = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect::<serde_json::Map<_, _>>()
        .into();
    r
}

/// A `POST /orders` request of `customer` for `lines` (sku, quantity), built from the sample.
pub fn place_order_request(customer: &str, lines: &[(&str, u32)]) -> Value {
    let mut r = as_customer(fixture("orders-api-post-order.json"), customer);
    let lines: Vec<Value> = lines
        .iter()
        .map(|(sku, q)| serde_json::json!({"sku": sku, "quantity": q}))
        .collect();
    r["body"] = Value::String(serde_json::json!({"currency": "EUR", "lines": lines}).to_string());
    if let Some(headers) = r["headers"].as_object_mut() {
        headers.remove("content-length");
    }
    r
}

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if started.elapsed() > limit {
            panic!("timed out after {:?} waiting for {what}", limit);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An SQS event like the sample, one record per body, as Lambda would deliver from `queue_arn`.
pub fn sqs_event(bodies: &[(&str, String)]) -> Value {
    let mut event = fixture("inventory-order-placed.json");
    let template = event["Records"][0].clone();
    let records: Vec<Value> = bodies
        .iter()
        .map(|(message_id, body)| {
            let mut r = template.clone();
            r["messageId"] = Value::String((*message_id).to_owned());
            r["body"] = Value::String(body.clone());
            r
        })
        .collect();
    event["Records"] = Value::Array(records);
    event
}

/// The repository README's code blocks, compiled as doctests so the examples there cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
