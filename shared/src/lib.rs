#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod aggregate;
pub mod batch;
pub mod config;
pub mod consumer;
pub mod envelope;
#[cfg(test)]
mod fixtures;
#[cfg(feature = "aws")]
pub mod https;
pub mod idempotency;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod outbox;
pub mod parse;
pub mod producers;
pub mod publish;
#[cfg(feature = "aws")]
pub mod requests;
pub mod store;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod testing;

pub use aggregate::{Aggregate, Loaded};
pub use consumer::{Consumer, ConsumerError, Handled, Reaction, Reactor, SqsConsumer};
pub use envelope::{Envelope, StreamPosition};
pub use idempotency::{Idempotency, IdempotencyError};
pub use store::{Append, DedupeMarker, EventStore, StoreError};
