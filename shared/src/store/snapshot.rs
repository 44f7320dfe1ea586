//! Snapshots: loading an aggregate whose stream grows without bound (a sku's stock) costs the
//! same at its millionth event as at its tenth.
//!
//! A snapshot is a cache, never the truth: the state after the first `version` events of one
//! stream, written next to them (`sk = 0`, `kind = snapshot`, which no event takes and the outbox
//! never publishes). Events are immutable, so a snapshot made from a consistent read is right
//! forever, whoever wrote more events since; a newer snapshot only replaces an older one. Loading
//! reads the snapshot, then only the events after it, and writes a new snapshot once
//! [`Snapshotted::EVERY`] events were read past the last one. A snapshot of another
//! [`Snapshotted::SCHEMA`], or one that no longer decodes, is ignored: the stream is folded from
//! its first event and the next snapshot replaces it. Failing to write one is logged, never
//! fails the load.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::aggregate::{Aggregate, Loaded};

/// An aggregate loaded through a snapshot of its state.
///
/// ```
/// use ripple_kit::Aggregate;
/// use ripple_kit::store::Snapshotted;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// #[serde(tag = "type", content = "data")]
/// enum LevelEvent {
///     #[serde(rename = "level.raised")]
///     Raised { by: u64 },
/// }
///
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Level {
///     value: u64,
/// }
///
/// impl Aggregate for Level {
///     const TYPE: &'static str = "Level";
///     type Event = LevelEvent;
///     fn apply(&mut self, LevelEvent::Raised { by }: &LevelEvent) {
///         self.value += by;
///     }
/// }
///
/// impl Snapshotted for Level {
///     const SCHEMA: u32 = 1; // bump when `Level`'s fields change
/// }
/// ```
pub trait Snapshotted: Aggregate + Serialize + DeserializeOwned {
    /// The version of the state's shape: bump it when the state's fields change, and every
    /// stored snapshot of the old shape is ignored and replaced.
    const SCHEMA: u32;
    /// A new snapshot is written once this many events were read past the last one.
    const EVERY: u64 = 100;
}

/// A stored snapshot: the state after the first `version` events of its stream, as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Events folded into it.
    pub version: u64,
    /// [`Snapshotted::SCHEMA`] of the state it holds.
    pub schema: u32,
    /// The state, as JSON text.
    pub state: String,
}

impl Snapshot {
    /// The snapshot of `loaded`.
    pub fn of<A: Snapshotted>(loaded: &Loaded<A>) -> Result<Self, serde_json::Error> {
        Ok(Snapshot {
            version: loaded.version,
            schema: A::SCHEMA,
            state: serde_json::to_string(&loaded.state)?,
        })
    }

    /// Whether `newer` may replace this stored snapshot: it holds as many events or more (the
    /// same count is the same state), or it is of another schema (a deploy changed the shape).
    pub fn replaced_by(&self, newer: &Snapshot) -> bool {
        newer.version >= self.version || newer.schema != self.schema
    }

    /// The aggregate `id` it holds, if it is of `A`'s current schema and decodes.
    pub fn restore<A: Snapshotted>(&self, id: &str) -> Option<Loaded<A>> {
        if self.schema != A::SCHEMA {
            return None;
        }
        let state = serde_json::from_str(&self.state).ok()?;
        Some(Loaded {
            id: id.to_owned(),
            state,
            version: self.version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{Level, LevelEvent};
    use crate::store::{Append, EventStore, InMemoryEventStore};
    use crate::{Envelope, StreamPosition};

    async fn raise(store: &InMemoryEventStore, from: u64, to: u64) {
        for sequence in from..=to {
            let event = Envelope::encode(
                "test",
                StreamPosition::new("Level", "l-1", sequence),
                &LevelEvent::Raised { by: sequence },
            )
            .unwrap();
            store.append(Append::events(vec![event])).await.unwrap();
        }
    }

    fn sum(n: u64) -> u64 {
        n * (n + 1) / 2
    }

    #[tokio::test]
    async fn a_load_reads_only_the_events_after_the_snapshot_and_folds_the_same_state() {
        let store = InMemoryEventStore::new();
        raise(&store, 1, 25).await;
        // The first load folds all 25 and writes a snapshot; the next reads none.
        let first: Loaded<Level> = store.load_snapshotted("l-1").await.unwrap();
        assert_eq!((first.version, first.state.value), (25, sum(25)));
        assert_eq!(store.events_read(), 25);
        let snapshot = store.read_snapshot("Level", "l-1").await.unwrap().unwrap();
        assert_eq!((snapshot.version, snapshot.schema), (25, 2));
        raise(&store, 26, 30).await;
        let before = store.events_read();
        let again: Loaded<Level> = store.load_snapshotted("l-1").await.unwrap();
        assert_eq!((again.version, again.state.value), (30, sum(30)));
        assert_eq!(store.events_read() - before, 5, "only the events after it");
        assert_eq!(
            again,
            store.load::<Level>("l-1").await.unwrap(),
            "the fold, from a cache"
        );
    }

    #[tokio::test]
    async fn a_snapshot_is_written_only_every_so_many_events_and_never_goes_back() {
        let store = InMemoryEventStore::new();
        raise(&store, 1, 9).await;
        let _: Loaded<Level> = store.load_snapshotted("l-1").await.unwrap();
        assert!(
            store.read_snapshot("Level", "l-1").await.unwrap().is_none(),
            "9 < EVERY"
        );
        raise(&store, 10, 40).await;
        let _: Loaded<Level> = store.load_snapshotted("l-1").await.unwrap();
        let newer = Snapshot::of(&store.load::<Level>("l-1").await.unwrap()).unwrap();
        let older = Snapshot {
            version: 12,
            ..newer.clone()
        };
        store.write_snapshot("Level", "l-1", &older).await.unwrap();
        assert_eq!(
            store.read_snapshot("Level", "l-1").await.unwrap(),
            Some(newer)
        );
    }

    #[tokio::test]
    async fn a_snapshot_of_another_schema_or_unreadable_is_ignored_and_replaced() {
        for stale in [
            Snapshot {
                version: 20,
                schema: 1,
                state: r#"{"value":1}"#.into(),
            },
            Snapshot {
                version: 20,
                schema: 2,
                state: "{not json".into(),
            },
        ] {
            let store = InMemoryEventStore::new();
            raise(&store, 1, 20).await;
            store.write_snapshot("Level", "l-1", &stale).await.unwrap();
            let loaded: Loaded<Level> = store.load_snapshotted("l-1").await.unwrap();
            assert_eq!(loaded.state.value, sum(20), "folded from the first event");
            let replaced = store.read_snapshot("Level", "l-1").await.unwrap().unwrap();
            assert_eq!(replaced, Snapshot::of(&loaded).unwrap());
        }
    }
}
