//! Where the outbox puts a record it can never publish, so that the shard goes on without it.
//!
//! The stream mapping retries a failing record for as long as it takes (no retry limit, no
//! maximum age): that is what makes an outage of any length lose nothing. The price is that a
//! record which can never succeed (its item is not a readable event, SNS refuses the message
//! itself as too large or malformed) would hold its shard forever. So such a record, and only
//! such a record, is isolated: [`Quarantined`] says which event it is and why, a [`Quarantine`]
//! keeps it (an SQS queue with an alarm, [`SqsQuarantine`]), and the outbox reports the record
//! done. Its neighbours are published as usual; the event itself is still in the store, and once
//! its cause is fixed it is published again from there (`ripple republish`).
//!
//! Failures of the publishing path (throttling, an outage, a key or policy that refuses every
//! message) are never quarantined: they are retried until they pass. An event that is not the
//! store's own to publish (stored at another stream position than its envelope says, or written
//! by a source the allowlist does not let write it) is quarantined with the code `Refused`, and
//! is never published: republishing it from the store refuses it again.

use std::future::Future;

use aws_lambda_events::event::dynamodb::EventRecord;
use serde::Serialize;

use crate::envelope::Envelope;
use crate::publish::FailedPublish;
use crate::store::attr;

#[cfg(feature = "quarantine-sqs")]
mod sqs;

#[cfg(feature = "quarantine-sqs")]
pub use sqs::SqsQuarantine;

/// A stream record the outbox can never publish: where its event is and why it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quarantined {
    /// The event's stream key (`pk`), when the record says.
    pub stream: Option<String>,
    /// The event's sequence in its stream (`sk`), when the record says.
    pub sequence: Option<u64>,
    /// The event's id, when it can be read.
    pub event_id: Option<String>,
    /// The event's type, when it can be read.
    pub event_type: Option<String>,
    /// What went wrong: `Unreadable`, or the publisher's code (`TooLarge`, SNS's).
    pub code: String,
    /// Why, for people.
    pub reason: String,
    /// The stream record's sequence number, to find it in the stream while it is kept.
    pub stream_sequence_number: Option<String>,
}

impl Quarantined {
    /// A record whose item is not a readable event.
    pub(crate) fn unreadable(record: &EventRecord, reason: String) -> Self {
        use serde_dynamo::AttributeValue as V;
        let text = |name: &str| match record.change.keys.get(name) {
            Some(V::S(value)) => Some(value.clone()),
            _ => None,
        };
        let sequence = match record.change.keys.get(attr::SK) {
            Some(V::N(n)) => n.parse().ok(),
            _ => None,
        };
        let image = |name: &str| match record.change.new_image.get(name) {
            Some(V::S(value)) => Some(value.clone()),
            _ => None,
        };
        Quarantined {
            stream: text(attr::PK),
            sequence,
            event_id: image(attr::ID),
            event_type: image(attr::TYPE),
            code: "Unreadable".into(),
            reason,
            stream_sequence_number: record.change.sequence_number.clone(),
        }
    }

    /// An event that is not the store's own to publish (see [`Outbox`](super::Outbox)): at
    /// another stream position than its envelope says, or not its source's to write.
    pub(crate) fn refused(record: &EventRecord, event: &Envelope, reason: String) -> Self {
        use serde_dynamo::AttributeValue as V;
        let image = &record.change.new_image;
        Quarantined {
            stream: match image.get(attr::PK) {
                Some(V::S(pk)) => Some(pk.clone()),
                _ => None,
            },
            sequence: match image.get(attr::SK) {
                Some(V::N(n)) => n.parse().ok(),
                _ => None,
            },
            event_id: Some(event.id.clone()),
            event_type: Some(event.event_type.clone()),
            code: "Refused".into(),
            reason,
            stream_sequence_number: record.change.sequence_number.clone(),
        }
    }

    /// An event the publisher refused for good.
    pub(crate) fn unpublishable(
        event: &Envelope,
        failure: &FailedPublish,
        record: &EventRecord,
    ) -> Self {
        Quarantined {
            stream: Some(event.stream_key()),
            sequence: Some(event.sequence),
            event_id: Some(event.id.clone()),
            event_type: Some(event.event_type.clone()),
            code: failure.code.clone(),
            reason: failure.reason.clone(),
            stream_sequence_number: record.change.sequence_number.clone(),
        }
    }
}

/// The quarantine could not keep a record: it stays failed, and the shard retries it.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// The outbox has no quarantine: records that can never be published hold their shard.
    #[error("no quarantine is configured")]
    NotConfigured,
    /// The quarantine's store failed.
    #[error("quarantine request failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Keeps the records the outbox can never publish.
pub trait Quarantine: Send + Sync {
    /// Keeps `record`; only once this succeeds does the outbox report it done.
    fn isolate(
        &self,
        record: &Quarantined,
    ) -> impl Future<Output = Result<(), QuarantineError>> + Send;
}

/// No quarantine: a record that can never be published stays failed and holds its shard.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoQuarantine;

impl Quarantine for NoQuarantine {
    async fn isolate(&self, _: &Quarantined) -> Result<(), QuarantineError> {
        Err(QuarantineError::NotConfigured)
    }
}
