//! `DynamoIdempotencyStore` under `Idempotency::run`: the calls each path makes, in order
//! (`RuleMode::Sequential` fails a test on any unexpected call), and what each answer means.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{DynamoIdempotencyStore, record_to_item};
use crate::idempotency::key::{hash_json, idempotency_key};
use crate::idempotency::{
    Idempotency, IdempotencyError, IdempotencyRecord, IdempotencyStore, IdempotencyStoreError,
    Status,
};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::delete_item::{DeleteItemError, DeleteItemOutput};
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::error::{ConditionalCheckFailedException, ResourceNotFoundException};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const T0: u64 = 1_800_000_000;
const NAME: &str = "notifications.order-confirmed";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sent {
    message_id: String,
}

fn key_material() -> Value {
    json!({"order_id": "o-1"})
}

fn payload() -> Value {
    json!({"order_id": "o-1", "email": "c-1@example.com"})
}

fn key() -> String {
    idempotency_key(NAME, &key_material())
}

fn deadline() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(T0 * 1000 + 9_500)
}

fn runner(rules: &[&Rule]) -> Idempotency<DynamoIdempotencyStore> {
    let client = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::Sequential,
        rules.iter().copied()
    );
    Idempotency::new(DynamoIdempotencyStore::new(client, "idempotency"), NAME)
        .with_clock(|| UNIX_EPOCH + Duration::from_secs(T0))
}

fn stored(status: Status, payload: &Value) -> HashMap<String, AttributeValue> {
    record_to_item(&IdempotencyRecord {
        key: key(),
        status,
        expiration: (T0 + 3000) as i64,
        in_progress_expiry: Some((T0 * 1000 + 5_000) as i64),
        data: (status == Status::Completed).then(|| r#"{"message_id":"m-first"}"#.to_owned()),
        validation: Some(hash_json(payload)),
        claim: Some("another call".into()),
        sending: false,
    })
}

/// A claim refused with the existing item returned (`ReturnValuesOnConditionCheckFailure`).
fn refused_with(item: Option<HashMap<String, AttributeValue>>) -> Rule {
    mock!(Client::put_item).then_error(move || {
        PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .message("The conditional request failed")
                .set_item(item.clone())
                .build(),
        )
    })
}

fn claim_accepted() -> Rule {
    mock!(Client::put_item).then_output(|| PutItemOutput::builder().build())
}

fn get_returns(item: Option<HashMap<String, AttributeValue>>) -> Rule {
    mock!(Client::get_item)
        .match_requests(|req| {
            req.key().and_then(|k| k.get("id")) == Some(&AttributeValue::S(key()))
                && req.consistent_read() == Some(true)
        })
        .then_output(move || GetItemOutput::builder().set_item(item.clone()).build())
}

fn completed() -> Rule {
    mock!(Client::update_item).then_output(|| UpdateItemOutput::builder().build())
}

async fn send(calls: &AtomicUsize) -> Result<Sent, String> {
    calls.fetch_add(1, Ordering::SeqCst);
    Ok(Sent {
        message_id: "m-new".into(),
    })
}

#[tokio::test]
async fn a_first_call_claims_the_key_runs_the_effect_and_stores_its_result() {
    let s = |v: &str| AttributeValue::S(v.into());
    let n = |v: u64| AttributeValue::N(v.to_string());
    let claim = mock!(Client::put_item)
        .match_requests(move |req| {
            let item = req.item().unwrap();
            let values = req.expression_attribute_values().unwrap();
            let names = req.expression_attribute_names().unwrap();
            req.table_name() == Some("idempotency")
                && req.condition_expression()
                    == Some(
                        "attribute_not_exists(#id) OR #expiration < :now \
                         OR (#status = :inprogress AND #in_progress_expiry < :now_ms)",
                    )
                && names["#status"] == "status"
                && names["#in_progress_expiry"] == "in_progress_expiry"
                && values[":now"] == n(T0)
                && values[":now_ms"] == n(T0 * 1000)
                && values[":inprogress"] == s("INPROGRESS")
                && req.return_values_on_condition_check_failure()
                    == Some(&ReturnValuesOnConditionCheckFailure::AllOld)
                && item["id"] == s(&key())
                && item["status"] == s("INPROGRESS")
                && item["expiration"] == n(T0 + 3600)
                && item["in_progress_expiry"] == n(T0 * 1000 + 9_500)
                && item["validation"] == s(&hash_json(&payload()))
                && !item.contains_key("data")
        })
        .then_output(|| PutItemOutput::builder().build());
    let complete = mock!(Client::update_item)
        .match_requests(move |req| {
            let values = req.expression_attribute_values().unwrap();
            req.key().unwrap()["id"] == s(&key())
                && req
                    .update_expression()
                    .is_some_and(|e| e.starts_with("SET #status = :status"))
                && req.expression_attribute_names().unwrap()["#data"] == "data"
                && values[":status"] == s("COMPLETED")
                && values[":data"] == s(r#"{"message_id":"m-new"}"#)
                && values[":expiration"] == n(T0 + 3600)
        })
        .then_output(|| UpdateItemOutput::builder().build());
    let idempotency = runner(&[&claim, &complete]);
    let calls = AtomicUsize::new(0);

    let outcome = idempotency
        .run(&key_material(), &payload(), deadline(), || send(&calls))
        .await
        .unwrap();
    assert_eq!(outcome.value.message_id, "m-new");
    assert!(!outcome.replayed);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!((claim.num_calls(), complete.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_completed_record_in_the_refusal_is_replayed_in_one_round_trip() {
    let claim = refused_with(Some(stored(Status::Completed, &payload())));
    let idempotency = runner(&[&claim]);
    let calls = AtomicUsize::new(0);

    let outcome = idempotency
        .run(&key_material(), &payload(), deadline(), || send(&calls))
        .await
        .unwrap();
    assert_eq!(outcome.value.message_id, "m-first");
    assert!(outcome.replayed);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn without_the_item_in_the_refusal_the_record_is_read_with_get_item() {
    let claim = refused_with(None);
    let get = get_returns(Some(stored(Status::Completed, &payload())));
    let idempotency = runner(&[&claim, &get]);
    let calls = AtomicUsize::new(0);

    let sent = idempotency
        .run(&key_material(), &payload(), deadline(), || send(&calls))
        .await
        .unwrap();
    assert_eq!(sent.value.message_id, "m-first");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(get.num_calls(), 1);
}

#[tokio::test]
async fn a_live_in_progress_record_is_already_in_progress() {
    let claim = refused_with(Some(stored(Status::InProgress, &payload())));
    let idempotency = runner(&[&claim]);
    let calls = AtomicUsize::new(0);

    let err = idempotency
        .run(&key_material(), &payload(), deadline(), || send(&calls))
        .await
        .unwrap_err();
    assert!(
        matches!(err, IdempotencyError::AlreadyInProgress { ref key } if *key == self::key()),
        "{err:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn another_payload_in_the_refusal_item_is_a_mismatch() {
    let claim = refused_with(Some(stored(
        Status::Completed,
        &json!({"order_id": "o-1", "email": "x"}),
    )));
    let idempotency = runner(&[&claim]);
    let calls = AtomicUsize::new(0);

    let err = idempotency
        .run(&key_material(), &payload(), deadline(), || send(&calls))
        .await
        .unwrap_err();
    assert!(
        matches!(err, IdempotencyError::PayloadMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn another_payload_in_the_read_record_is_a_mismatch() {
    let claim = refused_with(None);
    let get = get_returns(Some(stored(Status::InProgress, &json!("something else"))));
    let idempotency = runner(&[&claim, &get]);
    let calls = AtomicUsize::new(0);

    let err = idempotency
        .run(&key_material(), &payload(), deadline(), || send(&calls))
        .await
        .unwrap_err();
    assert!(
        matches!(err, IdempotencyError::PayloadMismatch { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_failed_effect_deletes_the_record_and_returns_its_own_error() {
    let claim = claim_accepted();
    let delete = mock!(Client::delete_item)
        .match_requests(|req| req.key().unwrap()["id"] == AttributeValue::S(key()))
        .then_output(|| DeleteItemOutput::builder().build());
    let idempotency = runner(&[&claim, &delete]);

    let err = idempotency
        .run(&key_material(), &payload(), deadline(), || async {
            Err::<Sent, _>("mail server down".to_owned())
        })
        .await
        .unwrap_err();
    assert_eq!(err.into_effect().as_deref(), Some("mail server down"));
    assert_eq!(delete.num_calls(), 1);
}

#[tokio::test]
async fn a_record_gone_between_the_refusal_and_the_read_is_claimed_again() {
    let claim = mock!(Client::put_item)
        .sequence()
        .error(|| {
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder().build(),
            )
        })
        .output(|| PutItemOutput::builder().build())
        .build();
    let get = get_returns(None);
    let complete = completed();
    // Expected: put (refused), get (nothing), put (accepted), update. MatchAny, because the put
    // rule is a two-step sequence interleaved with the get.
    let client = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::MatchAny,
        [&claim, &get, &complete]
    );
    let idempotency = Idempotency::new(DynamoIdempotencyStore::new(client, "idempotency"), NAME);
    let calls = AtomicUsize::new(0);

    let sent = idempotency
        .run(
            &key_material(),
            &payload(),
            SystemTime::now() + Duration::from_secs(5),
            || send(&calls),
        )
        .await
        .unwrap();
    assert_eq!(sent.value.message_id, "m-new");
    assert_eq!(
        (claim.num_calls(), get.num_calls(), complete.num_calls()),
        (2, 1, 1)
    );
}

#[tokio::test]
async fn a_record_that_keeps_vanishing_is_an_inconsistent_state() {
    let claim = mock!(Client::put_item).then_error(|| {
        PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder().build(),
        )
    });
    let get = get_returns(None);
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&claim, &get]);
    let idempotency = Idempotency::new(DynamoIdempotencyStore::new(client, "idempotency"), NAME);
    let calls = AtomicUsize::new(0);

    let err = idempotency
        .run(&key_material(), &payload(), deadline(), || send(&calls))
        .await
        .unwrap_err();
    assert!(
        matches!(err, IdempotencyError::InconsistentState { .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!((claim.num_calls(), get.num_calls()), (3, 3));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_failing_table_is_a_store_error_and_the_effect_does_not_run() {
    let claim = mock!(Client::put_item).then_error(|| {
        PutItemError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("no table")
                .build(),
        )
    });
    let idempotency = runner(&[&claim]);
    let calls = AtomicUsize::new(0);

    let err = idempotency
        .run(&key_material(), &payload(), deadline(), || send(&calls))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IdempotencyError::Store(IdempotencyStoreError::Backend(_))
        ),
        "{err:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_malformed_item_in_the_refusal_is_a_store_error() {
    let mut item = stored(Status::Completed, &payload());
    item.insert("status".into(), AttributeValue::S("DONE".into()));
    let claim = refused_with(Some(item));
    let idempotency = runner(&[&claim]);
    let calls = AtomicUsize::new(0);

    let err = idempotency
        .run(&key_material(), &payload(), deadline(), || send(&calls))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IdempotencyError::Store(IdempotencyStoreError::Malformed { .. })
        ),
        "{err:?}"
    );
}

fn condition_failed(
    item: Option<HashMap<String, AttributeValue>>,
) -> ConditionalCheckFailedException {
    ConditionalCheckFailedException::builder()
        .message("The conditional request failed")
        .set_item(item)
        .build()
}

type Item = HashMap<String, AttributeValue>;

#[tokio::test]
async fn a_claim_whose_answer_was_lost_finds_itself_in_the_way_and_holds_the_key() {
    // First attempt: stored, answered with a 500. The SDK sends the same put again, meets the
    // condition, and DynamoDB returns the item in the way: the claim the first attempt stored.
    let first_attempt: Arc<Mutex<Option<Item>>> = Arc::default();
    let stored = first_attempt.clone();
    let in_the_way = first_attempt.clone();
    let put = mock!(Client::put_item)
        .match_requests(move |req| {
            *stored.lock().unwrap() = req.item().cloned();
            true
        })
        .sequence()
        .http_status(500, None)
        .error(move || {
            PutItemError::ConditionalCheckFailedException(condition_failed(
                in_the_way.lock().unwrap().clone(),
            ))
        })
        .build();
    let complete = completed();
    let idempotency = runner(&[&put, &complete]);
    let calls = AtomicUsize::new(0);

    let outcome = idempotency
        .run(&key_material(), &payload(), deadline(), || send(&calls))
        .await
        .unwrap();
    assert_eq!(outcome.value.message_id, "m-new");
    assert!(!outcome.replayed);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the effect ran once");
    assert_eq!(put.num_calls(), 2, "the SDK retried the put");
    assert_eq!(complete.num_calls(), 1);
    let claim = first_attempt.lock().unwrap().clone().unwrap();
    assert!(claim["claim"].as_s().is_ok_and(|t| !t.is_empty()));
}

#[tokio::test]
async fn a_completion_names_its_claim_so_its_own_retry_passes_the_same_condition() {
    let token: Arc<Mutex<Option<AttributeValue>>> = Arc::default();
    let seen = token.clone();
    let claim = mock!(Client::put_item).then_compute_output(move |req| {
        *seen.lock().unwrap() = req.item().and_then(|i| i.get("claim")).cloned();
        PutItemOutput::builder().build()
    });
    let named = token.clone();
    // First attempt stored and answered with a 500; the retry carries the same condition,
    // which the stored record (still under its claim) meets.
    let complete = mock!(Client::update_item)
        .match_requests(move |req| {
            let claim = named.lock().unwrap().clone();
            req.condition_expression() == Some("#claim = :claim")
                && req.expression_attribute_names().unwrap()["#claim"] == "claim"
                && claim.is_some()
                && req.expression_attribute_values().unwrap().get(":claim") == claim.as_ref()
        })
        .sequence()
        .http_status(500, None)
        .output(|| UpdateItemOutput::builder().build())
        .build();
    let idempotency = runner(&[&claim, &complete]);
    let calls = AtomicUsize::new(0);

    idempotency
        .run(&key_material(), &payload(), deadline(), || send(&calls))
        .await
        .unwrap();
    assert_eq!(complete.num_calls(), 2, "the SDK retried the completion");
}

fn our_claim() -> IdempotencyRecord {
    IdempotencyRecord {
        key: key(),
        status: Status::InProgress,
        expiration: (T0 + 3000) as i64,
        in_progress_expiry: Some((T0 * 1000 + 5_000) as i64),
        data: None,
        validation: Some(hash_json(&payload())),
        claim: Some("our call".into()),
        sending: false,
    }
}

#[tokio::test]
async fn a_delete_whose_answer_was_lost_finds_the_record_gone_and_is_done() {
    let delete = mock!(Client::delete_item)
        .match_requests(|req| {
            req.condition_expression() == Some("#claim = :claim")
                && req.expression_attribute_values().unwrap()[":claim"]
                    == AttributeValue::S("our call".into())
        })
        .sequence()
        .http_status(500, None)
        .error(|| DeleteItemError::ConditionalCheckFailedException(condition_failed(None)))
        .build();
    let client = mock_client!(aws_sdk_dynamodb, [&delete]);
    let store = DynamoIdempotencyStore::new(client, "idempotency");

    store.delete(&our_claim()).await.unwrap();
    assert_eq!(delete.num_calls(), 2, "the SDK retried the delete");
}

#[tokio::test]
async fn marking_a_claim_as_sending_names_the_claim_and_a_taken_over_one_says_so() {
    let mark = mock!(Client::update_item)
        .match_requests(|req| {
            let values = req.expression_attribute_values().unwrap();
            req.key().unwrap()["id"] == AttributeValue::S(key())
                && req.update_expression() == Some("SET #sending = :sending")
                && req.condition_expression() == Some("#claim = :claim")
                && req.expression_attribute_names().unwrap()["#sending"] == "sending"
                && values[":sending"] == AttributeValue::Bool(true)
                && values[":claim"] == AttributeValue::S("our call".into())
        })
        .then_output(|| UpdateItemOutput::builder().build());
    let refused = mock!(Client::update_item)
        .then_error(|| UpdateItemError::ConditionalCheckFailedException(condition_failed(None)));
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&mark, &refused]);
    let store = DynamoIdempotencyStore::new(client, "idempotency");

    store.mark_sending(&our_claim()).await.unwrap();
    assert!(matches!(
        store.mark_sending(&our_claim()).await,
        Err(IdempotencyStoreError::NotOurs { .. })
    ));
    assert_eq!((mark.num_calls(), refused.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_completion_of_a_claim_taken_over_meanwhile_writes_nothing_and_says_so() {
    let refused = mock!(Client::update_item)
        .then_error(|| UpdateItemError::ConditionalCheckFailedException(condition_failed(None)));
    let client = mock_client!(aws_sdk_dynamodb, [&refused]);
    let store = DynamoIdempotencyStore::new(client, "idempotency");
    let mut done = our_claim();
    done.status = Status::Completed;
    done.data = Some("{}".into());

    let err = store.complete(&done).await.unwrap_err();
    assert!(
        matches!(err, IdempotencyStoreError::NotOurs { ref key } if *key == self::key()),
        "{err:?}"
    );
}
