//! `ripple load --stack S --api URL`: the load of a deployed stack. Here the stack is in the
//! emulator and the runner serves its API over HTTP as API Gateway would, so the command takes
//! the deployed path: the catalogue seeded into the stack's store, the orders placed with one
//! customer's token, every order read back terminal from its stream, stock checked as a
//! difference, no dead letters. Without a token it refuses before it changes anything.
//!
//! The functions run in this process (the request counter is the process's own), so this file
//! holds this one test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ripple::load::{LoadArgs, LoadError, Report, run_command};
use ripple::runtime::issuer::CUSTOMER_SCOPES;
use ripple_e2e::{ALL_FUNCTIONS, TestStack, repo_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployed_stacks_api_takes_the_load_and_every_order_is_read_back_terminal() {
    let stack = TestStack::deploy("load-deployed").await;
    let runtime = stack.serve(ALL_FUNCTIONS).await;
    let api = runtime.http_url().expect("the API is served");
    let token = runtime
        .issuer()
        .expect("a local issuer")
        .token("c-load", &CUSTOMER_SCOPES)
        .unwrap();
    let args = |token: Option<String>| LoadArgs {
        orders: 12,
        rate: 6.0,
        json: true,
        template: repo_root().join("template.yaml"),
        stack: Some(stack.deployment.stack_name.clone()),
        api: Some(api.clone()),
        token,
        seed: true,
        yes: true,
        keep: false,
        timeout: 180,
    };

    let refused = run_command(&args(None)).await;
    let stock_untouched = stack.inventory().stock("SKU-TEE").await.unwrap();
    let loaded = run_command(&args(Some(token))).await;
    runtime.stop().await;
    stack.teardown().await;

    assert!(matches!(refused, Err(LoadError::NoToken)), "{refused:?}");
    assert_eq!(stock_untouched.1, 0, "nothing was seeded without a token");
    let (report, _) = loaded.unwrap();
    let json: serde_json::Value = serde_json::from_str(&report.render_json()).unwrap();
    assert_eq!(json["orders_placed"], 12, "{json}");
    assert!(report.render().contains("deployed stack"));
    let Report::Deployed(report) = report else {
        panic!("a stack served at --api is loaded as a deployed one");
    };
    for invariant in &report.invariants {
        assert!(invariant.holds, "{}: {}", invariant.name, invariant.detail);
    }
    assert_eq!(report.orders_sent, 12);
    assert_eq!(report.outcomes.pending, 0);
    assert_eq!(report.latency.placed_to_terminal.count, 12);
    assert!(
        report.stock.iter().any(|s| s.confirmed_units > 0),
        "some orders took stock: {:?}",
        report.stock
    );
    assert!(
        report.stock.iter().all(|s| s.available_before > 0),
        "seeded before the first order: {:?}",
        report.stock
    );
}
