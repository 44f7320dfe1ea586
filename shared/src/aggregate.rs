//! Aggregates: state folded from one event stream, and the version the next event must take.
//!
//! Every aggregate has the same shape: a `Default` state before its first event, an event enum,
//! and `apply`. The kit counts versions ([`Loaded`]), so a decision made on a loaded state knows
//! the exact stream position its event takes, and the event store's conditional write turns a
//! concurrent writer into [`StoreError::Conflict`](crate::StoreError::Conflict).
//!
//! ```
//! use ripple_kit::{Aggregate, Loaded};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! #[serde(tag = "type", content = "data")]
//! enum CounterEvent {
//!     #[serde(rename = "counter.added")]
//!     Added { n: u64 },
//! }
//!
//! #[derive(Default)]
//! struct Counter {
//!     total: u64,
//! }
//!
//! impl Aggregate for Counter {
//!     const TYPE: &'static str = "Counter";
//!     type Event = CounterEvent;
//!     fn apply(&mut self, event: &CounterEvent) {
//!         let CounterEvent::Added { n } = event;
//!         self.total += n;
//!     }
//! }
//!
//! let counter = Loaded::<Counter>::fold("c-1", &[CounterEvent::Added { n: 2 }, CounterEvent::Added { n: 3 }]);
//! assert_eq!((counter.state.total, counter.version), (5, 2));
//! assert_eq!(counter.next().sequence, 3); // where its next event goes
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::envelope::{NoUpcast, StreamPosition, Upcaster};

/// State folded from the events of one stream `<TYPE>#<id>`.
pub trait Aggregate: Default + Send + Sync {
    /// The aggregate type: the `<AggregateType>` of its stream keys and the envelope's
    /// `aggregatetype`, e.g. `Order`.
    const TYPE: &'static str;
    /// Its events: an enum with `#[serde(tag = "type", content = "data")]`.
    type Event: Serialize + DeserializeOwned + Send + Sync;

    /// Folds one event into the state.
    fn apply(&mut self, event: &Self::Event);

    /// The upcaster its stored events are read through; none by default. Its last step for a
    /// type is also the schema version new events of that type are written at
    /// ([`Upcaster::current_version`]).
    fn upcaster() -> &'static dyn Upcaster {
        &NoUpcast
    }
}

/// An aggregate as loaded: its id, its state and how many events it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded<A> {
    /// The aggregate id (the stream key's `<id>`).
    pub id: String,
    /// The state after `version` events.
    pub state: A,
    /// Events applied; 0 for a stream with no events.
    pub version: u64,
}

impl<A: Aggregate> Loaded<A> {
    /// The aggregate `id` before its first event.
    pub fn new(id: &str) -> Self {
        Loaded {
            id: id.to_owned(),
            state: A::default(),
            version: 0,
        }
    }

    /// The aggregate `id` after `events`, in order.
    pub fn fold<'a>(id: &str, events: impl IntoIterator<Item = &'a A::Event>) -> Self
    where
        A::Event: 'a,
    {
        let mut loaded = Self::new(id);
        for event in events {
            loaded.apply(event);
        }
        loaded
    }

    /// Applies the next event.
    pub fn apply(&mut self, event: &A::Event) {
        self.state.apply(event);
        self.version += 1;
    }

    /// True once the stream holds an event.
    pub fn exists(&self) -> bool {
        self.version > 0
    }

    /// The position the next event of this aggregate takes.
    pub fn next(&self) -> StreamPosition {
        StreamPosition::of::<A>(&self.id, self.version + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum Ev {
        #[serde(rename = "tally.marked")]
        Marked,
    }

    #[derive(Default, Debug, PartialEq)]
    struct Tally(u32);

    impl Aggregate for Tally {
        const TYPE: &'static str = "Tally";
        type Event = Ev;
        fn apply(&mut self, _: &Ev) {
            self.0 += 1;
        }
    }

    #[test]
    fn a_new_stream_has_version_zero_and_its_first_event_goes_at_one() {
        let tally = Loaded::<Tally>::new("t-1");
        assert!(!tally.exists());
        assert_eq!(tally.next(), StreamPosition::new("Tally", "t-1", 1));
    }

    #[test]
    fn folding_counts_every_event() {
        let tally = Loaded::<Tally>::fold("t-1", &[Ev::Marked, Ev::Marked]);
        assert!(tally.exists());
        assert_eq!((tally.state, tally.version), (Tally(2), 2));
    }
}
