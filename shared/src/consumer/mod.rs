//! Queue consumers: say what one event means for you; the kit makes it an SQS consumer.
//!
//! A [`Consumer`] handles one event, delivered at least once and in any order, and says what that
//! came to ([`Handled`]). [`SqsConsumer`] lifts it to a Lambda handler for an SQS event source:
//! it parses each record (a raw SNS delivery), admits only events inside the replay window and,
//! given the system's producer allowlist, written by a producer allowed to ([`admission`]), runs
//! the consumer in a span carrying the message and event ids, reports failed records alone
//! (partial batch response; FIFO queues stop at the first failure), counts `EventsConsumed` /
//! `DuplicatesSkipped` / `ConsumerFailures` / `EventsRefused`, and flushes the metrics once per
//! invocation.
//!
//! Most consumers append events in reaction to what they receive: they implement [`Reactor`]
//! instead, which [`EventSourced`] turns into a [`Consumer`] with the retry-on-conflict loop and
//! the dedupe marker in the same transaction as the reaction's events.

pub mod admission;
mod reactor;
mod sqs;

use std::future::Future;
use std::time::SystemTime;

use crate::envelope::Envelope;
use crate::telemetry::Metrics;

pub use admission::ReplayWindow;
pub use reactor::{ConsumerError, EventSourced, NewEvent, Reaction, Reactor};
pub use sqs::SqsConsumer;

/// Handles one event of a queue.
pub trait Consumer: Send + Sync {
    /// The consumer's stable name: the `<consumer>` of its dedupe markers, the `service`
    /// dimension of its metrics. Never change it, or redeliveries are handled again.
    const NAME: &'static str;
    /// What handling an event fails with; an unreadable message must be one of them.
    type Error: std::error::Error + From<crate::parse::ParseError> + Send + Sync + 'static;

    /// Handles the event of one delivery. An error reports the message as failed: the queue
    /// redelivers it, and dead-letters it after its `maxReceiveCount`.
    fn consume(
        &self,
        delivery: &Delivery<'_>,
    ) -> impl Future<Output = Result<Handled, Self::Error>> + Send;
}

/// One delivery of an event to a consumer.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The event delivered.
    pub event: &'a Envelope,
    /// When the invocation times out: what an idempotent effect's in-progress claim lasts.
    pub deadline: SystemTime,
    /// The invocation's metrics, flushed when the batch is done.
    pub metrics: &'a Metrics,
}

/// What handling one delivery came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The effect was made now; the type of the event (or effect) that says what it was.
    Applied(&'static str),
    /// It was made before: the message is a redelivery, nothing changed now.
    Duplicate,
    /// Nothing to do for this event.
    Ignored,
}
