use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::envelope::StreamPosition;
use crate::fixtures::{Level, LevelEvent};
use crate::store::{DedupeMarker, InMemoryEventStore, Unchanged};

/// The in-memory store, counting the requests a DynamoDB store would make to read.
#[derive(Default)]
struct Counting {
    store: InMemoryEventStore,
    reads: AtomicU64,
}

impl Counting {
    fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

impl EventStore for Counting {
    fn append(&self, append: Append) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.store.append(append)
    }

    fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from: u64,
    ) -> impl Future<Output = Result<Vec<Envelope>, StoreError>> + Send {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.store.read_stream(aggregate_type, aggregate_id, from)
    }

    fn read_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.store.read_snapshot(aggregate_type, aggregate_id)
    }

    fn write_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        snapshot: &Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.store
            .write_snapshot(aggregate_type, aggregate_id, snapshot)
    }
}

fn raised(id: &str, sequence: u64) -> Envelope {
    Envelope::encode(
        "test",
        StreamPosition::new(Level::TYPE, id, sequence),
        &LevelEvent::Raised { by: sequence },
    )
    .unwrap()
}

async fn raise(store: &impl EventStore, id: &str, from: u64, to: u64) {
    for sequence in from..=to {
        store
            .append(Append::events(vec![raised(id, sequence)]))
            .await
            .unwrap();
    }
}

fn sum(n: u64) -> u64 {
    n * (n + 1) / 2
}

#[tokio::test]
async fn a_warm_load_reads_nothing_and_sees_its_own_appends() {
    let cached = Cached::new(Counting::default());
    raise(cached.inner(), "l-1", 1, 3).await;

    let first: Loaded<Level> = cached.load("l-1").await.unwrap();
    assert_eq!((first.version, cached.inner().reads()), (3, 1));
    raise(&cached, "l-1", 4, 5).await;
    let warm: Loaded<Level> = cached.load("l-1").await.unwrap();

    assert_eq!((warm.version, warm.state.value), (5, sum(5)));
    assert_eq!(cached.inner().reads(), 1, "served from the copy");
    let snapshotted: Loaded<Level> = cached.load_snapshotted("l-1").await.unwrap();
    assert_eq!((snapshotted.version, cached.inner().reads()), (5, 1));
}

#[tokio::test]
async fn a_stream_it_created_is_known_without_reading_it() {
    let cached = Cached::new(Counting::default());
    raise(&cached, "new", 1, 2).await;
    let loaded: Loaded<Level> = cached.load("new").await.unwrap();
    assert_eq!((loaded.version, cached.inner().reads()), (2, 0));
}

#[tokio::test]
async fn a_stale_copy_is_refused_at_the_append_and_the_retry_loads_fresh_state() {
    let cached = Cached::new(Counting::default());
    raise(cached.inner(), "l-1", 1, 2).await;
    let stale: Loaded<Level> = cached.load("l-1").await.unwrap();
    // Another execution environment appends behind this one's back.
    raise(cached.inner(), "l-1", 3, 3).await;
    let served: Loaded<Level> = cached.load("l-1").await.unwrap();
    assert_eq!(served.version, stale.version, "the copy does not know yet");

    let err = cached
        .append(Append::events(vec![raised("l-1", stale.version + 1)]))
        .await
        .unwrap_err();

    assert!(err.is_conflict(), "{err}");
    let fresh: Loaded<Level> = cached.load("l-1").await.unwrap();
    assert_eq!((fresh.version, fresh.state.value), (3, sum(3)));
    assert_eq!(cached.inner().reads(), 2, "read again after the conflict");
}

#[tokio::test]
async fn every_failed_append_puts_the_copies_of_all_its_streams_in_doubt() {
    let cached = Cached::new(Counting::default());
    raise(&cached, "a", 1, 1).await;
    raise(&cached, "b", 1, 1).await;
    let marker = DedupeMarker::new("test", "event-1");
    cached
        .append(Append::events(vec![raised("a", 2)]).deduplicated_by(marker.clone()))
        .await
        .unwrap();
    assert_eq!(cached.len(), 2);

    // The same marker again: a duplicate, refused whole.
    let err = cached
        .append(Append::events(vec![raised("a", 3), raised("b", 2)]).deduplicated_by(marker))
        .await
        .unwrap_err();

    assert!(matches!(err, StoreError::Duplicate { .. }), "{err}");
    let a: Loaded<Level> = cached.load("a").await.unwrap();
    let b: Loaded<Level> = cached.load("b").await.unwrap();
    assert_eq!(
        (a.version, b.version),
        (2, 1),
        "the refused append left nothing"
    );
    assert_eq!(
        cached.inner().reads(),
        2,
        "each copy checked once, then trusted"
    );
    let _: Loaded<Level> = cached.load("a").await.unwrap();
    assert_eq!(cached.inner().reads(), 2);
}

#[tokio::test]
async fn an_append_refused_by_one_of_this_process_leaves_the_copy_it_extended_trusted() {
    let cached = Cached::new(Counting::default());
    raise(&cached, "a", 1, 1).await;
    raise(&cached, "read", 1, 1).await;
    // Two records of a batch decide on the same copies at once: both append at "a" 2, both
    // given "read" unchanged at 1.
    let given = || {
        [Unchanged {
            aggregate_type: Level::TYPE.into(),
            aggregate_id: "read".into(),
            version: 1,
        }]
    };
    cached
        .append(Append::events(vec![raised("a", 2)]).given_unchanged(given()))
        .await
        .unwrap();
    raise(&cached, "read", 2, 2).await;
    let err = cached
        .append(Append::events(vec![raised("a", 2)]).given_unchanged(given()))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");

    // The copies hold what refused it: nothing to read before deciding again.
    let a: Loaded<Level> = cached.load("a").await.unwrap();
    let read: Loaded<Level> = cached.load("read").await.unwrap();
    assert_eq!((a.version, read.version, cached.inner().reads()), (2, 2, 0));

    // Refused where the copy still stands (a writer elsewhere): the copy is read again.
    raise(cached.inner(), "a", 3, 3).await;
    let err = cached
        .append(Append::events(vec![raised("a", 3)]))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let a: Loaded<Level> = cached.load("a").await.unwrap();
    assert_eq!((a.version, cached.inner().reads()), (3, 1));
}

#[tokio::test]
async fn a_copy_in_doubt_reads_only_what_follows_it() {
    let cached = Cached::new(Counting::default());
    raise(&cached, "l-1", 1, 1).await;
    raise(cached.inner(), "l-1", 2, 3).await;
    // A refused append puts the copy in doubt.
    let refused = cached.append(Append::events(vec![raised("l-1", 2)])).await;
    assert!(refused.unwrap_err().is_conflict());
    let before = cached.inner().store.events_read();

    let loaded: Loaded<Level> = cached.load_snapshotted("l-1").await.unwrap();

    assert_eq!((loaded.version, loaded.state.value), (3, sum(3)));
    assert_eq!(
        cached.inner().reads(),
        1,
        "one read, of the stream, not the snapshot"
    );
    assert_eq!(
        cached.inner().store.events_read() - before,
        2,
        "only the events after it"
    );
}

#[tokio::test]
async fn a_snapshotted_copy_folds_into_a_new_snapshot_every_so_many_events_and_stores_it() {
    let cached = Cached::new(Counting::default());
    raise(cached.inner(), "l-1", 1, 4).await;
    let cold: Loaded<Level> = cached.load_snapshotted("l-1").await.unwrap();
    assert_eq!(cold.version, 4);
    assert_eq!(
        cached.inner().reads(),
        2,
        "the snapshot and the events after it"
    );

    raise(&cached, "l-1", 5, 23).await;
    let warm: Loaded<Level> = cached.load_snapshotted("l-1").await.unwrap();

    assert_eq!((warm.version, warm.state.value), (23, sum(23)));
    assert_eq!(cached.inner().reads(), 2, "served from the copy");
    let stored = cached
        .inner()
        .read_snapshot(Level::TYPE, "l-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.version, 23, "written for the next cold start");
    // The copy is the snapshot now, and still serves the appends after it.
    raise(&cached, "l-1", 24, 24).await;
    let after: Loaded<Level> = cached.load_snapshotted("l-1").await.unwrap();
    assert_eq!((after.version, after.state.value), (24, sum(24)));
    assert_eq!(cached.inner().reads(), 3, "only the check above read");
}

#[tokio::test]
async fn the_copies_are_bounded_least_recently_used_first() {
    let cached = Cached::with_capacity(Counting::default(), 2);
    for id in ["a", "b", "c"] {
        raise(&cached, id, 1, 1).await;
    }
    assert_eq!(cached.len(), 2);
    let _: Loaded<Level> = cached.load("a").await.unwrap();
    assert_eq!(cached.inner().reads(), 1, "the first one went");
    let _: Loaded<Level> = cached.load("c").await.unwrap();
    assert_eq!(cached.inner().reads(), 1);
}

#[tokio::test]
async fn a_long_stream_loaded_whole_is_not_kept() {
    let cached = Cached::new(Counting::default());
    let events = (1..=Cached::<Counting>::MAX_EVENTS as u64 + 1)
        .map(|s| raised("long", s))
        .collect::<Vec<_>>();
    for chunk in events.chunks(50) {
        cached
            .inner()
            .append(Append::events(chunk.to_vec()))
            .await
            .unwrap();
    }
    let _: Loaded<Level> = cached.load("long").await.unwrap();
    assert!(cached.is_empty());
}
