use super::*;

use aws_sdk_dynamodb::operation::put_item::{PutItemInput, PutItemOutput};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::interceptors::context::Input;

fn attempt(bytes: u64) -> Attempt {
    Attempt {
        request_bytes: bytes,
        response_bytes: 10,
        ..Attempt::default()
    }
}

#[test]
fn every_attempt_is_counted_under_its_service_and_operation() {
    let counter = RequestCounter::new();
    counter.record("DynamoDB", "PutItem", &attempt(100));
    counter.record(
        "DynamoDB",
        "PutItem",
        &Attempt {
            failed: true,
            ..attempt(50)
        },
    );
    counter.record(
        "SNS",
        "PublishBatch",
        &Attempt {
            messages: 3,
            ..attempt(70_000)
        },
    );

    let counts = counter.snapshot();
    let put = counts.operation("DynamoDB", "PutItem");
    assert_eq!((put.requests, put.errors), (2, 1));
    assert_eq!((put.request_bytes, put.response_bytes), (150, 20));
    let publish = counts.operation("SNS", "PublishBatch");
    assert_eq!(publish.messages, 3);
    assert_eq!(publish.chunks, 2, "70 000 bytes are two 64 KiB chunks");
    assert_eq!(counts.total().requests, 3);
    assert_eq!(counts.service("DynamoDB").requests, 2);
    assert_eq!(
        counts.operation("SQS", "ReceiveMessage"),
        OperationCounts::default()
    );
}

#[test]
fn a_payload_is_billed_by_the_64_kib_chunk_and_never_less_than_one() {
    assert_eq!(attempt(0).chunks(), 1);
    assert_eq!(attempt(CHUNK_BYTES).chunks(), 1);
    assert_eq!(attempt(CHUNK_BYTES + 1).chunks(), 2);
    let big_answer = Attempt {
        response_bytes: 4 * CHUNK_BYTES,
        ..attempt(1)
    };
    assert_eq!(big_answer.chunks(), 4, "the larger of request and response");
}

#[test]
fn half_units_add_up_exactly() {
    let counter = RequestCounter::new();
    for _ in 0..3 {
        counter.record(
            "DynamoDB",
            "GetItem",
            &Attempt {
                read_units: 0.5,
                ..attempt(1)
            },
        );
    }
    counter.record(
        "DynamoDB",
        "TransactWriteItems",
        &Attempt {
            write_units: 4.0,
            ..attempt(1)
        },
    );
    let counts = counter.snapshot();
    assert_eq!(counts.operation("DynamoDB", "GetItem").read_units, 1.5);
    assert_eq!(counts.service("DynamoDB").write_units, 4.0);
}

#[test]
fn since_keeps_only_what_happened_after_the_first_snapshot() {
    let counter = RequestCounter::new();
    counter.record(
        "SQS",
        "ReceiveMessage",
        &Attempt {
            empty: true,
            ..attempt(1)
        },
    );
    let before = counter.snapshot();
    counter.record(
        "SQS",
        "ReceiveMessage",
        &Attempt {
            messages: 2,
            ..attempt(1)
        },
    );
    counter.record("SQS", "DeleteMessageBatch", &attempt(1));

    let delta = counter.snapshot().since(&before);
    let receive = delta.operation("SQS", "ReceiveMessage");
    assert_eq!(
        (receive.requests, receive.messages, receive.empty),
        (1, 2, 0)
    );
    assert_eq!(delta.operation("SQS", "DeleteMessageBatch").requests, 1);
    assert_eq!(
        counter.snapshot().since(&counter.snapshot()),
        RequestCounts::default()
    );
}

#[test]
fn clones_share_one_count_and_the_global_counter_is_one_per_process() {
    let counter = RequestCounter::new();
    counter.clone().record("SNS", "Publish", &attempt(1));
    assert_eq!(counter.snapshot().total().requests, 1);
    assert!(std::ptr::eq(
        RequestCounter::global(),
        RequestCounter::global()
    ));
}

#[test]
fn writes_are_told_from_reads_by_their_operation() {
    assert!(is_write("TransactWriteItems") && is_write("PutItem") && is_write("UpdateItem"));
    assert!(!is_write("GetItem") && !is_write("Query") && !is_write("TransactGetItems"));
}

#[test]
fn every_dynamodb_call_asks_for_its_consumed_capacity_unless_it_asked_for_more() {
    let mut input = Input::erase(PutItemInput::builder().table_name("t").build().unwrap());
    intercept::dynamodb::ask_for_capacity(&mut input);
    let input = input.downcast_ref::<PutItemInput>().unwrap();
    assert_eq!(
        input.return_consumed_capacity,
        Some(ReturnConsumedCapacity::Total)
    );

    let indexes = PutItemInput::builder()
        .table_name("t")
        .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
        .build()
        .unwrap();
    let mut input = Input::erase(indexes);
    intercept::dynamodb::ask_for_capacity(&mut input);
    let input = input.downcast_ref::<PutItemInput>().unwrap();
    assert_eq!(
        input.return_consumed_capacity,
        Some(ReturnConsumedCapacity::Indexes)
    );
}

#[tokio::test]
async fn the_interceptor_counts_a_clients_calls_with_the_capacity_dynamodb_reported() {
    let put = mock!(aws_sdk_dynamodb::Client::put_item).then_output(|| {
        PutItemOutput::builder()
            .consumed_capacity(
                ConsumedCapacity::builder()
                    .table_name("t")
                    .capacity_units(1.0)
                    .build(),
            )
            .build()
    });
    let transact = mock!(aws_sdk_dynamodb::Client::transact_write_items).then_output(|| {
        TransactWriteItemsOutput::builder()
            .consumed_capacity(
                ConsumedCapacity::builder()
                    .table_name("t")
                    .capacity_units(4.0)
                    .build(),
            )
            .consumed_capacity(
                ConsumedCapacity::builder()
                    .table_name("u")
                    .capacity_units(2.0)
                    .build(),
            )
            .build()
    });
    let counter = RequestCounter::new();
    let client = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::MatchAny,
        [&put, &transact],
        |c| c.interceptor(counter.clone())
    );

    client.put_item().table_name("t").send().await.unwrap();
    client.transact_write_items().send().await.unwrap();

    let counts = counter.snapshot();
    let put = counts.operation("DynamoDB", "PutItem");
    assert_eq!(
        (put.requests, put.errors, put.write_units, put.read_units),
        (1, 0, 1.0, 0.0)
    );
    assert!(
        put.request_bytes > 0,
        "the serialised request's body is measured"
    );
    let transact = counts.operation("DynamoDB", "TransactWriteItems");
    assert_eq!((transact.requests, transact.write_units), (1, 6.0));
}

#[tokio::test]
async fn a_scope_counts_the_requests_made_inside_it_and_nothing_else() {
    let put =
        mock!(aws_sdk_dynamodb::Client::put_item).then_output(|| PutItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put], |c| c
        .interceptor(RequestCounter::new()));
    let (inventory, payments) = (RequestCounter::new(), RequestCounter::new());

    client
        .put_item()
        .table_name("outside")
        .send()
        .await
        .unwrap();
    inventory
        .scope(async {
            client.put_item().table_name("t").send().await.unwrap();
            payments
                .scope(client.put_item().table_name("t").send())
                .await
                .unwrap();
            client.put_item().table_name("t").send().await.unwrap();
        })
        .await;

    let puts = |c: &RequestCounter| c.snapshot().operation("DynamoDB", "PutItem").requests;
    assert_eq!(puts(&inventory), 2, "the inner scope's request is its own");
    assert_eq!(puts(&payments), 1);
}
