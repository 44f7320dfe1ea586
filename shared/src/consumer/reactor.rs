//! Event-sourced consumers: a [`Reactor`] decides which events an incoming one leads to;
//! [`EventSourced`] appends them exactly once.
//!
//! For every delivery, [`EventSourced`] asks the reactor what the event means ([`Reactor::input`]),
//! lets it load what it needs and decide ([`Reactor::react`]), and appends the decided events,
//! caused by the incoming one, together with the dedupe marker
//! `dedupe#<Reactor::NAME>#<incoming event id>` in one transaction. A redelivery finds its marker
//! taken and appends nothing ([`Handled::Duplicate`]); a writer that took one of the same stream
//! positions first makes the append a conflict, and the whole load–decide–append runs again with
//! jittered backoff ([`RetryPolicy`]), as long as the delivery's deadline allows, so the decision
//! is always made on fresh state. A reaction whose one event's position follows from the incoming
//! event alone needs no marker: the event is its own ([`Reaction::AppendKeyed`]). A reactor that
//! can decide on the state the event nearly always finds ([`Reactor::presume`]) has that decision
//! stored first, without a read, and is asked to `react` only if the store refuses it.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Consumer, Delivery, Handled, SqsConsumer};
use crate::batch::latest_start;
use crate::envelope::{Envelope, EnvelopeError, StreamPosition, event_type_of};
use crate::parse::ParseError;
use crate::store::{
    Append, Conflicting, DedupeMarker, EventStore, RetryPolicy, StoreError, Unchanged,
    retry_on_conflict_until,
};
#[cfg(feature = "store-dynamodb")]
use crate::{config::EventStoreConfig, store::DynamoEventStore};

/// Decides what an incoming event leads to, for a consumer that keeps its state in the store.
pub trait Reactor<S: EventStore>: Send + Sync {
    /// The consumer's stable name (its dedupe markers, its metrics). Never change it.
    const NAME: &'static str;
    /// The `source` of the events it appends, e.g. `ripple/inventory`.
    const SOURCE: &'static str;
    /// What it reacts to, read from the incoming event.
    type Input: Send + Sync;
    /// Its own failures besides the kit's (e.g. a payment gateway's); [`Infallible`] for none.
    type Error: std::error::Error + Send + Sync + 'static;

    /// What the incoming event means to this reactor: `None` for an event it does not act on.
    /// An event it should understand but cannot read is an error (the message is poison).
    fn input(&self, event: &Envelope) -> Result<Option<Self::Input>, EnvelopeError>;

    /// Loads what the decision needs from `store` and decides. Called again after a conflict, so
    /// it must not keep state between calls; an outside effect made here must be idempotent.
    fn react(
        &self,
        store: &S,
        input: &Self::Input,
        delivery: &Delivery<'_>,
    ) -> impl Future<Output = Result<Reaction, ConsumerError<Self::Error>>> + Send;

    /// Decides on the state the incoming event nearly always finds (say, an order that holds
    /// only `order.placed`, or a reservation stream not yet begun), reading only what it already
    /// holds (copies, [`Cached`](crate::store::Cached)), so that such a delivery costs one
    /// write. Asked once, before [`react`](Self::react); its reaction is stored with the marker,
    /// and if a stream stands elsewhere than presumed, the append is refused (the events' own
    /// positions, the checks of [`Reaction::AppendGiven`] and [`Reaction::AppendPresumed`]) and
    /// `react` decides on what it reads. A presumed reaction that appends nothing (`Ignored`,
    /// `AlreadyApplied`) meets no check and is taken as it is: return one only where no state of
    /// the streams would call for a write. An outside effect made here must be idempotent, as in
    /// `react`. `None`, the default: always `react`.
    fn presume(
        &self,
        store: &S,
        input: &Self::Input,
        delivery: &Delivery<'_>,
    ) -> impl Future<Output = Result<Option<Reaction>, ConsumerError<Self::Error>>> + Send {
        let _ = (store, input, delivery);
        async { Ok(None) }
    }

    /// Runs once the reaction is stored (or found stored before): a follow-up that must see the
    /// reaction's events, such as re-checking for a race. Nothing by default.
    fn after(
        &self,
        store: &S,
        input: &Self::Input,
        handled: Handled,
        delivery: &Delivery<'_>,
    ) -> impl Future<Output = Result<(), ConsumerError<Self::Error>>> + Send {
        let _ = (store, input, handled, delivery);
        async { Ok(()) }
    }
}

/// What a reactor decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Reaction {
    /// Append these events, caused by the incoming one, with its dedupe marker, atomically.
    Append(Vec<NewEvent>),
    /// Append these events as [`Reaction::Append`] does, provided the streams the decision read
    /// but does not append to are still at the versions it read ([`Unchanged`]): if one has
    /// moved on, the append is a conflict and the decision is made again on fresh state. What
    /// a decision reads from a copy ([`Cached`](crate::store::Cached)) must be named here
    /// unless it is appended to.
    AppendGiven(Vec<NewEvent>, Vec<Unchanged>),
    /// Append these events where the decision presumes their streams stand, without having read
    /// them ([`Reactor::presume`]): each stream must hold the event just before its first new
    /// one ([`Append::presumed`]), or the append is a conflict.
    AppendPresumed(Vec<NewEvent>),
    /// Append this one event at a position that follows from the incoming event alone, the same
    /// on every delivery of it whatever the store holds (a receipt as the first event of its
    /// order's receipt stream, say). The event is its own dedupe marker
    /// ([`Append::deduplicated_by_cause`]): one conditional put of one item, a quarter of the
    /// write units of an event and its marker in a transaction. A redelivery finds the position
    /// taken by this reactor's event caused by the same incoming one, and appends nothing
    /// ([`Handled::Duplicate`]); any other event there is a conflict, and `react` decides on what
    /// the store holds, so it must then decide otherwise (`AlreadyApplied`, `Ignored`, another
    /// position) or the message ends in its dead-letter queue.
    AppendKeyed(NewEvent),
    /// The store already holds this reaction (its state shows the incoming event was handled).
    AlreadyApplied,
    /// Nothing to do.
    Ignored,
}

impl Reaction {
    /// The reaction that appends one event at `at`.
    pub fn append<E: Serialize + DeserializeOwned>(
        at: StreamPosition,
        event: &E,
    ) -> Result<Self, EnvelopeError> {
        Ok(Reaction::Append(vec![NewEvent::new(at, event)?]))
    }
}

/// An event a reactor decided, and the stream position it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    at: StreamPosition,
    event_type: &'static str,
    event: serde_json::Value,
}

impl NewEvent {
    /// `event` (a variant of an adjacently tagged event enum) at `at`.
    pub fn new<E: Serialize + DeserializeOwned>(
        at: StreamPosition,
        event: &E,
    ) -> Result<Self, EnvelopeError> {
        let event_type = event_type_of(event).ok_or_else(|| {
            EnvelopeError::Invalid(
                "an event must be an enum with #[serde(tag = \"type\", content = \"data\")]".into(),
            )
        })?;
        let event = serde_json::to_value(event).map_err(EnvelopeError::Malformed)?;
        Ok(NewEvent {
            at,
            event_type,
            event,
        })
    }

    /// The envelope of this event from `source`, caused by `cause` (for a reactor that appends a
    /// follow-up itself, in [`Reactor::after`]).
    pub fn into_envelope(self, source: &str, cause: &Envelope) -> Result<Envelope, EnvelopeError> {
        Ok(Envelope::encode(source, self.at, &self.event)?.caused_by(cause))
    }
}

/// Why an event-sourced consumer could not handle a message (it is retried, then dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError<E = Infallible> {
    /// The message is not an event envelope, or its event was not admitted.
    #[error("unusable message")]
    Parse(#[from] ParseError),
    /// The event is not one the consumer can read, or a decided event cannot be encoded.
    #[error("unusable event")]
    Event(#[from] EnvelopeError),
    /// The event store failed, or the conflict retries ran out.
    #[error("event store")]
    Store(#[from] StoreError),
    /// The event names an aggregate the store does not hold (yet).
    #[error("{stream} is not in the event store")]
    NotFound {
        /// The stream key looked for.
        stream: String,
    },
    /// The consumer's own failure.
    #[error(transparent)]
    Own(E),
}

impl<E> Conflicting for ConsumerError<E> {
    fn is_conflict(&self) -> bool {
        matches!(self, ConsumerError::Store(err) if err.is_conflict())
    }
}

impl<R: Reactor<S>, S: EventStore> SqsConsumer<EventSourced<R, S>> {
    /// `reactor` over `store`, behind its queue: the whole handler of an event-sourced consumer
    /// (tests pass the in-memory store).
    pub fn event_sourced(reactor: R, store: S) -> Self {
        SqsConsumer::new(EventSourced::new(reactor, store))
    }
}

#[cfg(feature = "store-dynamodb")]
impl<R: Reactor<DynamoEventStore>> SqsConsumer<EventSourced<R, DynamoEventStore>> {
    /// `reactor` over the DynamoDB event store that `config` names, behind its queue; with the
    /// feature `redelivery-sqs`, failed messages back off as `config.redelivery` says.
    pub fn on_dynamodb(reactor: R, config: EventStoreConfig, aws: &aws_config::SdkConfig) -> Self {
        let store =
            DynamoEventStore::new(crate::requests::dynamodb_client(aws), config.events_table);
        let consumer = SqsConsumer::event_sourced(reactor, store);
        #[cfg(feature = "redelivery-sqs")]
        let consumer = consumer.with_backoff(config.redelivery, aws);
        consumer
    }
}

/// A [`Reactor`] over an event store, as a [`Consumer`].
pub struct EventSourced<R, S> {
    reactor: R,
    store: S,
    retry: RetryPolicy,
}

impl<R: Reactor<S>, S: EventStore> EventSourced<R, S> {
    /// `reactor` appending to `store`, retrying conflicts with [`EventSourced::RETRY`].
    pub fn new(reactor: R, store: S) -> Self {
        EventSourced {
            reactor,
            store,
            retry: Self::RETRY,
        }
    }

    /// How conflicts are retried unless set otherwise: the default [`RetryPolicy`]'s jittered
    /// backoff, as often as the delivery's deadline allows ([`latest_start`]). Every
    /// receive that ends in a lost race uses up one of the message's receives, so a hot aggregate
    /// must be fought for within the invocation rather than through the queue.
    pub const RETRY: RetryPolicy = RetryPolicy {
        max_attempts: u32::MAX,
        base: Duration::from_millis(20),
        cap: Duration::from_secs(1),
    };

    /// Retries conflicts with `retry` instead.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The reactor.
    pub fn reactor(&self) -> &R {
        &self.reactor
    }

    /// The event store.
    pub fn store(&self) -> &S {
        &self.store
    }

    async fn react_and_append(
        &self,
        input: &R::Input,
        delivery: &Delivery<'_>,
    ) -> Result<Handled, ConsumerError<R::Error>> {
        let reaction = self.reactor.react(&self.store, input, delivery).await?;
        self.store_reaction(reaction, delivery).await
    }

    /// The presumed decision stored, or `None` when there is none or a stream stood elsewhere
    /// than presumed.
    async fn presumed(
        &self,
        input: &R::Input,
        delivery: &Delivery<'_>,
    ) -> Result<Option<Handled>, ConsumerError<R::Error>> {
        let Some(reaction) = self.reactor.presume(&self.store, input, delivery).await? else {
            return Ok(None);
        };
        match self.store_reaction(reaction, delivery).await {
            Err(ConsumerError::Store(err)) if err.is_conflict() => {
                tracing::debug!(error = %err, "not where presumed; deciding on what the store holds");
                delivery.metrics.count("PresumptionsRefused");
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    /// Appends `reaction`'s events, caused by the delivered one, with its marker and checks (a
    /// keyed one as its own marker).
    async fn store_reaction(
        &self,
        reaction: Reaction,
        delivery: &Delivery<'_>,
    ) -> Result<Handled, ConsumerError<R::Error>> {
        let keyed = matches!(reaction, Reaction::AppendKeyed(_));
        let (events, unchanged, presumed) = match reaction {
            Reaction::AppendKeyed(event) => (vec![event], Vec::new(), false),
            Reaction::Append(events) => (events, Vec::new(), false),
            Reaction::AppendGiven(events, unchanged) => (events, unchanged, false),
            Reaction::AppendPresumed(events) => (events, Vec::new(), true),
            Reaction::AlreadyApplied => return Ok(Handled::Duplicate),
            Reaction::Ignored => return Ok(Handled::Ignored),
        };
        let Some(what) = events.last().map(|e| e.event_type) else {
            return Ok(Handled::Ignored);
        };
        let envelopes = events
            .into_iter()
            .map(|event| event.into_envelope(R::SOURCE, delivery.event))
            .collect::<Result<Vec<_>, _>>()?;
        let append = if keyed {
            Append::events(envelopes).deduplicated_by_cause()
        } else {
            let marker = DedupeMarker::new(R::NAME, &delivery.event.id);
            Append {
                presumed,
                ..Append::events(envelopes)
                    .deduplicated_by(marker)
                    .given_unchanged(unchanged)
            }
        };
        self.store.append(append).await?;
        Ok(Handled::Applied(what))
    }
}

impl<R: Reactor<S>, S: EventStore> Consumer for EventSourced<R, S> {
    const NAME: &'static str = R::NAME;
    type Error = ConsumerError<R::Error>;

    async fn consume(&self, delivery: &Delivery<'_>) -> Result<Handled, Self::Error> {
        let Some(input) = self.reactor.input(delivery.event)? else {
            return Ok(Handled::Ignored);
        };
        let handled = match self.presumed(&input, delivery).await {
            Ok(Some(handled)) => Ok(handled),
            Ok(None) => {
                let until = latest_start(delivery.deadline);
                retry_on_conflict_until(&self.retry, Some(until), || {
                    self.react_and_append(&input, delivery)
                })
                .await
            }
            Err(err) => Err(err),
        };
        let handled = match handled {
            // The marker is taken: this very message was handled before.
            Err(ConsumerError::Store(StoreError::Duplicate { .. })) => Handled::Duplicate,
            other => other?,
        };
        self.reactor
            .after(&self.store, &input, handled, delivery)
            .await?;
        Ok(handled)
    }
}

#[cfg(test)]
mod tests;
