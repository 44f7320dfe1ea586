//! The event store: append-only streams with optimistic concurrency.
//!
//! One DynamoDB table holds every stream: `pk = "<AggregateType>#<id>"`, `sk = sequence`. An append
//! puts each new event with `attribute_not_exists`, all in one `TransactWriteItems`, so two writers
//! at the same version cannot both win: the loser gets [`StoreError::Conflict`] and retries with
//! [`retry_on_conflict`]. A consumer's dedupe marker rides in the same transaction, which makes
//! "apply this message's effects" and "remember this message" one atomic step. Every event is
//! also findable by its time ([`TimeIndexed`]), so that a range can be published again from the
//! store itself, whatever became of the stream.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::aggregate::{Aggregate, Loaded};
use crate::envelope::{Envelope, EnvelopeError};

mod cached;
#[cfg(feature = "store-dynamodb")]
mod dynamo;
#[cfg(feature = "store-dynamodb")]
pub(crate) mod item;
#[cfg(any(test, feature = "test-twins"))]
mod memory;
mod snapshot;
mod time_index;

pub use cached::Cached;
#[cfg(feature = "store-dynamodb")]
pub use dynamo::DynamoEventStore;
#[cfg(any(test, feature = "test-twins"))]
pub use memory::InMemoryEventStore;
pub use snapshot::{Snapshot, Snapshotted};
pub use time_index::{
    EventKey, KeysPage, TIME_INDEX, TIME_INDEX_SHARDS, TimeCursor, TimeIndexed, TimeRange,
};
#[cfg(feature = "store-dynamodb")]
pub(crate) use time_index::{time_bucket, time_key};

/// Attribute names of the events table.
// The outbox reads `kind` and `envelope` from stream images even without the DynamoDB adapter.
#[cfg_attr(not(feature = "store-dynamodb"), allow(dead_code))]
pub(crate) mod attr {
    /// Partition key: `<AggregateType>#<id>` or `dedupe#<consumer>#<event id>`.
    pub(crate) const PK: &str = "pk";
    /// Sort key: the event's sequence (0 for a dedupe marker and a stream's snapshot).
    pub(crate) const SK: &str = "sk";
    /// `event`, `dedupe` or `snapshot`: the outbox publishes only events.
    pub(crate) const KIND: &str = "kind";
    /// The event id, for looking an event up by eye.
    pub(crate) const ID: &str = "id";
    /// The event type, for looking an event up by eye.
    pub(crate) const TYPE: &str = "type";
    /// The whole envelope as JSON text, stored verbatim.
    pub(crate) const ENVELOPE: &str = "envelope";
    /// Epoch seconds after which DynamoDB's TTL may delete the item (dedupe markers only).
    pub(crate) const EXPIRES_AT: &str = "expires_at";
    /// Partition key of the time index: the event's hour and shard (events only).
    pub(crate) const TIME_BUCKET: &str = "time_bucket";
    /// Sort key of the time index: the event's time and id (events only).
    pub(crate) const TIME_KEY: &str = "time_key";
    /// Events a snapshot folds (snapshots only).
    pub(crate) const VERSION: &str = "version";
    /// The schema of a snapshot's state (snapshots only).
    pub(crate) const SCHEMA: &str = "schema";
    /// A snapshot's state as JSON text (snapshots only).
    pub(crate) const STATE: &str = "state";
}

/// `kind` of an event item.
pub(crate) const KIND_EVENT: &str = "event";
/// DynamoDB's limit on the items of one transaction.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// How long a dedupe marker is kept: longer than SQS's 14-day maximum retention.
pub const DEDUPE_RETENTION: Duration = Duration::from_secs(15 * 24 * 3600);

/// "This consumer has handled that source event": stored with the effects, atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupeMarker {
    /// The consumer's stable name, e.g. `inventory`.
    pub consumer: String,
    /// The id of the event whose effects are being appended.
    pub source_event_id: String,
}

impl DedupeMarker {
    /// The marker for `consumer` having handled `source_event_id`.
    pub fn new(consumer: &str, source_event_id: &str) -> Self {
        DedupeMarker {
            consumer: consumer.to_owned(),
            source_event_id: source_event_id.to_owned(),
        }
    }

    /// The marker's partition key, `dedupe#<consumer>#<source event id>`.
    pub fn key(&self) -> String {
        format!("dedupe#{}#{}", self.consumer, self.source_event_id)
    }
}

/// A stream a decision read but does not append to, at the version it read: the append
/// happens only if the stream is still there (nothing stored at `version + 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unchanged {
    /// The stream's aggregate type.
    pub aggregate_type: String,
    /// The stream's aggregate id.
    pub aggregate_id: String,
    /// Events the decision saw in it.
    pub version: u64,
}

impl Unchanged {
    /// `loaded`'s stream, at the version it was loaded at.
    pub fn of<A: Aggregate>(loaded: &Loaded<A>) -> Self {
        Unchanged {
            aggregate_type: A::TYPE.to_owned(),
            aggregate_id: loaded.id.clone(),
            version: loaded.version,
        }
    }

    /// The stream's key, `<AggregateType>#<id>`.
    pub fn stream_key(&self) -> String {
        crate::envelope::stream_key(&self.aggregate_type, &self.aggregate_id)
    }
}

/// Events to append in one atomic step, possibly to several streams, with an optional marker.
#[derive(Debug, Clone, Default)]
pub struct Append {
    /// The new events; each one's `aggregatetype`, `subject` and `sequence` say where it goes.
    pub events: Vec<Envelope>,
    /// Written in the same transaction; if it already exists the append is a duplicate.
    pub dedupe: Option<DedupeMarker>,
    /// Streams the decision read and does not append to: checked in the same transaction, so
    /// that a decision made on a stream that has moved on since is refused as a conflict.
    pub unchanged: Vec<Unchanged>,
    /// The decision did not read the streams it appends to but presumed where they stand: each
    /// must already hold the event just before its first new one ([`Append::predecessors`]),
    /// checked in the same transaction. With every event's own check that its position is
    /// free, that pins each stream at exactly the version presumed.
    pub presumed: bool,
    /// The append is one event whose position follows from its cause alone, the same on every
    /// delivery of that cause, and the event is its own dedupe marker
    /// ([`Append::deduplicated_by_cause`]): its position holding an event from the same
    /// `source` with the same `causationid` makes the append a duplicate; no marker item is
    /// written, so the append is one conditional put.
    pub by_cause: bool,
}

impl Append {
    /// An append of `events` with no dedupe marker.
    pub fn events(events: Vec<Envelope>) -> Self {
        Append {
            events,
            dedupe: None,
            unchanged: Vec::new(),
            presumed: false,
            by_cause: false,
        }
    }

    /// Marks the append as made on presumed positions ([`Append::presumed`]).
    pub fn presumed(mut self) -> Self {
        self.presumed = true;
        self
    }

    /// The events a presumed append requires to be there already: for each stream it appends
    /// to, in the order the events name them, the position before its first new event (none for
    /// a stream that starts at 1, whose own checks say it is empty). Empty unless presumed.
    pub fn predecessors(&self) -> Vec<(String, u64)> {
        if !self.presumed {
            return Vec::new();
        }
        let mut first: Vec<(String, u64)> = Vec::new();
        for event in &self.events {
            let key = event.stream_key();
            match first.iter_mut().find(|(stream, _)| *stream == key) {
                Some((_, sequence)) => *sequence = (*sequence).min(event.sequence),
                None => first.push((key, event.sequence)),
            }
        }
        first
            .into_iter()
            .filter(|(_, sequence)| *sequence > 1)
            .map(|(stream, sequence)| (stream, sequence - 1))
            .collect()
    }

    /// Adds streams that must still be at the version the decision read ([`Unchanged`]).
    pub fn given_unchanged(mut self, unchanged: impl IntoIterator<Item = Unchanged>) -> Self {
        self.unchanged.extend(unchanged);
        self
    }

    /// Adds the marker that makes this append happen at most once per source event.
    pub fn deduplicated_by(mut self, marker: DedupeMarker) -> Self {
        self.dedupe = Some(marker);
        self
    }

    /// Makes the one event its own dedupe marker ([`Append::by_cause`]): for an event whose
    /// position any delivery of its cause would decide alike.
    pub fn deduplicated_by_cause(mut self) -> Self {
        self.by_cause = true;
        self
    }

    /// What it means that the first event's position is taken by `stored`: with
    /// [`Append::by_cause`], an event from the same source with the same cause is this append
    /// made before ([`StoreError::Duplicate`]); anything else is a conflict.
    #[cfg(any(test, feature = "store-dynamodb", feature = "test-twins"))]
    pub(crate) fn taken_by(&self, stored: &Envelope) -> StoreError {
        match self.events.first() {
            Some(ours)
                if self.by_cause
                    && stored.source == ours.source
                    && stored.causationid.is_some()
                    && stored.causationid == ours.causationid =>
            {
                StoreError::Duplicate {
                    consumer: ours.source.clone(),
                    source_event_id: ours.causationid.clone().unwrap_or_default(),
                }
            }
            _ => StoreError::Conflict {
                stream: stored.stream_key(),
            },
        }
    }

    /// The items of its transaction: its events, its marker, its checks of unchanged streams and
    /// of presumed ones.
    pub fn item_count(&self) -> usize {
        self.events.len()
            + usize::from(self.dedupe.is_some())
            + self.unchanged.len()
            + self.predecessors().len()
    }

    /// Checks the rules a store enforces before writing: at least one event, at most
    /// [`MAX_TRANSACTION_ITEMS`] items, every envelope valid, no two events at one position.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.events.is_empty() {
            return Err(StoreError::InvalidAppend("no events to append".into()));
        }
        if self.item_count() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::InvalidAppend(format!(
                "{} items in one append; DynamoDB transactions take at most {MAX_TRANSACTION_ITEMS}",
                self.item_count()
            )));
        }
        let mut seen = HashSet::new();
        for event in &self.events {
            event
                .validate()
                .map_err(|e| StoreError::InvalidAppend(e.to_string()))?;
            if !seen.insert((event.stream_key(), event.sequence)) {
                return Err(StoreError::InvalidAppend(format!(
                    "two events at {} sequence {}",
                    event.stream_key(),
                    event.sequence
                )));
            }
        }
        if self.by_cause {
            let caused = self.events.len() == 1
                && self.events.iter().all(|e| e.causationid.is_some())
                && self.dedupe.is_none()
                && self.unchanged.is_empty()
                && self.predecessors().is_empty();
            if !caused {
                return Err(StoreError::InvalidAppend(
                    "an append deduplicated by its cause is one event with a causation id, \
                     no marker and no checks"
                        .into(),
                ));
            }
        }
        let appended: HashSet<String> = self.events.iter().map(Envelope::stream_key).collect();
        let mut checked = HashSet::new();
        for unchanged in &self.unchanged {
            let key = unchanged.stream_key();
            if appended.contains(&key) || !checked.insert(key.clone()) {
                return Err(StoreError::InvalidAppend(format!(
                    "{key} is both appended to, or checked twice, and expected unchanged"
                )));
            }
        }
        Ok(())
    }
}

/// What can go wrong talking to the event store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended at one of these positions first: reload and retry.
    #[error("optimistic concurrency conflict on stream {stream}")]
    Conflict {
        /// The stream whose position was taken (or `transaction` when DynamoDB won't say).
        stream: String,
    },
    /// DynamoDB cancelled the transaction because one of its items was throttled (a hot
    /// aggregate): back off and retry, like a conflict. The SDK retries throttled single calls
    /// itself, but not a cancelled transaction.
    #[error("an item of the transaction was throttled")]
    Throttled,
    /// The dedupe marker exists: this source event's effects were appended before.
    #[error("source event {source_event_id} was already handled by {consumer}")]
    Duplicate {
        /// The consumer.
        consumer: String,
        /// The source event.
        source_event_id: String,
    },
    /// The append breaks a rule before reaching DynamoDB.
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// A stored item is not a readable event.
    #[error("corrupt item in stream {stream}")]
    Corrupt {
        /// The stream holding it.
        stream: String,
        /// What is wrong with it.
        #[source]
        source: EnvelopeError,
    },
    /// DynamoDB failed (throttling, network, permissions); the SDK already retried.
    #[error("event store request failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// True for a lost race, or a throttled hot item, that a backoff, reload and retry resolves.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. } | StoreError::Throttled)
    }
}

/// Append-only event streams with optimistic concurrency.
pub trait EventStore: Send + Sync {
    /// Appends all events (and the dedupe marker) atomically, or none of them.
    fn append(&self, append: Append) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every event of one stream with `sequence >= from`, in order, across all result pages.
    fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from: u64,
    ) -> impl Future<Output = Result<Vec<Envelope>, StoreError>> + Send;

    /// The aggregate `A` with id `id`, folded from its stream (version 0 when it has no events).
    /// Stored events are upcast by [`Aggregate::upcaster`]; one that `A` cannot read makes the
    /// stream [`StoreError::Corrupt`].
    fn load<A: Aggregate>(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Loaded<A>, StoreError>> + Send {
        async move {
            let events = self.read_stream(A::TYPE, id, 1).await?;
            Loaded::from_stored(id, &events)
        }
    }

    /// The stored snapshot of one stream, if any (a store without snapshots has none).
    fn read_snapshot(
        &self,
        _aggregate_type: &str,
        _aggregate_id: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        async { Ok(None) }
    }

    /// Stores `snapshot` of one stream unless one of a later version is stored (a store without
    /// snapshots keeps none).
    fn write_snapshot(
        &self,
        _aggregate_type: &str,
        _aggregate_id: &str,
        _snapshot: &Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// The aggregate `A` with id `id`, from its snapshot and the events after it: the same as
    /// [`EventStore::load`], at a cost that does not grow with the stream (see [`Snapshotted`]).
    fn load_snapshotted<A: Snapshotted>(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Loaded<A>, StoreError>> + Send {
        async move {
            let mut loaded = self
                .read_snapshot(A::TYPE, id)
                .await?
                .and_then(|snapshot| snapshot.restore::<A>(id))
                .unwrap_or_else(|| Loaded::new(id));
            let events = self.read_stream(A::TYPE, id, loaded.version + 1).await?;
            loaded.apply_stored(&events)?;
            if events.len() as u64 >= A::EVERY {
                let written = match Snapshot::of(&loaded) {
                    Ok(snapshot) => self.write_snapshot(A::TYPE, id, &snapshot).await,
                    Err(err) => Err(StoreError::InvalidAppend(err.to_string())),
                };
                if let Err(err) = written {
                    tracing::warn!(
                        stream = %crate::envelope::stream_key(A::TYPE, id),
                        version = loaded.version,
                        error = %crate::telemetry::error_chain(&err),
                        "snapshot not written; the next load folds from the last one"
                    );
                }
            }
            Ok(loaded)
        }
    }
}

impl<A: Aggregate> Loaded<A> {
    /// The aggregate `id` after the stored `events` of its stream (the first ones, for its state
    /// at an earlier version), each upcast by [`Aggregate::upcaster`].
    pub fn from_stored<'a>(
        id: &str,
        events: impl IntoIterator<Item = &'a Envelope>,
    ) -> Result<Self, StoreError> {
        let mut loaded = Loaded::new(id);
        loaded.apply_stored(events)?;
        Ok(loaded)
    }

    /// Applies the stored `events` that follow, each upcast by [`Aggregate::upcaster`].
    pub fn apply_stored<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a Envelope>,
    ) -> Result<(), StoreError> {
        for event in events {
            let decoded =
                event
                    .decode_with(A::upcaster())
                    .map_err(|source| StoreError::Corrupt {
                        stream: event.stream_key(),
                        source,
                    })?;
            self.apply(&decoded);
        }
        Ok(())
    }
}

/// A store shared between owners (a handler and a test, say) is the store.
impl<S: EventStore> EventStore for Arc<S> {
    fn append(&self, append: Append) -> impl Future<Output = Result<(), StoreError>> + Send {
        S::append(self, append)
    }

    fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from: u64,
    ) -> impl Future<Output = Result<Vec<Envelope>, StoreError>> + Send {
        S::read_stream(self, aggregate_type, aggregate_id, from)
    }

    fn read_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        S::read_snapshot(self, aggregate_type, aggregate_id)
    }

    fn write_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        snapshot: &Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        S::write_snapshot(self, aggregate_type, aggregate_id, snapshot)
    }

    fn load<A: Aggregate>(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Loaded<A>, StoreError>> + Send {
        S::load(self, id)
    }

    fn load_snapshotted<A: Snapshotted>(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Loaded<A>, StoreError>> + Send {
        S::load_snapshotted(self, id)
    }
}

#[cfg(any(test, feature = "store-dynamodb", feature = "test-twins"))]
/// Which item of the append's transaction made it fail: its events, then the dedupe marker
/// when present, then its checks of unchanged streams, then those of presumed ones.
pub(crate) fn collision(append: &Append, index: usize) -> StoreError {
    let events = append.events.len();
    if let Some(event) = append.events.get(index) {
        return StoreError::Conflict {
            stream: event.stream_key(),
        };
    }
    let checks = events + usize::from(append.dedupe.is_some());
    match &append.dedupe {
        Some(marker) if index == events => StoreError::Duplicate {
            consumer: marker.consumer.clone(),
            source_event_id: marker.source_event_id.clone(),
        },
        _ => {
            let stream = index
                .checked_sub(checks)
                .and_then(|i| match append.unchanged.get(i) {
                    Some(unchanged) => Some(unchanged.stream_key()),
                    None => append
                        .predecessors()
                        .into_iter()
                        .nth(i - append.unchanged.len())
                        .map(|(stream, _)| stream),
                });
            StoreError::Conflict {
                stream: stream.unwrap_or_else(|| "transaction".into()),
            }
        }
    }
}

/// How a command handler retries after losing a race: bounded, with full jitter.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Upper bound of the first wait; doubles per attempt.
    pub base: Duration,
    /// Upper bound of any wait.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_millis(20),
            cap: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1-based): uniform in `0..=min(cap, base * 2^(attempt-1))`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.cap);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=millis))
    }
}

/// Something a command handler can fail with; conflicts are retried.
pub trait Conflicting {
    /// True when reloading and trying again may succeed.
    fn is_conflict(&self) -> bool;
}

impl Conflicting for StoreError {
    fn is_conflict(&self) -> bool {
        StoreError::is_conflict(self)
    }
}

/// Runs `attempt` (load, decide, append) until it does not end in a conflict, at most
/// `policy.max_attempts` times, sleeping a jittered, growing delay between tries.
pub async fn retry_on_conflict<T, E, F, Fut>(policy: &RetryPolicy, attempt: F) -> Result<T, E>
where
    E: Conflicting,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retry_on_conflict_until(policy, None, attempt).await
}

/// [`retry_on_conflict`] that also gives up when the next try would start after `until`.
///
/// A queue consumer retries a hot aggregate's conflicts for as long as its invocation allows
/// (`until` a margin before the deadline) rather than a fixed number of times: every receive
/// that ends in a lost race brings a healthy message one step closer to its DLQ.
pub async fn retry_on_conflict_until<T, E, F, Fut>(
    policy: &RetryPolicy,
    until: Option<SystemTime>,
    mut attempt: F,
) -> Result<T, E>
where
    E: Conflicting,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(err) if err.is_conflict() && tries < policy.max_attempts => {
                let delay = policy.delay(tries);
                if until.is_some_and(|until| SystemTime::now() + delay >= until) {
                    tracing::info!(attempt = tries, "conflict, and no time left to retry it");
                    return Err(err);
                }
                tracing::debug!(attempt = tries, "conflict, retrying");
                tokio::time::sleep(delay).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::event;

    #[test]
    fn appends_are_checked_before_they_are_sent() {
        assert!(matches!(
            Append::validate(&Append::default()),
            Err(StoreError::InvalidAppend(_))
        ));
        let twice = Append::events(vec![event("a", 1), event("a", 1)]);
        assert!(matches!(
            Append::validate(&twice),
            Err(StoreError::InvalidAppend(_))
        ));
        let many = Append::events((1..=101).map(|s| event("a", s)).collect());
        assert!(matches!(
            Append::validate(&many),
            Err(StoreError::InvalidAppend(_))
        ));
        let unchanged = |id: &str| Unchanged {
            aggregate_type: "Thing".into(),
            aggregate_id: id.into(),
            version: 1,
        };
        let appended_and_checked =
            Append::events(vec![event("a", 2)]).given_unchanged([unchanged("a")]);
        assert!(matches!(
            Append::validate(&appended_and_checked),
            Err(StoreError::InvalidAppend(_))
        ));
        let checked_twice =
            Append::events(vec![event("a", 2)]).given_unchanged([unchanged("b"), unchanged("b")]);
        assert!(matches!(
            Append::validate(&checked_twice),
            Err(StoreError::InvalidAppend(_))
        ));
        let checks_count = Append::events((1..=99).map(|s| event("a", s)).collect())
            .given_unchanged([unchanged("b"), unchanged("c")]);
        assert_eq!(checks_count.item_count(), 101);
        assert!(Append::validate(&checks_count).is_err());
    }

    #[test]
    fn an_append_deduplicated_by_its_cause_is_one_caused_event_and_nothing_else() {
        let cause = event("cause", 1);
        let caused = |id: &str, sequence| event(id, sequence).caused_by(&cause);
        let one = Append::events(vec![caused("a", 1)]).deduplicated_by_cause();
        assert!(one.validate().is_ok());
        assert_eq!(one.item_count(), 1);
        let refused = [
            Append::events(vec![event("a", 1)]).deduplicated_by_cause(),
            Append::events(vec![caused("a", 1), caused("b", 1)]).deduplicated_by_cause(),
            Append::events(vec![caused("a", 1)])
                .deduplicated_by(DedupeMarker::new("c", &cause.id))
                .deduplicated_by_cause(),
            Append::events(vec![caused("a", 1)])
                .given_unchanged([Unchanged {
                    aggregate_type: "Thing".into(),
                    aggregate_id: "read".into(),
                    version: 1,
                }])
                .deduplicated_by_cause(),
            Append::events(vec![caused("a", 2)])
                .presumed()
                .deduplicated_by_cause(),
        ];
        for append in refused {
            assert!(
                matches!(append.validate(), Err(StoreError::InvalidAppend(_))),
                "{append:?}"
            );
        }
    }

    #[test]
    fn a_position_taken_by_the_same_source_and_cause_is_a_duplicate_only_by_cause() {
        let cause = event("cause", 1);
        let ours = event("a", 1).caused_by(&cause);
        let by_cause = Append::events(vec![ours.clone()]).deduplicated_by_cause();
        // The same reaction to the same event, made before (another id, another time).
        let before = event("a", 1).caused_by(&cause);
        assert!(matches!(
            by_cause.taken_by(&before),
            StoreError::Duplicate { ref consumer, ref source_event_id }
                if consumer == "test" && *source_event_id == cause.id
        ));
        let other_cause = event("a", 1).caused_by(&event("other", 1));
        let mut other_source = before.clone();
        other_source.source = "elsewhere".into();
        let uncaused = event("a", 1);
        for stored in [&other_cause, &other_source, &uncaused] {
            assert!(
                matches!(by_cause.taken_by(stored), StoreError::Conflict { ref stream } if stream == "Thing#a"),
                "{stored:?}"
            );
        }
        // Without the flag the same cause is still a conflict: the marker decides.
        let plain = Append::events(vec![ours]);
        assert!(plain.taken_by(&before).is_conflict());
    }

    #[test]
    fn a_presumed_append_requires_the_event_before_each_streams_first_new_one() {
        let append = Append::events(vec![
            event("a", 3),
            event("b", 1),
            event("a", 4),
            event("c", 7),
        ]);
        assert!(append.predecessors().is_empty());
        assert_eq!(append.item_count(), 4);
        let presumed = append.presumed();
        assert_eq!(
            presumed.predecessors(),
            vec![("Thing#a".to_owned(), 2), ("Thing#c".to_owned(), 6)]
        );
        assert_eq!(presumed.item_count(), 6);
        let marked = presumed
            .deduplicated_by(DedupeMarker::new("c", "src"))
            .given_unchanged([Unchanged {
                aggregate_type: "Thing".into(),
                aggregate_id: "read".into(),
                version: 1,
            }]);
        // events 0..4, the marker 4, the unchanged stream 5, the predecessors 6 and 7.
        let stream = |index| match collision(&marked, index) {
            StoreError::Conflict { stream } => stream,
            other => panic!("{other:?}"),
        };
        assert!(matches!(
            collision(&marked, 4),
            StoreError::Duplicate { .. }
        ));
        assert_eq!(stream(5), "Thing#read");
        assert_eq!(stream(6), "Thing#a");
        assert_eq!(stream(7), "Thing#c");
        assert_eq!(stream(8), "transaction");
    }

    #[tokio::test]
    async fn retry_on_conflict_stops_after_max_attempts() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        };
        let mut calls = 0;
        let result: Result<(), StoreError> = retry_on_conflict(&policy, || {
            calls += 1;
            async { Err(StoreError::Conflict { stream: "s".into() }) }
        })
        .await;
        assert!(result.unwrap_err().is_conflict());
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn retry_on_conflict_until_stops_when_the_time_is_up() {
        let policy = RetryPolicy {
            max_attempts: u32::MAX,
            base: Duration::from_millis(20),
            cap: Duration::from_millis(20),
        };
        let mut calls = 0;
        let until = SystemTime::now() + Duration::from_millis(300);
        let result: Result<(), StoreError> = retry_on_conflict_until(&policy, Some(until), || {
            calls += 1;
            async { Err(StoreError::Conflict { stream: "s".into() }) }
        })
        .await;
        assert!(result.unwrap_err().is_conflict());
        // No try starts once the next wait would end past `until` (a sleep may overrun it a
        // little on a busy machine, never by a whole retry loop).
        assert!(
            SystemTime::now() < until + Duration::from_secs(1),
            "stopped at the time limit"
        );
        assert!(calls > 1, "retried while there was time: {calls}");
    }

    #[test]
    fn retry_delay_is_capped() {
        let policy = RetryPolicy::default();
        for attempt in 1..40 {
            assert!(policy.delay(attempt) <= policy.cap);
        }
    }
}
