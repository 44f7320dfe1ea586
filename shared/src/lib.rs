//! # shared — what Powertools gives Python Lambdas, for Rust, plus an event store
//!
//! - [`envelope`]: the CloudEvents 1.0 event envelope, typed payloads, upcasting;
//! - [`store`]: append-only event streams on DynamoDB with optimistic concurrency and atomic
//!   dedupe markers, and an in-memory twin for tests;
//! - [`idempotency`]: at-most-once side effects outside the store (payment gateway, e-mail), with
//!   stored results, payload validation and an in-progress expiry from the Lambda deadline;
//! - [`publish`]: `PublishBatch` to SNS with filterable message attributes;
//! - [`parse`]: SQS record → SNS delivery → envelope → your event type;
//! - [`batch`]: partial batch responses for SQS standard, SQS FIFO and DynamoDB streams, and
//!   exponential redelivery backoff for failed SQS records;
//! - [`consumer`]: a queue consumer's per-message handler lifted to a batch, and its outcome
//!   counted and logged the same way in every function;
//! - [`config`]: settings from the environment ([`settings!`] declares a function's), the AWS SDK
//!   config built once;
//! - [`lambda`]: the cold start every `main` does (logs, settings, SDK config, handler);
//! - [`telemetry`]: JSON logs, CloudWatch EMF metrics, error chains for log lines;
//! - `testing` (feature `test-support`): fixtures for handler tests.
//!
//! Every AWS adapter has a trait in front of it and an in-memory twin with the same semantics,
//! so handlers are tested without AWS; the examples below use the twins.
//!
//! ## Envelope: encode a typed event, decode it on the other side
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use ripple_kit::{Envelope, StreamPosition};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! #[serde(tag = "type", content = "data")]
//! enum OrderEvent {
//!     #[serde(rename = "order.placed")]
//!     Placed { total_cents: u64 },
//! }
//!
//! let placed = Envelope::encode(
//!     "ripple/orders-api",
//!     StreamPosition::new("Order", "o-1", 1),
//!     &OrderEvent::Placed { total_cents: 2500 },
//! )?;
//! assert_eq!(placed.event_type, "order.placed");
//! assert_eq!(placed.stream_key(), "Order#o-1");
//!
//! // On the wire it is plain CloudEvents JSON; unknown attributes survive the round trip.
//! let received = Envelope::from_json(&placed.to_json())?;
//! assert_eq!(received.decode::<OrderEvent>()?, OrderEvent::Placed { total_cents: 2500 });
//! # Ok::<(), ripple_kit::envelope::EnvelopeError>(())
//! ```
//!
//! ## Event store: append with optimistic concurrency
//!
//! ```
//! use ripple_kit::store::InMemoryEventStore;
//! use ripple_kit::{Append, Envelope, EventStore, StoreError, StreamPosition};
//! # #[derive(serde::Serialize)]
//! # #[serde(tag = "type", content = "data")]
//! # enum OrderEvent { #[serde(rename = "order.placed")] Placed { total_cents: u64 } }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = InMemoryEventStore::new(); // DynamoEventStore::new(client, table) in Lambda
//! let at = StreamPosition::new("Order", "o-1", 1);
//! let placed = Envelope::encode("ripple/orders-api", at.clone(), &OrderEvent::Placed { total_cents: 2500 })?;
//! store.append(Append::events(vec![placed])).await?;
//!
//! // A second writer at the same version loses the race: reload and retry
//! // (`store::retry_on_conflict` does that with jittered backoff).
//! let late = Envelope::encode("ripple/orders-api", at, &OrderEvent::Placed { total_cents: 1 })?;
//! let err = store.append(Append::events(vec![late])).await.unwrap_err();
//! assert!(matches!(err, StoreError::Conflict { .. }));
//! assert_eq!(store.read_stream("Order", "o-1", 1).await?.len(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! ## Parse: from an SQS record to your event type
//!
//! ```
//! use aws_lambda_events::event::sqs::SqsMessage;
//! use ripple_kit::parse::{ParseError, typed_from_sqs_plain};
//! # use ripple_kit::{Envelope, StreamPosition};
//! # #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
//! # #[serde(tag = "type", content = "data")]
//! # enum OrderEvent { #[serde(rename = "order.placed")] Placed { total_cents: u64 } }
//! # let envelope = Envelope::encode("t", StreamPosition::new("Order", "o-1", 1), &OrderEvent::Placed { total_cents: 2500 }).unwrap();
//! let mut record = SqsMessage::default();
//! record.body = Some(envelope.to_json()); // raw delivery, or SNS's JSON wrapper: both work
//! let (envelope, event): (Envelope, OrderEvent) = typed_from_sqs_plain(&record)?;
//! assert_eq!(event, OrderEvent::Placed { total_cents: 2500 });
//!
//! record.body = Some("{not json".into()); // a poison message fails alone, with its reason
//! assert!(matches!(typed_from_sqs_plain::<OrderEvent>(&record), Err(ParseError::NotJson(_))));
//! # Ok::<(), ParseError>(())
//! ```
//!
//! ## Batch: one record, then the batch, with partial failures
//!
//! ```
//! use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
//! use ripple_kit::batch::{QueueKind, process_sqs};
//!
//! async fn handle(record: SqsMessage) -> Result<(), String> {
//!     match record.body.as_deref() {
//!         Some("poison") => Err("cannot parse".into()),
//!         _ => Ok(()),
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut event = SqsEvent::default();
//! for (id, body) in [("m-1", "fine"), ("m-2", "poison"), ("m-3", "fine")] {
//!     let mut record = SqsMessage::default();
//!     record.message_id = Some(id.into());
//!     record.body = Some(body.into());
//!     event.records.push(record);
//! }
//! let kind = QueueKind::detect(&event, 4); // FIFO when the queue ARN ends in .fifo
//! let response = process_sqs(event, kind, handle).await?;
//! assert_eq!(response.batch_item_failures.len(), 1);
//! assert_eq!(response.batch_item_failures[0].item_identifier, "m-2");
//! # Ok(())
//! # }
//! ```
//!
//! With an SQS client, failed records can also come back later and later:
//!
//! ```no_run
//! # use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
//! # use ripple_kit::batch::{BatchFailed, QueueKind, Redelivery, RedeliveryBackoff, process_sqs_with_backoff};
//! # async fn handle(record: SqsMessage) -> Result<(), String> { Ok(()) }
//! # async fn example(sdk: aws_config::SdkConfig, event: SqsEvent) -> Result<SqsBatchResponse, BatchFailed> {
//! // Built once per execution environment (it caches the queue URL):
//! let redelivery = Redelivery::new(aws_sdk_sqs::Client::new(&sdk), RedeliveryBackoff::default());
//! // Per invocation: 30 s, 1 min, 2 min, … up to 15 min, by ApproximateReceiveCount.
//! process_sqs_with_backoff(event, QueueKind::default(), &redelivery, handle).await
//! # }
//! ```
//!
//! ## Idempotency: an outside effect at most once
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use serde_json::json;
//! use ripple_kit::idempotency::{Idempotency, IdempotencyError, InMemoryIdempotencyStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // DynamoIdempotencyStore::new(client, table) in Lambda; the name is the key prefix, chosen once.
//! let payments = Idempotency::new(InMemoryIdempotencyStore::new(), "payments.capture")
//!     .with_local_cache(256);
//! let request = json!({"order_id": "o-1", "amount_cents": 2500});
//! let deadline = SystemTime::now() + Duration::from_secs(10); // event.context.deadline()
//!
//! let capture = || async { Ok::<_, String>(json!({"charge_id": "ch-1"})) };
//! let first = payments.run(&request["order_id"], &request, deadline, capture).await.unwrap();
//! // A redelivery replays the stored result; the gateway is not called again.
//! let again = payments
//!     .run(&request["order_id"], &request, deadline, || async { Err::<serde_json::Value, _>("not called".to_owned()) })
//!     .await
//!     .unwrap();
//! assert_eq!(again, first);
//!
//! // The same key with another payload is refused.
//! let tampered = json!({"order_id": "o-1", "amount_cents": 1});
//! let err = payments.run(&tampered["order_id"], &tampered, deadline, capture).await.unwrap_err();
//! assert!(matches!(err, IdempotencyError::PayloadMismatch { .. }));
//! # }
//! ```
//!
//! ## Publish: act on the report
//!
//! [`publish::Publisher::publish`] never fails as a whole: it reports, in order, what was
//! published, what SNS refused and what it did not attempt after a failure. The outbox turns the
//! first event that needs a retry into the stream's batch item failure:
//!
//! ```
//! use ripple_kit::batch::stream_failure_at;
//! use ripple_kit::publish::{FailedPublish, PublishReport};
//! # use aws_lambda_events::event::dynamodb::EventRecord;
//! # let records: Vec<EventRecord> = (1..=3).map(|i| { let mut r = EventRecord::default(); r.change.sequence_number = Some(format!("{i}00")); r }).collect();
//! # let event_ids = ["e-1", "e-2", "e-3"];
//!
//! // What `SnsPublisher::publish(&events).await` returned for events e-1, e-2, e-3:
//! let report = PublishReport {
//!     published: vec!["e-1".into()],
//!     failed: vec![FailedPublish {
//!         event_id: "e-2".into(),
//!         code: "InternalError".into(),
//!         reason: "try again".into(),
//!         permanent: false,
//!     }],
//!     not_attempted: vec!["e-3".into()],
//! };
//! assert!(!report.all_published());
//! let first_failed = event_ids.iter().position(|id| report.needs_retry(id));
//! let response = stream_failure_at(&records, first_failed); // the shard resumes at e-2
//! assert_eq!(response.batch_item_failures[0].item_identifier.as_deref(), Some("200"));
//! ```
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod batch;
pub mod config;
pub mod consumer;
pub mod envelope;
pub mod idempotency;
pub mod lambda;
pub mod parse;
pub mod publish;
pub mod store;
pub mod telemetry;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

pub use envelope::{Envelope, StreamPosition};
pub use idempotency::{Idempotency, IdempotencyError};
pub use store::{Append, DedupeMarker, EventStore, StoreError};

/// The README's code blocks, compiled as doctests so the examples there cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
