//! Adapter tests: the DynamoDB, SNS and SQS adapters of `shared` against mocked SDK responses
//! (`aws-smithy-mocks`), so every mapping from an AWS answer to a domain outcome is pinned down
//! without a network or an emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod idempotency;
mod publish;
mod redelivery;
mod store;

use ripple_kit::envelope::{Envelope, StreamPosition};
use serde::Serialize;

/// A tiny event enum in the shape `Envelope::encode` expects.
#[derive(Serialize)]
#[serde(tag = "type", content = "data")]
pub enum TestEvent {
    /// Something was counted.
    #[serde(rename = "thing.counted")]
    Counted {
        /// How many.
        n: u32,
    },
}

/// An event at `sequence` in the stream `Thing#<id>`.
pub fn event(id: &str, sequence: u64) -> Envelope {
    Envelope::encode(
        "ripple/test",
        StreamPosition::new("Thing", id, sequence),
        &TestEvent::Counted { n: 1 },
    )
    .unwrap()
}
