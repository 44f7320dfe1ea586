//! `ripple dev` (what `make dev` runs) sends its sample orders through the whole system and ends
//! with every order decided, stock conserved and nothing dead-lettered, in the ordering mode of
//! the environment: `make test` runs this with the template defaults and again with
//! `RIPPLE_PARAMETER_OVERRIDES=Ordering=fifo`, where every consumer queue is FIFO.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use ripple::dev::{DevArgs, Summary, run};
use ripple::template::{Template, target_of};
use ripple_e2e::repo_root;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ripple_dev_takes_its_sample_orders_to_an_outcome_in_the_ordering_mode_of_the_environment()
{
    let args = DevArgs {
        orders: Some(12),
        json: true,
        template: repo_root().join("template.yaml"),
        stack: None,
        keep: false,
        port: 0,
        issuer_port: 0,
        serve: false,
        timeout: 180,
    };
    let (summary, not_quiet) = run(&args).await.unwrap();
    assert!(not_quiet.is_none(), "the pipeline went quiet");
    assert_eq!(summary.orders_placed, 12);
    let outcomes = &summary.outcomes;
    assert_eq!(outcomes.pending, 0, "{outcomes:?}");
    assert_eq!(
        outcomes.confirmed
            + outcomes.cancelled_out_of_stock
            + outcomes.cancelled_payment_declined
            + outcomes.cancelled_customer_request
            + outcomes.cancelled_timed_out,
        12
    );
    assert!(summary.stock_conserved);
    assert_eq!((summary.dlq_messages, summary.invocation_errors), (0, 0));
    assert_eq!(summary.events_published, summary.events_stored);
    let fifo =
        std::env::var("RIPPLE_PARAMETER_OVERRIDES").is_ok_and(|o| o.contains("Ordering=fifo"));
    let consumed: Vec<&String> = summary
        .queues
        .iter()
        .filter(|(_, q)| q.role == "consumed")
        .map(|(name, _)| name)
        .collect();
    assert_eq!(consumed.len(), 5, "{consumed:?}");
    assert!(
        consumed.iter().all(|name| name.ends_with(".fifo") == fifo),
        "fifo {fifo}: {consumed:?}"
    );
    every_call_is_one_its_role_allows(&summary);
}

/// Every AWS operation each function made in the run is an action its role allows. The local
/// emulators enforce no IAM, so a call its role lacks would fail only once deployed.
fn every_call_is_one_its_role_allows(summary: &Summary) {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let template = Template::parse(&text).unwrap();
    assert!(
        summary.usage.by_function.len() >= 6,
        "{:?}",
        summary.usage.by_function.keys()
    );
    for (function, counts) in &summary.usage.by_function {
        let declared = template.resource(function).unwrap();
        let (role, _) = target_of(&declared.properties()["Role"]).unwrap();
        let allowed: BTreeSet<&str> = template.resource(&role).unwrap().properties()["Policies"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|p| p["PolicyDocument"]["Statement"].as_sequence().unwrap())
            .filter(|s| s["Effect"].as_str() == Some("Allow"))
            .flat_map(|s| match s["Action"].as_str() {
                Some(one) => vec![one],
                None => s["Action"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .filter_map(|a| a.as_str())
                    .collect(),
            })
            .collect();
        for (service, operations) in &counts.services {
            for operation in operations.keys() {
                // A transaction's puts are authorised as PutItem; a batch publish as Publish.
                let action = match (service.as_str(), operation.as_str()) {
                    ("DynamoDB", "TransactWriteItems") => "dynamodb:PutItem".to_owned(),
                    ("SNS", "PublishBatch") => "sns:Publish".to_owned(),
                    (service, operation) => format!("{}:{operation}", service.to_lowercase()),
                };
                assert!(
                    allowed.contains(action.as_str()),
                    "{function} calls {service} {operation}; its role {role} does not allow {action}"
                );
            }
        }
    }
}
