//! `ripple history`: the journey of an order the saga compensated, read back from the store,
//! matches its stored events step for step and ends as its read model says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ripple::history::{HistoryArgs, journey, run};
use ripple::stack::StackArgs;
use ripple_e2e::{RunningStack, repo_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_journey_of_a_compensated_order_is_its_stored_events_in_causal_order() {
    let saga = RunningStack::start("history", &[("SCARCE", 1)]).await;
    let stack = &saga.stack;
    let order = saga.api().place("c-scarce", &[("SCARCE", 2)]).await;
    saga.settle().await;

    let told = journey(&stack.store(), &order).await.unwrap();
    let mut stored = Vec::new();
    for aggregate in ["Order", "Reservation", "Payment"] {
        stored.extend(stack.types(aggregate, &order).await);
    }
    let steps: Vec<&str> = told.steps.iter().map(|s| s.event_type.as_str()).collect();
    assert_eq!(steps, ["order.placed", "stock.rejected", "order.cancelled"]);
    let mut sorted_steps: Vec<String> = steps.iter().map(|s| (*s).to_owned()).collect();
    sorted_steps.sort();
    stored.sort();
    assert_eq!(sorted_steps, stored, "every stored event, once");
    assert!(told.steps.windows(2).all(|w| w[0].time <= w[1].time));
    let sources: Vec<&str> = told.steps.iter().map(|s| s.source.as_str()).collect();
    assert_eq!(
        sources,
        [
            domain::sources::ORDERS_API,
            domain::sources::INVENTORY,
            domain::sources::ORDER_SAGA
        ]
    );

    let args = |at: Option<usize>| HistoryArgs {
        order: order.clone(),
        stack: StackArgs {
            stack: stack.deployment.stack_name.clone(),
            template: repo_root().join("template.yaml"),
        },
        at,
        json: true,
    };
    let last: serde_json::Value = serde_json::from_str(&run(&args(None)).await.unwrap()).unwrap();
    let first: serde_json::Value =
        serde_json::from_str(&run(&args(Some(1))).await.unwrap()).unwrap();
    saga.finish().await;
    assert_eq!(last["state"]["status"], "cancelled");
    assert_eq!(last["state"]["reasons"][0], "out_of_stock", "{last}");
    assert_eq!(first["state"]["status"], "placed");
    assert_eq!(last["steps"].as_array().unwrap().len(), 3);
}
