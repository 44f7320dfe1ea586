//! Publishing envelopes to SNS: `PublishBatch`, at most 10 entries and 256 KiB per call.
//!
//! Each message is the envelope's JSON; its `type` and `aggregatetype` travel as message attributes
//! so subscriptions can filter without reading bodies. A FIFO topic gets the aggregate id as
//! message group (strict order per aggregate) and the event id as deduplication id.

use std::future::Future;

use crate::envelope::Envelope;

#[cfg(feature = "publish-sns")]
mod sns;

#[cfg(feature = "publish-sns")]
pub use sns::SnsPublisher;

/// SNS's limit on entries in one `PublishBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// SNS's limit on one message and on one whole `PublishBatch` request, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// The message attributes every published event carries.
pub const ATTRIBUTE_NAMES: [&str; 2] = ["type", "aggregatetype"];

/// One event that was not published, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedPublish {
    /// The event's id.
    pub event_id: String,
    /// SNS's error code, or `RequestFailed` / `TooLarge`.
    pub code: String,
    /// What went wrong.
    pub reason: String,
    /// True when retrying the same message can never succeed.
    pub permanent: bool,
}

/// What a publish call did, in the order the events were given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Ids of the events SNS accepted.
    pub published: Vec<String>,
    /// Events SNS refused, or a request that failed as a whole.
    pub failed: Vec<FailedPublish>,
    /// Ids of events not attempted because an earlier chunk failed (order is kept).
    pub not_attempted: Vec<String>,
}

impl PublishReport {
    /// True when every event was published.
    pub fn all_published(&self) -> bool {
        self.failed.is_empty() && self.not_attempted.is_empty()
    }

    /// Whether the event with this id still needs publishing.
    pub fn needs_retry(&self, event_id: &str) -> bool {
        self.failed.iter().any(|f| f.event_id == event_id)
            || self.not_attempted.iter().any(|id| id == event_id)
    }
}

/// Sends events to subscribers.
pub trait Publisher: Send + Sync {
    /// Publishes in order; stops at the first chunk with a failure and reports the rest as
    /// not attempted, so a caller that retries from the first failure keeps the order.
    fn publish(&self, events: &[Envelope]) -> impl Future<Output = PublishReport> + Send;
}
