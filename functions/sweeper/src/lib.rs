//! `sweeper`: no saga is left hanging and no view stays behind its streams.
//!
//! Every message of the saga is delivered at least once, but one that ends in a dead-letter
//! queue is not delivered again by itself: an order whose `payment.captured` was dead-lettered
//! would stay `placed` with its stock held forever, and a view whose last event missed the
//! projections queue would be stale forever. This scheduled function sweeps the store's recent
//! events by time (its time index, so a run reads what was stored since the last one, never the
//! whole history) in two passes, each with a cursor of its own ([`cursor`]):
//! - views: every order with an event stored up to `SWEEP_SETTLE_SECONDS` ago has a view that
//!   holds it; one that does not is rebuilt from the store (the fold of its three streams);
//! - deadlines: every order placed more than `ORDER_DEADLINE_SECONDS` ago is confirmed or
//!   cancelled; one still `placed` is cancelled as `timed_out` ([`domain::saga::decide_deadline`]),
//!   and the rest of the pipeline compensates as for any cancellation (inventory releases the
//!   stock, payments refunds a capture, the customer is told).
//!
//! A pass goes forward five minutes of events at a time and moves its cursor after each, so a
//! run that is cut short by its deadline resumes where it stopped. The deadline is longer than
//! the consumers' redelivery budget for a one-hour outage, so an outage never times out an order
//! that would still go through.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod cursor;
mod sweep;

use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use domain::views::{DynamoViewStore, ViewStore};
use lambda_runtime::LambdaEvent;
use ripple_kit::EventStore;
use ripple_kit::config::{ConfigError, Env};
use ripple_kit::store::{DynamoEventStore, TimeIndexed};
use ripple_kit::telemetry::{Metrics, metrics_namespace};

pub use cursor::{Cursors, DynamoCursors, InMemoryCursors, Pass};
pub use sweep::{SweepError, SweepReport};

/// The `source` of the events this function writes.
pub const SOURCE: &str = domain::sources::SWEEPER;

/// Settings, from the variables template.yaml gives this function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The events table: swept by time, appended to, and home of the cursors (`EVENTS_TABLE`).
    pub events_table: String,
    /// The order views table (`VIEWS_TABLE`).
    pub views_table: String,
    /// How long an order may stay undecided (`ORDER_DEADLINE_SECONDS`, default 2 h).
    pub deadline: Duration,
    /// How old an event must be before its view must hold it (`SWEEP_SETTLE_SECONDS`, default
    /// 5 min: longer than any write takes to reach the time index after its event is encoded).
    pub settle: Duration,
}

impl Config {
    /// From any lookup: `ripple_kit::config::process_env` in Lambda, the template's variables in
    /// the local runner.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        let seconds = |key: &str, default: u64| -> Result<Duration, ConfigError> {
            let value: u64 = env.parsed_or(key, default)?;
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key: key.to_owned(),
                    value: value.to_string(),
                    reason: "must be at least one second".into(),
                });
            }
            Ok(Duration::from_secs(value))
        };
        Ok(Config {
            events_table: env.required("EVENTS_TABLE")?,
            views_table: env.required("VIEWS_TABLE")?,
            deadline: seconds("ORDER_DEADLINE_SECONDS", 2 * 3600)?,
            settle: seconds("SWEEP_SETTLE_SECONDS", 300)?,
        })
    }
}

/// The sweeper over an event store, a view store and its cursors.
pub struct Sweeper<S, V, C> {
    store: S,
    views: V,
    cursors: C,
    deadline: Duration,
    settle: Duration,
    metrics: Metrics,
}

/// The sweeper function on DynamoDB.
pub type Handler = Sweeper<DynamoEventStore, DynamoViewStore, DynamoCursors>;

/// The handler on the DynamoDB tables named in `config`.
pub fn handler(config: Config, aws: &aws_config::SdkConfig) -> Handler {
    let client = ripple_kit::requests::dynamodb_client(aws);
    Sweeper::new(
        DynamoEventStore::new(client.clone(), &config.events_table),
        DynamoViewStore::new(client.clone(), config.views_table),
        DynamoCursors::new(client, config.events_table),
        config.deadline,
        config.settle,
    )
}

impl<S, V, C> Sweeper<S, V, C>
where
    S: EventStore + TimeIndexed,
    V: ViewStore,
    C: Cursors,
{
    /// A sweeper over any adapters (tests pass in-memory ones).
    pub fn new(store: S, views: V, cursors: C, deadline: Duration, settle: Duration) -> Self {
        Sweeper {
            store,
            views,
            cursors,
            deadline,
            settle,
            metrics: Metrics::new(&metrics_namespace(), "sweeper"),
        }
    }

    /// The event store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The view store.
    pub fn views(&self) -> &V {
        &self.views
    }

    /// The cursors.
    pub fn cursors(&self) -> &C {
        &self.cursors
    }

    /// Serves one scheduled invocation: both passes, as far as the invocation's time allows.
    pub async fn handle(
        &self,
        event: LambdaEvent<EventBridgeEvent>,
    ) -> Result<SweepReport, lambda_runtime::Error> {
        let until = ripple_kit::batch::latest_start(event.context.deadline());
        let swept = self.sweep(chrono::Utc::now(), until).await;
        self.metrics.flush();
        let report = swept?;
        tracing::info!(?report, "swept");
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
