//! Stream records as Lambda hands them over, and Lambda's reading of a batch response: which
//! record to retry from.

use std::cmp::Ordering as CmpOrdering;
use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::{EventRecord, StreamViewType, UserIdentity};
use aws_sdk_dynamodbstreams::types::Record;
use serde_json::Value;

use crate::runtime::InvokeError;

/// Orders DynamoDB sequence numbers (decimal strings of varying length).
pub fn compare_sequence_numbers(a: &str, b: &str) -> CmpOrdering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

pub(super) fn is_after(record: &EventRecord, seq: Option<&str>) -> bool {
    match (record.change.sequence_number.as_deref(), seq) {
        (_, None) => true,
        (Some(own), Some(seq)) => compare_sequence_numbers(own, seq) == CmpOrdering::Greater,
        (None, Some(_)) => false,
    }
}

/// Reads a stream batch response the way Lambda does: `None` if the batch succeeded, else the
/// index of the record to retry from. With `ReportBatchItemFailures` the lowest reported
/// sequence number is the checkpoint; an invalid item identifier retries the whole batch.
pub fn stream_outcome(
    sequence_numbers: &[&str],
    response: Result<&Value, &InvokeError>,
    report_batch_item_failures: bool,
) -> Option<usize> {
    let response = match response {
        Err(_) => return Some(0),
        Ok(_) if !report_batch_item_failures => return None,
        Ok(response) => response,
    };
    let failures = match response {
        Value::Null => return None,
        Value::Object(fields) => match fields.get("batchItemFailures") {
            None | Some(Value::Null) => return None,
            Some(Value::Array(failures)) => failures,
            Some(_) => return Some(0),
        },
        _ => return Some(0),
    };
    let mut lowest: Option<usize> = None;
    for failure in failures {
        let position = failure
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .and_then(|id| sequence_numbers.iter().position(|s| *s == id));
        match position {
            Some(index) => lowest = Some(lowest.map_or(index, |l| l.min(index))),
            None => return Some(0),
        }
    }
    lowest
}

/// A stream record as Lambda's DynamoDB event carries it.
pub fn event_record(record: &Record, stream_arn: &str, region: &str) -> EventRecord {
    let mut out = EventRecord::default();
    out.event_id = record.event_id().unwrap_or_default().to_owned();
    out.event_name = record
        .event_name()
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    out.event_version = Some(record.event_version().unwrap_or("1.1").to_owned());
    out.event_source = Some("aws:dynamodb".to_owned());
    // DynamoDB Local reports "ddblocal"; Lambda reports the table's region.
    out.aws_region = region.to_owned();
    out.event_source_arn = Some(stream_arn.to_owned());
    if let Some(identity) = record.user_identity() {
        let mut user = UserIdentity::default();
        user.type_ = identity.r#type().unwrap_or_default().to_owned();
        user.principal_id = identity.principal_id().unwrap_or_default().to_owned();
        out.user_identity = Some(user);
    }
    if let Some(change) = record.dynamodb() {
        let item = |image: Option<
            &HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
        >| { serde_dynamo::Item::from(image.cloned().unwrap_or_default()) };
        if let Some(time) = change.approximate_creation_date_time()
            && let Some(time) = chrono::DateTime::from_timestamp(time.secs(), time.subsec_nanos())
        {
            out.change.approximate_creation_date_time = time;
        }
        out.change.keys = item(change.keys());
        out.change.new_image = item(change.new_image());
        out.change.old_image = item(change.old_image());
        out.change.sequence_number = change.sequence_number().map(str::to_owned);
        out.change.size_bytes = change.size_bytes().unwrap_or_default();
        out.change.stream_view_type = change.stream_view_type().and_then(|v| {
            serde_json::from_value::<StreamViewType>(Value::String(v.as_str().to_owned())).ok()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::event::dynamodb::Event;
    use serde_json::json;

    use super::*;
    use crate::runtime::filter;
    use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, StreamRecord};
    use aws_smithy_types::DateTime;

    fn record(seq: &str, kind: &str) -> Record {
        Record::builder()
            .event_id(format!("id-{seq}"))
            .event_name(OperationType::Insert)
            .event_version("1.1")
            .event_source("aws:dynamodb")
            .aws_region("ddblocal")
            .dynamodb(
                StreamRecord::builder()
                    .approximate_creation_date_time(DateTime::from_secs(1_700_000_000))
                    .keys("pk", AttributeValue::S("Order#1".into()))
                    .keys("sk", AttributeValue::N("1".into()))
                    .new_image("pk", AttributeValue::S("Order#1".into()))
                    .new_image("sk", AttributeValue::N("1".into()))
                    .new_image("kind", AttributeValue::S(kind.into()))
                    .new_image("envelope", AttributeValue::S("{}".into()))
                    .sequence_number(seq)
                    .size_bytes(42)
                    .stream_view_type(aws_sdk_dynamodbstreams::types::StreamViewType::NewImage)
                    .build(),
            )
            .build()
    }

    #[test]
    fn records_have_lambdas_shape_and_round_trip_through_the_event_type() {
        let arn = "arn:aws:dynamodb:ddblocal:000000000000:table/t-events/stream/2026";
        let converted = event_record(&record("000100", "event"), arn, "us-east-1");
        let mut event = Event::default();
        event.records = vec![converted];
        let json = serde_json::to_value(&event).unwrap();
        let r = &json["Records"][0];
        assert_eq!(r["eventID"], "id-000100");
        assert_eq!(r["eventName"], "INSERT");
        assert_eq!(r["eventVersion"], "1.1");
        assert_eq!(r["eventSource"], "aws:dynamodb");
        assert_eq!(r["awsRegion"], "us-east-1");
        assert_eq!(r["eventSourceARN"], arn);
        assert_eq!(
            r["dynamodb"]["ApproximateCreationDateTime"],
            1_700_000_000.0
        );
        assert_eq!(r["dynamodb"]["Keys"]["pk"], json!({"S": "Order#1"}));
        assert_eq!(r["dynamodb"]["NewImage"]["sk"], json!({"N": "1"}));
        assert_eq!(r["dynamodb"]["SequenceNumber"], "000100");
        assert_eq!(r["dynamodb"]["SizeBytes"], 42);
        assert_eq!(r["dynamodb"]["StreamViewType"], "NEW_IMAGE");
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn the_outbox_filter_sees_the_record_as_lambda_does() {
        let pattern: Value = serde_json::from_str(
            r#"{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"kind": {"S": ["event"]}}}}"#,
        )
        .unwrap();
        let as_json =
            |kind| serde_json::to_value(event_record(&record("1", kind), "arn", "r")).unwrap();
        assert!(filter::passes(
            std::slice::from_ref(&pattern),
            &as_json("event")
        ));
        assert!(!filter::passes(&[pattern], &as_json("dedupe")));
    }

    #[test]
    fn stream_outcomes_checkpoint_at_the_lowest_failure() {
        let seqs = ["100", "200", "300"];
        let ok = |v: Value| stream_outcome(&seqs, Ok(&v), true);
        assert_eq!(ok(Value::Null), None);
        assert_eq!(ok(json!({"batchItemFailures": []})), None);
        assert_eq!(
            ok(json!({"batchItemFailures": [{"itemIdentifier": "200"}]})),
            Some(1)
        );
        assert_eq!(
            ok(
                json!({"batchItemFailures": [{"itemIdentifier": "300"}, {"itemIdentifier": "200"}]})
            ),
            Some(1)
        );
        assert_eq!(
            ok(json!({"batchItemFailures": [{"itemIdentifier": "999"}]})),
            Some(0)
        );
        assert_eq!(
            ok(json!({"batchItemFailures": [{"itemIdentifier": ""}]})),
            Some(0)
        );
        assert_eq!(ok(json!(42)), Some(0));
        let err = InvokeError::Panicked {
            function: "f".into(),
            message: "boom".into(),
        };
        assert_eq!(stream_outcome(&seqs, Err(&err), true), Some(0));
        let v = json!({"batchItemFailures": [{"itemIdentifier": "200"}]});
        assert_eq!(stream_outcome(&seqs, Ok(&v), false), None);
    }

    #[test]
    fn sequence_numbers_compare_numerically() {
        assert_eq!(compare_sequence_numbers("99", "100"), CmpOrdering::Less);
        assert_eq!(compare_sequence_numbers("200", "100"), CmpOrdering::Greater);
        assert_eq!(compare_sequence_numbers("100", "100"), CmpOrdering::Equal);
    }
}
