//! `ripple dlq` and `ripple status`: a stack's dead-letter queues listed by reason, one message
//! shown, and a redrive that moves the healthy message back (its order then goes on) and leaves
//! the poison.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ripple::dlq::{DlqArgs, DlqCommand, DlqOptions, RedriveArgs, ShowArgs};
use ripple::stack::StackArgs;
use ripple_e2e::{TestStack, eventually, fixture_envelope, repo_root};
use serde_json::Value;

fn options(stack: &TestStack, queue: Option<&str>) -> DlqOptions {
    DlqOptions {
        stack: StackArgs {
            stack: stack.deployment.stack_name.clone(),
            template: repo_root().join("template.yaml"),
        },
        queue: queue.map(str::to_owned),
        limit: 100,
        json: true,
    }
}

async fn dlq(command: DlqCommand) -> Value {
    let text = ripple::dlq::run(&DlqArgs { command }).await.unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redrive_moves_the_healthy_message_back_and_leaves_the_poison() {
    let stack = TestStack::deploy("dlq").await;
    stack.restock(&[("SKU-1", 10)]).await;
    stack.price(&["SKU-1"]).await;
    let placed = fixture_envelope("inventory-order-placed.json");
    for body in [placed.to_json(), "{not an event".to_owned()] {
        stack.send("InventoryDLQ", body).await;
    }

    let listed = dlq(DlqCommand::List(options(&stack, None))).await;
    let queues = listed["queues"].as_array().unwrap();
    // A redrive DLQ and a delivery DLQ per consumer.
    assert_eq!(queues.len(), 10, "{listed}");
    let inventory = queues
        .iter()
        .find(|q| {
            q["queue"]
                .as_str()
                .unwrap()
                .trim_end_matches(".fifo")
                .ends_with("-inventory-dlq")
        })
        .unwrap();
    assert_eq!(inventory["messages"], 2);
    assert!(
        inventory["source"]
            .as_str()
            .unwrap()
            .trim_end_matches(".fifo")
            .ends_with("-inventory")
    );
    let reasons: Vec<&String> = inventory["by_reason"].as_object().unwrap().keys().collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("order.placed")));
    assert!(reasons.iter().any(|r| r.starts_with("unreadable: ")));
    assert!(
        queues
            .iter()
            .filter(|q| q != &inventory)
            .all(|q| q["messages"] == 0)
    );

    // `ripple status` sees the same, and reading the reasons hid nothing.
    let status = ripple::status::status(&stack.clients, &stack.deployment)
        .await
        .unwrap();
    assert_eq!(status.dead_lettered, 2, "{status:?}");
    assert_eq!(status.last_errors.values().sum::<usize>(), 2, "{status:?}");
    assert_eq!(status.stream, "ENABLED");

    let shown = dlq(DlqCommand::Show(ShowArgs {
        options: options(&stack, Some("inventory")),
        message: None,
    }))
    .await;
    assert!(shown["reason"]["kind"].is_string(), "{shown}");
    assert!(
        shown["queue"]
            .as_str()
            .unwrap()
            .trim_end_matches(".fifo")
            .trim_end_matches(".fifo")
            .ends_with("-inventory-dlq")
    );

    let moved = dlq(DlqCommand::Redrive(RedriveArgs {
        options: options(&stack, Some("inventory")),
        event_type: None,
        reason: None,
        include_unreadable: false,
        yes: true,
    }))
    .await;
    let total = |field: &str| -> u64 {
        moved[field]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum()
    };
    assert_eq!((total("moved"), total("left")), (1, 1), "{moved}");

    // The healthy order.placed goes on: inventory reserves its stock.
    let runtime = stack.run(&["inventory"]).await;
    let order = placed.subject.clone();
    eventually(
        "the redriven order reserved",
        Duration::from_secs(60),
        || {
            let stack = &stack;
            let order = order.clone();
            async move {
                let types = stack.types("Reservation", &order).await;
                (!types.is_empty()).then_some(types)
            }
        },
    )
    .await;
    runtime.stop().await;
    let after = dlq(DlqCommand::List(options(&stack, Some("inventory")))).await;
    stack.teardown().await;
    let left = after["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["kind"] == "redrive")
        .unwrap();
    assert_eq!(left["messages"], 1, "the poison stays: {after}");
    let reasons: Vec<&String> = left["by_reason"].as_object().unwrap().keys().collect();
    assert!(reasons[0].starts_with("unreadable: "), "{reasons:?}");
}
