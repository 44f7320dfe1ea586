//! `inventory`: reserves stock for placed orders and gives it back for cancelled ones.
//!
//! `order.placed` → `stock.reserved` (with a `stock.allocated` per sku) or `stock.rejected`;
//! `order.cancelled` → `stock.released` (with a `stock.deallocated` per sku) for whatever the order
//! holds. The new events and the dedupe marker `dedupe#inventory#<source event id>` are appended
//! in one transaction: a redelivered message finds its marker taken and changes nothing, and two
//! orders racing for the last unit collide on the sku's stream position, so one of them reloads
//! and sees the stock gone.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use domain::aggregate;
use domain::inventory::{
    Decision, Reservation, ReservationEvent, Stock, StockEvent, decide_release, decide_reservation,
};
use domain::order::{OrderEvent, OrderPlaced};
use lambda_runtime::{Error, LambdaEvent};
use ripple_kit::consumer::{handle_batch, record};
use ripple_kit::envelope::EnvelopeError;
use ripple_kit::parse::{ParseError, envelope_from_sqs};
use ripple_kit::store::{Conflicting, DynamoEventStore, RetryPolicy, retry_on_conflict};
use ripple_kit::telemetry::Metrics;
use ripple_kit::{Append, DedupeMarker, Envelope, EventStore, StoreError, StreamPosition};

pub use ripple_kit::consumer::Outcome;

/// The consumer name in dedupe markers; never change it, or redeliveries are handled again.
pub const CONSUMER: &str = "inventory";
/// The `source` of the events this function writes.
pub const SOURCE: &str = "ripple/inventory";
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
pub enum InventoryError {
    /// The message is not an event envelope.
    #[error("unreadable message")]
    Parse(#[from] ParseError),
    /// The envelope is not an event inventory handles.
    #[error("unusable event")]
    Event(#[from] EnvelopeError),
    /// The event store failed or the conflict retries ran out.
    #[error("event store")]
    Store(#[from] StoreError),
}

impl Conflicting for InventoryError {
    fn is_conflict(&self) -> bool {
        matches!(self, InventoryError::Store(e) if e.is_conflict())
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
    pub async fn handle_message(&self, message: &SqsMessage) -> Result<Outcome, InventoryError> {
        let source = envelope_from_sqs(message)?;
        let event: OrderEvent = source.decode()?;
        tracing::info!(event_id = %source.id, r#type = %source.event_type, correlation_id = %source.correlationid, "handling");
        let outcome = match &event {
            OrderEvent::Placed(placed) => self.reserve(&source, placed).await,
            OrderEvent::Cancelled { order_id, .. } => self.release(&source, order_id).await,
            OrderEvent::Confirmed { .. } => Ok(Outcome::Ignored),
        };
        // A redelivery finds its dedupe marker taken: that comes back as `Duplicate`.
        record(&self.metrics, &source, outcome)
    }

    /// Handles a batch from the queue; failed records are reported alone.
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
        let handle_message = |message| async move { self.handle_message(&message).await };
        handle_batch(event.payload, CONCURRENCY, &self.metrics, handle_message).await
    }

    async fn reserve(
        &self,
        source: &Envelope,
        placed: &OrderPlaced,
    ) -> Result<Outcome, InventoryError> {
        retry_on_conflict(&self.retry, || async {
            let (reservation, version) = self.reservation(&placed.order_id).await?;
            match reservation {
                Reservation::None => {}
                // Decided by an earlier delivery of this order.
                Reservation::Reserved(_) | Reservation::Rejected => return Ok(Outcome::Duplicate),
                // Cancelled (before or after reserving): nothing to set aside.
                Reservation::Released => return Ok(Outcome::Ignored),
            }
            let skus = placed.lines.iter().map(|l| l.sku.as_str());
            let stocks = self.stocks(skus).await?;
            let decision = decide_reservation(placed, &stocks);
            let what = match decision.outcome {
                ReservationEvent::Reserved(_) => "stock.reserved",
                _ => "stock.rejected",
            };
            self.append(source, &placed.order_id, version, decision)
                .await?;
            Ok(Outcome::Applied(what))
        })
        .await
    }

    async fn release(&self, source: &Envelope, order_id: &str) -> Result<Outcome, InventoryError> {
        retry_on_conflict(&self.retry, || async {
            let (reservation, version) = self.reservation(order_id).await?;
            let skus: Vec<String> = match &reservation {
                Reservation::Reserved(lines) => lines.iter().map(|l| l.sku.clone()).collect(),
                // Cancelled before inventory decided: an empty release closes the reservation.
                Reservation::None => Vec::new(),
                Reservation::Rejected | Reservation::Released => return Ok(Outcome::Ignored),
            };
            let stocks = self.stocks(skus.iter().map(String::as_str)).await?;
            match decide_release(order_id, &reservation, &stocks) {
                Some(decision) => {
                    self.append(source, order_id, version, decision).await?;
                    Ok(Outcome::Applied("stock.released"))
                }
                None => Ok(Outcome::Ignored),
            }
        })
        .await
    }

    /// Adds `quantity` units of `sku` (an operator's action: seeding, deliveries).
    pub async fn restock(&self, sku: &str, quantity: u64) -> Result<(), InventoryError> {
        retry_on_conflict(&self.retry, || async {
            let stock = self.stock(sku).await?;
            let event = Envelope::encode(
                SOURCE,
                StreamPosition::new(aggregate::STOCK, sku, stock.version + 1),
                &StockEvent::Restocked {
                    sku: sku.to_owned(),
                    quantity,
                },
            )?;
            self.store.append(Append::events(vec![event])).await?;
            Ok(())
        })
        .await
    }

    /// The current stock of `sku`.
    pub async fn stock(&self, sku: &str) -> Result<Stock, InventoryError> {
        let history: Vec<StockEvent> = self.store.load(aggregate::STOCK, sku).await?;
        Ok(Stock::from_history(&history))
    }

    async fn stocks<'a>(
        &self,
        skus: impl Iterator<Item = &'a str>,
    ) -> Result<BTreeMap<String, Stock>, InventoryError> {
        let loads = skus.map(|sku| async move {
            Ok::<_, InventoryError>((sku.to_owned(), self.stock(sku).await?))
        });
        futures::future::try_join_all(loads)
            .await
            .map(|v| v.into_iter().collect())
    }

    async fn reservation(&self, order_id: &str) -> Result<(Reservation, u64), InventoryError> {
        let history: Vec<ReservationEvent> =
            self.store.load(aggregate::RESERVATION, order_id).await?;
        Ok(Reservation::from_history(&history))
    }

    /// Appends a decision's events, caused by `source`, with `source`'s dedupe marker.
    async fn append(
        &self,
        source: &Envelope,
        order_id: &str,
        version: u64,
        decision: Decision,
    ) -> Result<(), InventoryError> {
        let mut events = Vec::with_capacity(decision.changes.len() + 1);
        for change in &decision.changes {
            let at = StreamPosition::new(aggregate::STOCK, &change.sku, change.sequence);
            events.push(Envelope::encode(SOURCE, at, &change.event)?.caused_by(source));
        }
        let at = StreamPosition::new(aggregate::RESERVATION, order_id, version + 1);
        events.push(Envelope::encode(SOURCE, at, &decision.outcome)?.caused_by(source));
        let append =
            Append::events(events).deduplicated_by(DedupeMarker::new(CONSUMER, &source.id));
        self.store.append(append).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
