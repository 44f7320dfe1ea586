//! `order-saga`: moves an order on when inventory or payments have decided.
//!
//! `stock.rejected` → `order.cancelled` (out of stock); `payment.declined` → `order.cancelled`
//! (payment declined); `payment.captured` → `order.confirmed`. The rules are
//! [`domain::saga::react`]; this function loads the order, asks them, and appends the answer at
//! the order's next version together with the dedupe marker `dedupe#order-saga#<source event id>`.
//! A customer cancelling at the same moment takes the same stream position, so one of the two
//! appends loses, reloads, and sees the order already decided.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use domain::aggregate;
use domain::inventory::ReservationEvent;
use domain::order::{Order, OrderEvent};
use domain::payment::PaymentEvent;
use domain::saga::{SagaInput, react};
use lambda_runtime::{Error, LambdaEvent};
use ripple_kit::consumer::{handle_batch, record};
use ripple_kit::envelope::EnvelopeError;
use ripple_kit::parse::{ParseError, envelope_from_sqs};
use ripple_kit::store::{Conflicting, DynamoEventStore, RetryPolicy, retry_on_conflict};
use ripple_kit::telemetry::Metrics;
use ripple_kit::{Append, DedupeMarker, Envelope, EventStore, StoreError, StreamPosition};

pub use ripple_kit::consumer::Outcome;

/// The consumer name in dedupe markers; never change it, or redeliveries are handled again.
pub const CONSUMER: &str = "order-saga";
/// The `source` of the events this function writes.
pub const SOURCE: &str = "ripple/order-saga";
/// Records of one standard-queue batch handled at once.
const CONCURRENCY: usize = 4;

ripple_kit::settings! {
    /// Settings, from the variables template.yaml gives this function.
    pub struct Config {
        /// The events table.
        events_table: "EVENTS_TABLE",
    }
}

/// Why a message could not be handled (it is retried, then dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    /// The message is not an event envelope.
    #[error("unreadable message")]
    Parse(#[from] ParseError),
    /// The envelope is not an event the saga handles.
    #[error("unusable event")]
    Event(#[from] EnvelopeError),
    /// The event names an order the store does not hold.
    #[error("order {0} not found")]
    OrderNotFound(String),
    /// The event store failed or the conflict retries ran out.
    #[error("event store")]
    Store(#[from] StoreError),
}

impl Conflicting for SagaError {
    fn is_conflict(&self) -> bool {
        matches!(self, SagaError::Store(e) if e.is_conflict())
    }
}

/// The saga input an envelope carries: reservation and payment events, by aggregate type.
pub fn saga_input(envelope: &Envelope) -> Result<SagaInput, EnvelopeError> {
    match envelope.aggregatetype.as_str() {
        aggregate::RESERVATION => Ok(SagaInput::Reservation(
            envelope.decode::<ReservationEvent>()?,
        )),
        aggregate::PAYMENT => Ok(SagaInput::Payment(envelope.decode::<PaymentEvent>()?)),
        _ => Err(EnvelopeError::UnknownType(envelope.event_type.clone())),
    }
}

/// The queue handler over an event store.
pub struct Handler<S = DynamoEventStore> {
    store: S,
    retry: RetryPolicy,
    metrics: Metrics,
}

impl Handler<DynamoEventStore> {
    /// The handler on the DynamoDB event store named in `config`.
    pub fn new(config: Config, aws: &aws_config::SdkConfig) -> Self {
        let client = aws_sdk_dynamodb::Client::new(aws);
        Self::with_store(DynamoEventStore::new(client, config.events_table))
    }
}

impl<S: EventStore> Handler<S> {
    /// The handler over any event store (tests pass the in-memory one).
    pub fn with_store(store: S) -> Self {
        Handler {
            store,
            retry: RetryPolicy::default(),
            metrics: Metrics::new("Ripple", CONSUMER),
        }
    }

    /// The event store this handler writes to.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Handles one queue message.
    pub async fn handle_message(&self, message: &SqsMessage) -> Result<Outcome, SagaError> {
        let source = envelope_from_sqs(message)?;
        let input = saga_input(&source)?;
        tracing::info!(event_id = %source.id, r#type = %source.event_type, correlation_id = %source.correlationid, "handling");
        // A redelivery (its marker taken, or the order already holding its effect) is a `Duplicate`.
        let outcome = self.react(&source, &input).await;
        record(&self.metrics, &source, outcome)
    }

    /// Handles a batch from the queue; failed records are reported alone.
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
        let handle_message = |message| async move { self.handle_message(&message).await };
        handle_batch(event.payload, CONCURRENCY, &self.metrics, handle_message).await
    }

    async fn react(&self, source: &Envelope, input: &SagaInput) -> Result<Outcome, SagaError> {
        let order_id = input.order_id();
        retry_on_conflict(&self.retry, || async {
            let history = self.store.read_stream(aggregate::ORDER, order_id, 1).await?;
            // The order already carries this event's effect: a redelivery after the append.
            if history
                .iter()
                .any(|e| e.causationid.as_deref() == Some(source.id.as_str()))
            {
                return Ok(Outcome::Duplicate);
            }
            let events = history
                .iter()
                .map(|e| e.decode::<OrderEvent>())
                .collect::<Result<Vec<_>, _>>()?;
            let order = Order::from_history(&events)
                .ok_or_else(|| SagaError::OrderNotFound(order_id.to_owned()))?;
            let Some(event) = react(&order, input) else {
                tracing::info!(order_id, status = ?order.status, "order already decided; nothing to do");
                return Ok(Outcome::Ignored);
            };
            let what = match event {
                OrderEvent::Confirmed { .. } => "order.confirmed",
                _ => "order.cancelled",
            };
            let at = StreamPosition::new(aggregate::ORDER, order_id, order.version + 1);
            let envelope = Envelope::encode(SOURCE, at, &event)?.caused_by(source);
            let append =
                Append::events(vec![envelope]).deduplicated_by(DedupeMarker::new(CONSUMER, &source.id));
            self.store.append(append).await?;
            Ok(Outcome::Applied(what))
        })
        .await
    }
}

#[cfg(test)]
mod tests;
