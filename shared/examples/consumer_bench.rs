//! Benchmark (run by `make bench`): what the kit's consumer costs per SQS record, for the
//! side-by-side with Powertools for Python (`tests/bench/powertools/`).
//!
//! The job is the one both sides do: an SQS batch of 10 `payment.captured` events, each of which
//! issues a receipt, one conditional write per record, made idempotent. Here the receipt is the
//! event `receipt.issued` appended at `Receipt#<order id>`, and `EventSourced` puts the dedupe
//! marker in the same transaction: one `TransactWriteItems` per record, and a redelivery is
//! the same one call, refused by the marker. Since the receipt's position follows from the
//! payment alone, the receipt can also be its own marker (`Reaction::AppendKeyed`): one
//! conditional `PutItem` per record, refused on redelivery by the receipt caused by the same
//! payment; the third run measures that.
//!
//! Two measurements:
//! - `cost --batches N`: against the DynamoDB of `AWS_ENDPOINT_URL` (DynamoDB Local in
//!   `make bench`), N batches delivered and then redelivered, at the consumer's default
//!   concurrency and one record at a time with the marker in the transaction, and one record at
//!   a time with the receipt as its own marker; every DynamoDB call is counted by the kit's SDK
//!   interceptor (`ripple_kit::requests`), every batch timed. Writes `target/bench/ripple-consumer.json`.
//! - `cpu --batches N`: the same handler on a DynamoDB client whose answers are canned
//!   (aws-smithy-mocks), so that only this process's work is left (parse the SQS record and its
//!   envelope, admit, decide, build, sign and serialise the transaction, the metrics line);
//!   `tests/bench/cpu_per_record.sh` runs it under callgrind twice, counting only inside
//!   `handle_all`, and divides the difference in instructions by the difference in records.
//!
//! `cargo run -p ripple-kit --profile local-release --example consumer_bench -- cost --batches 50`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use lambda_runtime::{Context, LambdaEvent};
use ripple_kit::consumer::{Delivery, EventSourced, NewEvent};
use ripple_kit::envelope::EnvelopeError;
use ripple_kit::requests::{RequestCounter, RequestCounts};
use ripple_kit::store::DynamoEventStore;
use ripple_kit::{
    ConsumerError, Envelope, EventStore, Reaction, Reactor, SqsConsumer, StreamPosition,
};
use serde::{Deserialize, Serialize};

/// Records per SQS batch, as in the Powertools handler's bench.
const BATCH: usize = 10;

/// What the payments service publishes (the part this consumer reads).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum PaymentEvent {
    #[serde(rename = "payment.captured")]
    Captured { order_id: String, amount_cents: u64 },
}

/// The receipts' one event.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum ReceiptEvent {
    #[serde(rename = "receipt.issued")]
    Issued { order_id: String, amount_cents: u64 },
}

/// Issues one receipt per captured payment: the first event of the order's receipt stream,
/// so the decision needs no read. `keyed`: the receipt is its own dedupe marker.
struct Receipts {
    keyed: bool,
}

impl<S: EventStore> Reactor<S> for Receipts {
    const NAME: &'static str = "receipts";
    const SOURCE: &'static str = "bench/receipts";
    type Input = PaymentEvent;
    type Error = Infallible;

    fn input(&self, event: &Envelope) -> Result<Option<PaymentEvent>, EnvelopeError> {
        event.decode().map(Some)
    }

    async fn react(
        &self,
        _: &S,
        input: &PaymentEvent,
        _: &Delivery<'_>,
    ) -> Result<Reaction, ConsumerError> {
        let PaymentEvent::Captured {
            order_id,
            amount_cents,
        } = input;
        let receipt = ReceiptEvent::Issued {
            order_id: order_id.clone(),
            amount_cents: *amount_cents,
        };
        let at = StreamPosition::new("Receipt", order_id, 1);
        Ok(if self.keyed {
            Reaction::AppendKeyed(NewEvent::new(at, &receipt)?)
        } else {
            Reaction::append(at, &receipt)?
        })
    }
}

/// A batch of `BATCH` captured payments of fresh orders `<run>-<batch>-<i>`.
fn batch(run: &str, number: usize) -> SqsEvent {
    let mut event = SqsEvent::default();
    for i in 0..BATCH {
        let order_id = format!("{run}-{number}-{i}");
        let captured = Envelope::encode(
            "bench/payments",
            StreamPosition::new("Payment", &order_id, 1),
            &PaymentEvent::Captured {
                order_id: order_id.clone(),
                amount_cents: 2_500,
            },
        )
        .unwrap();
        let mut record = SqsMessage::default();
        record.message_id = Some(format!("m-{order_id}"));
        record.receipt_handle = Some(format!("rh-{order_id}"));
        record.event_source = Some("aws:sqs".into());
        record.event_source_arn = Some("arn:aws:sqs:us-east-1:000000000000:receipts-q".into());
        record.body = Some(captured.to_json());
        event.records.push(record);
    }
    event
}

/// An invocation of `payload` with 30 seconds to run.
fn invocation(payload: SqsEvent) -> LambdaEvent<SqsEvent> {
    let mut context = Context::default();
    let deadline = SystemTime::now() + Duration::from_secs(30);
    context.deadline = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    LambdaEvent::new(payload, context)
}

type Handler = SqsConsumer<EventSourced<Receipts, DynamoEventStore>>;

/// Serves one batch; panics unless every record was done.
async fn serve(handler: &Handler, payload: SqsEvent) {
    let response: SqsBatchResponse = handler.handle(invocation(payload)).await.unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "every record handled: {:?}",
        response.batch_item_failures
    );
}

/// DynamoDB calls (every attempt sent) by operation since the last [`take`](Calls::take),
/// counted by the kit's own interceptor (the one every function's clients carry).
#[derive(Debug, Default)]
struct Calls {
    counter: RequestCounter,
    last: RequestCounts,
}

impl Calls {
    fn take(&mut self) -> BTreeMap<String, u64> {
        let now = self.counter.snapshot();
        let since = now.since(&self.last);
        self.last = now;
        since
            .services
            .get("DynamoDB")
            .map(|ops| ops.iter().map(|(op, c)| (op.clone(), c.requests)).collect())
            .unwrap_or_default()
    }
}

/// Milliseconds per record over a run of batches.
#[derive(Debug, Serialize)]
struct Timing {
    batches: usize,
    mean_ms_per_record: f64,
    median_ms_per_record: f64,
}

impl Timing {
    fn of(batch_ms: &[f64]) -> Timing {
        let mut per_record: Vec<f64> = batch_ms.iter().map(|ms| ms / BATCH as f64).collect();
        per_record.sort_by(f64::total_cmp);
        let n = per_record.len();
        let median = if n % 2 == 1 {
            per_record[n / 2]
        } else {
            (per_record[n / 2 - 1] + per_record[n / 2]) / 2.0
        };
        Timing {
            batches: n,
            mean_ms_per_record: per_record.iter().sum::<f64>() / n as f64,
            median_ms_per_record: median,
        }
    }
}

/// One configuration's figures: calls per record and time per record, first delivery and
/// redelivery of the same batches.
#[derive(Debug, Serialize)]
struct Run {
    /// Records of a batch handled at once: the consumer's default, or one at a time.
    concurrency: String,
    /// What tells a redelivery: `transaction` (the marker written with the receipt) or
    /// `event` (the receipt itself, `Reaction::AppendKeyed`).
    marker: &'static str,
    records: usize,
    first_calls_per_record: f64,
    first_calls: BTreeMap<String, u64>,
    first: Timing,
    redelivery_calls_per_record: f64,
    redelivery_calls: BTreeMap<String, u64>,
    redelivery: Timing,
}

fn per_record(calls: &BTreeMap<String, u64>, records: usize) -> f64 {
    calls.values().sum::<u64>() as f64 / records as f64
}

/// Delivers `batches` batches, then each again, at `concurrency`, counting and timing both.
async fn measure(
    aws: &aws_config::SdkConfig,
    table: &str,
    (concurrency, keyed): (Option<usize>, bool),
    batches: usize,
) -> Run {
    let mut counter = Calls::default();
    let config = aws_sdk_dynamodb::config::Builder::from(aws)
        .interceptor(counter.counter.clone())
        .build();
    let store = DynamoEventStore::new(aws_sdk_dynamodb::Client::from_conf(config), table);
    let handler = SqsConsumer::event_sourced(Receipts { keyed }, store);
    let handler = match concurrency {
        Some(records) => handler.concurrency(records),
        None => handler,
    };
    let run = uuid::Uuid::now_v7().simple().to_string();
    // One batch to open the connections, as a warm execution environment has.
    serve(&handler, batch(&format!("{run}-warm"), 0)).await;
    counter.take();
    let payloads: Vec<SqsEvent> = (0..batches).map(|n| batch(&run, n)).collect();
    let mut first_ms = Vec::with_capacity(batches);
    for payload in &payloads {
        let started = Instant::now();
        serve(&handler, payload.clone()).await;
        first_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let first_calls = counter.take();
    let mut redelivery_ms = Vec::with_capacity(batches);
    for payload in &payloads {
        let started = Instant::now();
        serve(&handler, payload.clone()).await;
        redelivery_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let redelivery_calls = counter.take();
    let records = batches * BATCH;
    Run {
        concurrency: concurrency.map_or("default".into(), |n| n.to_string()),
        marker: if keyed { "event" } else { "transaction" },
        records,
        first_calls_per_record: per_record(&first_calls, records),
        first_calls,
        first: Timing::of(&first_ms),
        redelivery_calls_per_record: per_record(&redelivery_calls, records),
        redelivery_calls,
        redelivery: Timing::of(&redelivery_ms),
    }
}

/// A fresh events table shaped as template.yaml's (`pk` string, `sk` number).
async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) {
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attr = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attr("pk", ScalarAttributeType::S))
        .attribute_definitions(attr("sk", ScalarAttributeType::N))
        .send()
        .await
        .unwrap();
}

async fn cost(batches: usize) {
    let aws = ripple_kit::config::load_sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&aws);
    let table = format!("bench-receipts-{}", uuid::Uuid::now_v7().simple());
    create_table(&client, &table).await;
    let mut runs = Vec::new();
    for (concurrency, keyed) in [(None, false), (Some(1), false), (Some(1), true)] {
        let at_once = concurrency.map_or("the default number of".into(), |n| n.to_string());
        let marker = if keyed {
            "the receipt as its own marker"
        } else {
            "the marker in the transaction"
        };
        eprintln!(
            "ripple consumer: {batches} batches of {BATCH}, {at_once} records at once, {marker}…"
        );
        runs.push(measure(&aws, &table, (concurrency, keyed), batches).await);
    }
    client
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    for run in &runs {
        eprintln!(
            "  {} at once, marker in the {}: {:.2} calls/record first, {:.2} redelivered; {:.2} ms/record mean ({:.2} median) first, {:.2} ({:.2}) redelivered",
            run.concurrency,
            run.marker,
            run.first_calls_per_record,
            run.redelivery_calls_per_record,
            run.first.mean_ms_per_record,
            run.first.median_ms_per_record,
            run.redelivery.mean_ms_per_record,
            run.redelivery.median_ms_per_record,
        );
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ripple-consumer.json");
    std::fs::write(&path, serde_json::to_string_pretty(&runs).unwrap()).unwrap();
    eprintln!("wrote {}", path.display());
}

/// The same handler on canned DynamoDB answers: `batches` batches after one to warm up.
fn cpu(runtime: &tokio::runtime::Runtime, batches: usize) {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    let committed = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .output(|| TransactWriteItemsOutput::builder().build())
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&committed]);
    let handler: Handler = SqsConsumer::event_sourced(
        Receipts { keyed: false },
        DynamoEventStore::new(client, "events"),
    );
    runtime.block_on(serve(&handler, batch("cpu-warm", 0)));
    let payloads: Vec<SqsEvent> = (0..batches).map(|n| batch("cpu", n)).collect();
    handle_all(runtime, &handler, payloads);
    eprintln!("{} records handled after the warm-up", batches * BATCH);
}

/// Serves `payloads` one after another: callgrind counts only while this function runs
/// (`--toggle-collect`), so building the events is left out and the runtime's work is in.
#[inline(never)]
fn handle_all(runtime: &tokio::runtime::Runtime, handler: &Handler, payloads: Vec<SqsEvent>) {
    runtime.block_on(async {
        for payload in payloads {
            serve(handler, payload).await;
        }
    });
}

fn batches_arg(args: &[String]) -> usize {
    args.windows(2)
        .find(|pair| pair[0] == "--batches")
        .map_or(50, |pair| {
            pair[1].parse().expect("--batches takes a number")
        })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let batches = batches_arg(&args);
    // One thread, as a Lambda of up to 1,769 MB has one vCPU.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match args.first().map(String::as_str) {
        Some("cost") => runtime.block_on(cost(batches)),
        Some("cpu") => cpu(&runtime, batches),
        _ => {
            eprintln!("usage: consumer_bench cost|cpu [--batches N]");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ripple_kit::store::InMemoryEventStore;

    #[test]
    fn timing_is_per_record_with_the_median_of_an_even_count_between_the_middle_two() {
        let timing = Timing::of(&[10.0, 40.0, 20.0, 30.0]);
        assert_eq!(timing.batches, 4);
        assert!((timing.mean_ms_per_record - 2.5).abs() < 1e-9);
        assert!((timing.median_ms_per_record - 2.5).abs() < 1e-9);
        assert!((Timing::of(&[10.0, 90.0, 20.0]).median_ms_per_record - 2.0).abs() < 1e-9);
    }

    #[tokio::test]
    async fn a_batch_issues_one_receipt_per_payment_and_its_redelivery_none() {
        for keyed in [false, true] {
            let handler = SqsConsumer::event_sourced(Receipts { keyed }, InMemoryEventStore::new());
            let payload = batch("t", 0);
            for _ in 0..2 {
                let response = handler.handle(invocation(payload.clone())).await.unwrap();
                assert!(response.batch_item_failures.is_empty());
            }
            let stored = handler
                .consumer()
                .store()
                .read_stream("Receipt", "t-0-3", 0)
                .await
                .unwrap();
            assert_eq!(
                stored.len(),
                1,
                "one receipt, however often it is delivered (keyed: {keyed})"
            );
        }
    }
}
