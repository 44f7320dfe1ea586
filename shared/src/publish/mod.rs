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

/// Publishes every event once, in order: unlike [`Publisher::publish`], a failed chunk does not
/// stop the rest, which is sent after it. What an operator's republish wants (each event tried,
/// every failure listed); a stream handler wants to stop at the first failure instead.
pub async fn publish_each<P: Publisher>(publisher: &P, events: &[Envelope]) -> PublishReport {
    let mut report = PublishReport::default();
    let mut pending: Vec<Envelope> = events.to_vec();
    while !pending.is_empty() {
        let round = publisher.publish(&pending).await;
        let progressed = !round.published.is_empty() || !round.failed.is_empty();
        report.published.extend(round.published);
        report.failed.extend(round.failed);
        pending.retain(|e| round.not_attempted.contains(&e.id));
        if !progressed {
            report.not_attempted = pending.iter().map(|e| e.id.clone()).collect();
            break;
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::event;

    /// Refuses `refuse`, then stops like SNS at a failed chunk of one.
    struct OneAtATime {
        refuse: String,
    }

    impl Publisher for OneAtATime {
        async fn publish(&self, events: &[Envelope]) -> PublishReport {
            let mut report = PublishReport::default();
            let Some((first, rest)) = events.split_first() else {
                return report;
            };
            if first.id == self.refuse {
                report.failed.push(FailedPublish {
                    event_id: first.id.clone(),
                    code: "X".into(),
                    reason: "refused".into(),
                    permanent: false,
                });
            } else {
                report.published.push(first.id.clone());
            }
            report.not_attempted = rest.iter().map(|e| e.id.clone()).collect();
            report
        }
    }

    #[tokio::test]
    async fn publish_each_goes_on_after_a_failure() {
        let events: Vec<_> = (1..=4).map(|i| event(&format!("t-{i}"), 1)).collect();
        let publisher = OneAtATime {
            refuse: events[1].id.clone(),
        };
        let report = publish_each(&publisher, &events).await;
        assert_eq!(report.published.len(), 3);
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].event_id, events[1].id);
        assert!(report.not_attempted.is_empty());
    }
}
