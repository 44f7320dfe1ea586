//! The SNS adapter of [`Publisher`] (feature `publish-sns`).

use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use super::{
    ATTRIBUTE_NAMES, FailedPublish, MAX_BATCH_ENTRIES, MAX_PAYLOAD_BYTES, PublishReport, Publisher,
};
use crate::envelope::Envelope;

/// The SNS adapter.
#[derive(Clone, Debug)]
pub struct SnsPublisher {
    client: Client,
    topic_arn: String,
}

impl SnsPublisher {
    /// A publisher to `topic_arn` (a `.fifo` ARN turns on message groups).
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsPublisher {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    fn is_fifo(&self) -> bool {
        self.topic_arn.ends_with(".fifo")
    }

    fn entry(
        &self,
        event: &Envelope,
        body: String,
    ) -> Result<PublishBatchRequestEntry, aws_sdk_sns::error::BuildError> {
        let string = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
        };
        let mut entry = PublishBatchRequestEntry::builder()
            .id(batch_entry_id(&event.id))
            .message(body)
            .message_attributes("type", string(&event.event_type)?)
            .message_attributes("aggregatetype", string(&event.aggregatetype)?);
        if self.is_fifo() {
            entry = entry
                .message_group_id(event.stream_key())
                .message_deduplication_id(batch_entry_id(&event.id));
        }
        entry.build()
    }
}

/// A batch entry id: SNS takes up to 80 alphanumerics, hyphens and underscores.
fn batch_entry_id(event_id: &str) -> String {
    event_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(80)
        .collect()
}

/// True for a per-entry code that refuses the message itself, which no retry can change. Every
/// other failure, sender faults included, is an outage of the path (KMS disabled or throttled,
/// an authorization or topic policy error, throttling) that passes once it is fixed: those are
/// retried however long it takes, never given up on.
fn refuses_the_message(code: &str) -> bool {
    matches!(
        code,
        "InvalidParameter" | "InvalidParameterValue" | "ValidationException" | "ValidationError"
    )
}

/// The bytes an entry counts against the request limit: body plus attribute names and values.
fn entry_size(event: &Envelope, body: &str) -> usize {
    body.len()
        + ATTRIBUTE_NAMES
            .iter()
            .map(|n| n.len() + "String".len())
            .sum::<usize>()
        + event.event_type.len()
        + event.aggregatetype.len()
}

/// Splits entry sizes into consecutive chunks of at most 10 entries and `MAX_PAYLOAD_BYTES`.
/// An entry larger than the limit gets a chunk of its own (SNS will refuse it).
fn chunk_by_size(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, size) in sizes.iter().enumerate() {
        let full = i - start == MAX_BATCH_ENTRIES || bytes + size > MAX_PAYLOAD_BYTES;
        if i > start && full {
            chunks.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        chunks.push(start..sizes.len());
    }
    chunks
}

impl Publisher for SnsPublisher {
    async fn publish(&self, events: &[Envelope]) -> PublishReport {
        let bodies: Vec<String> = events.iter().map(Envelope::to_json).collect();
        let sizes: Vec<usize> = events
            .iter()
            .zip(&bodies)
            .map(|(e, b)| entry_size(e, b))
            .collect();
        let mut report = PublishReport::default();
        let mut chunks = chunk_by_size(&sizes).into_iter();
        for chunk in chunks.by_ref() {
            let chunk_events = &events[chunk.clone()];
            if chunk.len() == 1 && sizes[chunk.start] > MAX_PAYLOAD_BYTES {
                report.failed.push(FailedPublish {
                    event_id: chunk_events[0].id.clone(),
                    code: "TooLarge".into(),
                    reason: format!(
                        "{} bytes is over SNS's {MAX_PAYLOAD_BYTES}-byte limit",
                        sizes[chunk.start]
                    ),
                    permanent: true,
                });
                break;
            }
            let entries: Result<Vec<_>, _> = chunk
                .clone()
                .map(|i| self.entry(&events[i], bodies[i].clone()))
                .collect();
            let entries = match entries {
                Ok(entries) => entries,
                Err(err) => {
                    report
                        .failed
                        .extend(chunk_events.iter().map(|e| FailedPublish {
                            event_id: e.id.clone(),
                            code: "InvalidEntry".into(),
                            reason: err.to_string(),
                            permanent: true,
                        }));
                    break;
                }
            };
            let sent = self
                .client
                .publish_batch()
                .topic_arn(&self.topic_arn)
                .set_publish_batch_request_entries(Some(entries))
                .send()
                .await;
            match sent {
                Ok(output) => {
                    let mut chunk_failed = false;
                    for event in chunk_events {
                        let entry_id = batch_entry_id(&event.id);
                        match output.failed().iter().find(|f| f.id() == entry_id) {
                            Some(failure) => {
                                chunk_failed = true;
                                report.failed.push(FailedPublish {
                                    event_id: event.id.clone(),
                                    code: failure.code().to_owned(),
                                    reason: failure.message().unwrap_or_default().to_owned(),
                                    permanent: failure.sender_fault()
                                        && refuses_the_message(failure.code()),
                                });
                            }
                            None => report.published.push(event.id.clone()),
                        }
                    }
                    if chunk_failed {
                        break;
                    }
                }
                Err(err) => {
                    let reason = aws_sdk_sns::error::DisplayErrorContext(&err).to_string();
                    for event in chunk_events {
                        report.failed.push(FailedPublish {
                            event_id: event.id.clone(),
                            code: "RequestFailed".into(),
                            reason: reason.clone(),
                            permanent: false,
                        });
                    }
                    break;
                }
            }
        }
        for rest in chunks {
            report
                .not_attempted
                .extend(events[rest].iter().map(|e| e.id.clone()));
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_hold_at_most_ten_entries() {
        let chunks = chunk_by_size(&[10; 23]);
        assert_eq!(chunks, vec![0..10, 10..20, 20..23]);
    }

    #[test]
    fn chunks_respect_the_request_size_limit() {
        let big = MAX_PAYLOAD_BYTES / 2;
        let chunks = chunk_by_size(&[big, big, 1, MAX_PAYLOAD_BYTES + 1, 5]);
        assert_eq!(chunks, vec![0..2, 2..3, 3..4, 4..5]);
    }

    #[test]
    fn no_events_no_chunks() {
        assert!(chunk_by_size(&[]).is_empty());
    }

    #[test]
    fn only_a_refusal_of_the_message_itself_is_permanent() {
        assert!(refuses_the_message("InvalidParameter"));
        for outage in [
            "KMSDisabled",
            "KMSAccessDenied",
            "AuthorizationError",
            "Throttled",
        ] {
            assert!(!refuses_the_message(outage), "{outage}");
        }
    }

    #[test]
    fn batch_entry_ids_are_what_sns_accepts() {
        assert_eq!(
            batch_entry_id("0190c1e2-7b2a-7c3d-8e4f-5a6b7c8d9e0f"),
            "0190c1e2-7b2a-7c3d-8e4f-5a6b7c8d9e0f"
        );
        assert_eq!(batch_entry_id("a:b/c"), "abc");
        assert_eq!(batch_entry_id(&"x".repeat(100)).len(), 80);
    }
}

#[cfg(test)]
mod sdk_tests;
