//! `DynamoEventStore`: which call an append makes and how DynamoDB's refusals become domain errors.

use std::collections::HashMap;

use super::DynamoEventStore;
use crate::store::item::event_item;
use crate::store::{Append, DedupeMarker, EventStore, StoreError, Unchanged};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::types::error::{
    ConditionalCheckFailedException, ResourceNotFoundException, TransactionCanceledException,
};
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};
use aws_smithy_mocks::{RuleMode, mock, mock_client};

use crate::fixtures::event;

fn cancelled(codes: &[&str]) -> TransactWriteItemsError {
    let mut exception = TransactionCanceledException::builder().message("Transaction cancelled");
    for code in codes {
        exception =
            exception.cancellation_reasons(CancellationReason::builder().code(*code).build());
    }
    TransactWriteItemsError::TransactionCanceledException(exception.build())
}

#[tokio::test]
async fn a_single_event_is_one_conditional_put() {
    let put = mock!(Client::put_item)
        .match_requests(|req| {
            req.table_name() == Some("events")
                && req.condition_expression() == Some("attribute_not_exists(pk)")
                && req.item().and_then(|i| i.get("pk"))
                    == Some(&AttributeValue::S("Thing#a".into()))
                && req.item().and_then(|i| i.get("sk")) == Some(&AttributeValue::N("1".into()))
        })
        .then_output(|| PutItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, [&put]);
    let store = DynamoEventStore::new(client, "events");

    store
        .append(Append::events(vec![event("a", 1)]))
        .await
        .unwrap();
    assert_eq!(put.num_calls(), 1);
}

#[tokio::test]
async fn a_taken_position_on_the_single_put_is_a_conflict() {
    let put = mock!(Client::put_item).then_error(|| {
        PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .message("The conditional request failed")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, [&put]);
    let store = DynamoEventStore::new(client, "events");

    let err = store
        .append(Append::events(vec![event("a", 1)]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { ref stream } if stream == "Thing#a"),
        "{err:?}"
    );
}

/// A conditional put refused by `stored`, the item in the way returned with the refusal.
fn in_the_way(stored: &crate::Envelope) -> impl Fn() -> PutItemError + Send + Sync + use<> {
    let item = event_item(stored);
    move || {
        PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .message("The conditional request failed")
                .set_item(Some(item.clone()))
                .build(),
        )
    }
}

#[tokio::test]
async fn a_retried_put_that_finds_its_own_event_succeeded() {
    let ours = event("a", 1);
    let theirs = event("a", 1);
    let put = mock!(Client::put_item)
        .match_requests(|req| {
            req.return_values_on_condition_check_failure()
                == Some(&aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld)
        })
        .then_error(in_the_way(&ours));
    let client = mock_client!(aws_sdk_dynamodb, [&put]);
    let store = DynamoEventStore::new(client, "events");
    // The first attempt committed and its answer was lost: the event in the way is ours.
    store
        .append(Append::events(vec![ours.clone()]))
        .await
        .unwrap();

    let put = mock!(Client::put_item).then_error(in_the_way(&theirs));
    let client = mock_client!(aws_sdk_dynamodb, [&put]);
    let store = DynamoEventStore::new(client, "events");
    // Another writer's event at the same position is a conflict.
    let err = store.append(Append::events(vec![ours])).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
}

/// How a store whose only answer is `put` refuses `event` appended deduplicated by its cause.
async fn append_by_cause(put: &aws_smithy_mocks::Rule, event: crate::Envelope) -> StoreError {
    let client = mock_client!(aws_sdk_dynamodb, [put]);
    DynamoEventStore::new(client, "events")
        .append(Append::events(vec![event]).deduplicated_by_cause())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn an_event_deduplicated_by_its_cause_is_one_put_refused_as_a_duplicate() {
    let cause = event("cause", 1);
    let ours = || event("a", 1).caused_by(&cause);
    // Redelivered: the receipt there is this reaction's, made before (another id).
    let put = mock!(Client::put_item)
        .match_requests(|req| {
            req.condition_expression() == Some("attribute_not_exists(pk)")
                && req.item().and_then(|i| i.get("pk"))
                    == Some(&AttributeValue::S("Thing#a".into()))
        })
        .then_error(in_the_way(&ours()));
    let err = append_by_cause(&put, ours()).await;
    assert!(
        matches!(err, StoreError::Duplicate { ref source_event_id, .. } if *source_event_id == cause.id),
        "{err:?}"
    );
    assert_eq!(put.num_calls(), 1);

    // Another cause's event there is a conflict; so is an item that is not an event.
    let theirs = event("a", 1).caused_by(&event("other", 1));
    let not_an_event = || {
        PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .set_item(Some(HashMap::from([(
                    "pk".to_owned(),
                    AttributeValue::S("Thing#a".into()),
                )])))
                .build(),
        )
    };
    let refusals: [Box<dyn Fn() -> PutItemError + Send + Sync>; 2] =
        [Box::new(in_the_way(&theirs)), Box::new(not_an_event)];
    for refusal in refusals {
        let put = mock!(Client::put_item).then_error(refusal);
        let err = append_by_cause(&put, ours()).await;
        assert!(err.is_conflict(), "{err:?}");
    }
}

#[tokio::test]
async fn any_other_put_failure_is_a_backend_error() {
    let put = mock!(Client::put_item).then_error(|| {
        PutItemError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("no table")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, [&put]);
    let store = DynamoEventStore::new(client, "events");

    let err = store
        .append(Append::events(vec![event("a", 1)]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(!err.is_conflict());
}

#[tokio::test]
async fn several_items_are_one_transaction_with_the_marker_last() {
    let first = event("a", 1);
    let token = first.id.clone();
    let transact = mock!(Client::transact_write_items)
        .match_requests(move |req| {
            let items = req.transact_items();
            let key = |i: usize| {
                items[i]
                    .put()
                    .and_then(|p| p.item().get("pk").cloned())
                    .unwrap_or(AttributeValue::Null(true))
            };
            items.len() == 3
                && key(0) == AttributeValue::S("Thing#a".into())
                && key(1) == AttributeValue::S("Thing#b".into())
                && key(2) == AttributeValue::S("dedupe#inventory#src-1".into())
                && items.iter().all(|i| {
                    i.put().and_then(|p| p.condition_expression())
                        == Some("attribute_not_exists(pk)")
                })
                && req.client_request_token() == Some(token.as_str())
        })
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, [&transact]);
    let store = DynamoEventStore::new(client, "events");

    let append = Append::events(vec![first, event("b", 1)])
        .deduplicated_by(DedupeMarker::new("inventory", "src-1"));
    store.append(append).await.unwrap();
    assert_eq!(transact.num_calls(), 1);
}

#[tokio::test]
async fn cancellation_reasons_tell_conflict_from_duplicate_from_race() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["None", "ConditionalCheckFailed", "None"],
            "conflict on Thing#b",
        ),
        (&["None", "None", "ConditionalCheckFailed"], "duplicate"),
        // The marker wins: the whole message was handled before, whatever else collided.
        (
            &["ConditionalCheckFailed", "None", "ConditionalCheckFailed"],
            "duplicate",
        ),
        (
            &["TransactionConflict", "None", "None"],
            "conflict on transaction",
        ),
        // A throttled hot item is retried like a race, not raised as a fault.
        (&["None", "ThrottlingError", "None"], "throttled"),
    ];
    for (codes, expected) in cases {
        let codes: Vec<String> = codes.iter().map(|c| (*c).to_owned()).collect();
        let transact = mock!(Client::transact_write_items)
            .then_error(move || cancelled(&codes.iter().map(String::as_str).collect::<Vec<_>>()));
        let client = mock_client!(aws_sdk_dynamodb, [&transact]);
        let store = DynamoEventStore::new(client, "events");
        let append = Append::events(vec![event("a", 1), event("b", 1)])
            .deduplicated_by(DedupeMarker::new("inventory", "src-1"));

        let got = match store.append(append).await.unwrap_err() {
            StoreError::Conflict { stream } => format!("conflict on {stream}"),
            StoreError::Duplicate {
                consumer,
                source_event_id,
            } => {
                assert_eq!(
                    (consumer.as_str(), source_event_id.as_str()),
                    ("inventory", "src-1")
                );
                "duplicate".to_owned()
            }
            StoreError::Throttled => "throttled".to_owned(),
            other => format!("{other:?}"),
        };
        assert_eq!(got, expected);
    }
}

#[tokio::test]
async fn a_transaction_without_a_marker_maps_its_failed_item_to_its_stream() {
    let transact = mock!(Client::transact_write_items)
        .then_error(|| cancelled(&["None", "ConditionalCheckFailed"]));
    let client = mock_client!(aws_sdk_dynamodb, [&transact]);
    let store = DynamoEventStore::new(client, "events");

    let err = store
        .append(Append::events(vec![event("a", 1), event("a", 2)]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { ref stream } if stream == "Thing#a"),
        "{err:?}"
    );
}

fn unchanged(id: &str, version: u64) -> Unchanged {
    Unchanged {
        aggregate_type: "Thing".into(),
        aggregate_id: id.into(),
        version,
    }
}

/// Whether `req` is two puts (an event and a marker) and then a check of `pk`, `sk` with
/// `expression`.
fn two_puts_then_a_check(
    req: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput,
    pk: &str,
    sk: &str,
    expression: &str,
) -> bool {
    let items = req.transact_items();
    let check = items.get(2).and_then(|i| i.condition_check());
    items.len() == 3
        && items[0].put().is_some()
        && items[1].put().is_some()
        && check.is_some_and(|c| {
            c.key().get("pk") == Some(&AttributeValue::S(pk.into()))
                && c.key().get("sk") == Some(&AttributeValue::N(sk.into()))
                && c.condition_expression() == expression
        })
}

#[tokio::test]
async fn a_stream_read_but_not_appended_to_is_checked_in_the_transaction_after_the_marker() {
    let transact = mock!(Client::transact_write_items)
        .match_requests(|req| {
            two_puts_then_a_check(req, "Thing#read", "8", "attribute_not_exists(pk)")
        })
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, [&transact]);
    let store = DynamoEventStore::new(client, "events");

    // One event, but with a check: a transaction, not a single put.
    let append = Append::events(vec![event("a", 1)])
        .deduplicated_by(DedupeMarker::new("inventory", "src-1"))
        .given_unchanged([unchanged("read", 7)]);
    store.append(append).await.unwrap();
    assert_eq!(transact.num_calls(), 1);
}

#[tokio::test]
async fn a_stream_that_moved_on_since_it_was_read_is_a_conflict_on_that_stream() {
    let transact = mock!(Client::transact_write_items)
        .then_error(|| cancelled(&["None", "None", "None", "ConditionalCheckFailed"]));
    let client = mock_client!(aws_sdk_dynamodb, [&transact]);
    let store = DynamoEventStore::new(client, "events");

    let err = store
        .append(
            Append::events(vec![event("a", 1)])
                .deduplicated_by(DedupeMarker::new("inventory", "src-1"))
                .given_unchanged([unchanged("x", 3), unchanged("y", 0)]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { ref stream } if stream == "Thing#y"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_presumed_position_is_checked_to_follow_the_event_before_it_and_refused_if_not() {
    let transact = mock!(Client::transact_write_items)
        .match_requests(|req| two_puts_then_a_check(req, "Thing#a", "1", "attribute_exists(pk)"))
        .then_error(|| cancelled(&["None", "None", "ConditionalCheckFailed"]));
    let client = mock_client!(aws_sdk_dynamodb, [&transact]);
    let store = DynamoEventStore::new(client, "events");

    let err = store
        .append(
            Append::events(vec![event("a", 2)])
                .deduplicated_by(DedupeMarker::new("order-saga", "src-1"))
                .presumed(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { ref stream } if stream == "Thing#a"),
        "{err:?}"
    );
    assert_eq!(transact.num_calls(), 1);
}

#[tokio::test]
async fn a_presumed_first_event_needs_no_check_and_stays_one_put() {
    let put = mock!(Client::put_item).then_output(|| PutItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, [&put]);
    let store = DynamoEventStore::new(client, "events");

    store
        .append(Append::events(vec![event("a", 1)]).presumed())
        .await
        .unwrap();
    assert_eq!(put.num_calls(), 1);
}

#[tokio::test]
async fn other_cancellations_are_backend_errors() {
    let transact =
        mock!(Client::transact_write_items).then_error(|| cancelled(&["ValidationError", "None"]));
    let client = mock_client!(aws_sdk_dynamodb, [&transact]);
    let store = DynamoEventStore::new(client, "events");

    let err = store
        .append(Append::events(vec![event("a", 1), event("b", 1)]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
}

#[tokio::test]
async fn read_stream_follows_last_evaluated_key_across_pages() {
    let events: Vec<_> = (1..=5).map(|s| event("a", s)).collect();
    let page1: Vec<_> = events[..3].iter().map(event_item).collect();
    let page2: Vec<_> = events[3..].iter().map(event_item).collect();
    let resume = HashMap::from([
        ("pk".to_owned(), AttributeValue::S("Thing#a".into())),
        ("sk".to_owned(), AttributeValue::N("3".into())),
    ]);
    let expected_start = resume.clone();
    let first = mock!(Client::query)
        .match_requests(|req| {
            req.exclusive_start_key().is_none()
                && req.consistent_read() == Some(true)
                && req.expression_attribute_values().and_then(|v| v.get(":pk"))
                    == Some(&AttributeValue::S("Thing#a".into()))
                && req
                    .expression_attribute_values()
                    .and_then(|v| v.get(":from"))
                    == Some(&AttributeValue::N("1".into()))
        })
        .then_output(move || {
            QueryOutput::builder()
                .set_items(Some(page1.clone()))
                .set_last_evaluated_key(Some(resume.clone()))
                .build()
        });
    let second = mock!(Client::query)
        .match_requests(move |req| req.exclusive_start_key() == Some(&expected_start))
        .then_output(move || {
            QueryOutput::builder()
                .set_items(Some(page2.clone()))
                .build()
        });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&first, &second]);
    let store = DynamoEventStore::new(client, "events");

    let read = store.read_stream("Thing", "a", 1).await.unwrap();
    assert_eq!(read, events);
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_corrupt_item_makes_the_stream_corrupt() {
    let good = event_item(&event("a", 1));
    let mut bad = event_item(&event("a", 2));
    bad.insert("envelope".into(), AttributeValue::S("{not json".into()));
    let query = mock!(Client::query).then_output(move || {
        QueryOutput::builder()
            .items(good.clone())
            .items(bad.clone())
            .build()
    });
    let client = mock_client!(aws_sdk_dynamodb, [&query]);
    let store = DynamoEventStore::new(client, "events");

    let err = store.read_stream("Thing", "a", 1).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { ref stream, .. } if stream == "Thing#a"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_transaction_whose_answer_was_lost_is_retried_under_its_token_and_its_marker_reads_as_handled()
 {
    // The first attempt committed and its answer was lost (a 500). The SDK sends the same
    // request again: under the same client request token DynamoDB answers success for ten
    // minutes; should the retry ever meet the committed items instead, the taken marker says
    // what happened: this message's effects are stored (a duplicate, never a failure).
    let first = event("a", 1);
    let token = first.id.clone();
    let transact = mock!(Client::transact_write_items)
        .match_requests(move |req| req.client_request_token() == Some(token.as_str()))
        .sequence()
        .http_status(500, None)
        .error(|| cancelled(&["ConditionalCheckFailed", "ConditionalCheckFailed"]))
        .build();
    let client = mock_client!(aws_sdk_dynamodb, [&transact]);
    let store = DynamoEventStore::new(client, "events");

    let append =
        Append::events(vec![first]).deduplicated_by(DedupeMarker::new("inventory", "src-1"));
    let err = store.append(append).await.unwrap_err();
    assert_eq!(transact.num_calls(), 2, "the SDK retried the transaction");
    assert!(matches!(err, StoreError::Duplicate { .. }), "{err:?}");
}

mod by_time {
    use super::*;
    use crate::store::{EventKey, TimeCursor, TimeIndexed, TimeRange};
    use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    use chrono::{DateTime, Utc};

    fn hour() -> TimeRange {
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        TimeRange::new(at("2026-05-01T13:00:00Z"), at("2026-05-01T14:00:00Z"))
    }

    fn index_item(stream: &str, sequence: u64) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(stream.into())),
            ("sk".to_owned(), AttributeValue::N(sequence.to_string())),
            (
                "time_bucket".to_owned(),
                AttributeValue::S("2026-05-01T13#03".into()),
            ),
            (
                "time_key".to_owned(),
                AttributeValue::S(format!("2026-05-01T13:30:00.000Z#e-{sequence}")),
            ),
        ])
    }

    #[tokio::test]
    async fn a_range_is_read_bucket_by_bucket_and_page_by_page() {
        let in_bucket = |req: &aws_sdk_dynamodb::operation::query::QueryInput| {
            req.index_name() == Some("by-time")
                && req.expression_attribute_values().unwrap()[":bucket"]
                    == AttributeValue::S("2026-05-01T13#03".into())
                && req.expression_attribute_values().unwrap()[":from"]
                    == AttributeValue::S("2026-05-01T13:00:00.000Z".into())
        };
        let first = mock!(Client::query)
            .match_requests(move |req| in_bucket(req) && req.exclusive_start_key().is_none())
            .then_output(|| {
                QueryOutput::builder()
                    .items(index_item("Order#o-1", 1))
                    .set_last_evaluated_key(Some(index_item("Order#o-1", 1)))
                    .build()
            });
        let second = mock!(Client::query)
            .match_requests(move |req| {
                in_bucket(req) && req.exclusive_start_key() == Some(&index_item("Order#o-1", 1))
            })
            .then_output(|| {
                QueryOutput::builder()
                    .items(index_item("Order#o-1", 2))
                    .build()
            });
        let empty = mock!(Client::query).then_output(|| QueryOutput::builder().build());
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&first, &second, &empty]
        );
        let store = DynamoEventStore::new(client, "events");

        let mut keys = Vec::new();
        let mut cursor = Some(TimeCursor::start());
        while let Some(at) = cursor {
            let page = store.keys_in(&hour(), &at).await.unwrap();
            keys.extend(page.keys);
            cursor = page.next;
        }
        let order = |sequence| EventKey {
            stream: "Order#o-1".into(),
            sequence,
        };
        assert_eq!(keys, vec![order(1), order(2)]);
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
        assert_eq!(
            empty.num_calls(),
            15,
            "every other shard of the hour was asked once"
        );
    }

    #[tokio::test]
    async fn events_are_read_by_key_and_unprocessed_keys_asked_again() {
        let (a, b) = (event("a", 1), event("b", 1));
        let (item_a, item_b) = (event_item(&a), event_item(&b));
        let key_b = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("Thing#b".into())),
            ("sk".to_owned(), AttributeValue::N("1".into())),
        ]);
        let partly = mock!(Client::batch_get_item)
            .match_requests(|req| {
                req.request_items()
                    .and_then(|r| r.get("events"))
                    .is_some_and(|k| k.keys().len() == 2 && k.consistent_read() == Some(true))
            })
            .then_output(move || {
                BatchGetItemOutput::builder()
                    .responses("events", vec![item_a.clone()])
                    .unprocessed_keys(
                        "events",
                        KeysAndAttributes::builder()
                            .keys(key_b.clone())
                            .build()
                            .unwrap(),
                    )
                    .build()
            });
        let rest = mock!(Client::batch_get_item).then_output(move || {
            BatchGetItemOutput::builder()
                .responses("events", vec![item_b.clone()])
                .build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&partly, &rest]);
        let store = DynamoEventStore::new(client, "events");

        let keys = [a.stream_key(), b.stream_key()].map(|stream| EventKey {
            stream,
            sequence: 1,
        });
        let events = store.events_at(&keys).await.unwrap();
        assert_eq!(events, vec![a, b]);
    }
}

#[tokio::test]
async fn a_snapshot_sits_next_to_its_events_and_an_older_one_never_replaces_a_newer() {
    use crate::store::Snapshot;
    let snapshot = Snapshot {
        version: 300,
        schema: 1,
        state: r#"{"available":4}"#.into(),
    };
    let put = mock!(Client::put_item)
        .match_requests(|req| {
            let item = req.item().cloned().unwrap_or_default();
            item.get("pk") == Some(&AttributeValue::S("Stock#sku-1".into()))
                && item.get("sk") == Some(&AttributeValue::N("0".into()))
                && item.get("kind") == Some(&AttributeValue::S("snapshot".into()))
                && req.condition_expression()
                    == Some(
                        "attribute_not_exists(pk) OR #version <= :version OR #schema <> :schema",
                    )
        })
        .then_error(|| {
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder().build(),
            )
        });
    let get = mock!(Client::get_item).then_output(|| {
        aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder()
            .set_item(Some(HashMap::from([
                ("pk".into(), AttributeValue::S("Stock#sku-1".into())),
                ("sk".into(), AttributeValue::N("0".into())),
                ("kind".into(), AttributeValue::S("snapshot".into())),
                ("version".into(), AttributeValue::N("300".into())),
                ("schema".into(), AttributeValue::N("1".into())),
                (
                    "state".into(),
                    AttributeValue::S(r#"{"available":4}"#.into()),
                ),
            ])))
            .build()
    });
    let not_a_snapshot = mock!(Client::get_item).then_output(|| {
        aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder()
            .set_item(Some(HashMap::from([(
                "kind".into(),
                AttributeValue::S("dedupe".into()),
            )])))
            .build()
    });
    let client = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::Sequential,
        [&put, &get, &not_a_snapshot]
    );
    let store = DynamoEventStore::new(client, "events");

    // A newer snapshot is in the way: not needed, not an error.
    store
        .write_snapshot("Stock", "sku-1", &snapshot)
        .await
        .unwrap();
    assert_eq!(
        store.read_snapshot("Stock", "sku-1").await.unwrap(),
        Some(snapshot)
    );
    assert_eq!(store.read_snapshot("Stock", "sku-1").await.unwrap(), None);
}
