//! `EventSourced`: a reaction is appended once, with its marker, decided on fresh state.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::*;
use crate::aggregate::{Aggregate, Loaded};
use crate::fixtures::{ThingEvent, event};
use crate::store::InMemoryEventStore;
use crate::telemetry::Metrics;

/// The `Tally` aggregate: how many things were counted for one subject.
#[derive(Default)]
struct Tally {
    total: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum TallyEvent {
    #[serde(rename = "tally.added")]
    Added { n: u32 },
}

impl Aggregate for Tally {
    const TYPE: &'static str = "Tally";
    type Event = TallyEvent;
    fn apply(&mut self, event: &TallyEvent) {
        let TallyEvent::Added { n } = event;
        self.total += n;
    }
}

/// Adds each counted thing to the tally of its subject; a subject `skip` is not its business.
#[derive(Default)]
struct Tallier {
    reactions: AtomicUsize,
    after: Mutex<Vec<Handled>>,
}

impl<S: EventStore> Reactor<S> for Tallier {
    const NAME: &'static str = "tallier";
    const SOURCE: &'static str = "test/tallier";
    type Input = (String, u32);
    type Error = Infallible;

    fn input(&self, event: &Envelope) -> Result<Option<(String, u32)>, EnvelopeError> {
        if event.subject == "skip" {
            return Ok(None);
        }
        let ThingEvent::Counted { n } = event.decode()?;
        Ok(Some((event.subject.clone(), n)))
    }

    async fn react(
        &self,
        store: &S,
        (subject, n): &(String, u32),
        _: &Delivery<'_>,
    ) -> Result<Reaction, ConsumerError> {
        self.reactions.fetch_add(1, Ordering::SeqCst);
        let tally: Loaded<Tally> = store.load(subject).await?;
        Ok(Reaction::append(
            tally.next(),
            &TallyEvent::Added { n: *n },
        )?)
    }

    async fn after(
        &self,
        _: &S,
        _: &(String, u32),
        handled: Handled,
        _: &Delivery<'_>,
    ) -> Result<(), ConsumerError> {
        self.after.lock().unwrap().push(handled);
        Ok(())
    }
}

/// A store whose first append at `Tally#busy` 1 loses to another writer that takes it.
struct Racing {
    store: InMemoryEventStore,
    raced: AtomicUsize,
}

impl EventStore for Racing {
    async fn append(&self, append: Append) -> Result<(), StoreError> {
        let wants_busy = append.events.iter().any(|e| e.subject == "busy");
        if wants_busy && self.raced.fetch_add(1, Ordering::SeqCst) == 0 {
            let rival = Envelope::encode(
                "test/rival",
                StreamPosition::new("Tally", "busy", 1),
                &TallyEvent::Added { n: 100 },
            )
            .map_err(|e| StoreError::InvalidAppend(e.to_string()))?;
            self.store.append(Append::events(vec![rival])).await?;
        }
        self.store.append(append).await
    }

    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from: u64,
    ) -> Result<Vec<Envelope>, StoreError> {
        self.store
            .read_stream(aggregate_type, aggregate_id, from)
            .await
    }
}

/// A store whose appends at `Tally#hot` lose to a rival the first `losses` times.
struct Hot {
    store: InMemoryEventStore,
    losses: usize,
    tries: AtomicUsize,
}

impl EventStore for Hot {
    async fn append(&self, append: Append) -> Result<(), StoreError> {
        let hot = append.events.iter().any(|e| e.subject == "hot");
        if hot && self.tries.fetch_add(1, Ordering::SeqCst) < self.losses {
            return Err(StoreError::Conflict {
                stream: "Tally#hot".into(),
            });
        }
        self.store.append(append).await
    }

    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from: u64,
    ) -> Result<Vec<Envelope>, StoreError> {
        self.store
            .read_stream(aggregate_type, aggregate_id, from)
            .await
    }
}

fn hot(losses: usize) -> Hot {
    Hot {
        store: InMemoryEventStore::new(),
        losses,
        tries: AtomicUsize::new(0),
    }
}

/// Delivers `event` to `consumer` once, with `deadline` as the invocation's.
async fn deliver_by<R: Reactor<S>, S: EventStore>(
    consumer: &EventSourced<R, S>,
    event: &Envelope,
    deadline: SystemTime,
) -> Result<Handled, <EventSourced<R, S> as Consumer>::Error> {
    let metrics = Metrics::new("Test", R::NAME);
    let delivery = Delivery {
        event,
        deadline,
        metrics: &metrics,
    };
    consumer.consume(&delivery).await
}

/// The default policy's shape (unbounded tries) with millisecond waits.
fn until_the_deadline() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(2),
        ..EventSourced::<Tallier, InMemoryEventStore>::RETRY
    }
}

#[tokio::test]
async fn a_hot_aggregate_is_fought_for_while_the_invocation_lasts_not_a_fixed_number_of_times() {
    // Thirty lost races in a row: far more than a fixed budget of eight attempts allows.
    let consumer = EventSourced::new(Tallier::default(), hot(30)).retry(until_the_deadline());
    let deadline = SystemTime::now() + Duration::from_secs(30);
    let handled = deliver_by(&consumer, &event("hot", 1), deadline)
        .await
        .unwrap();
    assert_eq!(handled, Handled::Applied("tally.added"));
    assert_eq!(consumer.reactor().reactions.load(Ordering::SeqCst), 31);
}

#[tokio::test]
async fn a_race_still_lost_when_the_time_is_up_fails_the_message_before_its_deadline() {
    let consumer =
        EventSourced::new(Tallier::default(), hot(usize::MAX)).retry(until_the_deadline());
    let deadline = SystemTime::now() + Duration::from_millis(2500);
    let err = deliver_by(&consumer, &event("hot", 1), deadline)
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert!(SystemTime::now() < deadline, "gave up before the deadline");
}

#[test]
fn event_sourced_consumers_retry_conflicts_as_long_as_the_deadline_allows_by_default() {
    let retry = EventSourced::<Tallier, InMemoryEventStore>::RETRY;
    assert_eq!(retry.max_attempts, u32::MAX);
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(2),
    }
}

async fn deliver<S: EventStore>(
    consumer: &EventSourced<Tallier, S>,
    event: &Envelope,
) -> Result<Handled, ConsumerError> {
    deliver_by(consumer, event, SystemTime::now()).await
}

#[tokio::test]
async fn a_reaction_is_appended_caused_by_its_event_with_the_events_dedupe_marker() {
    let consumer = EventSourced::new(Tallier::default(), InMemoryEventStore::new());
    let counted = event("t-1", 1);
    let handled = deliver(&consumer, &counted).await.unwrap();
    assert_eq!(handled, Handled::Applied("tally.added"));
    let stored = consumer
        .store()
        .read_stream("Tally", "t-1", 1)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].source, "test/tallier");
    assert_eq!(stored[0].causationid.as_deref(), Some(counted.id.as_str()));
    assert_eq!(stored[0].correlationid, counted.correlationid);
}

#[tokio::test]
async fn a_redelivery_finds_its_marker_taken_and_appends_nothing() {
    let consumer = EventSourced::new(Tallier::default(), InMemoryEventStore::new());
    let counted = event("t-1", 1);
    deliver(&consumer, &counted).await.unwrap();
    let again = deliver(&consumer, &counted).await.unwrap();
    assert_eq!(again, Handled::Duplicate);
    let tally: Loaded<Tally> = consumer.store().load("t-1").await.unwrap();
    assert_eq!((tally.state.total, tally.version), (1, 1));
    assert_eq!(
        *consumer.reactor().after.lock().unwrap(),
        [Handled::Applied("tally.added"), Handled::Duplicate],
        "the follow-up runs after a duplicate too"
    );
}

#[tokio::test]
async fn a_lost_race_is_decided_again_on_fresh_state() {
    let store = Racing {
        store: InMemoryEventStore::new(),
        raced: AtomicUsize::new(0),
    };
    let consumer = EventSourced::new(Tallier::default(), store).retry(fast_retry());
    let handled = deliver(&consumer, &event("busy", 1)).await.unwrap();
    assert_eq!(handled, Handled::Applied("tally.added"));
    assert_eq!(consumer.reactor().reactions.load(Ordering::SeqCst), 2);
    let tally: Loaded<Tally> = consumer.store().load("busy").await.unwrap();
    assert_eq!((tally.state.total, tally.version), (101, 2));
}

#[tokio::test]
async fn an_event_that_is_not_its_business_is_ignored_without_deciding() {
    let consumer = EventSourced::new(Tallier::default(), InMemoryEventStore::new());
    let handled = deliver(&consumer, &event("skip", 1)).await.unwrap();
    assert_eq!(handled, Handled::Ignored);
    assert_eq!(consumer.reactor().reactions.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unreadable_event_is_an_error_not_ignored() {
    let consumer = EventSourced::new(Tallier::default(), InMemoryEventStore::new());
    let mut strange = event("t-1", 1);
    strange.event_type = "thing.vanished".into();
    let err = deliver(&consumer, &strange).await.unwrap_err();
    assert!(matches!(
        err,
        ConsumerError::Event(EnvelopeError::UnknownType(_))
    ));
}

#[test]
fn a_new_event_must_be_a_tagged_enum() {
    let at = StreamPosition::new("Tally", "t", 1);
    assert!(NewEvent::new(at.clone(), &TallyEvent::Added { n: 1 }).is_ok());
    assert!(NewEvent::new(at, &serde_json::json!({"type": "tally.added"})).is_err());
}

/// The tallier, presuming every tally holds one event already.
#[derive(Default)]
struct PresumingTallier(Tallier);

impl<S: EventStore> Reactor<S> for PresumingTallier {
    const NAME: &'static str = "tallier";
    const SOURCE: &'static str = "test/tallier";
    type Input = (String, u32);
    type Error = Infallible;

    fn input(&self, event: &Envelope) -> Result<Option<(String, u32)>, EnvelopeError> {
        <Tallier as Reactor<S>>::input(&self.0, event)
    }

    async fn presume(
        &self,
        _: &S,
        (subject, n): &(String, u32),
        _: &Delivery<'_>,
    ) -> Result<Option<Reaction>, ConsumerError> {
        let at = StreamPosition::of::<Tally>(subject, 2);
        let added = NewEvent::new(at, &TallyEvent::Added { n: *n })?;
        Ok(Some(Reaction::AppendPresumed(vec![added])))
    }

    async fn react(
        &self,
        store: &S,
        input: &(String, u32),
        delivery: &Delivery<'_>,
    ) -> Result<Reaction, ConsumerError> {
        self.0.react(store, input, delivery).await
    }

    async fn after(
        &self,
        store: &S,
        input: &(String, u32),
        handled: Handled,
        delivery: &Delivery<'_>,
    ) -> Result<(), ConsumerError> {
        self.0.after(store, input, handled, delivery).await
    }
}

async fn deliver_presumed<S: EventStore>(
    consumer: &EventSourced<PresumingTallier, S>,
    event: &Envelope,
) -> Result<Handled, ConsumerError> {
    deliver_by(consumer, event, SystemTime::now() + Duration::from_secs(10)).await
}

#[tokio::test]
async fn a_presumed_decision_is_stored_without_deciding_where_the_stream_stands_as_presumed() {
    let consumer = EventSourced::new(PresumingTallier::default(), InMemoryEventStore::new());
    let first = Envelope::encode(
        "test",
        StreamPosition::of::<Tally>("t-1", 1),
        &TallyEvent::Added { n: 5 },
    )
    .unwrap();
    consumer
        .store()
        .append(Append::events(vec![first]))
        .await
        .unwrap();
    let counted = event("t-1", 1);
    assert_eq!(
        deliver_presumed(&consumer, &counted).await.unwrap(),
        Handled::Applied("tally.added")
    );
    // Its redelivery meets the marker, also without deciding.
    assert_eq!(
        deliver_presumed(&consumer, &counted).await.unwrap(),
        Handled::Duplicate
    );
    let reactor = consumer.reactor();
    assert_eq!(reactor.0.reactions.load(Ordering::SeqCst), 0);
    assert_eq!(consumer.store().events_read(), 0);
    assert_eq!(
        *reactor.0.after.lock().unwrap(),
        [Handled::Applied("tally.added"), Handled::Duplicate]
    );
    let tally: Loaded<Tally> = consumer.store().load("t-1").await.unwrap();
    assert_eq!((tally.state.total, tally.version), (6, 2));
}

#[tokio::test]
async fn a_presumption_refused_is_decided_on_what_the_store_holds() {
    let consumer = EventSourced::new(PresumingTallier::default(), InMemoryEventStore::new());
    // An empty tally: position 2 is free but 1 is not there, so the presumed write is refused.
    assert_eq!(
        deliver_presumed(&consumer, &event("new", 1)).await.unwrap(),
        Handled::Applied("tally.added")
    );
    assert_eq!(consumer.reactor().0.reactions.load(Ordering::SeqCst), 1);
    let tally: Loaded<Tally> = consumer.store().load("new").await.unwrap();
    assert_eq!((tally.state.total, tally.version), (1, 1));
    // One event on, the tally is where presumed; two on, position 2 is taken.
    deliver_presumed(&consumer, &event("new", 2)).await.unwrap();
    assert_eq!(consumer.reactor().0.reactions.load(Ordering::SeqCst), 1);
    assert_eq!(
        deliver_presumed(&consumer, &event("new", 3)).await.unwrap(),
        Handled::Applied("tally.added")
    );
    assert_eq!(consumer.reactor().0.reactions.load(Ordering::SeqCst), 2);
    let tally: Loaded<Tally> = consumer.store().load("new").await.unwrap();
    assert_eq!((tally.state.total, tally.version), (3, 3));
}

/// Opens each subject's tally with its first counted thing, the tally's first event keyed by the
/// subject alone: presumed without a read, decided on the stream only when refused.
#[derive(Default)]
struct Opener {
    reactions: AtomicUsize,
}

impl Opener {
    fn first(subject: &str, n: u32) -> Result<Reaction, ConsumerError> {
        let at = StreamPosition::new("Tally", subject, 1);
        Ok(Reaction::AppendKeyed(NewEvent::new(
            at,
            &TallyEvent::Added { n },
        )?))
    }
}

impl<S: EventStore> Reactor<S> for Opener {
    const NAME: &'static str = "opener";
    const SOURCE: &'static str = "test/opener";
    type Input = (String, u32);
    type Error = Infallible;

    fn input(&self, event: &Envelope) -> Result<Option<(String, u32)>, EnvelopeError> {
        let ThingEvent::Counted { n } = event.decode()?;
        Ok(Some((event.subject.clone(), n)))
    }

    async fn presume(
        &self,
        _: &S,
        (subject, n): &(String, u32),
        _: &Delivery<'_>,
    ) -> Result<Option<Reaction>, ConsumerError> {
        Self::first(subject, *n).map(Some)
    }

    async fn react(
        &self,
        store: &S,
        (subject, n): &(String, u32),
        _: &Delivery<'_>,
    ) -> Result<Reaction, ConsumerError> {
        self.reactions.fetch_add(1, Ordering::SeqCst);
        let tally: Loaded<Tally> = store.load(subject).await?;
        if tally.version > 0 {
            return Ok(Reaction::AlreadyApplied);
        }
        Self::first(subject, *n)
    }
}

async fn open<S: EventStore>(
    consumer: &EventSourced<Opener, S>,
    event: &Envelope,
) -> Result<Handled, ConsumerError> {
    deliver_by(consumer, event, SystemTime::now() + Duration::from_secs(5)).await
}

#[tokio::test]
async fn a_keyed_reaction_is_its_own_marker_so_a_redelivery_appends_nothing_and_writes_no_marker() {
    let consumer = EventSourced::new(Opener::default(), InMemoryEventStore::new());
    let counted = event("t-1", 1);
    assert_eq!(
        open(&consumer, &counted).await.unwrap(),
        Handled::Applied("tally.added")
    );
    assert_eq!(open(&consumer, &counted).await.unwrap(), Handled::Duplicate);
    let stored = consumer.store().all_events();
    assert_eq!(stored.len(), 1, "one event, no second append: {stored:?}");
    assert_eq!(stored[0].source, "test/opener");
    assert_eq!(stored[0].causationid.as_deref(), Some(counted.id.as_str()));
    assert_eq!(
        consumer.reactor().reactions.load(Ordering::SeqCst),
        0,
        "the refused redelivery is a duplicate, not a decision made again"
    );
    // No marker was written: a marked append for the same event still goes through.
    let marker = DedupeMarker::new("opener", &counted.id);
    consumer
        .store()
        .append(Append::events(vec![event("other", 1)]).deduplicated_by(marker))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_keyed_position_taken_by_another_cause_is_decided_again_on_the_stream() {
    let consumer = EventSourced::new(Opener::default(), InMemoryEventStore::new());
    open(&consumer, &event("t-1", 1)).await.unwrap();
    let another = event("t-1", 2);
    assert_eq!(open(&consumer, &another).await.unwrap(), Handled::Duplicate);
    assert_eq!(consumer.reactor().reactions.load(Ordering::SeqCst), 1);
    assert_eq!(consumer.store().all_events().len(), 1);
}
