//! A count of every AWS request a process makes: by service and operation, with the bytes sent
//! and received, the DynamoDB capacity units consumed and the messages carried.
//!
//! [`RequestCounter`] is an AWS SDK interceptor. The kit's client constructors
//! ([`dynamodb_client`], [`sns_client`], [`sqs_client`]) attach the process's counter
//! ([`RequestCounter::global`]) to every client they build, so a function that builds its clients
//! with them is counted without knowing it; `ripple load` and `ripple dev` read the count back to
//! say what an order costs. Counting is a read lock on a small map and a few relaxed atomic adds
//! per attempt.
//!
//! What is counted, per attempt (a retry the SDK makes is one more request, as AWS bills it):
//! - `requests`, `errors` (attempts that did not end in a parsed output), request and response
//!   body bytes, and `chunks`, the 64 KiB payload units SNS and SQS bill by (at least one per
//!   request, the larger of request and response body);
//! - DynamoDB **capacity units as DynamoDB reports them**: the counter sets
//!   `ReturnConsumedCapacity::Total` on every DynamoDB operation that takes it (unless the
//!   caller asked for more), and adds up the `ConsumedCapacity` of each answer, read and write
//!   units apart. Nothing is estimated from item sizes. A write refused by its condition consumes
//!   capacity too, but DynamoDB reports none with the error: those are `errors` here;
//! - `messages`: the messages SQS `ReceiveMessage` returned and SNS `Publish`/`PublishBatch`
//!   accepted; `empty`: receives that returned none (long polls that timed out).
//!
//! A counter can also be made the **scope** of a piece of work ([`RequestCounter::scope`]): every
//! request counted while that future runs (on its task) is counted in the scope's counter too.
//! The local runner gives each function a counter of its own and runs each invocation in it, so
//! `ripple load` tells which function made which calls.
//!
//! ```
//! use ripple_kit::requests::RequestCounter;
//!
//! let counter = RequestCounter::new();
//! let config = aws_sdk_dynamodb::Config::builder()
//!     .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
//!     .interceptor(counter.clone())
//!     .build();
//! let _client = aws_sdk_dynamodb::Client::from_conf(config);
//! // … calls through the client …
//! let counts = counter.snapshot();
//! assert_eq!(counts.total().requests, 0);
//! ```

mod intercept;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

#[cfg(any(feature = "store-dynamodb", feature = "idempotency-dynamodb"))]
pub use intercept::dynamodb_client;
#[cfg(feature = "publish-sns")]
pub use intercept::sns_client;
#[cfg(any(feature = "redelivery-sqs", feature = "quarantine-sqs"))]
pub use intercept::sqs_client;

/// SNS and SQS bill a request per 64 KiB of payload.
pub const CHUNK_BYTES: u64 = 64 * 1024;

/// Capacity units are kept in thousandths, so that halves (an eventually consistent read) add
/// up exactly in an integer.
const MILLI: f64 = 1000.0;

/// Counts the AWS requests of every client it is attached to. Cloning shares the count.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    inner: Arc<RwLock<ByOperation>>,
}

/// The counters by (service, operation).
type ByOperation = HashMap<(String, String), Arc<Counters>>;

/// The running counters of one operation.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    request_bytes: AtomicU64,
    response_bytes: AtomicU64,
    chunks: AtomicU64,
    read_milli_units: AtomicU64,
    write_milli_units: AtomicU64,
    messages: AtomicU64,
    empty: AtomicU64,
}

/// One request attempt as the counter records it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Attempt {
    /// Whether it ended without a parsed output (a service error, a broken connection).
    pub failed: bool,
    /// Bytes of the request body.
    pub request_bytes: u64,
    /// Bytes of the response body.
    pub response_bytes: u64,
    /// Read capacity units DynamoDB reported.
    pub read_units: f64,
    /// Write capacity units DynamoDB reported.
    pub write_units: f64,
    /// Messages received (SQS) or published (SNS).
    pub messages: u64,
    /// A receive that returned no message.
    pub empty: bool,
}

impl Attempt {
    /// The 64 KiB units SNS and SQS would bill it as: at least one.
    pub fn chunks(&self) -> u64 {
        self.request_bytes
            .max(self.response_bytes)
            .div_ceil(CHUNK_BYTES)
            .max(1)
    }
}

/// What one operation did, summed over its attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct OperationCounts {
    /// Attempts made (each retry counts).
    pub requests: u64,
    /// Attempts that ended in an error.
    pub errors: u64,
    /// Request body bytes.
    pub request_bytes: u64,
    /// Response body bytes.
    pub response_bytes: u64,
    /// 64 KiB payload units ([`Attempt::chunks`]).
    pub chunks: u64,
    /// DynamoDB read capacity units consumed, as reported.
    pub read_units: f64,
    /// DynamoDB write capacity units consumed, as reported.
    pub write_units: f64,
    /// Messages received (SQS `ReceiveMessage`) or published (SNS).
    pub messages: u64,
    /// Receives that returned no message.
    pub empty: u64,
}

impl OperationCounts {
    fn add(&mut self, other: &OperationCounts) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.request_bytes += other.request_bytes;
        self.response_bytes += other.response_bytes;
        self.chunks += other.chunks;
        self.read_units += other.read_units;
        self.write_units += other.write_units;
        self.messages += other.messages;
        self.empty += other.empty;
    }

    fn minus(&self, before: &OperationCounts) -> OperationCounts {
        OperationCounts {
            requests: self.requests.saturating_sub(before.requests),
            errors: self.errors.saturating_sub(before.errors),
            request_bytes: self.request_bytes.saturating_sub(before.request_bytes),
            response_bytes: self.response_bytes.saturating_sub(before.response_bytes),
            chunks: self.chunks.saturating_sub(before.chunks),
            read_units: (self.read_units - before.read_units).max(0.0),
            write_units: (self.write_units - before.write_units).max(0.0),
            messages: self.messages.saturating_sub(before.messages),
            empty: self.empty.saturating_sub(before.empty),
        }
    }
}

/// A copy of the counts: service (`DynamoDB`, `SNS`, `SQS`) → operation (`PutItem`) → counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// By service, then operation, as the SDK names them.
    pub services: BTreeMap<String, BTreeMap<String, OperationCounts>>,
}

impl RequestCounts {
    /// One operation's counts (zero if it never ran).
    pub fn operation(&self, service: &str, operation: &str) -> OperationCounts {
        self.services
            .get(service)
            .and_then(|ops| ops.get(operation))
            .copied()
            .unwrap_or_default()
    }

    /// The sum over one service's operations.
    pub fn service(&self, service: &str) -> OperationCounts {
        let mut sum = OperationCounts::default();
        for counts in self
            .services
            .get(service)
            .into_iter()
            .flat_map(|o| o.values())
        {
            sum.add(counts);
        }
        sum
    }

    /// The sum over everything.
    pub fn total(&self) -> OperationCounts {
        let mut sum = OperationCounts::default();
        for counts in self.services.values().flat_map(|o| o.values()) {
            sum.add(counts);
        }
        sum
    }

    /// What happened after `before` was taken (from the same counter).
    pub fn since(&self, before: &RequestCounts) -> RequestCounts {
        let mut services = BTreeMap::new();
        for (service, operations) in &self.services {
            for (operation, counts) in operations {
                let delta = counts.minus(&before.operation(service, operation));
                if delta != OperationCounts::default() {
                    services
                        .entry(service.clone())
                        .or_insert_with(BTreeMap::new)
                        .insert(operation.clone(), delta);
                }
            }
        }
        RequestCounts { services }
    }
}

static GLOBAL: LazyLock<RequestCounter> = LazyLock::new(RequestCounter::new);

tokio::task_local! {
    /// The counter of the work running on this task, if any ([`RequestCounter::scope`]).
    static SCOPE: RequestCounter;
}

impl RequestCounter {
    /// A counter of its own (count one client, or one tool's calls apart from the functions').
    pub fn new() -> Self {
        RequestCounter::default()
    }

    /// The process's counter: the one the kit's client constructors attach. In Lambda that is
    /// one execution environment's requests; in the local runner, every function's.
    pub fn global() -> &'static RequestCounter {
        &GLOBAL
    }

    /// Runs `work` with this counter as its scope: every attempt a counted client makes inside
    /// it, on its task, is recorded here as well as in the client's own counter. Scopes nest;
    /// the innermost counts. Work spawned onto another task leaves the scope.
    pub async fn scope<F: Future>(&self, work: F) -> F::Output {
        SCOPE.scope(self.clone(), work).await
    }

    /// Records one attempt in the counter of the scope it was made in, if there is one.
    pub fn record_in_scope(service: &str, operation: &str, attempt: &Attempt) {
        // Outside any scope there is nothing to add to.
        let _ = SCOPE.try_with(|scope| scope.record(service, operation, attempt));
    }

    /// Records one attempt of `service`'s `operation`.
    pub fn record(&self, service: &str, operation: &str, attempt: &Attempt) {
        let counters = self.counters(service, operation);
        let add = |counter: &AtomicU64, n: u64| {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&counters.requests, 1);
        add(&counters.errors, u64::from(attempt.failed));
        add(&counters.request_bytes, attempt.request_bytes);
        add(&counters.response_bytes, attempt.response_bytes);
        add(&counters.chunks, attempt.chunks());
        add(&counters.read_milli_units, milli(attempt.read_units));
        add(&counters.write_milli_units, milli(attempt.write_units));
        add(&counters.messages, attempt.messages);
        add(&counters.empty, u64::from(attempt.empty));
    }

    /// The counters of one operation, created on its first request (the only write lock).
    fn counters(&self, service: &str, operation: &str) -> Arc<Counters> {
        let key = (service.to_owned(), operation.to_owned());
        if let Some(found) = self
            .inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return found.clone();
        }
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone()
    }

    /// The counts now.
    pub fn snapshot(&self) -> RequestCounts {
        let map = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let mut services: BTreeMap<String, BTreeMap<String, OperationCounts>> = BTreeMap::new();
        for ((service, operation), counters) in map.iter() {
            let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
            services.entry(service.clone()).or_default().insert(
                operation.clone(),
                OperationCounts {
                    requests: get(&counters.requests),
                    errors: get(&counters.errors),
                    request_bytes: get(&counters.request_bytes),
                    response_bytes: get(&counters.response_bytes),
                    chunks: get(&counters.chunks),
                    read_units: get(&counters.read_milli_units) as f64 / MILLI,
                    write_units: get(&counters.write_milli_units) as f64 / MILLI,
                    messages: get(&counters.messages),
                    empty: get(&counters.empty),
                },
            );
        }
        RequestCounts { services }
    }
}

/// Whether a DynamoDB operation writes: its capacity is counted in write units.
pub fn is_write(operation: &str) -> bool {
    matches!(
        operation,
        "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" | "BatchWriteItem"
    )
}

fn milli(units: f64) -> u64 {
    if units.is_finite() && units > 0.0 {
        (units * MILLI).round() as u64
    } else {
        0
    }
}

#[cfg(all(test, feature = "store-dynamodb", feature = "publish-sns"))]
mod tests;
