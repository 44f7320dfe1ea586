//! The event store in memory (feature `test-twins`): DynamoDB's atomicity and conflict rules,
//! no persistence.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use super::{
    Append, EventKey, EventStore, KeysPage, Snapshot, StoreError, TimeCursor, TimeIndexed,
    TimeRange, collision,
};
use crate::envelope::{Envelope, stream_key};

/// An event store in memory with the same atomicity and conflict rules as DynamoDB.
///
/// For unit tests of command handlers and for tools that need no persistence.
#[derive(Default)]
pub struct InMemoryEventStore {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    streams: BTreeMap<String, BTreeMap<u64, Envelope>>,
    markers: HashSet<String>,
    snapshots: BTreeMap<String, Snapshot>,
    events_read: u64,
    reads: u64,
}

impl InMemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn locked(&self) -> Result<std::sync::MutexGuard<'_, MemoryState>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Backend("in-memory store poisoned".into()))
    }

    /// How many events every `read_stream` so far returned, in total: what loading costs.
    pub fn events_read(&self) -> u64 {
        self.state.lock().map_or(0, |state| state.events_read)
    }

    /// How many times `read_stream` was called so far, an empty stream's included: the Queries
    /// DynamoDB would have answered.
    pub fn reads(&self) -> u64 {
        self.state.lock().map_or(0, |state| state.reads)
    }

    /// Every stored event, stream by stream.
    pub fn all_events(&self) -> Vec<Envelope> {
        match self.state.lock() {
            Ok(state) => state
                .streams
                .values()
                .flat_map(|s| s.values().cloned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl EventStore for InMemoryEventStore {
    async fn append(&self, append: Append) -> Result<(), StoreError> {
        append.validate()?;
        let mut state = self.locked()?;
        if let Some(marker) = &append.dedupe
            && state.markers.contains(&marker.key())
        {
            return Err(collision(&append, append.events.len()));
        }
        for (index, event) in append.events.iter().enumerate() {
            let taken = state
                .streams
                .get(&event.stream_key())
                .and_then(|s| s.get(&event.sequence));
            if let Some(stored) = taken {
                return Err(match index {
                    0 => append.taken_by(stored),
                    _ => collision(&append, index),
                });
            }
        }
        let checks = append.events.len() + usize::from(append.dedupe.is_some());
        for (index, unchanged) in append.unchanged.iter().enumerate() {
            let moved = state
                .streams
                .get(&unchanged.stream_key())
                .is_some_and(|s| s.contains_key(&(unchanged.version + 1)));
            if moved {
                return Err(collision(&append, checks + index));
            }
        }
        let presumed = checks + append.unchanged.len();
        for (index, (stream, version)) in append.predecessors().into_iter().enumerate() {
            let there = state
                .streams
                .get(&stream)
                .is_some_and(|s| s.contains_key(&version));
            if !there {
                return Err(collision(&append, presumed + index));
            }
        }
        for event in &append.events {
            state
                .streams
                .entry(event.stream_key())
                .or_default()
                .insert(event.sequence, event.clone());
        }
        if let Some(marker) = &append.dedupe {
            state.markers.insert(marker.key());
        }
        Ok(())
    }

    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from: u64,
    ) -> Result<Vec<Envelope>, StoreError> {
        let mut state = self.locked()?;
        let events: Vec<Envelope> = state
            .streams
            .get(&stream_key(aggregate_type, aggregate_id))
            .map(|s| s.range(from..).map(|(_, e)| e.clone()).collect())
            .unwrap_or_default();
        state.events_read += events.len() as u64;
        state.reads += 1;
        Ok(events)
    }

    async fn read_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        let state = self.locked()?;
        Ok(state
            .snapshots
            .get(&stream_key(aggregate_type, aggregate_id))
            .cloned())
    }

    async fn write_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        let mut state = self.locked()?;
        let key = stream_key(aggregate_type, aggregate_id);
        if state
            .snapshots
            .get(&key)
            .is_none_or(|stored| stored.replaced_by(snapshot))
        {
            state.snapshots.insert(key, snapshot.clone());
        }
        Ok(())
    }
}

impl TimeIndexed for InMemoryEventStore {
    /// Every key in one page, in time order.
    async fn keys_in(
        &self,
        range: &TimeRange,
        cursor: &TimeCursor,
    ) -> Result<KeysPage, StoreError> {
        if *cursor != TimeCursor::start() {
            return Ok(KeysPage::default());
        }
        let mut found: Vec<_> = self
            .all_events()
            .into_iter()
            .filter(|e| range.contains(e.time))
            .collect();
        found.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
        Ok(KeysPage {
            keys: found
                .into_iter()
                .map(|e| EventKey {
                    stream: e.stream_key(),
                    sequence: e.sequence,
                })
                .collect(),
            next: None,
        })
    }

    async fn all_keys_in(&self, range: &TimeRange) -> Result<Vec<EventKey>, StoreError> {
        Ok(self.keys_in(range, &TimeCursor::start()).await?.keys)
    }

    async fn events_at(&self, keys: &[EventKey]) -> Result<Vec<Envelope>, StoreError> {
        let state = self.locked()?;
        Ok(keys
            .iter()
            .filter_map(|k| state.streams.get(&k.stream)?.get(&k.sequence).cloned())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::event;
    use crate::store::DedupeMarker;

    #[tokio::test]
    async fn memory_store_turns_a_taken_position_into_a_conflict_and_keeps_nothing() {
        let store = InMemoryEventStore::new();
        store
            .append(Append::events(vec![event("a", 1)]))
            .await
            .unwrap();
        let err = store
            .append(Append::events(vec![event("b", 1), event("a", 1)]))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { ref stream } if stream == "Thing#a"));
        assert!(store.read_stream("Thing", "b", 1).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn memory_store_reports_a_used_marker_as_duplicate() {
        let store = InMemoryEventStore::new();
        let marker = DedupeMarker::new("c", "src");
        store
            .append(Append::events(vec![event("a", 1)]).deduplicated_by(marker.clone()))
            .await
            .unwrap();
        let err = store
            .append(Append::events(vec![event("a", 2)]).deduplicated_by(marker))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Duplicate { .. }));
        assert_eq!(store.read_stream("Thing", "a", 1).await.unwrap().len(), 1);
        assert_eq!(store.all_events().len(), 1);
    }

    #[tokio::test]
    async fn memory_store_takes_an_event_caused_alike_as_its_own_marker() {
        let store = InMemoryEventStore::new();
        let cause = event("cause", 1);
        let caused = || Append::events(vec![event("a", 1).caused_by(&cause)]);
        store
            .append(caused().deduplicated_by_cause())
            .await
            .unwrap();
        let again = store
            .append(caused().deduplicated_by_cause())
            .await
            .unwrap_err();
        assert!(matches!(again, StoreError::Duplicate { .. }), "{again:?}");
        let other = Append::events(vec![event("a", 1).caused_by(&event("other", 1))]);
        let err = store
            .append(other.deduplicated_by_cause())
            .await
            .unwrap_err();
        assert!(err.is_conflict(), "{err:?}");
        assert_eq!(store.all_events().len(), 1);
    }

    #[tokio::test]
    async fn memory_store_refuses_an_append_given_a_stream_that_moved_on() {
        let store = InMemoryEventStore::new();
        store
            .append(Append::events(vec![event("read", 1)]))
            .await
            .unwrap();
        let read_at = |version| crate::store::Unchanged {
            aggregate_type: "Thing".into(),
            aggregate_id: "read".into(),
            version,
        };
        let err = store
            .append(Append::events(vec![event("a", 1)]).given_unchanged([read_at(0)]))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { ref stream } if stream == "Thing#read"));
        assert!(store.read_stream("Thing", "a", 1).await.unwrap().is_empty());
        store
            .append(Append::events(vec![event("a", 1)]).given_unchanged([read_at(1)]))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn memory_store_appends_at_a_presumed_position_only_right_after_the_event_before_it() {
        let store = InMemoryEventStore::new();
        let presumed = |sequence| Append::events(vec![event("a", sequence)]).presumed();
        // Nothing at 1 yet: an event presumed to follow it is refused, and nothing is written.
        let err = store.append(presumed(2)).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { ref stream } if stream == "Thing#a"));
        assert!(store.all_events().is_empty());
        store.append(presumed(1)).await.unwrap();
        store.append(presumed(2)).await.unwrap();
        // The position is taken: refused by the event's own check.
        let err = store.append(presumed(2)).await.unwrap_err();
        assert!(err.is_conflict());
        assert_eq!(store.read_stream("Thing", "a", 1).await.unwrap().len(), 2);
        // Not presumed, the same gap would be the caller's own business.
        store
            .append(Append::events(vec![event("b", 3)]))
            .await
            .unwrap();
    }
}
