//! [`Cached`]: an event store that keeps copies of the streams it reads in the execution
//! environment, so that a warm command reads nothing before it writes.
//!
//! A Lambda execution environment handles one invocation after another with the same handler,
//! so what it loaded for one message is still in memory for the next. `Cached` keeps, per stream,
//! the last snapshot it saw and the events after it (the stream as this process knows it), and
//! serves [`EventStore::load`] and [`EventStore::load_snapshotted`] from that copy without a
//! request. Its own appends extend the copies they write to.
//!
//! A copy can be stale: another execution environment, or an operator's tool, may have appended
//! since. The event store's optimistic concurrency already tells: an append at a position that is
//! taken is refused ([`StoreError::Conflict`]), and `Cached` then puts the copy of every stream the
//! append named in doubt: before its next use it reads what the store holds after the copy's
//! version (one query, usually of a few events, never the snapshot again). So a decision that
//! appends to every stream it read is never committed on stale state. One that reads a stream it
//! does not append to (a rejection for want of stock, say) names it in its append
//! ([`Append::given_unchanged`], [`Reaction::AppendGiven`](crate::Reaction::AppendGiven)): the
//! transaction checks that nothing follows the version it read, and a stream that moved on makes
//! the append a conflict like any other. Any failed append (a conflict, a duplicate, a timeout that
//! may have written) puts the copies of its streams in doubt, and a copy in doubt is checked before
//! its next use, unless the copy moved past the position the append was refused at: another
//! append of this process took it meanwhile (two records of a batch racing for one stream), so
//! the copy already holds what refused it. (A copy can still be stale when used, an append
//! elsewhere may land a moment after it was checked: what makes that safe is the append's check,
//! never the copy.)
//!
//! The copies are bounded: at most `capacity` streams (least recently used go first), and a
//! stream loaded whole (without a snapshot) is kept only up to [`Cached::MAX_EVENTS`] events.
//! A snapshotted stream's copy folds into a new snapshot every [`Snapshotted::EVERY`] events,
//! which is also written to the store, as an uncached load would have.

use std::collections::BTreeMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};

use lru::LruCache;

use super::{Append, EventStore, Snapshot, Snapshotted, StoreError};
use crate::aggregate::{Aggregate, Loaded};
use crate::envelope::{Envelope, stream_key};

/// An [`EventStore`] over `S` that serves loads from copies of the streams in memory.
#[derive(Debug)]
pub struct Cached<S> {
    inner: S,
    streams: Mutex<LruCache<String, StreamCopy>>,
}

/// One stream as this process knows it: a snapshot, if one was read, and the events after it.
#[derive(Debug)]
struct StreamCopy {
    snapshot: Option<Snapshot>,
    events: Vec<Envelope>,
    /// The store may hold more than the copy: read what follows it before using it.
    doubted: bool,
}

impl StreamCopy {
    /// Events the copy holds, the snapshot's included.
    fn version(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.version) + self.events.len() as u64
    }

    /// The aggregate from the whole stream, if the copy holds it whole.
    fn whole<A: Aggregate>(&self, id: &str) -> Option<Result<Loaded<A>, StoreError>> {
        self.snapshot
            .is_none()
            .then(|| Loaded::from_stored(id, &self.events))
    }

    /// The aggregate from the snapshot and the events after it, if the snapshot is of `A`'s
    /// schema (or there is none).
    fn restore<A: Snapshotted>(&self, id: &str) -> Option<Result<Loaded<A>, StoreError>> {
        let mut loaded = match &self.snapshot {
            None => Loaded::new(id),
            Some(snapshot) => snapshot.restore::<A>(id)?,
        };
        Some(loaded.apply_stored(&self.events).map(|()| loaded))
    }
}

impl<S: EventStore> Cached<S> {
    /// Streams kept unless set otherwise ([`Cached::with_capacity`]).
    pub const CAPACITY: usize = 1024;

    /// The most events of a stream loaded whole that a copy keeps.
    pub const MAX_EVENTS: usize = 256;

    /// `inner`, with copies of up to [`Cached::CAPACITY`] streams.
    pub fn new(inner: S) -> Self {
        Cached::with_capacity(inner, Self::CAPACITY)
    }

    /// `inner`, with copies of up to `capacity` streams (at least one).
    pub fn with_capacity(inner: S, capacity: usize) -> Self {
        Cached {
            inner,
            streams: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// The store it reads through.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Streams it holds a copy of.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds no copy.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, StreamCopy>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether there is a copy of `key` to use, after bringing it up to date if it is in doubt.
    async fn usable(&self, aggregate_type: &str, id: &str, key: &str) -> Result<bool, StoreError> {
        let base = match self.lock().get(key) {
            None => return Ok(false),
            Some(copy) if !copy.doubted => return Ok(true),
            Some(copy) => copy.version(),
        };
        let events = self.inner.read_stream(aggregate_type, id, base + 1).await?;
        let mut streams = self.lock();
        match streams.get_mut(key) {
            Some(copy) if copy.version() == base => {
                copy.events.extend(events);
                copy.doubted = false;
                Ok(true)
            }
            // Changed while the store was read: read it afresh.
            _ => {
                streams.pop(key);
                Ok(false)
            }
        }
    }

    /// Keeps `copy` of `key` unless a copy at a later version is kept already.
    fn keep(&self, key: String, copy: StreamCopy) {
        let mut streams = self.lock();
        if streams
            .peek(&key)
            .is_none_or(|kept| kept.version() <= copy.version())
        {
            streams.put(key, copy);
        }
    }
}

impl<S: EventStore> EventStore for Cached<S> {
    async fn append(&self, append: Append) -> Result<(), StoreError> {
        let mut written: BTreeMap<String, Vec<Envelope>> = BTreeMap::new();
        for event in &append.events {
            written
                .entry(event.stream_key())
                .or_default()
                .push(event.clone());
        }
        let checked: Vec<(String, u64)> = append
            .unchanged
            .iter()
            .map(|u| (u.stream_key(), u.version))
            .collect();
        let result = self.inner.append(append).await;
        let mut streams = self.lock();
        if result.is_err() {
            for (key, version) in &checked {
                // A copy that moved on since the decision read it was extended by another append
                // of this process: that is what refused this one, and the copy holds it.
                if let Some(copy) = streams.get_mut(key)
                    && copy.version() <= *version
                {
                    copy.doubted = true;
                }
            }
        }
        for (key, mut events) in written {
            events.sort_by_key(|e| e.sequence);
            let first = events.first().map_or(0, |e| e.sequence);
            let follows = |version: u64| {
                events
                    .iter()
                    .zip(version + 1..)
                    .all(|(event, at)| event.sequence == at)
            };
            match streams.get_mut(&key) {
                Some(copy) if result.is_ok() && follows(copy.version()) => {
                    copy.events.extend(events);
                }
                // Refused at a position another append of this process took meanwhile: the copy
                // holds what refused it. (If a writer elsewhere took the next one too, the retry
                // is refused there, with the copy where it expected, and that doubts it.)
                Some(copy) if result.is_err() && copy.version() >= first => {}
                Some(copy) => copy.doubted = true,
                // A new stream: this append is all of it.
                None if result.is_ok() && follows(0) => {
                    streams.put(
                        key,
                        StreamCopy {
                            snapshot: None,
                            events,
                            doubted: false,
                        },
                    );
                }
                None => {}
            }
        }
        result
    }

    fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from: u64,
    ) -> impl Future<Output = Result<Vec<Envelope>, StoreError>> + Send {
        self.inner.read_stream(aggregate_type, aggregate_id, from)
    }

    fn read_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        self.inner.read_snapshot(aggregate_type, aggregate_id)
    }

    fn write_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        snapshot: &Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner
            .write_snapshot(aggregate_type, aggregate_id, snapshot)
    }

    async fn load<A: Aggregate>(&self, id: &str) -> Result<Loaded<A>, StoreError> {
        let key = stream_key(A::TYPE, id);
        if self.usable(A::TYPE, id, &key).await?
            && let Some(loaded) = self.lock().get(&key).and_then(|copy| copy.whole(id))
        {
            return loaded;
        }
        let events = self.inner.read_stream(A::TYPE, id, 1).await?;
        let loaded = Loaded::from_stored(id, &events)?;
        if events.len() <= Self::MAX_EVENTS {
            self.keep(
                key,
                StreamCopy {
                    snapshot: None,
                    events,
                    doubted: false,
                },
            );
        }
        Ok(loaded)
    }

    async fn load_snapshotted<A: Snapshotted>(&self, id: &str) -> Result<Loaded<A>, StoreError> {
        let key = stream_key(A::TYPE, id);
        let usable = self.usable(A::TYPE, id, &key).await?;
        let hit = self.lock().get(&key).filter(|_| usable).and_then(|copy| {
            copy.restore::<A>(id)
                .map(|loaded| (loaded, copy.events.len() as u64))
        });
        let (loaded, events) = match hit {
            Some((loaded, events)) => (loaded?, events),
            None => {
                let snapshot = self.inner.read_snapshot(A::TYPE, id).await?;
                let mut loaded = snapshot
                    .as_ref()
                    .and_then(|s| s.restore::<A>(id))
                    .unwrap_or_else(|| Loaded::new(id));
                // A snapshot of another schema is of no use: the copy starts from the stream's
                // beginning then.
                let snapshot = snapshot.filter(|s| s.version == loaded.version);
                let events = self
                    .inner
                    .read_stream(A::TYPE, id, loaded.version + 1)
                    .await?;
                loaded.apply_stored(&events)?;
                let count = events.len() as u64;
                self.keep(
                    key.clone(),
                    StreamCopy {
                        snapshot,
                        events,
                        doubted: false,
                    },
                );
                (loaded, count)
            }
        };
        if events >= A::EVERY {
            match Snapshot::of(&loaded) {
                Ok(snapshot) => {
                    let written = self.inner.write_snapshot(A::TYPE, id, &snapshot).await;
                    if let Err(err) = written {
                        tracing::warn!(
                            stream = %key,
                            version = loaded.version,
                            error = %crate::telemetry::error_chain(&err),
                            "snapshot not written; the next cold load folds from the last one"
                        );
                    }
                    self.keep(
                        key,
                        StreamCopy {
                            snapshot: Some(snapshot),
                            events: Vec::new(),
                            doubted: false,
                        },
                    );
                }
                Err(err) => tracing::warn!(stream = %key, error = %err, "snapshot not encoded"),
            }
        }
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests;
