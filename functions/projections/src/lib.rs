//! `projections`: keeps the order read model that `GET /orders/{id}` returns.
//!
//! Every event of an order's `Order`, `Reservation` and `Payment` streams arrives here, at least
//! once and in any order. Each is applied to the order's [`OrderView`] only if it is the next
//! sequence of its stream ([`OrderView::apply`]); an event already applied is a duplicate and
//! changes nothing. When an event is ahead of its stream (a gap: something before it is still on
//! its way), the view is rebuilt from the event store, which already holds everything published,
//! so the view jumps forward instead of waiting for redeliveries. Views are written with a version
//! check ([`views::ViewStore::put`]), so concurrent deliveries for one order cannot lose an update.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod views;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use domain::aggregate;
use domain::inventory::ReservationEvent;
use domain::order::OrderEvent;
use domain::payment::PaymentEvent;
use domain::view::{ApplyOutcome, OrderView, SourceEvent, ViewEvent};
use lambda_runtime::{Error, LambdaEvent};
use ripple_kit::consumer::handle_batch;
use ripple_kit::envelope::EnvelopeError;
use ripple_kit::parse::{ParseError, envelope_from_sqs};
use ripple_kit::store::{Conflicting, DynamoEventStore, RetryPolicy, retry_on_conflict};
use ripple_kit::telemetry::Metrics;
use ripple_kit::{Envelope, EventStore, StoreError};

pub use views::{DynamoViewStore, InMemoryViewStore, StoredView, ViewStore, ViewStoreError};

/// The service name in metrics.
pub const CONSUMER: &str = "projections";
/// Records of one standard-queue batch handled at once.
const CONCURRENCY: usize = 4;
/// The streams an order view is folded from.
pub const SOURCE_STREAMS: [&str; 3] =
    [aggregate::ORDER, aggregate::RESERVATION, aggregate::PAYMENT];

ripple_kit::settings! {
    /// Settings, from the variables template.yaml gives this function.
    pub struct Config {
        /// The events table (read to rebuild a view).
        events_table: "EVENTS_TABLE",
        /// The order views table.
        views_table: "VIEWS_TABLE",
    }
}

/// Why a message could not be handled (it is retried, then dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The message is not an event envelope.
    #[error("unreadable message")]
    Parse(#[from] ParseError),
    /// The envelope does not decode as an event of its stream.
    #[error("unusable event")]
    Event(#[from] EnvelopeError),
    /// The views table failed, or the write kept losing races.
    #[error("views table")]
    Views(#[from] ViewStoreError),
    /// The event store failed while rebuilding.
    #[error("event store")]
    Store(#[from] StoreError),
    /// A rebuild found less in the store than the event being projected: retried, since the
    /// event was stored before it was published.
    #[error(
        "{aggregate_type} stream of order {order_id} has no sequence {sequence} in the store yet"
    )]
    NotInStore {
        /// The order.
        order_id: String,
        /// The stream.
        aggregate_type: &'static str,
        /// The sequence of the event being projected.
        sequence: u64,
    },
}

impl Conflicting for ProjectionError {
    fn is_conflict(&self) -> bool {
        matches!(
            self,
            ProjectionError::Views(ViewStoreError::Conflict { .. })
        )
    }
}

/// What handling one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The event was the next of its stream and is in the view.
    Applied,
    /// The event was applied before; the view is unchanged.
    Duplicate,
    /// The event was ahead of its stream; the view was rebuilt from the store.
    Rebuilt,
    /// Not an event of an order view (e.g. a `Stock` event).
    Ignored,
}

/// The view event an envelope carries, or `None` for streams that are not part of a view.
pub fn view_event(envelope: &Envelope) -> Result<Option<ViewEvent>, EnvelopeError> {
    let event = match envelope.aggregatetype.as_str() {
        aggregate::ORDER => SourceEvent::Order(envelope.decode::<OrderEvent>()?),
        aggregate::RESERVATION => SourceEvent::Reservation(envelope.decode::<ReservationEvent>()?),
        aggregate::PAYMENT => SourceEvent::Payment(envelope.decode::<PaymentEvent>()?),
        _ => return Ok(None),
    };
    Ok(Some(ViewEvent {
        sequence: envelope.sequence,
        time: envelope.time,
        event,
    }))
}

/// The stored view of `order_id` (what the API returns), if the projection has written one.
pub async fn get_view<V: ViewStore>(
    views: &V,
    order_id: &str,
) -> Result<Option<OrderView>, ViewStoreError> {
    Ok(views.get(order_id).await?.map(|stored| stored.view))
}

/// The queue handler over an event store (for rebuilds) and a view store.
pub struct Handler<S = DynamoEventStore, V = DynamoViewStore> {
    store: S,
    views: V,
    retry: RetryPolicy,
    metrics: Metrics,
}

impl Handler {
    /// The handler on the DynamoDB tables named in `config`.
    pub fn new(config: Config, aws: &aws_config::SdkConfig) -> Self {
        let client = aws_sdk_dynamodb::Client::new(aws);
        Self::with_ports(
            DynamoEventStore::new(client.clone(), config.events_table),
            DynamoViewStore::new(client, config.views_table),
        )
    }
}

impl<S: EventStore, V: ViewStore> Handler<S, V> {
    /// The handler over any adapters (tests pass in-memory ones).
    pub fn with_ports(store: S, views: V) -> Self {
        Handler {
            store,
            views,
            retry: RetryPolicy::default(),
            metrics: Metrics::new("Ripple", CONSUMER),
        }
    }

    /// The event store views are rebuilt from.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The view store.
    pub fn views(&self) -> &V {
        &self.views
    }

    /// The stored view of `order_id`, if any.
    pub async fn get_view(&self, order_id: &str) -> Result<Option<OrderView>, ViewStoreError> {
        get_view(&self.views, order_id).await
    }

    /// Handles one queue message.
    pub async fn handle_message(&self, message: &SqsMessage) -> Result<Outcome, ProjectionError> {
        let source = envelope_from_sqs(message)?;
        let Some(event) = view_event(&source)? else {
            tracing::info!(event_id = %source.id, r#type = %source.event_type, "not part of an order view; ignored");
            return Ok(Outcome::Ignored);
        };
        let order_id = event.event.order_id().to_owned();
        let outcome = retry_on_conflict(&self.retry, || self.project(&order_id, &event)).await?;
        match outcome {
            Outcome::Applied => self.metrics.count("EventsConsumed"),
            Outcome::Duplicate => self.metrics.count("DuplicatesSkipped"),
            Outcome::Rebuilt => self.metrics.count("ViewsRebuilt"),
            Outcome::Ignored => {}
        }
        tracing::info!(event_id = %source.id, r#type = %source.event_type, order_id, sequence = source.sequence, outcome = ?outcome, "projected");
        Ok(outcome)
    }

    /// Handles a batch from the queue; failed records are reported alone.
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
        let handle_message = |message| async move { self.handle_message(&message).await };
        handle_batch(event.payload, CONCURRENCY, &self.metrics, handle_message).await
    }

    async fn project(&self, order_id: &str, event: &ViewEvent) -> Result<Outcome, ProjectionError> {
        let (mut view, expected) = match self.views.get(order_id).await? {
            Some(stored) => (stored.view, stored.version),
            None => (OrderView::new(order_id), 0),
        };
        match view.apply(event) {
            ApplyOutcome::Applied => {
                self.views.put(&view, expected).await?;
                Ok(Outcome::Applied)
            }
            ApplyOutcome::Duplicate => Ok(Outcome::Duplicate),
            ApplyOutcome::OtherOrder => Ok(Outcome::Ignored),
            ApplyOutcome::Gap {
                aggregate_type,
                expected: next,
                got,
            } => {
                tracing::info!(
                    order_id,
                    aggregate_type,
                    expected = next,
                    got,
                    "gap in the view; rebuilding from the store"
                );
                let rebuilt = self.rebuild(order_id).await?;
                if rebuilt.version_of(aggregate_type) < got {
                    return Err(ProjectionError::NotInStore {
                        order_id: order_id.to_owned(),
                        aggregate_type,
                        sequence: got,
                    });
                }
                self.views.put(&rebuilt, expected).await?;
                Ok(Outcome::Rebuilt)
            }
        }
    }

    /// The view of `order_id` folded from the complete history of its streams in the store.
    pub async fn rebuild(&self, order_id: &str) -> Result<OrderView, ProjectionError> {
        let mut events = Vec::new();
        for aggregate_type in SOURCE_STREAMS {
            for envelope in self.store.read_stream(aggregate_type, order_id, 1).await? {
                if let Some(event) = view_event(&envelope)? {
                    events.push(event);
                }
            }
        }
        Ok(OrderView::rebuild(order_id, &events))
    }
}

#[cfg(test)]
mod tests;
