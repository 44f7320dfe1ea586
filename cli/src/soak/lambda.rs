//! The fault plan at the Lambda boundary: each function as the runner invokes it, wrapped so that
//! what Lambda, SNS and SQS do to deliveries on AWS happens here too.
//!
//! - crash: the handler runs to the end (its effects are committed), then the invocation fails
//!   as if the execution environment died before answering: the SQS mapping deletes nothing
//!   (every message comes back after its visibility timeout), the stream mapping retries the
//!   batch, the HTTP client gets a 502;
//! - duplicate: a copy of a message is sent to its queue again, to arrive within the delay
//!   bound, as SNS and SQS do when they deliver twice;
//! - delay: a message is not handed to the handler; a copy arrives later instead (the original
//!   counts as handled, so its receive count does not grow), overtaken by later messages;
//! - shuffle: a batch is handed over in another order.
//!
//! Duplicates and delays strike a message on its first receive only: they are what SNS and SQS do
//! to a delivery, not to each redelivery. Rolled on every receive, a message that fails all its
//! `maxReceiveCount` receives (a poison message, 20 of them) would spawn more than one copy on
//! average, each of them a message with 20 receives of its own: the copies would never end.
//!
//! Copies go through the harness's own SQS client, never through the fault plan.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use futures::FutureExt as _;
use lambda_runtime::Context;
use serde_json::{Value, json};

use super::plan::{FaultKind, Plan};
use crate::runtime::Invoke;

/// What the Lambda-boundary faults need: the plan, and the queues to send copies to.
#[derive(Debug)]
pub struct LambdaFaults {
    plan: Arc<Plan>,
    sqs: aws_sdk_sqs::Client,
    /// Queue URL by ARN.
    queues: HashMap<String, String>,
    max_delay: Duration,
}

impl LambdaFaults {
    /// Faults of `plan`; copies are sent with `sqs` to the queues (`(ARN, URL)`), delayed by up
    /// to `max_delay` (SQS allows 15 minutes).
    pub fn new(
        plan: Arc<Plan>,
        sqs: aws_sdk_sqs::Client,
        queues: impl IntoIterator<Item = (String, String)>,
        max_delay: Duration,
    ) -> Self {
        LambdaFaults {
            plan,
            sqs,
            queues: queues.into_iter().collect(),
            max_delay: max_delay.min(Duration::from_secs(900)),
        }
    }
}

/// `invoke` (the function `name`) with the plan's Lambda-boundary faults.
pub fn wrap(name: &str, invoke: Invoke, faults: Arc<LambdaFaults>) -> Invoke {
    let name: Arc<str> = Arc::from(name);
    Arc::new(move |payload: Value, context: Context| {
        let (name, invoke, faults) = (name.clone(), invoke.clone(), faults.clone());
        async move {
            let payload = if is_sqs_event(&payload) {
                match faults.before_sqs(&name, payload).await {
                    Handover::Invoke(payload) => payload,
                    Handover::Nothing => return Ok(json!({"batchItemFailures": []})),
                }
            } else {
                payload
            };
            let answer = invoke(payload, context).await?;
            if faults.plan.strikes(FaultKind::Crash, &name) {
                return Err(format!(
                    "{name}: the execution environment died after its effects were committed (fault plan)"
                )
                .into());
            }
            Ok(answer)
        }
        .boxed()
    })
}

fn is_sqs_event(payload: &Value) -> bool {
    payload["Records"]
        .get(0)
        .is_some_and(|r| r["eventSource"] == "aws:sqs")
}

/// What is left to hand to the handler.
enum Handover {
    Invoke(Value),
    /// Every record was held back.
    Nothing,
}

impl LambdaFaults {
    /// Duplicates, holds back and shuffles the records of an SQS event.
    async fn before_sqs(&self, function: &str, mut payload: Value) -> Handover {
        let Some(records) = payload["Records"].as_array_mut() else {
            return Handover::Invoke(payload);
        };
        let mut kept = Vec::with_capacity(records.len());
        for record in records.drain(..) {
            if !first_receive(&record) {
                kept.push(record);
                continue;
            }
            let key = format!("{function}:{}", event_key(&record));
            if self.plan.strikes(FaultKind::Duplicate, &key) {
                let delay = self
                    .plan
                    .roll(FaultKind::Duplicate, &key)
                    .within(self.max_delay);
                self.send_copy(&record, delay).await;
            }
            // A message is held back only if its late copy is on its way.
            let delayed = self.plan.roll(FaultKind::Delay, &key);
            if delayed.hits(self.plan.rates().delay) {
                let delay = delayed
                    .then()
                    .within(self.max_delay)
                    .max(Duration::from_secs(1));
                if self.send_copy(&record, delay).await {
                    self.plan.count(FaultKind::Delay);
                    continue;
                }
            }
            kept.push(record);
        }
        if kept.is_empty() {
            return Handover::Nothing;
        }
        if kept.len() > 1 && self.plan.strikes(FaultKind::Shuffle, function) {
            let mut roll = self.plan.roll(FaultKind::Shuffle, function);
            for i in (1..kept.len()).rev() {
                roll = roll.then();
                kept.swap(i, roll.below(i + 1));
            }
        }
        *records = kept;
        Handover::Invoke(payload)
    }

    /// Sends a copy of `record` to its queue, to become visible after `delay`; false if it could
    /// not be sent.
    async fn send_copy(&self, record: &Value, delay: Duration) -> bool {
        let arn = record["eventSourceARN"].as_str().unwrap_or_default();
        let (Some(url), Some(body)) = (self.queues.get(arn), record["body"].as_str()) else {
            return false;
        };
        if arn.ends_with(".fifo") {
            // FIFO queues deduplicate and take no per-message delay.
            return false;
        }
        let mut send = self
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(body)
            .delay_seconds(i32::try_from(delay.as_secs()).unwrap_or(900).min(900));
        if let Some(attributes) = record["messageAttributes"].as_object() {
            for (name, attribute) in attributes {
                let (Some(data_type), Some(value)) = (
                    attribute["dataType"].as_str(),
                    attribute["stringValue"].as_str(),
                ) else {
                    continue;
                };
                if let Ok(value) = MessageAttributeValue::builder()
                    .data_type(data_type)
                    .string_value(value)
                    .build()
                {
                    send = send.message_attributes(name, value);
                }
            }
        }
        match send.send().await {
            Ok(_) => true,
            Err(err) => {
                tracing::warn!(queue = %url, error = %ripple_kit::telemetry::error_chain(&err), "could not send a duplicate or delayed copy");
                false
            }
        }
    }
}

/// Whether SQS delivers `record` for the first time (`ApproximateReceiveCount` 1 or absent).
fn first_receive(record: &Value) -> bool {
    record["attributes"]["ApproximateReceiveCount"]
        .as_str()
        .is_none_or(|count| count == "1")
}

/// What a record carries, for keying its rolls: the event's stream, sequence and type when the
/// body is an envelope (stable across redeliveries and copies), else its message id.
fn event_key(record: &Value) -> String {
    let body: Option<Value> = record["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok());
    match body {
        Some(body) if body["subject"].is_string() => format!(
            "{}#{}#{}#{}",
            body["aggregatetype"].as_str().unwrap_or_default(),
            body["subject"].as_str().unwrap_or_default(),
            body["sequence"],
            body["type"].as_str().unwrap_or_default(),
        ),
        _ => record["messageId"].as_str().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::plan::Rates;

    fn record(id: &str, body: &str) -> Value {
        json!({"messageId": id, "body": body, "eventSource": "aws:sqs", "eventSourceARN": "arn:q"})
    }

    fn quiet() -> Rates {
        Rates {
            crash: 0.0,
            duplicate: 0.0,
            delay: 0.0,
            shuffle: 0.0,
            ..Rates::default()
        }
    }

    fn faults(rates: Rates) -> Arc<LambdaFaults> {
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::Config::builder()
                .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                .build(),
        );
        Arc::new(LambdaFaults::new(
            Arc::new(Plan::new(5, rates, None)),
            sqs,
            [],
            Duration::from_secs(3),
        ))
    }

    fn echo() -> Invoke {
        Arc::new(|payload: Value, _| async move { Ok(payload) }.boxed())
    }

    #[tokio::test]
    async fn a_crash_fails_the_invocation_after_the_handler_ran() {
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = ran.clone();
        let handler: Invoke = Arc::new(move |_, _| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Ok(json!({})) }.boxed()
        });
        let always = Rates {
            crash: 1.0,
            ..quiet()
        };
        let crashing = faults(always);
        let invoke = wrap("payments", handler, crashing.clone());
        let err = invoke(json!({"Records": []}), Context::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("after its effects were committed"));
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(crashing.plan.injected()[&FaultKind::Crash], 1);
    }

    #[tokio::test]
    async fn a_shuffled_batch_holds_the_same_records() {
        let shuffling = faults(Rates {
            shuffle: 1.0,
            ..quiet()
        });
        let records: Vec<Value> = (0..10).map(|i| record(&format!("m-{i}"), "{}")).collect();
        let invoke = wrap("inventory", echo(), shuffling.clone());
        let out = invoke(json!({"Records": records.clone()}), Context::default())
            .await
            .unwrap();
        let mut got = out["Records"].as_array().unwrap().clone();
        assert_ne!(got, records, "the order changed");
        got.sort_by_key(|r| {
            r["messageId"]
                .as_str()
                .unwrap()
                .trim_start_matches("m-")
                .parse::<u32>()
                .unwrap()
        });
        assert_eq!(got, records);
        assert_eq!(shuffling.plan.injected()[&FaultKind::Shuffle], 1);
    }

    #[tokio::test]
    async fn a_record_is_held_back_only_when_its_late_copy_was_sent() {
        // The queue is unknown, so no copy can be sent: nothing is held back or counted.
        let delaying = faults(Rates {
            delay: 1.0,
            duplicate: 1.0,
            ..quiet()
        });
        let invoke = wrap("inventory", echo(), delaying.clone());
        let out = invoke(
            json!({"Records": [record("m-1", "{}")]}),
            Context::default(),
        )
        .await
        .unwrap();
        assert_eq!(out["Records"].as_array().unwrap().len(), 1);
        assert_eq!(delaying.plan.injected()[&FaultKind::Delay], 0);
    }

    #[tokio::test]
    async fn a_redelivered_record_is_neither_duplicated_nor_delayed() {
        let copying = faults(Rates {
            delay: 1.0,
            duplicate: 1.0,
            ..quiet()
        });
        let invoke = wrap("inventory", echo(), copying.clone());
        let mut again = record("m-1", "{}");
        again["attributes"] = json!({"ApproximateReceiveCount": "2"});
        let out = invoke(json!({"Records": [again]}), Context::default())
            .await
            .unwrap();
        assert_eq!(out["Records"].as_array().unwrap().len(), 1);
        assert_eq!(copying.plan.injected()[&FaultKind::Duplicate], 0);
        let mut first = record("m-2", "{}");
        first["attributes"] = json!({"ApproximateReceiveCount": "1"});
        invoke(json!({"Records": [first]}), Context::default())
            .await
            .unwrap();
        assert_eq!(copying.plan.injected()[&FaultKind::Duplicate], 1);
    }

    #[test]
    fn records_are_keyed_by_their_event_not_their_delivery() {
        let body =
            r#"{"aggregatetype":"Order","subject":"o-1","sequence":2,"type":"order.confirmed"}"#;
        assert_eq!(
            event_key(&record("m-1", body)),
            event_key(&record("m-2", body)),
            "a copy rolls like its original"
        );
        assert_eq!(event_key(&record("m-3", "{not json")), "m-3");
    }
}
