//! `payments`: charges an order once its stock is reserved, and refunds it if it is cancelled.
//!
//! `stock.reserved` → the gateway charges `total_cents` → `payment.captured` or `payment.declined`
//! on the order's `Payment` stream. `order.cancelled` after a capture → the gateway refunds →
//! `payment.refunded`.
//!
//! Two mechanisms make each effect happen once:
//! - the gateway call leaves the system, so it runs under the idempotency utility
//!   ([`ripple_kit::idempotency`], keys `payments#charge` / `payments#refund` + order id): a
//!   redelivered message, or a retry after a lost race, gets the stored answer and the gateway is
//!   not called again;
//! - the event is appended at the Payment stream's next version with the dedupe marker
//!   `dedupe#payments#<source event id>` in the same write.
//!
//! A customer may cancel while the charge is in flight: the `order.cancelled` message then finds
//! no capture to refund. So after every capture the order is read again, and a cancelled one is
//! refunded there and then. Reads are consistent, so one of the two paths always sees the other.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod gateway;

use std::time::SystemTime;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use domain::aggregate;
use domain::inventory::{ReservationEvent, StockReserved};
use domain::order::{Order, OrderEvent, OrderStatus};
use domain::payment::{
    ChargeRequest, Payment, PaymentEvent, RefundReceipt, charged, decide_charge, decide_refund,
    refunded,
};
use lambda_runtime::{Error, LambdaEvent};
use ripple_kit::config::{ConfigError, Env};
use ripple_kit::consumer::{handle_batch, record};
use ripple_kit::envelope::EnvelopeError;
use ripple_kit::idempotency::{
    DynamoIdempotencyStore, Idempotency, IdempotencyError, IdempotencyStore,
};
use ripple_kit::parse::{ParseError, envelope_from_sqs};
use ripple_kit::store::{Conflicting, DynamoEventStore, RetryPolicy, retry_on_conflict};
use ripple_kit::telemetry::Metrics;
use ripple_kit::{Append, DedupeMarker, Envelope, EventStore, StoreError, StreamPosition};
use serde_json::json;

pub use gateway::{GatewayError, PaymentGateway, SimulatedGateway};
pub use ripple_kit::consumer::Outcome;

/// The consumer name in dedupe markers; never change it, or redeliveries are handled again.
pub const CONSUMER: &str = "payments";
/// The `source` of the events this function writes.
pub const SOURCE: &str = "ripple/payments";
/// Idempotency name of gateway charges (the record key is this + `#` + a hash of the order id).
pub const CHARGE_KEY: &str = "payments#charge";
/// Idempotency name of gateway refunds.
pub const REFUND_KEY: &str = "payments#refund";
/// Records of one standard-queue batch handled at once.
const CONCURRENCY: usize = 4;

/// Settings, from the variables template.yaml gives this function.
#[derive(Debug, Clone)]
pub struct Config {
    /// The events table.
    pub events_table: String,
    /// The idempotency table guarding gateway calls.
    pub idempotency_table: String,
    /// Share of orders the simulated gateway declines, 0.0 to 1.0 (`PAYMENT_DECLINE_RATE`, default 0).
    pub decline_rate: f64,
    /// Amounts the simulated gateway declines above (`PAYMENT_MAX_AMOUNT_CENTS`, default none).
    pub max_amount_cents: Option<u64>,
}

impl Config {
    /// From any lookup: `ripple_kit::config::process_env` in Lambda, the template's variables in the
    /// local runner.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        let decline_rate: f64 = env.parsed_or("PAYMENT_DECLINE_RATE", 0.0)?;
        if !(0.0..=1.0).contains(&decline_rate) {
            return Err(ConfigError::Invalid {
                key: "PAYMENT_DECLINE_RATE".into(),
                value: decline_rate.to_string(),
                reason: "must be between 0.0 and 1.0".into(),
            });
        }
        let max_amount_cents = match env.optional("PAYMENT_MAX_AMOUNT_CENTS") {
            Some(_) => Some(env.parsed_or("PAYMENT_MAX_AMOUNT_CENTS", 0_u64)?),
            None => None,
        };
        Ok(Config {
            events_table: env.required("EVENTS_TABLE")?,
            idempotency_table: env.required("IDEMPOTENCY_TABLE")?,
            decline_rate,
            max_amount_cents,
        })
    }
}

/// Why a message could not be handled (it is retried, then dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    /// The message is not an event envelope.
    #[error("unreadable message")]
    Parse(#[from] ParseError),
    /// The envelope is not an event payments handles.
    #[error("unusable event")]
    Event(#[from] EnvelopeError),
    /// The event names an order the store does not hold.
    #[error("order {0} not found")]
    OrderNotFound(String),
    /// The gateway call failed, is running elsewhere, or its record is unusable.
    #[error("payment gateway call")]
    Gateway(#[from] IdempotencyError<GatewayError>),
    /// The event store failed or the conflict retries ran out.
    #[error("event store")]
    Store(#[from] StoreError),
}

impl Conflicting for PaymentsError {
    fn is_conflict(&self) -> bool {
        matches!(self, PaymentsError::Store(e) if e.is_conflict())
    }
}

/// What payments reacts to.
enum Trigger {
    Reserved(StockReserved),
    Cancelled { order_id: String },
    Other,
}

fn trigger(envelope: &Envelope) -> Result<Trigger, EnvelopeError> {
    Ok(match envelope.aggregatetype.as_str() {
        aggregate::RESERVATION => match envelope.decode::<ReservationEvent>()? {
            ReservationEvent::Reserved(reserved) => Trigger::Reserved(reserved),
            _ => Trigger::Other,
        },
        aggregate::ORDER => match envelope.decode::<OrderEvent>()? {
            OrderEvent::Cancelled { order_id, .. } => Trigger::Cancelled { order_id },
            _ => Trigger::Other,
        },
        _ => return Err(EnvelopeError::UnknownType(envelope.event_type.clone())),
    })
}

fn event_type(event: &PaymentEvent) -> &'static str {
    match event {
        PaymentEvent::Captured { .. } => "payment.captured",
        PaymentEvent::Declined { .. } => "payment.declined",
        PaymentEvent::Refunded { .. } => "payment.refunded",
    }
}

/// The queue handler over an event store, a gateway and an idempotency store.
pub struct Handler<S = DynamoEventStore, G = SimulatedGateway, I = DynamoIdempotencyStore> {
    store: S,
    gateway: G,
    charges: Idempotency<I>,
    refunds: Idempotency<I>,
    retry: RetryPolicy,
    metrics: Metrics,
}

impl Handler {
    /// The handler on the DynamoDB tables named in `config`, with the simulated gateway.
    pub fn new(config: Config, aws: &aws_config::SdkConfig) -> Self {
        let client = aws_sdk_dynamodb::Client::new(aws);
        let gateway = SimulatedGateway::new(config.decline_rate, config.max_amount_cents);
        Self::with_ports(
            DynamoEventStore::new(client.clone(), config.events_table),
            gateway,
            DynamoIdempotencyStore::new(client, config.idempotency_table),
        )
    }
}

impl<S: EventStore, G: PaymentGateway, I: IdempotencyStore + Clone> Handler<S, G, I> {
    /// The handler over any adapters (tests pass in-memory ones and a recording gateway).
    pub fn with_ports(store: S, gateway: G, idempotency: I) -> Self {
        Handler {
            charges: Idempotency::for_consumer(idempotency.clone(), CHARGE_KEY),
            refunds: Idempotency::for_consumer(idempotency, REFUND_KEY),
            store,
            gateway,
            retry: RetryPolicy::default(),
            metrics: Metrics::new("Ripple", CONSUMER),
        }
    }

    /// The event store this handler writes to.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The gateway this handler charges through.
    pub fn gateway(&self) -> &G {
        &self.gateway
    }

    /// Handles one queue message; `deadline` is the invocation's (it bounds how long an
    /// interrupted gateway call blocks its redelivery).
    pub async fn handle_message(
        &self,
        message: &SqsMessage,
        deadline: SystemTime,
    ) -> Result<Outcome, PaymentsError> {
        let source = envelope_from_sqs(message)?;
        let trigger = trigger(&source)?;
        tracing::info!(event_id = %source.id, r#type = %source.event_type, correlation_id = %source.correlationid, "handling");
        let outcome = match &trigger {
            Trigger::Reserved(reserved) => self.charge(&source, reserved, deadline).await,
            Trigger::Cancelled { order_id } => {
                let marker = DedupeMarker::new(CONSUMER, &source.id);
                self.refund(&source, order_id, deadline, Some(marker)).await
            }
            Trigger::Other => Ok(Outcome::Ignored),
        };
        record(&self.metrics, &source, outcome)
    }

    /// Handles a batch from the queue; failed records are reported alone.
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
        let deadline = event.context.deadline();
        let handle_message = |message| async move { self.handle_message(&message, deadline).await };
        handle_batch(event.payload, CONCURRENCY, &self.metrics, handle_message).await
    }

    /// Charges a reserved order once, then refunds it if it was cancelled meanwhile.
    async fn charge(
        &self,
        source: &Envelope,
        reserved: &StockReserved,
        deadline: SystemTime,
    ) -> Result<Outcome, PaymentsError> {
        let order_id = reserved.order_id.as_str();
        let charged = retry_on_conflict(&self.retry, || async {
            let (payment, version) = self.payment(order_id).await?;
            let Some(request) = decide_charge(reserved, &payment) else {
                return Ok(Outcome::Duplicate);
            };
            let (order, _) = self.order(order_id).await?;
            // A charge that reached the gateway before the cancel (its event not stored: the
            // append failed) is finished below, recorded and refunded; only an order never
            // charged is left alone.
            if order.status == OrderStatus::Cancelled
                && !self
                    .charges
                    .has_record(&json!(order_id))
                    .await
                    .map_err(IdempotencyError::Store)?
            {
                tracing::info!(
                    order_id,
                    "order cancelled before it was charged; nothing to charge"
                );
                return Ok(Outcome::Ignored);
            }
            let result = self.call_charge(&request, deadline).await?;
            let event = charged(&request, result);
            let marker = DedupeMarker::new(CONSUMER, &source.id);
            self.append(source, order_id, version, &event, Some(marker))
                .await?;
            Ok(Outcome::Applied(event_type(&event)))
        })
        .await;
        let charged = match charged {
            Err(PaymentsError::Store(StoreError::Duplicate { .. })) => Outcome::Duplicate,
            other => other?,
        };
        if charged != Outcome::Ignored {
            self.refund_if_cancelled(order_id, deadline).await?;
        }
        Ok(charged)
    }

    async fn call_charge(
        &self,
        request: &ChargeRequest,
        deadline: SystemTime,
    ) -> Result<domain::payment::ChargeResult, PaymentsError> {
        let payload = json!(request);
        let result = self
            .charges
            .run(&json!(request.order_id), &payload, deadline, || {
                self.gateway.charge(request.clone())
            })
            .await?;
        Ok(result)
    }

    /// After a capture: an order cancelled in the meantime gets its money back now.
    async fn refund_if_cancelled(
        &self,
        order_id: &str,
        deadline: SystemTime,
    ) -> Result<(), PaymentsError> {
        let (_, history) = self.order(order_id).await?;
        let cancellation = history
            .iter()
            .rev()
            .find(|e| e.event_type == "order.cancelled");
        if let Some(cancellation) = cancellation
            && let Outcome::Applied(what) =
                self.refund(cancellation, order_id, deadline, None).await?
        {
            tracing::info!(
                order_id,
                outcome = what,
                "order was cancelled during the charge; refunded"
            );
        }
        Ok(())
    }

    /// Refunds a captured payment once; `marker` is the cancellation message's dedupe marker.
    async fn refund(
        &self,
        cause: &Envelope,
        order_id: &str,
        deadline: SystemTime,
        marker: Option<DedupeMarker>,
    ) -> Result<Outcome, PaymentsError> {
        let refunded = retry_on_conflict(&self.retry, || async {
            let (payment, version) = self.payment(order_id).await?;
            let Some(request) = decide_refund(order_id, &payment) else {
                return Ok(match payment {
                    Payment::Refunded { .. } => Outcome::Duplicate,
                    _ => Outcome::Ignored,
                });
            };
            let payload = json!(request);
            let _receipt: RefundReceipt = self
                .refunds
                .run(&json!(order_id), &payload, deadline, || {
                    self.gateway.refund(request.clone())
                })
                .await?;
            let event = refunded(&request);
            self.append(cause, order_id, version, &event, marker.clone())
                .await?;
            Ok(Outcome::Applied(event_type(&event)))
        })
        .await;
        match refunded {
            Err(PaymentsError::Store(StoreError::Duplicate { .. })) => Ok(Outcome::Duplicate),
            other => other,
        }
    }

    /// The order's payment state and version.
    async fn payment(&self, order_id: &str) -> Result<(Payment, u64), PaymentsError> {
        let history: Vec<PaymentEvent> = self.store.load(aggregate::PAYMENT, order_id).await?;
        Ok(Payment::from_history(&history))
    }

    /// The order's state and its stored events.
    async fn order(&self, order_id: &str) -> Result<(Order, Vec<Envelope>), PaymentsError> {
        let history = self
            .store
            .read_stream(aggregate::ORDER, order_id, 1)
            .await?;
        let events = history
            .iter()
            .map(|e| e.decode::<OrderEvent>())
            .collect::<Result<Vec<_>, _>>()?;
        let order = Order::from_history(&events)
            .ok_or_else(|| PaymentsError::OrderNotFound(order_id.to_owned()))?;
        Ok((order, history))
    }

    /// Appends `event` at the Payment stream's next version, caused by `cause`.
    async fn append(
        &self,
        cause: &Envelope,
        order_id: &str,
        version: u64,
        event: &PaymentEvent,
        marker: Option<DedupeMarker>,
    ) -> Result<(), PaymentsError> {
        let at = StreamPosition::new(aggregate::PAYMENT, order_id, version + 1);
        let envelope = Envelope::encode(SOURCE, at, event)?.caused_by(cause);
        let mut append = Append::events(vec![envelope]);
        if let Some(marker) = marker {
            append = append.deduplicated_by(marker);
        }
        self.store.append(append).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
