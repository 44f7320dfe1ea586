//! `projections`: keeps the order read model that `GET /orders/{id}` returns.
//!
//! Every event of an order's `Order`, `Reservation` and `Payment` streams arrives here, at least
//! once and in any order. Each is applied to the order's [`OrderView`] only if it is the next
//! sequence of its stream ([`OrderView::apply`]); an event already applied is a duplicate and
//! changes nothing. When an event is ahead of its stream (a gap: something before it is still on
//! its way), the view is rebuilt from the event store, which already holds everything published,
//! so the view jumps forward instead of waiting for redeliveries. Views are written with a version
//! check ([`ViewStore::put`]), so concurrent deliveries for one order cannot lose an update.
//!
//! The views it wrote stay in the execution environment between invocations, so a warm event is
//! one conditional write and no read: the write names the version of the copy, and a copy made
//! stale by another writer fails that check and is read again. A stream's first event for a view
//! it holds no copy of is written as if the view were new (the same check refuses it if it is
//! not). A gap seen on a copy is checked on the stored view before anything is rebuilt.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};

use domain::view::{ApplyOutcome, OrderView, ViewEvent};
use domain::views::{DynamoViewStore, ViewStore, ViewStoreError, rebuild_from};
use lru::LruCache;
use ripple_kit::batch::RedeliveryBackoff;
use ripple_kit::config::{ConfigError, Env};
use ripple_kit::consumer::{Delivery, Handled};
use ripple_kit::store::{Conflicting, DynamoEventStore, RetryPolicy, retry_on_conflict};
use ripple_kit::{Consumer, ConsumerError, EventStore, SqsConsumer};

pub use domain::views::SOURCE_STREAMS;

/// Settings, from the variables template.yaml gives this function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The events table, read to rebuild a view (`EVENTS_TABLE`).
    pub events_table: String,
    /// The order views table (`VIEWS_TABLE`).
    pub views_table: String,
    /// How failed messages back off (`REDELIVERY_BASE_SECONDS`, `REDELIVERY_CAP_SECONDS`).
    pub redelivery: RedeliveryBackoff,
}

impl Config {
    /// From any lookup: `ripple_kit::config::process_env` in Lambda, the template's variables in
    /// the local runner.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        Ok(Config {
            events_table: env.required("EVENTS_TABLE")?,
            views_table: env.required("VIEWS_TABLE")?,
            redelivery: RedeliveryBackoff::from_env(&env)?,
        })
    }
}

/// Why an event could not be projected, besides the kit's reasons.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The views table failed, or the write kept losing races.
    #[error("views table")]
    Views(#[from] ViewStoreError),
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

/// What projecting fails with.
pub type ProjectionError = ConsumerError<ViewError>;

/// One attempt at a view write: a lost race on the views table is retried like a store conflict.
struct Attempt(ProjectionError);

impl Conflicting for Attempt {
    fn is_conflict(&self) -> bool {
        self.0.is_conflict()
            || matches!(
                self.0,
                ConsumerError::Own(ViewError::Views(ViewStoreError::Conflict { .. }))
            )
    }
}

impl From<ProjectionError> for Attempt {
    fn from(err: ProjectionError) -> Self {
        Attempt(err)
    }
}

impl From<ViewError> for Attempt {
    fn from(err: ViewError) -> Self {
        Attempt(ConsumerError::Own(err))
    }
}

/// The projections function: [`Projection`] behind its queue.
pub type Handler<S = DynamoEventStore, V = DynamoViewStore> = SqsConsumer<Projection<S, V>>;

/// The handler on the DynamoDB tables named in `config`.
pub fn handler(config: Config, aws: &aws_config::SdkConfig) -> Handler {
    let client = ripple_kit::requests::dynamodb_client(aws);
    handler_with(
        DynamoEventStore::new(client.clone(), config.events_table),
        DynamoViewStore::new(client, config.views_table),
    )
    .with_backoff(config.redelivery, aws)
}

/// The handler over any adapters (tests pass in-memory ones).
pub fn handler_with<S: EventStore, V: ViewStore>(store: S, views: V) -> Handler<S, V> {
    SqsConsumer::new(Projection {
        store,
        views,
        retry: RetryPolicy::default(),
        copies: Mutex::new(LruCache::new(COPIES)),
    })
    .with_producers(domain::producers())
}

/// Views kept in the execution environment: about a kilobyte each.
const COPIES: NonZeroUsize = NonZeroUsize::new(1024).expect("not zero");

/// Keeps the order views: applies each stream's next event, rebuilds a view on a gap.
pub struct Projection<S, V> {
    store: S,
    views: V,
    retry: RetryPolicy,
    /// The views as this execution environment last wrote or read them.
    copies: Mutex<LruCache<String, OrderView>>,
}

/// What projecting one event did to its view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Projected {
    Applied,
    Duplicate,
    Rebuilt,
    Ignored,
}

impl<S: EventStore, V: ViewStore> Consumer for Projection<S, V> {
    const NAME: &'static str = "projections";
    type Error = ProjectionError;

    async fn consume(&self, delivery: &Delivery<'_>) -> Result<Handled, ProjectionError> {
        let source = delivery.event;
        let Some(event) = ViewEvent::from_envelope(source)? else {
            tracing::info!(event_id = %source.id, r#type = %source.event_type, "not part of an order view; ignored");
            return Ok(Handled::Ignored);
        };
        let order_id = event.event.order_id().to_owned();
        let projected = retry_on_conflict(&self.retry, || self.project(&order_id, &event))
            .await
            .map_err(|Attempt(err)| err)?;
        tracing::info!(order_id, sequence = source.sequence, outcome = ?projected, "projected");
        Ok(match projected {
            Projected::Applied => Handled::Applied("view.updated"),
            Projected::Rebuilt => {
                delivery.metrics.count("ViewsRebuilt");
                Handled::Applied("view.rebuilt")
            }
            Projected::Duplicate => Handled::Duplicate,
            Projected::Ignored => Handled::Ignored,
        })
    }
}

impl<S: EventStore, V: ViewStore> Projection<S, V> {
    /// The event store views are rebuilt from.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The view store.
    pub fn views(&self) -> &V {
        &self.views
    }

    async fn project(&self, order_id: &str, event: &ViewEvent) -> Result<Projected, Attempt> {
        if let Some(projected) = self.project_on_copy(order_id, event).await? {
            return Ok(projected);
        }
        self.project_on_stored(order_id, event).await
    }

    /// Projects `event` on the copy of its view, or on a new view for a stream's first event,
    /// with no read: `None` when the copy cannot tell (there is none, it is stale, or it shows a
    /// gap), and the stored view must be read.
    async fn project_on_copy(
        &self,
        order_id: &str,
        event: &ViewEvent,
    ) -> Result<Option<Projected>, Attempt> {
        let copy = self.copies().get(order_id).cloned();
        let Some(mut view) =
            copy.or_else(|| (event.sequence == 1).then(|| OrderView::new(order_id)))
        else {
            return Ok(None);
        };
        let expected = view.events_applied();
        match view.apply(event) {
            ApplyOutcome::Applied => match self.views.put(&view, expected).await {
                Ok(()) => {
                    self.copies().put(order_id.to_owned(), view);
                    Ok(Some(Projected::Applied))
                }
                Err(err) => {
                    self.copies().pop(order_id);
                    match err {
                        ViewStoreError::Conflict { .. } => Ok(None),
                        other => Err(ViewError::from(other).into()),
                    }
                }
            },
            // The stored view only ever holds more than the copy.
            ApplyOutcome::Duplicate => Ok(Some(Projected::Duplicate)),
            ApplyOutcome::OtherOrder => Ok(Some(Projected::Ignored)),
            ApplyOutcome::Gap { .. } => {
                self.copies().pop(order_id);
                Ok(None)
            }
        }
    }

    fn copies(&self) -> std::sync::MutexGuard<'_, LruCache<String, OrderView>> {
        self.copies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Projects `event` on the stored view, rebuilding it on a gap; keeps the result as the copy.
    async fn project_on_stored(
        &self,
        order_id: &str,
        event: &ViewEvent,
    ) -> Result<Projected, Attempt> {
        let (mut view, expected) = match self.views.get(order_id).await.map_err(ViewError::from)? {
            Some(stored) => (stored.view, stored.version),
            None => (OrderView::new(order_id), 0),
        };
        match view.apply(event) {
            ApplyOutcome::Applied => {
                self.views
                    .put(&view, expected)
                    .await
                    .map_err(ViewError::from)?;
                self.copies().put(order_id.to_owned(), view);
                Ok(Projected::Applied)
            }
            ApplyOutcome::Duplicate => {
                self.copies().put(order_id.to_owned(), view);
                Ok(Projected::Duplicate)
            }
            ApplyOutcome::OtherOrder => Ok(Projected::Ignored),
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
                    return Err(ViewError::NotInStore {
                        order_id: order_id.to_owned(),
                        aggregate_type,
                        sequence: got,
                    }
                    .into());
                }
                self.views
                    .put(&rebuilt, expected)
                    .await
                    .map_err(ViewError::from)?;
                self.copies().put(order_id.to_owned(), rebuilt);
                Ok(Projected::Rebuilt)
            }
        }
    }

    /// The view of `order_id` folded from the complete history of its streams in the store.
    pub async fn rebuild(&self, order_id: &str) -> Result<OrderView, ProjectionError> {
        rebuild_from(&self.store, order_id).await
    }
}

#[cfg(test)]
mod tests;
