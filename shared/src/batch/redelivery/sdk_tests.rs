//! `Redelivery`: failed SQS records get a visibility timeout that grows with their receive count.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::batch::{
    FailedRedelivery, QueueKind, Redelivery, RedeliveryBackoff, process_sqs_with_backoff,
};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::operation::change_message_visibility_batch::ChangeMessageVisibilityBatchOutput;
use aws_sdk_sqs::operation::get_queue_url::{GetQueueUrlError, GetQueueUrlOutput};
use aws_sdk_sqs::types::error::QueueDoesNotExist;
use aws_sdk_sqs::types::{BatchResultErrorEntry, ChangeMessageVisibilityBatchResultEntry};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

const ARN: &str = "arn:aws:sqs:us-east-1:123456789012:ripple-inventory";
const URL: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/ripple-inventory";

fn record(id: &str, receive_count: u32) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.into());
    m.receipt_handle = Some(format!("rh-{id}"));
    m.body = Some(id.into());
    m.event_source_arn = Some(ARN.into());
    m.attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    m
}

fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(60)
}

fn backoff() -> RedeliveryBackoff {
    RedeliveryBackoff {
        base: Duration::from_secs(10),
        cap: Duration::from_secs(300),
        jitter: false,
    }
}

fn queue_url() -> Rule {
    mock!(Client::get_queue_url)
        .match_requests(|req| {
            req.queue_name() == Some("ripple-inventory")
                && req.queue_owner_aws_account_id() == Some("123456789012")
        })
        .then_output(|| GetQueueUrlOutput::builder().queue_url(URL).build())
}

type Seen = Arc<Mutex<Vec<(String, i32)>>>;

/// Accepts every entry except those whose receipt handle is in `refuse`; remembers what it saw.
fn change_visibility(seen: Seen, refuse: &'static [&'static str]) -> Rule {
    mock!(Client::change_message_visibility_batch)
        .match_requests(|req| req.queue_url() == Some(URL))
        .then_compute_output(move |req| {
            let mut successful = Vec::new();
            let mut failed = Vec::new();
            for entry in req.entries() {
                seen.lock().unwrap().push((
                    entry.receipt_handle().to_owned(),
                    entry.visibility_timeout().unwrap(),
                ));
                if refuse.contains(&entry.receipt_handle()) {
                    failed.push(
                        BatchResultErrorEntry::builder()
                            .id(entry.id())
                            .code("ReceiptHandleIsInvalid")
                            .message("stale")
                            .sender_fault(true)
                            .build()
                            .unwrap(),
                    );
                } else {
                    successful.push(
                        ChangeMessageVisibilityBatchResultEntry::builder()
                            .id(entry.id())
                            .build()
                            .unwrap(),
                    );
                }
            }
            ChangeMessageVisibilityBatchOutput::builder()
                .set_successful(Some(successful))
                .set_failed(Some(failed))
                .build()
                .unwrap()
        })
}

#[tokio::test]
async fn failed_records_get_a_timeout_from_their_receive_count_and_the_url_is_cached() {
    let seen = Seen::default();
    let url = queue_url();
    let change = change_visibility(seen.clone(), &["rh-c"]);
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&url, &change]);
    let redelivery = Redelivery::new(client, backoff());

    let report = redelivery
        .delay(&[record("a", 1), record("b", 3), record("c", 9)])
        .await;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            ("rh-a".into(), 10),
            ("rh-b".into(), 40),
            ("rh-c".into(), 300)
        ]
    );
    assert_eq!(
        report.delayed,
        vec![
            ("a".into(), Duration::from_secs(10)),
            ("b".into(), Duration::from_secs(40))
        ]
    );
    assert_eq!(
        report.failed,
        vec![FailedRedelivery {
            message_id: "c".into(),
            reason: "ReceiptHandleIsInvalid: stale".into()
        }]
    );

    redelivery.delay(&[record("d", 2)]).await;
    assert_eq!(
        url.num_calls(),
        1,
        "the queue URL is looked up once per queue"
    );
    assert_eq!(change.num_calls(), 2);
}

#[tokio::test]
async fn more_than_ten_records_take_several_calls() {
    let seen = Seen::default();
    let url = queue_url();
    let change = change_visibility(seen.clone(), &[]);
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&url, &change]);
    let redelivery = Redelivery::new(client, backoff());

    let records: Vec<_> = (0..23).map(|i| record(&format!("m{i}"), 1)).collect();
    let report = redelivery.delay(&records).await;
    assert_eq!(change.num_calls(), 3);
    assert_eq!(report.delayed.len(), 23);
    assert!(report.failed.is_empty());
}

#[tokio::test]
async fn an_unknown_queue_or_a_record_without_a_receipt_is_reported_not_raised() {
    let url = mock!(Client::get_queue_url).then_error(|| {
        GetQueueUrlError::QueueDoesNotExist(QueueDoesNotExist::builder().message("gone").build())
    });
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&url]);
    let redelivery = Redelivery::new(client, backoff());
    let mut orphan = record("b", 1);
    orphan.receipt_handle = None;

    let report = redelivery.delay(&[record("a", 1), orphan]).await;
    assert!(report.delayed.is_empty());
    let failed: Vec<_> = report
        .failed
        .iter()
        .map(|f| f.message_id.as_str())
        .collect();
    assert_eq!(failed, vec!["b", "a"]);
    assert!(
        report.failed[1].reason.contains("gone"),
        "{}",
        report.failed[1].reason
    );
}

#[tokio::test]
async fn process_with_backoff_delays_only_the_failed_records() {
    let seen = Seen::default();
    let url = queue_url();
    let change = change_visibility(seen.clone(), &[]);
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&url, &change]);
    let redelivery = Redelivery::new(client, backoff());
    let mut event = SqsEvent::default();
    event.records = vec![record("ok", 1), record("bad", 2), record("ok2", 1)];

    let response = process_sqs_with_backoff(
        event,
        QueueKind::default(),
        later(),
        &redelivery,
        |m| async move {
            if m.body.as_deref() == Some("bad") {
                Err("poison")
            } else {
                Ok(())
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier, "bad");
    assert_eq!(*seen.lock().unwrap(), vec![("rh-bad".into(), 20)]);
}

#[tokio::test]
async fn a_batch_that_failed_whole_delays_every_record() {
    let seen = Seen::default();
    let url = queue_url();
    let change = change_visibility(seen.clone(), &[]);
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&url, &change]);
    let redelivery = Redelivery::new(client, backoff());
    let mut event = SqsEvent::default();
    event.records = vec![record("a", 1), record("b", 4)];

    let err = process_sqs_with_backoff(
        event,
        QueueKind::default(),
        later(),
        &redelivery,
        |_| async { Err("down") },
    )
    .await
    .unwrap_err();
    assert_eq!(err.count, 2);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![("rh-a".into(), 10), ("rh-b".into(), 80)]
    );
}

#[tokio::test]
async fn released_records_are_visible_again_at_once() {
    let seen = Seen::default();
    let url = queue_url();
    let change = change_visibility(seen.clone(), &[]);
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&url, &change]);
    let redelivery = Redelivery::new(client, backoff());

    let report = redelivery.release(&[record("poison", 7)]).await;
    assert_eq!(*seen.lock().unwrap(), vec![("rh-poison".into(), 0)]);
    assert_eq!(report.delayed, vec![("poison".into(), Duration::ZERO)]);
}

#[tokio::test]
async fn records_that_never_started_back_off_like_failures() {
    let seen = Seen::default();
    let url = queue_url();
    let change = change_visibility(seen.clone(), &[]);
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&url, &change]);
    let redelivery = Redelivery::new(client, backoff());
    let mut event = SqsEvent::default();
    event.records = vec![record("a", 1), record("b", 3)];

    // One second left: "a" is still running at the cut-off and "b" is never started.
    let soon = SystemTime::now() + Duration::from_secs(1);
    let err = process_sqs_with_backoff(event, QueueKind::default(), soon, &redelivery, |_| async {
        std::future::pending::<Result<(), String>>().await
    })
    .await
    .unwrap_err();
    assert_eq!(err.count, 2);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![("rh-a".into(), 10), ("rh-b".into(), 40)]
    );
}
