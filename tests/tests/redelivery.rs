//! Redelivery under failure: a failed message comes back after its backoff, not the queue's
//! visibility timeout, and a message that can never be handled reaches its DLQ in seconds. The
//! functions are the real ones from the registry, built from their template environment, and
//! the emulator's SQS changes the visibility timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ripple_e2e::{TestStack, eventually, fixture_envelope};

/// Sends `body` to the projections queue of `stack`.
async fn send_to_projections(stack: &TestStack, body: String) {
    stack.send("ProjectionsQueue", body).await;
}

#[tokio::test]
async fn a_failed_message_comes_back_after_its_backoff_not_the_queue_timeout() {
    let mut stack = TestStack::deploy("backoff").await;
    let function = stack
        .deployment
        .functions
        .get_mut("ProjectionsFunction")
        .expect("the projections function");
    // Every projection fails (its views table does not exist); one second of backoff.
    for (key, value) in [
        ("VIEWS_TABLE", "no-such-views-table"),
        ("REDELIVERY_BASE_SECONDS", "1"),
        ("REDELIVERY_CAP_SECONDS", "1"),
    ] {
        function.environment.insert(key.into(), value.into());
    }
    let placed = fixture_envelope("projections-order-placed.json");
    send_to_projections(&stack, placed.to_json()).await;

    let runtime = stack.run(&["projections"]).await;
    let function = runtime.function("ProjectionsFunction").expect("running");
    // The queue's own timeout is 60 s: three receives in 20 s are the backoff's doing.
    eventually(
        "three receives of the failing message",
        Duration::from_secs(20),
        || async {
            let invocations = function.stats().snapshot().invocations;
            (invocations >= 3).then_some(())
        },
    )
    .await;
    runtime.stop().await;
    stack.teardown().await;
}

#[tokio::test]
async fn a_message_that_can_never_be_handled_reaches_its_dead_letter_queue_in_seconds() {
    let stack = TestStack::deploy("poison").await;
    send_to_projections(&stack, "{not json".to_owned()).await;

    let runtime = stack.run(&["projections"]).await;
    // Twenty receives at the queue's 60 s would take twenty minutes.
    let dlq = stack.queue_url("ProjectionsDLQ");
    eventually(
        "the poison message in the DLQ",
        Duration::from_secs(60),
        || async {
            let depth = ripple::runtime::sqs::depth(&stack.clients.sqs, &dlq)
                .await
                .expect("DLQ depth");
            (depth == 1).then_some(())
        },
    )
    .await;
    runtime.stop().await;
    stack.teardown().await;
}
