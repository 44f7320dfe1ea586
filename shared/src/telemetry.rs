//! Structured logs and metrics.
//!
//! Logs are `tracing` JSON lines (one object per line, fields flattened, span fields included) so
//! CloudWatch Logs Insights can query `message_id`, `event_id`, `type` and `correlation_id`.
//! Metrics are CloudWatch Embedded Metric Format lines: no API call, no extra latency.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

/// Installs the JSON log subscriber; `RUST_LOG` filters (default `info`). Safe to call twice.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_ansi(false)
        .without_time()
        .try_init();
}

/// A W3C `traceparent` to carry: the caller's when it is well-formed, else a new sampled one.
pub fn traceparent(incoming: Option<&str>) -> String {
    if let Some(tp) = incoming.map(str::trim).filter(|tp| is_traceparent(tp)) {
        return tp.to_owned();
    }
    let hex = |n: usize| -> String {
        (0..n)
            .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
            .collect()
    };
    format!("00-{}-{}-01", hex(32), hex(16))
}

fn is_traceparent(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].chars().any(|c| c != '0')
}

/// The error with its sources, `outer: inner: innermost`, for the log line that explains a
/// failure (each layer's `Display` says what failed without repeating its source).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // SDK errors often repeat their source's message; do not print it twice.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The unit of a metric, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// Milliseconds.
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// The CloudWatch namespace of the kit's metrics when `POWERTOOLS_METRICS_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "Ripple";

/// The namespace for metrics: `POWERTOOLS_METRICS_NAMESPACE` (the variable Powertools reads),
/// else [`DEFAULT_NAMESPACE`].
pub fn metrics_namespace() -> String {
    std::env::var("POWERTOOLS_METRICS_NAMESPACE")
        .ok()
        .filter(|ns| !ns.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

/// Metrics of one invocation, flushed as one EMF line.
#[derive(Debug)]
pub struct Metrics {
    namespace: String,
    service: String,
    values: Mutex<BTreeMap<String, (Unit, f64)>>,
}

impl Metrics {
    /// Metrics in `namespace` with the dimension `service`.
    pub fn new(namespace: &str, service: &str) -> Self {
        Metrics {
            namespace: namespace.to_owned(),
            service: service.to_owned(),
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds `value` to the metric `name` (created at 0).
    pub fn add(&self, name: &str, unit: Unit, value: f64) {
        if let Ok(mut values) = self.values.lock() {
            let entry = values.entry(name.to_owned()).or_insert((unit, 0.0));
            entry.1 += value;
        }
    }

    /// Adds one to the count `name`.
    pub fn count(&self, name: &str) {
        self.add(name, Unit::Count, 1.0);
    }

    /// The EMF document for what was recorded, and resets; `None` when nothing was recorded.
    pub fn take_emf(&self, timestamp_ms: i64) -> Option<Value> {
        let values = std::mem::take(&mut *self.values.lock().ok()?);
        if values.is_empty() {
            return None;
        }
        let definitions: Vec<Value> = values
            .iter()
            .map(|(name, (unit, _))| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let mut doc = json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["service"]],
                    "Metrics": definitions,
                }],
            },
            "service": self.service,
        });
        for (name, (_, value)) in values {
            doc[name] = json!(value);
        }
        Some(doc)
    }

    /// Prints the EMF line to stdout, where the Lambda log agent picks it up.
    pub fn flush(&self) {
        if let Some(doc) = self.take_emf(chrono::Utc::now().timestamp_millis()) {
            println!("{doc}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_keeps_a_valid_one_and_makes_a_new_one_otherwise() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(traceparent(Some(tp)), tp);
        let made = traceparent(Some("garbage"));
        assert!(is_traceparent(&made), "{made}");
        assert_ne!(traceparent(None), traceparent(None));
    }

    #[test]
    fn error_chain_follows_the_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("event store")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other("throttled"));
        assert_eq!(error_chain(&err), "event store: throttled");
        assert_eq!(error_chain(&std::io::Error::other("alone")), "alone");
        #[derive(Debug, thiserror::Error)]
        #[error("dispatch failure: timeout")]
        struct Repeats(#[source] std::io::Error);
        let err = Repeats(std::io::Error::other("timeout"));
        assert_eq!(error_chain(&err), "dispatch failure: timeout");
    }

    #[test]
    fn emf_document_names_every_metric_with_its_unit() {
        let m = Metrics::new("Ripple", "inventory");
        m.count("EventsConsumed");
        m.count("EventsConsumed");
        m.add("EndToEndLatency", Unit::Milliseconds, 12.0);
        let doc = m.take_emf(42).unwrap();
        assert_eq!(doc["EventsConsumed"], json!(2.0));
        assert_eq!(doc["service"], json!("inventory"));
        assert_eq!(doc["_aws"]["Timestamp"], json!(42));
        let defs = &doc["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        assert_eq!(defs.as_array().unwrap().len(), 2);
        assert!(m.take_emf(43).is_none(), "flushed metrics reset");
    }
}
