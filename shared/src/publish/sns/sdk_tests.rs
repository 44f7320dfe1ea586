//! `SnsPublisher`: message attributes, partial `PublishBatch` failures and failed requests.

use std::sync::{Arc, Mutex};

use super::SnsPublisher;
use crate::envelope::Envelope;
use crate::publish::Publisher;
use aws_sdk_sns::Client;
use aws_sdk_sns::operation::publish_batch::{PublishBatchError, PublishBatchOutput};
use aws_sdk_sns::types::error::AuthorizationErrorException;
use aws_sdk_sns::types::{BatchResultErrorEntry, PublishBatchResultEntry};
use aws_smithy_mocks::{RuleMode, mock, mock_client};

use crate::fixtures::event;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ripple-domain-events";

fn ids(events: &[Envelope]) -> Vec<String> {
    events.iter().map(|e| e.id.clone()).collect()
}

/// Accepts every entry and remembers the entries it was sent.
fn accept_all(
    seen: Arc<Mutex<Vec<aws_sdk_sns::types::PublishBatchRequestEntry>>>,
) -> aws_smithy_mocks::Rule {
    mock!(Client::publish_batch)
        .match_requests(|req| req.topic_arn() == Some(TOPIC))
        .then_compute_output(move |req| {
            let entries = req.publish_batch_request_entries();
            seen.lock().unwrap().extend(entries.iter().cloned());
            let mut output = PublishBatchOutput::builder();
            for entry in entries {
                output = output.successful(
                    PublishBatchResultEntry::builder()
                        .id(entry.id())
                        .message_id("m")
                        .build(),
                );
            }
            output.build()
        })
}

#[tokio::test]
async fn every_message_carries_type_and_aggregatetype_attributes() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rule = accept_all(seen.clone());
    let client = mock_client!(aws_sdk_sns, [&rule]);
    let publisher = SnsPublisher::new(client, TOPIC);
    let events = vec![event("a", 1), event("b", 1)];

    let report = publisher.publish(&events).await;
    assert!(report.all_published(), "{report:?}");
    assert_eq!(report.published, ids(&events));

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for (entry, event) in seen.iter().zip(&events) {
        let attributes = entry.message_attributes().unwrap();
        assert_eq!(attributes["type"].data_type(), "String");
        assert_eq!(attributes["type"].string_value(), Some("thing.counted"));
        assert_eq!(attributes["aggregatetype"].string_value(), Some("Thing"));
        assert_eq!(Envelope::from_json(entry.message()).unwrap(), *event);
        assert!(
            entry.message_group_id().is_none(),
            "standard topics have no message groups"
        );
    }
}

#[tokio::test]
async fn a_fifo_topic_gets_message_groups_per_aggregate() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rule = mock!(Client::publish_batch).then_compute_output({
        let seen = seen.clone();
        move |req| {
            let entries = req.publish_batch_request_entries();
            seen.lock().unwrap().extend(entries.iter().cloned());
            PublishBatchOutput::builder().build()
        }
    });
    let client = mock_client!(aws_sdk_sns, [&rule]);
    let publisher = SnsPublisher::new(client, "arn:aws:sns:us-east-1:1:events.fifo");
    let e = event("a", 1);

    assert!(
        publisher
            .publish(std::slice::from_ref(&e))
            .await
            .all_published()
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].message_group_id(), Some("Thing#a"));
    assert_eq!(seen[0].message_deduplication_id(), Some(e.id.as_str()));
}

#[tokio::test]
async fn a_partly_failed_batch_reports_failed_then_not_attempted_in_order() {
    let events: Vec<_> = (1..=13).map(|s| event("a", s)).collect();
    let refused = [events[3].id.clone(), events[7].id.clone()];
    let rule = mock!(Client::publish_batch).then_compute_output(move |req| {
        let mut output = PublishBatchOutput::builder();
        for entry in req.publish_batch_request_entries() {
            output = if refused.contains(&entry.id().to_owned()) {
                output.failed(
                    BatchResultErrorEntry::builder()
                        .id(entry.id())
                        .code("InternalError")
                        .message("try again")
                        .sender_fault(false)
                        .build()
                        .unwrap(),
                )
            } else {
                output.successful(PublishBatchResultEntry::builder().id(entry.id()).build())
            };
        }
        output.build()
    });
    let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&rule]);
    let publisher = SnsPublisher::new(client, TOPIC);

    let report = publisher.publish(&events).await;
    assert_eq!(
        rule.num_calls(),
        1,
        "the second chunk is not sent after a failure"
    );
    let published: Vec<_> = [0, 1, 2, 4, 5, 6, 8, 9]
        .iter()
        .map(|&i| events[i].id.clone())
        .collect();
    assert_eq!(report.published, published);
    let failed: Vec<_> = report.failed.iter().map(|f| f.event_id.clone()).collect();
    assert_eq!(failed, vec![events[3].id.clone(), events[7].id.clone()]);
    assert!(
        report
            .failed
            .iter()
            .all(|f| f.code == "InternalError" && !f.permanent)
    );
    assert_eq!(report.not_attempted, ids(&events[10..]));
    assert!(report.needs_retry(&events[3].id) && report.needs_retry(&events[12].id));
    assert!(!report.needs_retry(&events[0].id));
}

#[tokio::test]
async fn a_failed_request_fails_its_whole_chunk() {
    let events: Vec<_> = (1..=12).map(|s| event("a", s)).collect();
    let rule = mock!(Client::publish_batch).then_error(|| {
        PublishBatchError::AuthorizationErrorException(
            AuthorizationErrorException::builder()
                .message("not allowed")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_sns, [&rule]);
    let publisher = SnsPublisher::new(client, TOPIC);

    let report = publisher.publish(&events).await;
    assert!(report.published.is_empty());
    let failed: Vec<_> = report.failed.iter().map(|f| f.event_id.clone()).collect();
    assert_eq!(failed, ids(&events[..10]));
    assert!(
        report
            .failed
            .iter()
            .all(|f| f.code == "RequestFailed" && !f.permanent)
    );
    assert!(
        report.failed[0].reason.contains("not allowed"),
        "{}",
        report.failed[0].reason
    );
    assert_eq!(report.not_attempted, ids(&events[10..]));
}
