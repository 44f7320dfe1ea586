//! Every event the pipeline stores meets its committed contract (shared/domain/schemas): the
//! three paths an order can take run end to end, and every event item of the stack's store is
//! read back as written and checked against the schema of its type and version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;

use aws_sdk_dynamodb::types::AttributeValue;
use domain::contracts::{self, SCHEMA_DIR};
use domain::payment::PaymentEvent;
use ripple_e2e::{RunningStack, TestStack};
use ripple_kit::envelope::event_type_of;
use serde_json::Value;

/// Stock for the three paths an order can take: confirmed, out of stock, declined.
const THREE_PATHS: &[(&str, u64)] = &[("HAPPY", 5), ("SCARCE", 1), ("DECLINE", 3)];

/// The envelope text of every event item in the stack's store, as the producers wrote it.
async fn stored_envelopes(stack: &TestStack) -> Vec<String> {
    let mut envelopes = Vec::new();
    let mut start = None;
    loop {
        let page = stack
            .clients
            .dynamodb
            .scan()
            .table_name(stack.table("EventsTable"))
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("the store scans");
        for item in page.items() {
            let is_event = item.get("kind") == Some(&AttributeValue::S("event".into()));
            if let (true, Some(AttributeValue::S(text))) = (is_event, item.get("envelope")) {
                envelopes.push(text.clone());
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return envelopes;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_the_saga_stores_meets_its_contract() {
    let committed = contracts::committed(Path::new(SCHEMA_DIR)).expect("the contracts read");
    let saga = RunningStack::start("contracts", THREE_PATHS).await;
    let (stack, api) = (&saga.stack, saga.api());
    api.place("c-happy", &[("HAPPY", 2)]).await;
    api.place("c-scarce", &[("SCARCE", 2)]).await;
    api.place("declined-c-1", &[("DECLINE", 2)]).await;
    saga.settle().await;

    let mut seen = BTreeSet::new();
    let mut versions = BTreeSet::new();
    let mut violations = Vec::new();
    for text in stored_envelopes(stack).await {
        let envelope: Value = serde_json::from_str(&text).expect("a stored envelope is JSON");
        seen.insert(envelope["type"].as_str().unwrap_or_default().to_owned());
        versions.insert((
            envelope["type"].as_str().unwrap_or_default().to_owned(),
            envelope["schemaversion"].as_u64().unwrap_or_default(),
        ));
        if let Err(violation) = contracts::check(&committed, &envelope) {
            violations.push(format!("{violation}\n  in {text}"));
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    // Each type is written at the version its contract is generated at (order.placed at 2).
    let written: BTreeSet<(String, u64)> = contracts::generated()
        .into_iter()
        .map(|c| (c.event_type, u64::from(c.schemaversion)))
        .collect();
    let stale: Vec<_> = versions.difference(&written).collect();
    assert!(stale.is_empty(), "written at an old version: {stale:?}");
    assert!(versions.contains(&(domain::order::PLACED.to_owned(), 2)));
    // Every type with a contract but a refund, which needs an order cancelled after its capture.
    let refunded = PaymentEvent::Refunded {
        order_id: String::new(),
        amount_cents: 0,
        payment_id: String::new(),
    };
    let refunded = event_type_of(&refunded).unwrap();
    let generated = contracts::generated();
    let expected = generated
        .iter()
        .map(|c| c.event_type.as_str())
        .filter(|t| *t != refunded);
    let missing: Vec<&str> = expected.filter(|t| !seen.contains(*t)).collect();
    assert!(missing.is_empty(), "no {missing:?} stored; saw {seen:?}");
    saga.finish().await;
}
