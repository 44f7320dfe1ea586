//! # shared — what Powertools gives Python Lambdas, for Rust, plus an event store
//!
//! - [`envelope`]: the CloudEvents 1.0 event envelope, typed payloads, upcasting;
//! - [`store`]: append-only event streams on DynamoDB with optimistic concurrency and atomic
//!   dedupe markers, and an in-memory twin for tests;
//! - [`publish`]: `PublishBatch` to SNS with filterable message attributes;
//! - [`parse`]: SQS record → SNS delivery → envelope → your event type;
//! - [`batch`]: partial batch responses for SQS standard, SQS FIFO and DynamoDB streams;
//! - [`config`]: settings from the environment, the AWS SDK config built once;
//! - [`telemetry`]: JSON logs and CloudWatch EMF metrics.
#![deny(missing_docs)]

pub mod batch;
pub mod config;
pub mod envelope;
pub mod parse;
pub mod publish;
pub mod store;
pub mod telemetry;

pub use envelope::{Envelope, StreamPosition};
pub use store::{Append, DedupeMarker, EventStore, StoreError};
