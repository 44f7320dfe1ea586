//! Counters of what flowed through the runtime: per function, and for the HTTP API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use ripple_kit::requests::{RequestCounter, RequestCounts};
use serde::Serialize;

/// Counters of one function's traffic.
#[derive(Debug, Default)]
pub struct FunctionStats {
    /// Invocations started.
    pub invocations: AtomicU64,
    /// Invocations that returned an error, timed out or panicked.
    pub errors: AtomicU64,
    /// Milliseconds its invocations ran, each rounded up to the next millisecond as Lambda
    /// bills duration.
    pub billed_ms: AtomicU64,
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
    /// The AWS requests its invocations made (each invocation runs in this counter's
    /// [scope](RequestCounter::scope)).
    pub requests: RequestCounter,
}

/// A plain copy of [`FunctionStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FunctionSnapshot {
    /// See [`FunctionStats::invocations`].
    pub invocations: u64,
    /// See [`FunctionStats::errors`].
    pub errors: u64,
    /// See [`FunctionStats::billed_ms`].
    pub billed_ms: u64,
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
            billed_ms: get(&self.billed_ms),
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
    pub(super) in_flight: AtomicI64,
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
                billed_ms: a.billed_ms + b.billed_ms,
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

    /// The AWS requests each function's invocations made, by logical id.
    pub fn requests_by_function(&self) -> BTreeMap<String, RequestCounts> {
        self.functions
            .iter()
            .map(|(id, s)| (id.clone(), s.requests.snapshot()))
            .collect()
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
