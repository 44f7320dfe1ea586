//! The SQS event source mapping: long-poll a queue, invoke with a Lambda `SqsEvent`, delete what
//! succeeded.
//!
//! As in Lambda, a failed invocation deletes nothing, and with `ReportBatchItemFailures` only the
//! messages named in `batchItemFailures` stay behind: they come back when their visibility timeout
//! runs out, and the queue's redrive policy moves them to the dead-letter queue after
//! `maxReceiveCount` receives. A response naming a message that is not in the batch fails the
//! whole batch, as Lambda does.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{InvokeError, LocalFunction, add, filter};

/// SQS's largest ReceiveMessage and DeleteMessageBatch.
const SQS_MAX_BATCH: usize = 10;
/// Long-poll wait: short, so that a stop is noticed quickly.
const WAIT_SECONDS: i32 = 1;
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// One SQS event source mapping.
pub struct SqsMapping {
    /// SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// The function invoked.
    pub function: Arc<LocalFunction>,
    /// The queue's URL.
    pub queue_url: String,
    /// The queue's ARN (the records' `eventSourceARN`).
    pub queue_arn: String,
    /// The region (the records' `awsRegion`).
    pub region: String,
    /// Messages per invocation, at most 10 (one ReceiveMessage).
    pub batch_size: u32,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_batch_item_failures: bool,
    /// `FilterCriteria` patterns.
    pub filters: Vec<Value>,
}

impl SqsMapping {
    /// Polls until `stop` is cancelled; a batch being handled is finished first.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let max = self.batch_size.clamp(1, SQS_MAX_BATCH as u32) as i32;
        loop {
            let receive = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(max)
                .wait_time_seconds(WAIT_SECONDS)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send();
            let received = tokio::select! {
                biased;
                () = stop.cancelled() => return,
                received = receive => received,
            };
            match received {
                Ok(output) => {
                    let messages = output.messages.unwrap_or_default();
                    if !messages.is_empty() {
                        self.handle(&messages).await;
                    }
                }
                Err(err) => {
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_queue_does_not_exist())
                    {
                        tracing::warn!(queue = %self.queue_url, "queue is gone; polling stops");
                        return;
                    }
                    tracing::warn!(queue = %self.queue_url, error = %ripple_kit::telemetry::error_chain(&err), "ReceiveMessage failed");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(ERROR_PAUSE) => {}
                    }
                }
            }
        }
    }

    async fn handle(&self, messages: &[Message]) {
        let stats = self.function.stats();
        add(&stats.sqs_received, messages.len());
        let records = sqs_records(messages, &self.queue_arn, &self.region);
        let (records, filtered): (Vec<_>, Vec<_>) = records
            .into_iter()
            .partition(|r| filter::passes(&self.filters, &filter_view(r)));
        if !filtered.is_empty() {
            // Lambda deletes messages its filter criteria drop.
            add(&stats.sqs_filtered, filtered.len());
            self.delete(&filtered).await;
        }
        if records.is_empty() {
            return;
        }
        let ids: Vec<String> = records
            .iter()
            .map(|r| r.message_id.clone().unwrap_or_default())
            .collect();
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut event = SqsEvent::default();
        event.records = records.clone();
        let payload = match serde_json::to_value(&event) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(error = %err, "cannot serialise an SQS event");
                return;
            }
        };
        let response = self.function.invoke(payload).await;
        let outcome = batch_outcome(&id_refs, response.as_ref(), self.report_batch_item_failures);
        let done: Vec<SqsMessage> = match &outcome {
            BatchOutcome::Succeeded => records,
            BatchOutcome::Partial(failed) => records
                .into_iter()
                .filter(|r| !failed.contains(r.message_id.as_deref().unwrap_or_default()))
                .collect(),
            BatchOutcome::Failed(reason) => {
                tracing::info!(function = %self.function.logical_id, messages = ids.len(), reason, "batch failed; messages stay for redelivery");
                Vec::new()
            }
        };
        add(&stats.sqs_failed, ids.len() - done.len());
        add(&stats.sqs_succeeded, done.len());
        self.delete(&done).await;
    }

    async fn delete(&self, records: &[SqsMessage]) {
        for chunk in records.chunks(SQS_MAX_BATCH) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r.receipt_handle.clone().unwrap_or_default())
                        .build()
                        .ok()
                })
                .collect();
            let result = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match result {
                Ok(output) if output.failed().is_empty() => {}
                Ok(output) => {
                    tracing::warn!(queue = %self.queue_url, failed = output.failed().len(), "some deletes failed; those messages will be redelivered");
                }
                Err(err) => {
                    tracing::warn!(queue = %self.queue_url, error = %ripple_kit::telemetry::error_chain(&err), "DeleteMessageBatch failed; messages will be redelivered");
                }
            }
        }
    }
}

/// What a batch's invocation means for its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Every message is done.
    Succeeded,
    /// These message ids failed; the rest are done.
    Partial(BTreeSet<String>),
    /// Every message stays for redelivery, for this reason.
    Failed(&'static str),
}

/// Reads a batch response the way Lambda does. With `ReportBatchItemFailures`, an empty or null
/// response or list is success; an invalid response, an empty or null `itemIdentifier`, or one
/// naming a message not in the batch fails the whole batch.
pub fn batch_outcome(
    ids: &[&str],
    response: Result<&Value, &InvokeError>,
    report_batch_item_failures: bool,
) -> BatchOutcome {
    let response = match response {
        Err(_) => return BatchOutcome::Failed("the invocation failed"),
        Ok(_) if !report_batch_item_failures => return BatchOutcome::Succeeded,
        Ok(response) => response,
    };
    let failures = match response {
        Value::Null => return BatchOutcome::Succeeded,
        Value::Object(fields) => match fields.get("batchItemFailures") {
            None | Some(Value::Null) => return BatchOutcome::Succeeded,
            Some(Value::Array(failures)) => failures,
            Some(_) => return BatchOutcome::Failed("batchItemFailures is not a list"),
        },
        _ => return BatchOutcome::Failed("the response is not a batch response"),
    };
    let mut failed = BTreeSet::new();
    for failure in failures {
        match failure.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if !id.is_empty() && ids.contains(&id) => {
                failed.insert(id.to_owned());
            }
            _ => return BatchOutcome::Failed("a batch item failure names no message of the batch"),
        }
    }
    if failed.is_empty() {
        BatchOutcome::Succeeded
    } else {
        BatchOutcome::Partial(failed)
    }
}

/// SQS messages as Lambda's `SqsEvent` records carry them.
pub fn sqs_records(messages: &[Message], queue_arn: &str, region: &str) -> Vec<SqsMessage> {
    messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id().map(str::to_owned);
            record.receipt_handle = m.receipt_handle().map(str::to_owned);
            record.body = m.body().map(str::to_owned);
            record.md5_of_body = m.md5_of_body().map(str::to_owned);
            record.md5_of_message_attributes = m.md5_of_message_attributes().map(str::to_owned);
            record.attributes = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            record.message_attributes = m
                .message_attributes()
                .map(|attributes| {
                    attributes
                        .iter()
                        .map(|(name, value)| {
                            let mut attribute = SqsMessageAttribute::default();
                            attribute.string_value = value.string_value().map(str::to_owned);
                            attribute.binary_value =
                                value.binary_value().map(|b| base64_data(b.as_ref()));
                            attribute.string_list_values = value.string_list_values().to_vec();
                            attribute.binary_list_values = value
                                .binary_list_values()
                                .iter()
                                .map(|b| base64_data(b.as_ref()))
                                .collect();
                            attribute.data_type = Some(value.data_type().to_owned());
                            (name.clone(), attribute)
                        })
                        .collect::<HashMap<_, _>>()
                })
                .unwrap_or_default();
            record.event_source = Some("aws:sqs".to_owned());
            record.event_source_arn = Some(queue_arn.to_owned());
            record.aws_region = Some(region.to_owned());
            record
        })
        .collect()
}

fn base64_data(bytes: &[u8]) -> Base64Data {
    let mut data = Base64Data::default();
    data.0 = bytes.to_vec();
    data
}

/// The record as filter criteria see it: the body parsed when it is JSON.
fn filter_view(record: &SqsMessage) -> Value {
    let mut view = serde_json::to_value(record).unwrap_or(Value::Null);
    if let Some(body) = record.body.as_deref()
        && let Ok(parsed) = serde_json::from_str::<Value>(body)
        && let Some(fields) = view.as_object_mut()
    {
        fields.insert("body".to_owned(), parsed);
    }
    view
}

/// Messages in a queue: visible, in flight (received, not yet deleted) and delayed.
pub async fn depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<u64, aws_sdk_sqs::Error> {
    let names = [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    ];
    let output = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .set_attribute_names(Some(names.to_vec()))
        .send()
        .await?;
    Ok(output
        .attributes()
        .map(|a| {
            names
                .iter()
                .filter_map(|n| a.get(n).and_then(|v| v.parse::<u64>().ok()))
                .sum()
        })
        .unwrap_or(0))
}

/// Visible messages in a queue (what a dead-letter queue holds).
pub async fn visible(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<u64, aws_sdk_sqs::Error> {
    let output = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await?;
    Ok(output
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::types::MessageAttributeValue;
    use serde_json::json;

    fn message() -> Message {
        Message::builder()
            .message_id("m-1")
            .receipt_handle("rh-1")
            .body(r#"{"type":"order.placed"}"#)
            .md5_of_body("0123")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .attributes(MessageSystemAttributeName::SentTimestamp, "1700000000000")
            .attributes(
                MessageSystemAttributeName::ApproximateFirstReceiveTimestamp,
                "1700000000001",
            )
            .message_attributes(
                "type",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("order.placed")
                    .build()
                    .unwrap(),
            )
            .message_attributes(
                "blob",
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(aws_smithy_types::Blob::new(b"hi".to_vec()))
                    .build()
                    .unwrap(),
            )
            .build()
    }

    #[test]
    fn records_have_lambdas_shape_and_round_trip_through_sqs_event() {
        let records = sqs_records(
            &[message()],
            "arn:aws:sqs:us-east-1:123456789012:q",
            "us-east-1",
        );
        let mut event = SqsEvent::default();
        event.records = records;
        let json = serde_json::to_value(&event).unwrap();
        let record = &json["Records"][0];
        assert_eq!(record["messageId"], "m-1");
        assert_eq!(record["receiptHandle"], "rh-1");
        assert_eq!(record["md5OfBody"], "0123");
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(
            record["eventSourceARN"],
            "arn:aws:sqs:us-east-1:123456789012:q"
        );
        assert_eq!(record["awsRegion"], "us-east-1");
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "2");
        assert_eq!(record["attributes"]["SentTimestamp"], "1700000000000");
        let attribute = &record["messageAttributes"]["type"];
        assert_eq!(attribute["stringValue"], "order.placed");
        assert_eq!(attribute["dataType"], "String");
        assert_eq!(attribute["stringListValues"], json!([]));
        assert_eq!(record["messageAttributes"]["blob"]["binaryValue"], "aGk=");
        let back: SqsEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn the_filter_view_parses_a_json_body() {
        let records = sqs_records(&[message()], "arn", "r");
        let view = filter_view(&records[0]);
        assert_eq!(view["body"]["type"], "order.placed");
        assert!(filter::passes(
            &[json!({"body": {"type": ["order.placed"]}})],
            &view
        ));
    }

    #[test]
    fn batch_outcomes_follow_lambdas_rules() {
        let ids = ["a", "b", "c"];
        let ok = |v: Value| batch_outcome(&ids, Ok(&v), true);
        assert_eq!(ok(Value::Null), BatchOutcome::Succeeded);
        assert_eq!(ok(json!({})), BatchOutcome::Succeeded);
        assert_eq!(
            ok(json!({"batchItemFailures": []})),
            BatchOutcome::Succeeded
        );
        assert_eq!(
            ok(json!({"batchItemFailures": null})),
            BatchOutcome::Succeeded
        );
        assert_eq!(
            ok(json!({"batchItemFailures": [{"itemIdentifier": "b"}]})),
            BatchOutcome::Partial(BTreeSet::from(["b".to_owned()]))
        );
        for whole_batch in [
            json!({"batchItemFailures": [{"itemIdentifier": "zzz"}]}),
            json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
            json!({"batchItemFailures": [{"itemIdentifier": null}]}),
            json!({"batchItemFailures": [{"id": "a"}]}),
            json!({"batchItemFailures": "a"}),
            json!("ok"),
        ] {
            assert!(
                matches!(ok(whole_batch.clone()), BatchOutcome::Failed(_)),
                "{whole_batch}"
            );
        }
        let err = InvokeError::TimedOut {
            function: "f".into(),
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(
            batch_outcome(&ids, Err(&err), true),
            BatchOutcome::Failed(_)
        ));
        assert!(matches!(
            batch_outcome(&ids, Err(&err), false),
            BatchOutcome::Failed(_)
        ));
        // Without ReportBatchItemFailures the response is not read at all.
        let v = json!({"batchItemFailures": [{"itemIdentifier": "b"}]});
        assert_eq!(batch_outcome(&ids, Ok(&v), false), BatchOutcome::Succeeded);
    }
}
