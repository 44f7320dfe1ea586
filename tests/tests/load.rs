//! `ripple load`: a small paced load through the whole system in the local runner keeps every
//! invariant `ripple dev` checks, and the kit's request counter saw what the store and the
//! runner say happened: every order wrote to DynamoDB, SNS took each published event once,
//! the queues delivered what the consumers handled, and the cost adds up from its lines.
//!
//! The counter is the process's own, so this binary holds this one test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ripple::load::{LoadArgs, run};
use ripple_e2e::repo_root;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_load_keeps_its_invariants_and_its_requests_add_up() {
    let args = LoadArgs {
        orders: 10,
        rate: 5.0,
        json: true,
        template: repo_root().join("template.yaml"),
        stack: None,
        api: None,
        token: None,
        seed: false,
        yes: false,
        keep: false,
        timeout: 180,
    };
    let (report, not_quiet) = run(&args).await.unwrap();
    assert!(not_quiet.is_none(), "the pipeline went quiet");
    for invariant in &report.invariants {
        assert!(invariant.holds, "{}: {}", invariant.name, invariant.detail);
    }

    let summary = &report.summary;
    let usage = &summary.usage;
    assert_eq!(summary.orders_placed, 10);
    let requests = &usage.requests;
    let writes = requests
        .operation("DynamoDB", "TransactWriteItems")
        .requests
        + requests.operation("DynamoDB", "PutItem").requests;
    assert!(writes >= 10, "every order wrote: {writes} writes");
    let dynamodb = requests.service("DynamoDB");
    assert!(
        dynamodb.write_units >= 10.0,
        "as DynamoDB reported it: {dynamodb:?}"
    );
    assert!(dynamodb.read_units > 0.0, "{dynamodb:?}");
    assert!(dynamodb.request_bytes > 0 && dynamodb.response_bytes > 0);
    assert_eq!(
        requests.operation("SNS", "PublishBatch").messages,
        summary.events_published,
        "SNS took every event the outbox published, once"
    );
    assert!(summary.events_published >= summary.events_stored);
    assert!(
        usage.sqs_deliveries() >= summary.messages_consumed,
        "the pollers received every message a consumer handled"
    );
    assert_eq!(
        usage.invocations(),
        summary
            .functions
            .values()
            .map(|f| f.stats.invocations)
            .sum::<u64>()
    );
    assert!(usage.gb_seconds() > 0.0);
    assert_eq!(usage.http_requests, 10, "one POST per order");

    let cost = &summary.cost;
    assert_eq!(cost.orders, 10);
    let sum: f64 = cost.lines.iter().map(|l| l.usd_per_million_orders).sum();
    assert!(cost.usd_per_million_orders > 0.0);
    assert!((cost.usd_per_million_orders - sum).abs() < 1e-9);
    let json: serde_json::Value =
        serde_json::from_str(&ripple::load::render_json(&report)).unwrap();
    assert!(json["summary"]["cost"]["usd_per_million_orders"].is_number());
    assert!(ripple::load::render(&report).contains("total per million orders"));
}
