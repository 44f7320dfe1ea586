//! The boundary's answers as the real SDK clients read them: parsed into the service's own error
//! shapes, retried when the SDK retries them, and never retried when it does not.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_smithy_http_client::test_util::infallible_client_fn;
use aws_smithy_types::retry::RetryConfig;

use super::*;

/// Plays its verdicts in order, then forwards; remembers every call it saw.
#[derive(Debug, Default)]
struct Script {
    verdicts: Mutex<VecDeque<Verdict>>,
    seen: Mutex<Vec<(Service, String, String)>>,
    outcomes: Mutex<Vec<Outcome>>,
}

impl Script {
    fn new(verdicts: impl IntoIterator<Item = Verdict>) -> Arc<Self> {
        Arc::new(Script {
            verdicts: Mutex::new(verdicts.into_iter().collect()),
            ..Script::default()
        })
    }

    fn seen(&self) -> Vec<(Service, String, String)> {
        self.seen.lock().unwrap().clone()
    }
}

impl Hook for Script {
    fn before(&self, call: &Call) -> Verdict {
        self.seen
            .lock()
            .unwrap()
            .push((call.service, call.operation.clone(), call.subject()));
        self.verdicts
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Verdict::Forward)
    }

    fn after(&self, _call: &Call, outcome: Outcome) {
        self.outcomes.lock().unwrap().push(outcome);
    }
}

/// An SDK configuration whose "network" answers `body` with 200 and counts what reached it.
fn sdk(body: &'static str, reached: Arc<AtomicUsize>, hook: Arc<Script>) -> SdkConfig {
    let network = infallible_client_fn(move |_request| {
        reached.fetch_add(1, Ordering::SeqCst);
        http::Response::builder().status(200).body(body).unwrap()
    });
    let base = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKID", "SECRET", None, None, "test",
        )))
        .retry_config(
            RetryConfig::standard()
                .with_initial_backoff(Duration::from_millis(1))
                .with_max_backoff(Duration::from_millis(5)),
        )
        .http_client(network)
        .build();
    with_hook(&base, "orders-api", hook)
}

fn put_order(
    client: &aws_sdk_dynamodb::Client,
) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
    client
        .put_item()
        .table_name("s-events")
        .item("pk", AttributeValue::S("Order#o-1".into()))
        .item("sk", AttributeValue::N("1".into()))
}

#[tokio::test]
async fn a_throttled_put_is_retried_by_the_sdk_and_then_reaches_the_table() {
    let reached = Arc::new(AtomicUsize::new(0));
    let hook = Script::new([Verdict::Refuse(WireError::throttled(Service::DynamoDb))]);
    let client = aws_sdk_dynamodb::Client::new(&sdk("{}", reached.clone(), hook.clone()));
    put_order(&client).send().await.unwrap();
    assert_eq!(
        reached.load(Ordering::SeqCst),
        1,
        "only the retry reached the table"
    );
    let seen = hook.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0],
        (
            Service::DynamoDb,
            "PutItem".to_owned(),
            "s-events/Order#o-1".to_owned()
        )
    );
    assert_eq!(
        *hook.outcomes.lock().unwrap(),
        vec![Outcome::Status(400), Outcome::Status(200)]
    );
}

#[tokio::test]
async fn an_account_throttle_and_a_server_error_are_retried_too() {
    for error in [
        WireError::dynamodb_rate_exceeded(),
        WireError::internal(Service::DynamoDb),
        WireError::unavailable(Service::DynamoDb),
    ] {
        let reached = Arc::new(AtomicUsize::new(0));
        let hook = Script::new([Verdict::Refuse(error.clone())]);
        let client = aws_sdk_dynamodb::Client::new(&sdk("{}", reached.clone(), hook));
        put_order(&client).send().await.unwrap();
        assert_eq!(reached.load(Ordering::SeqCst), 1, "{error:?}");
    }
}

#[tokio::test]
async fn a_lost_answer_is_retried_after_the_write_was_applied() {
    let reached = Arc::new(AtomicUsize::new(0));
    let hook = Script::new([
        Verdict::LoseAnswer(WireError::internal(Service::DynamoDb)),
        Verdict::LoseConnection(Broken::TimedOut),
    ]);
    let client = aws_sdk_dynamodb::Client::new(&sdk("{}", reached.clone(), hook));
    put_order(&client).send().await.unwrap();
    assert_eq!(
        reached.load(Ordering::SeqCst),
        3,
        "applied twice without an answer, then answered"
    );
}

#[tokio::test]
async fn a_cancelled_transaction_reaches_the_caller_with_one_reason_per_item() {
    let reached = Arc::new(AtomicUsize::new(0));
    let hook = Script::new([Verdict::Refuse(WireError::transaction_throttled(2, 1))]);
    let client = aws_sdk_dynamodb::Client::new(&sdk("{}", reached.clone(), hook));
    let put = |pk: &str| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name("s-events")
                    .item("pk", AttributeValue::S(pk.into()))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let err = client
        .transact_write_items()
        .transact_items(put("Stock#A"))
        .transact_items(put("dedupe#inventory#e-1"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the SDK does not retry it"
    );
    let service = err.into_service_error();
    assert_eq!(service.code(), Some("TransactionCanceledException"));
    let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancelled) = service else {
        panic!("not a cancelled transaction: {service:?}");
    };
    let codes: Vec<_> = cancelled
        .cancellation_reasons()
        .iter()
        .map(|r| r.code().unwrap_or_default())
        .collect();
    assert_eq!(codes, ["None", "ThrottlingError"]);
}

#[tokio::test]
async fn a_transaction_conflict_on_a_single_write_is_not_retried() {
    let reached = Arc::new(AtomicUsize::new(0));
    let hook = Script::new([Verdict::Refuse(WireError::transaction_conflict())]);
    let client = aws_sdk_dynamodb::Client::new(&sdk("{}", reached.clone(), hook));
    let err = put_order(&client).send().await.unwrap_err();
    assert!(err.into_service_error().is_transaction_conflict_exception());
    assert_eq!(reached.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn sns_throttling_is_read_from_its_xml_and_retried() {
    let reached = Arc::new(AtomicUsize::new(0));
    let hook = Script::new([Verdict::Refuse(WireError::throttled(Service::Sns))]);
    let ok = "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishResult>\
              <MessageId>m-1</MessageId></PublishResult></PublishResponse>";
    let client = aws_sdk_sns::Client::new(&sdk(ok, reached.clone(), hook.clone()));
    let sent = client
        .publish()
        .topic_arn("arn:aws:sns:us-east-1:000000000000:s-notifications")
        .message("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(sent.message_id(), Some("m-1"));
    assert_eq!(reached.load(Ordering::SeqCst), 1);
    assert_eq!(
        hook.seen()[0],
        (
            Service::Sns,
            "Publish".to_owned(),
            "arn:aws:sns:us-east-1:000000000000:s-notifications".to_owned()
        )
    );
}

#[tokio::test]
async fn an_sns_error_that_is_not_retried_reaches_the_caller_with_its_code() {
    let reached = Arc::new(AtomicUsize::new(0));
    let kms = WireError {
        code: "KMSThrottling",
        ..WireError::throttled(Service::Sns)
    };
    let hook = Script::new([Verdict::Refuse(kms)]);
    let client = aws_sdk_sns::Client::new(&sdk("", reached.clone(), hook));
    let err = client
        .publish()
        .topic_arn("arn:aws:sns:us-east-1:000000000000:t")
        .message("hello")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_kms_throttling_exception());
    assert_eq!(reached.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn sqs_errors_carry_their_query_compatible_code() {
    let reached = Arc::new(AtomicUsize::new(0));
    let not_retried = WireError {
        code: "AWS.SimpleQueueService.NonExistentQueue",
        ..WireError::throttled(Service::Sqs)
    };
    let hook = Script::new([
        Verdict::Refuse(WireError::throttled(Service::Sqs)),
        Verdict::Refuse(not_retried),
    ]);
    let client = aws_sdk_sqs::Client::new(&sdk("{}", reached.clone(), hook.clone()));
    let err = client
        .get_queue_attributes()
        .queue_url("http://localhost/000000000000/q")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.into_service_error().is_queue_does_not_exist(),
        "the throttle was retried, the missing queue reached the caller"
    );
    assert_eq!(reached.load(Ordering::SeqCst), 0);
    assert_eq!(hook.seen()[0].1, "GetQueueAttributes");
}

#[test]
fn writes_are_told_from_reads() {
    let call = |operation: &str| Call {
        caller: Arc::from("f"),
        service: Service::DynamoDb,
        operation: operation.to_owned(),
        body: Vec::new(),
    };
    assert!(call("TransactWriteItems").is_write());
    assert!(call("PutItem").is_write());
    assert!(!call("Query").is_write());
    assert!(!call("GetItem").is_write());
}

#[test]
fn form_values_are_percent_decoded_without_panicking_on_bad_escapes() {
    let body =
        b"Action=Publish&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A1%3At&Message=a+b%ZZ%e2%82%ac%";
    assert_eq!(form_value(body, "Action").as_deref(), Some("Publish"));
    assert_eq!(
        form_value(body, "TopicArn").as_deref(),
        Some("arn:aws:sns:us-east-1:1:t")
    );
    assert_eq!(form_value(body, "Message").as_deref(), Some("a b%ZZ€%"));
    assert_eq!(form_value(b"\xff\xfe", "Action"), None);
}
