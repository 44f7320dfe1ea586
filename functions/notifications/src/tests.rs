//! Handler tests over the recording notifier and the in-memory idempotency store, and the SNS
//! adapter against mocked responses.

use super::*;
use aws_lambda_events::event::sqs::SqsMessage;
use domain::order::OrderEvent;
use domain::order::{CancelReason, Order};
use domain::testing::{self as story, stored};
use ripple_kit::idempotency::InMemoryIdempotencyStore;
use ripple_kit::testing::{
    deadline, failed_message_ids, raw_sqs_message, sqs_invocation, sqs_message,
};
use std::sync::atomic::{AtomicBool, Ordering};

fn handler() -> Handler<RecordingNotifier, InMemoryIdempotencyStore> {
    handler_with(RecordingNotifier::new(), InMemoryIdempotencyStore::new())
}

fn message(order_id: &str, sequence: u64, event: &OrderEvent) -> SqsMessage {
    sqs_message(&stored::<Order>(order_id, sequence, event))
}

fn confirmed(order_id: &str) -> SqsMessage {
    message(order_id, 2, &story::confirmed(order_id))
}

fn cancelled(order_id: &str, reason: CancelReason) -> SqsMessage {
    message(order_id, 2, &story::cancelled(order_id, reason))
}

#[tokio::test]
async fn a_confirmed_order_is_announced_once_however_often_it_is_delivered() {
    let h = handler();
    let m = confirmed("o-123");
    assert_eq!(
        h.handle_message(&m, deadline()).await.unwrap(),
        Handled::Applied("notification.sent")
    );
    assert_eq!(
        h.handle_message(&m, deadline()).await.unwrap(),
        Handled::Duplicate
    );
    // A second copy published by SNS is another message with the same event: still one send.
    assert_eq!(
        h.handle_message(&confirmed("o-123"), deadline())
            .await
            .unwrap(),
        Handled::Duplicate
    );
    let sent = h.consumer().notifier().sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].subject, "Your order o-123 is confirmed");
    assert!(
        sent[0].text.starts_with("Your order o-123 is confirmed."),
        "{}",
        sent[0].text
    );
}

#[tokio::test]
async fn a_cancellation_says_why() {
    let h = handler();
    let cases = [
        ("o-1", CancelReason::OutOfStock, "out of stock"),
        ("o-2", CancelReason::PaymentDeclined, "payment was declined"),
        ("o-3", CancelReason::CustomerRequest, "refunded"),
    ];
    for (order_id, reason, says) in cases {
        assert_eq!(
            h.handle_message(&cancelled(order_id, reason), deadline())
                .await
                .unwrap(),
            Handled::Applied("notification.sent")
        );
        let last = h.consumer().notifier().sent().pop().unwrap();
        assert_eq!(last.outcome, "order.cancelled");
        assert!(
            last.text
                .starts_with(&format!("Your order {order_id} was cancelled because"))
        );
        assert!(last.text.contains(says), "{}", last.text);
    }
}

#[tokio::test]
async fn each_outcome_of_an_order_gets_its_own_message() {
    let h = handler();
    h.handle_message(&confirmed("o-1"), deadline())
        .await
        .unwrap();
    let cancel = cancelled("o-1", CancelReason::CustomerRequest);
    assert_eq!(
        h.handle_message(&cancel, deadline()).await.unwrap(),
        Handled::Applied("notification.sent")
    );
    assert_eq!(
        h.handle_message(&cancel, deadline()).await.unwrap(),
        Handled::Duplicate
    );
    let outcomes: Vec<_> = h
        .consumer()
        .notifier()
        .sent()
        .into_iter()
        .map(|n| n.outcome)
        .collect();
    assert_eq!(outcomes, vec!["order.confirmed", "order.cancelled"]);
}

#[tokio::test]
async fn a_placed_order_is_not_an_outcome() {
    let h = handler();
    let m = message("o-1", 1, &OrderEvent::Placed(story::placed("o-1")));
    assert_eq!(
        h.handle_message(&m, deadline()).await.unwrap(),
        Handled::Ignored
    );
    assert!(h.consumer().notifier().sent().is_empty());
}

/// A channel that is down for the first send, and yields mid-send so deliveries interleave.
#[derive(Default)]
struct Flaky {
    inner: RecordingNotifier,
    down: AtomicBool,
}

impl Notifier for Flaky {
    async fn notify(&self, notification: &Notification) -> Result<Sent, NotifyError> {
        tokio::task::yield_now().await;
        if self.down.swap(false, Ordering::SeqCst) {
            return Err(NotifyError::Backend("topic throttled".into()));
        }
        self.inner.notify(notification).await
    }
}

#[tokio::test]
async fn a_failed_send_is_sent_by_the_redelivery() {
    let h = handler_with(Flaky::default(), InMemoryIdempotencyStore::new());
    h.consumer().notifier().down.store(true, Ordering::SeqCst);
    let m = confirmed("o-1");
    let err = h.handle_message(&m, deadline()).await.unwrap_err();
    assert!(
        matches!(err, ConsumerError::Own(IdempotencyError::Effect(_))),
        "{err:?}"
    );
    assert!(h.consumer().notifier().inner.sent().is_empty());
    assert_eq!(
        h.handle_message(&m, deadline()).await.unwrap(),
        Handled::Applied("notification.sent")
    );
    assert_eq!(h.consumer().notifier().inner.sent().len(), 1);
}

#[tokio::test]
async fn two_deliveries_at_the_same_moment_send_once() {
    let h = handler_with(Flaky::default(), InMemoryIdempotencyStore::new());
    let m = confirmed("o-1");
    let (a, b) = tokio::join!(
        h.handle_message(&m, deadline()),
        h.handle_message(&m, deadline())
    );
    let mut results = [a, b];
    results.sort_by_key(Result::is_err);
    assert_eq!(
        results[0].as_ref().unwrap(),
        &Handled::Applied("notification.sent")
    );
    // The loser finds the key in progress and fails, so SQS redelivers it later.
    assert!(matches!(
        results[1],
        Err(ConsumerError::Own(
            IdempotencyError::AlreadyInProgress { .. }
        ))
    ));
    assert_eq!(
        h.handle_message(&m, deadline()).await.unwrap(),
        Handled::Duplicate
    );
    assert_eq!(h.consumer().notifier().inner.sent().len(), 1);
}

#[tokio::test]
async fn a_send_whose_run_died_unrecorded_is_sent_again_with_the_same_identity() {
    use ripple_kit::testing::{DiesBeforeComplete, ManualClock};
    use std::sync::Arc;
    let records = Arc::new(InMemoryIdempotencyStore::new());
    let clock = ManualClock::at(std::time::SystemTime::now());
    let sent = Arc::new(RecordingNotifier::new());
    // The message may or may not have gone out; the process dies before it records the send.
    let dying = SqsConsumer::new(
        Notifications::new(sent.clone(), DiesBeforeComplete(records.clone()))
            .with_clock(clock.reader()),
    );
    let m = confirmed("o-1");
    assert_eq!(
        dying.handle_message(&m, deadline()).await.unwrap(),
        Handled::Applied("notification.sent")
    );
    // Its claim expires with the dead invocation; the redelivery takes it over and sends again,
    // as the same notification (a channel drops the copy by its order id and outcome).
    clock.advance(std::time::Duration::from_secs(11));
    let later =
        SqsConsumer::new(Notifications::new(sent.clone(), records).with_clock(clock.reader()));
    assert_eq!(
        later.handle_message(&m, deadline()).await.unwrap(),
        Handled::Applied("notification.sent")
    );
    let sent = sent.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], sent[1], "one identity, one text");
    // Recorded now: a further redelivery sends nothing.
    assert_eq!(
        later.handle_message(&m, deadline()).await.unwrap(),
        Handled::Duplicate
    );
}

#[tokio::test]
async fn an_event_not_of_an_order_stream_is_refused() {
    let h = handler();
    let mut event = stored::<Order>("o-1", 2, &story::confirmed("o-1"));
    event.aggregatetype = "Payment".into();
    assert!(
        h.handle_message(&sqs_message(&event), deadline())
            .await
            .is_err()
    );
    let mut forged = stored::<Order>("o-1", 2, &story::confirmed("o-1"));
    forged.source = domain::sources::ORDERS_API.into();
    assert!(
        h.handle_message(&sqs_message(&forged), deadline())
            .await
            .is_err()
    );
    assert!(h.consumer().notifier().sent().is_empty());
}

#[tokio::test]
async fn the_batch_reports_only_the_poison_record() {
    let h = handler();
    let event = sqs_invocation(vec![
        confirmed("o-1"),
        raw_sqs_message("poison", "{}"),
        cancelled("o-2", CancelReason::OutOfStock),
    ]);
    let response = h.handle(event).await.unwrap();
    let failed = failed_message_ids(&response);
    assert_eq!(failed, vec!["poison"]);
    assert_eq!(h.consumer().notifier().sent().len(), 2);
}

#[tokio::test]
async fn the_sns_adapter_publishes_subject_text_and_filterable_attributes() {
    use aws_sdk_sns::Client;
    use aws_sdk_sns::operation::publish::PublishOutput;
    use aws_smithy_mocks::{mock, mock_client};

    let publish = mock!(Client::publish)
        .match_requests(|req| {
            let attribute = |name: &str| {
                req.message_attributes()
                    .and_then(|a| a.get(name))
                    .and_then(|v| v.string_value())
                    .map(str::to_owned)
            };
            req.topic_arn() == Some("arn:aws:sns:us-east-1:1:notifications")
                && req.subject() == Some("Your order o-9 is confirmed")
                && req.message().is_some_and(|m| m.contains("o-9"))
                && attribute("type").as_deref() == Some("order.confirmed")
                && attribute("order_id").as_deref() == Some("o-9")
        })
        .then_output(|| PublishOutput::builder().message_id("mid-1").build());
    let client = mock_client!(aws_sdk_sns, [&publish]);
    let notifier = SnsNotifier::new(client, "arn:aws:sns:us-east-1:1:notifications");
    let notification = compose(&OrderEvent::Confirmed {
        order_id: "o-9".into(),
    })
    .unwrap();
    let delivery = notifier.notify(&notification).await.unwrap();
    assert_eq!(delivery.message_id, "mid-1");
    assert_eq!(publish.num_calls(), 1);
}

#[test]
fn config_needs_the_topic_and_the_table() {
    assert!(Config::from_lookup(|k| (k == "IDEMPOTENCY_TABLE").then(|| "i".to_owned())).is_err());
    let config =
        Config::from_lookup(|k| (!k.starts_with("REDELIVERY")).then(|| k.to_lowercase())).unwrap();
    assert_eq!(
        (config.topic_arn.as_str(), config.idempotency_table.as_str()),
        ("notifications_topic_arn", "idempotency_table")
    );
    assert_eq!(
        config.redelivery,
        ripple_kit::batch::RedeliveryBackoff::default()
    );
}
