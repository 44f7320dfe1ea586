//! Who may write what: the allowlist of a system's event producers.
//!
//! An envelope's `source` says which producer wrote it. A system declares once, in its domain,
//! which aggregate types and event types each producer may write ([`Producers`]); everything that
//! trusts events checks them against that one list: the outbox before it publishes
//! ([`Outbox::with_producers`](crate::outbox::Outbox::with_producers)), consumers before they act
//! ([`SqsConsumer::with_producers`](crate::SqsConsumer::with_producers)), and a test that holds the
//! template's IAM statements to it. An event outside it (an unknown `source`, a producer writing
//! another's aggregate, a type its producer never writes) is [`Refused`].
//!
//! Event type names are read from the aggregate's own event enum, never typed out again.
//!
//! ```
//! use ripple_kit::producers::{Producers, Refused};
//! use ripple_kit::{Aggregate, Envelope, StreamPosition};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! #[serde(tag = "type", content = "data")]
//! enum OrderEvent {
//!     #[serde(rename = "order.placed")]
//!     Placed { total_cents: u64 },
//!     #[serde(rename = "order.confirmed")]
//!     Confirmed,
//! }
//! #[derive(Default)]
//! struct Order;
//! impl Aggregate for Order {
//!     const TYPE: &'static str = "Order";
//!     type Event = OrderEvent;
//!     fn apply(&mut self, _: &OrderEvent) {}
//! }
//!
//! // The shop's API places orders; only its saga confirms them.
//! let producers = Producers::new()
//!     .allow::<Order>("shop/api", &[OrderEvent::Placed { total_cents: 0 }])
//!     .allow::<Order>("shop/saga", &[OrderEvent::Confirmed]);
//!
//! let at = StreamPosition::new("Order", "o-1", 2);
//! let forged = Envelope::encode("shop/api", at.clone(), &OrderEvent::Confirmed)?;
//! assert!(matches!(producers.check(&forged), Err(Refused::EventType { .. })));
//! let genuine = Envelope::encode("shop/saga", at, &OrderEvent::Confirmed)?;
//! assert!(producers.check(&genuine).is_ok());
//! # Ok::<(), ripple_kit::envelope::EnvelopeError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};

use crate::aggregate::Aggregate;
use crate::envelope::{Envelope, event_type_of, event_types};

/// The allowlist: for each producer (`source`), the aggregate types it writes and, for each, the
/// event types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Producers {
    allowed: BTreeMap<String, BTreeMap<String, BTreeSet<&'static str>>>,
}

/// Why an event is not one its claimed producer may write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No producer of the system has this `source`.
    #[error("{producer} is not a producer of this system")]
    UnknownProducer {
        /// The event's `source`.
        producer: String,
    },
    /// The producer does not write this aggregate type.
    #[error("{producer} may not write {aggregate_type} events")]
    AggregateType {
        /// The event's `source`.
        producer: String,
        /// The event's `aggregatetype`.
        aggregate_type: String,
    },
    /// The producer writes this aggregate type, but not this event type.
    #[error("{producer} may not write {event_type} to {aggregate_type}")]
    EventType {
        /// The event's `source`.
        producer: String,
        /// The event's `aggregatetype`.
        aggregate_type: String,
        /// The event's `type`.
        event_type: String,
    },
}

impl Producers {
    /// An allowlist that allows nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets `producer` write, to streams of `A`, the event types of `events` (one value of each
    /// variant it writes; only their types are kept).
    pub fn allow<A: Aggregate>(mut self, producer: &str, events: &[A::Event]) -> Self {
        let types = self.types_mut(producer, A::TYPE);
        types.extend(events.iter().filter_map(event_type_of));
        self
    }

    /// Lets `producer` write every event type of `A`.
    pub fn allow_all<A: Aggregate>(mut self, producer: &str) -> Self {
        let types = self.types_mut(producer, A::TYPE);
        types.extend(event_types::<A::Event>().iter().copied());
        self
    }

    fn types_mut(&mut self, producer: &str, aggregate_type: &str) -> &mut BTreeSet<&'static str> {
        self.allowed
            .entry(producer.to_owned())
            .or_default()
            .entry(aggregate_type.to_owned())
            .or_default()
    }

    /// Whether `producer` may write `event_type` to streams of `aggregate_type`.
    pub fn may_write(&self, producer: &str, aggregate_type: &str, event_type: &str) -> bool {
        self.judge(producer, aggregate_type, event_type).is_ok()
    }

    /// Checks that the producer `event` names may write it.
    pub fn check(&self, event: &Envelope) -> Result<(), Refused> {
        self.judge(&event.source, &event.aggregatetype, &event.event_type)
    }

    fn judge(&self, producer: &str, aggregate_type: &str, event_type: &str) -> Result<(), Refused> {
        let aggregates = self
            .allowed
            .get(producer)
            .ok_or_else(|| Refused::UnknownProducer {
                producer: producer.to_owned(),
            })?;
        let types = aggregates
            .get(aggregate_type)
            .ok_or_else(|| Refused::AggregateType {
                producer: producer.to_owned(),
                aggregate_type: aggregate_type.to_owned(),
            })?;
        if types.contains(event_type) {
            Ok(())
        } else {
            Err(Refused::EventType {
                producer: producer.to_owned(),
                aggregate_type: aggregate_type.to_owned(),
                event_type: event_type.to_owned(),
            })
        }
    }

    /// Every producer, in order.
    pub fn producers(&self) -> impl Iterator<Item = &str> {
        self.allowed.keys().map(String::as_str)
    }

    /// The aggregate types `producer` writes, in order (none for an unknown producer).
    pub fn aggregate_types(&self, producer: &str) -> impl Iterator<Item = &str> {
        self.allowed
            .get(producer)
            .into_iter()
            .flat_map(|aggregates| aggregates.keys().map(String::as_str))
    }

    /// The event types `producer` writes to `aggregate_type`, in order.
    pub fn event_types(
        &self,
        producer: &str,
        aggregate_type: &str,
    ) -> impl Iterator<Item = &'static str> + '_ {
        self.allowed
            .get(producer)
            .and_then(|aggregates| aggregates.get(aggregate_type))
            .into_iter()
            .flat_map(|types| types.iter().copied())
    }

    /// The first producer, in order, that may write `event_type` to `aggregate_type` (for
    /// fixtures that need a plausible `source`).
    pub fn producer_of(&self, aggregate_type: &str, event_type: &str) -> Option<&str> {
        self.producers()
            .find(|producer| self.may_write(producer, aggregate_type, event_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::StreamPosition;
    use crate::fixtures::{Thing, ThingEvent};

    fn from(source: &str, aggregate_type: &str) -> Envelope {
        Envelope::encode(
            source,
            StreamPosition::new(aggregate_type, "t-1", 1),
            &ThingEvent::Counted { n: 1 },
        )
        .unwrap()
    }

    #[test]
    fn each_way_out_of_the_list_has_its_own_refusal() {
        let producers = Producers::new().allow_all::<Thing>("things/counter");
        assert_eq!(producers.check(&from("things/counter", "Thing")), Ok(()));
        assert!(matches!(
            producers.check(&from("things/forger", "Thing")),
            Err(Refused::UnknownProducer { producer }) if producer == "things/forger"
        ));
        assert!(matches!(
            producers.check(&from("things/counter", "Order")),
            Err(Refused::AggregateType { aggregate_type, .. }) if aggregate_type == "Order"
        ));
        let mut other_type = from("things/counter", "Thing");
        other_type.event_type = "thing.vanished".into();
        assert!(matches!(
            producers.check(&other_type),
            Err(Refused::EventType { event_type, .. }) if event_type == "thing.vanished"
        ));
    }

    #[test]
    fn a_producer_allowed_some_events_writes_only_those() {
        let producers = Producers::new().allow::<Thing>("things/a", &[]);
        assert!(!producers.may_write("things/a", "Thing", "thing.counted"));
        let producers = producers.allow::<Thing>("things/b", &[ThingEvent::Counted { n: 0 }]);
        assert!(producers.may_write("things/b", "Thing", "thing.counted"));
        assert_eq!(
            producers.producer_of("Thing", "thing.counted"),
            Some("things/b")
        );
        assert_eq!(
            producers
                .event_types("things/b", "Thing")
                .collect::<Vec<_>>(),
            ["thing.counted"]
        );
        assert_eq!(
            producers.aggregate_types("things/a").collect::<Vec<_>>(),
            ["Thing"]
        );
    }
}
