//! The event store: append-only streams with optimistic concurrency.
//!
//! One DynamoDB table holds every stream: `pk = "<AggregateType>#<id>"`, `sk = sequence`. An append
//! puts each new event with `attribute_not_exists`, all in one `TransactWriteItems`, so two writers
//! at the same version cannot both win: the loser gets [`StoreError::Conflict`] and retries with
//! [`retry_on_conflict`]. A consumer's dedupe marker rides in the same transaction, which makes
//! "apply this message's effects" and "remember this message" one atomic step.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

use crate::envelope::{Envelope, EnvelopeError, stream_key};

/// Attribute names of the events table.
pub mod attr {
    /// Partition key: `<AggregateType>#<id>` or `dedupe#<consumer>#<event id>`.
    pub const PK: &str = "pk";
    /// Sort key: the event's sequence (0 for a dedupe marker).
    pub const SK: &str = "sk";
    /// `event` or `dedupe`: the outbox publishes only events.
    pub const KIND: &str = "kind";
    /// The event id, for looking an event up by eye.
    pub const ID: &str = "id";
    /// The event type, for looking an event up by eye.
    pub const TYPE: &str = "type";
    /// The whole envelope as JSON text, stored verbatim.
    pub const ENVELOPE: &str = "envelope";
    /// Epoch seconds after which DynamoDB's TTL may delete the item (dedupe markers only).
    pub const EXPIRES_AT: &str = "expires_at";
}

/// `kind` of an event item.
pub const KIND_EVENT: &str = "event";
/// `kind` of a dedupe marker.
pub const KIND_DEDUPE: &str = "dedupe";
/// DynamoDB's limit on the items of one transaction.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// How long a dedupe marker is kept: longer than SQS's 14-day maximum retention.
pub const DEDUPE_RETENTION: Duration = Duration::from_secs(15 * 24 * 3600);

/// "This consumer has handled that source event": stored with the effects, atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupeMarker {
    /// The consumer's stable name, e.g. `inventory`.
    pub consumer: String,
    /// The id of the event whose effects are being appended.
    pub source_event_id: String,
}

impl DedupeMarker {
    /// The marker for `consumer` having handled `source_event_id`.
    pub fn new(consumer: &str, source_event_id: &str) -> Self {
        DedupeMarker {
            consumer: consumer.to_owned(),
            source_event_id: source_event_id.to_owned(),
        }
    }

    /// The marker's partition key, `dedupe#<consumer>#<source event id>`.
    pub fn key(&self) -> String {
        format!("dedupe#{}#{}", self.consumer, self.source_event_id)
    }
}

/// Events to append in one atomic step, possibly to several streams, with an optional marker.
#[derive(Debug, Clone, Default)]
pub struct Append {
    /// The new events; each one's `aggregatetype`, `subject` and `sequence` say where it goes.
    pub events: Vec<Envelope>,
    /// Written in the same transaction; if it already exists the append is a duplicate.
    pub dedupe: Option<DedupeMarker>,
}

impl Append {
    /// An append of `events` with no dedupe marker.
    pub fn events(events: Vec<Envelope>) -> Self {
        Append {
            events,
            dedupe: None,
        }
    }

    /// Adds the marker that makes this append happen at most once per source event.
    pub fn deduplicated_by(mut self, marker: DedupeMarker) -> Self {
        self.dedupe = Some(marker);
        self
    }

    fn item_count(&self) -> usize {
        self.events.len() + usize::from(self.dedupe.is_some())
    }
}

/// What can go wrong talking to the event store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended at one of these positions first: reload and retry.
    #[error("optimistic concurrency conflict on stream {stream}")]
    Conflict {
        /// The stream whose position was taken (or `transaction` when DynamoDB won't say).
        stream: String,
    },
    /// The dedupe marker exists: this source event's effects were appended before.
    #[error("source event {source_event_id} was already handled by {consumer}")]
    Duplicate {
        /// The consumer.
        consumer: String,
        /// The source event.
        source_event_id: String,
    },
    /// The append breaks a rule before reaching DynamoDB.
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// A stored item is not a readable event.
    #[error("corrupt item in stream {stream}")]
    Corrupt {
        /// The stream holding it.
        stream: String,
        /// What is wrong with it.
        #[source]
        source: EnvelopeError,
    },
    /// DynamoDB failed (throttling, network, permissions); the SDK already retried.
    #[error("event store request failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// True for a lost race that a reload-and-retry resolves.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }
}

/// Append-only event streams with optimistic concurrency.
pub trait EventStore: Send + Sync {
    /// Appends all events (and the dedupe marker) atomically, or none of them.
    fn append(&self, append: Append) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every event of one stream with `sequence >= from`, in order, across all result pages.
    fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from: u64,
    ) -> impl Future<Output = Result<Vec<Envelope>, StoreError>> + Send;

    /// Every event of one stream decoded as `E` (an aggregate's event enum), in order.
    /// An event `E` does not know makes the stream [`StoreError::Corrupt`].
    fn load<E>(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> impl Future<Output = Result<Vec<E>, StoreError>> + Send
    where
        E: serde::de::DeserializeOwned,
    {
        async move {
            let events = self.read_stream(aggregate_type, aggregate_id, 1).await?;
            events
                .iter()
                .map(|e| {
                    e.decode::<E>().map_err(|source| StoreError::Corrupt {
                        stream: e.stream_key(),
                        source,
                    })
                })
                .collect()
        }
    }
}

/// A store shared between owners (a handler and a test, say) is the store.
impl<S: EventStore> EventStore for Arc<S> {
    fn append(&self, append: Append) -> impl Future<Output = Result<(), StoreError>> + Send {
        S::append(self, append)
    }

    fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from: u64,
    ) -> impl Future<Output = Result<Vec<Envelope>, StoreError>> + Send {
        S::read_stream(self, aggregate_type, aggregate_id, from)
    }
}

fn validate_append(append: &Append) -> Result<(), StoreError> {
    if append.events.is_empty() {
        return Err(StoreError::InvalidAppend("no events to append".into()));
    }
    if append.item_count() > MAX_TRANSACTION_ITEMS {
        return Err(StoreError::InvalidAppend(format!(
            "{} items in one append; DynamoDB transactions take at most {MAX_TRANSACTION_ITEMS}",
            append.item_count()
        )));
    }
    let mut seen = HashSet::new();
    for event in &append.events {
        event
            .validate()
            .map_err(|e| StoreError::InvalidAppend(e.to_string()))?;
        if !seen.insert((event.stream_key(), event.sequence)) {
            return Err(StoreError::InvalidAppend(format!(
                "two events at {} sequence {}",
                event.stream_key(),
                event.sequence
            )));
        }
    }
    Ok(())
}

/// The DynamoDB item for an event.
pub fn event_item(event: &Envelope) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (attr::PK.into(), AttributeValue::S(event.stream_key())),
        (
            attr::SK.into(),
            AttributeValue::N(event.sequence.to_string()),
        ),
        (attr::KIND.into(), AttributeValue::S(KIND_EVENT.into())),
        (attr::ID.into(), AttributeValue::S(event.id.clone())),
        (
            attr::TYPE.into(),
            AttributeValue::S(event.event_type.clone()),
        ),
        (attr::ENVELOPE.into(), AttributeValue::S(event.to_json())),
    ])
}

/// The DynamoDB item for a dedupe marker, expiring `DEDUPE_RETENTION` after `now_epoch_secs`.
pub fn dedupe_item(marker: &DedupeMarker, now_epoch_secs: i64) -> HashMap<String, AttributeValue> {
    let expires_at = now_epoch_secs.saturating_add(DEDUPE_RETENTION.as_secs() as i64);
    HashMap::from([
        (attr::PK.into(), AttributeValue::S(marker.key())),
        (attr::SK.into(), AttributeValue::N("0".into())),
        (attr::KIND.into(), AttributeValue::S(KIND_DEDUPE.into())),
        (
            attr::EXPIRES_AT.into(),
            AttributeValue::N(expires_at.to_string()),
        ),
    ])
}

/// The envelope stored in an event item.
pub fn envelope_from_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<Envelope, EnvelopeError> {
    match item.get(attr::ENVELOPE) {
        Some(AttributeValue::S(text)) => Envelope::from_json(text),
        _ => Err(EnvelopeError::Invalid(
            "item has no string `envelope` attribute".into(),
        )),
    }
}

/// The envelope in a DynamoDB stream image (`NewImage`), or `None` for an item that is not an
/// event (a dedupe marker): the stream is the outbox, and only events are published.
pub fn envelope_from_stream_image(
    image: &serde_dynamo::Item,
) -> Result<Option<Envelope>, EnvelopeError> {
    use serde_dynamo::AttributeValue as StreamValue;
    match image.get(attr::KIND) {
        Some(StreamValue::S(kind)) if kind == KIND_EVENT => {}
        Some(_) => return Ok(None),
        None => {
            return Err(EnvelopeError::Invalid(
                "stream image has no `kind` attribute (is the stream view NEW_IMAGE?)".into(),
            ));
        }
    }
    match image.get(attr::ENVELOPE) {
        Some(StreamValue::S(text)) => Envelope::from_json(text).map(Some),
        _ => Err(EnvelopeError::Invalid(
            "event item has no string `envelope` attribute".into(),
        )),
    }
}

/// The event store on a DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoEventStore {
    client: Client,
    table: String,
}

impl DynamoEventStore {
    /// The store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoEventStore {
            client,
            table: table.into(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn put_one(
        &self,
        item: HashMap<String, AttributeValue>,
        append: &Append,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        match err.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                // The SDK retried a put whose first attempt committed (its answer was lost): the
                // item in the way is this very event, so the append succeeded.
                let stored_id = failed.item().and_then(|item| item.get(attr::ID));
                let ours = append
                    .events
                    .first()
                    .map(|e| AttributeValue::S(e.id.clone()));
                if stored_id.is_some() && stored_id == ours.as_ref() {
                    return Ok(());
                }
                Err(collision(append, 0))
            }
            _ => Err(StoreError::Backend(Box::new(err))),
        }
    }

    async fn put_transaction(
        &self,
        items: Vec<HashMap<String, AttributeValue>>,
        append: &Append,
    ) -> Result<(), StoreError> {
        let mut writes = Vec::with_capacity(items.len());
        for item in items {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| StoreError::Backend(Box::new(e)))?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        // The first event's id makes an SDK retry of a transaction that did commit return
        // success instead of a false conflict (DynamoDB keeps tokens for ten minutes).
        let token = append.events.first().map(|e| e.id.clone());
        self.client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .set_client_request_token(token)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| transaction_error(err, append))
    }
}

/// Which stored item made the append fail: the dedupe marker is the last item when present.
fn collision(append: &Append, index: usize) -> StoreError {
    match (append.events.get(index), &append.dedupe) {
        (Some(event), _) => StoreError::Conflict {
            stream: event.stream_key(),
        },
        (None, Some(marker)) => StoreError::Duplicate {
            consumer: marker.consumer.clone(),
            source_event_id: marker.source_event_id.clone(),
        },
        (None, None) => StoreError::Conflict {
            stream: "transaction".into(),
        },
    }
}

fn transaction_error<R>(err: SdkError<TransactWriteItemsError, R>, append: &Append) -> StoreError
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        err.as_service_error()
    {
        let reasons = cancelled.cancellation_reasons();
        // A taken dedupe marker wins over event collisions: the whole message was handled before.
        let marker_index = append.events.len();
        if append.dedupe.is_some()
            && reasons.get(marker_index).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
        {
            return collision(append, marker_index);
        }
        if let Some(index) = reasons
            .iter()
            .position(|r| r.code() == Some("ConditionalCheckFailed"))
        {
            return collision(append, index);
        }
        // Another transaction touched the same items at the same moment: a race, not a fault.
        if reasons
            .iter()
            .any(|r| r.code() == Some("TransactionConflict"))
        {
            return StoreError::Conflict {
                stream: "transaction".into(),
            };
        }
    }
    StoreError::Backend(Box::new(err))
}

impl EventStore for DynamoEventStore {
    async fn append(&self, append: Append) -> Result<(), StoreError> {
        validate_append(&append)?;
        let mut items: Vec<_> = append.events.iter().map(event_item).collect();
        if let Some(marker) = &append.dedupe {
            items.push(dedupe_item(marker, chrono::Utc::now().timestamp()));
        }
        if items.len() == 1 {
            // One conditional PutItem costs half the write units of a one-item transaction.
            let item = items.remove(0);
            return self.put_one(item, &append).await;
        }
        self.put_transaction(items, &append).await
    }

    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from: u64,
    ) -> Result<Vec<Envelope>, StoreError> {
        let stream = stream_key(aggregate_type, aggregate_id);
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk >= :from")
            .expression_attribute_values(":pk", AttributeValue::S(stream.clone()))
            .expression_attribute_values(":from", AttributeValue::N(from.to_string()))
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut events = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::Backend(Box::new(e)))?;
            for item in page.items() {
                let event = envelope_from_item(item).map_err(|source| StoreError::Corrupt {
                    stream: stream.clone(),
                    source,
                })?;
                events.push(event);
            }
        }
        Ok(events)
    }
}

/// An event store in memory with the same atomicity and conflict rules as DynamoDB.
///
/// For unit tests of command handlers and for tools that need no persistence.
#[derive(Default)]
pub struct InMemoryEventStore {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    streams: BTreeMap<String, BTreeMap<u64, Envelope>>,
    markers: HashSet<String>,
}

impl InMemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every stored event, stream by stream.
    pub fn all_events(&self) -> Vec<Envelope> {
        match self.state.lock() {
            Ok(state) => state
                .streams
                .values()
                .flat_map(|s| s.values().cloned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl EventStore for InMemoryEventStore {
    async fn append(&self, append: Append) -> Result<(), StoreError> {
        validate_append(&append)?;
        let mut state = self
            .state
            .lock()
            .map_err(|_| StoreError::Backend("in-memory store poisoned".into()))?;
        if let Some(marker) = &append.dedupe
            && state.markers.contains(&marker.key())
        {
            return Err(collision(&append, append.events.len()));
        }
        for (index, event) in append.events.iter().enumerate() {
            let taken = state
                .streams
                .get(&event.stream_key())
                .is_some_and(|s| s.contains_key(&event.sequence));
            if taken {
                return Err(collision(&append, index));
            }
        }
        for event in &append.events {
            state
                .streams
                .entry(event.stream_key())
                .or_default()
                .insert(event.sequence, event.clone());
        }
        if let Some(marker) = &append.dedupe {
            state.markers.insert(marker.key());
        }
        Ok(())
    }

    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from: u64,
    ) -> Result<Vec<Envelope>, StoreError> {
        let state = self
            .state
            .lock()
            .map_err(|_| StoreError::Backend("in-memory store poisoned".into()))?;
        Ok(state
            .streams
            .get(&stream_key(aggregate_type, aggregate_id))
            .map(|s| s.range(from..).map(|(_, e)| e.clone()).collect())
            .unwrap_or_default())
    }
}

/// How a command handler retries after losing a race: bounded, with full jitter.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Upper bound of the first wait; doubles per attempt.
    pub base: Duration,
    /// Upper bound of any wait.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_millis(20),
            cap: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1-based): uniform in `0..=min(cap, base * 2^(attempt-1))`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.cap);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=millis))
    }
}

/// Something a command handler can fail with; conflicts are retried.
pub trait Conflicting {
    /// True when reloading and trying again may succeed.
    fn is_conflict(&self) -> bool;
}

impl Conflicting for StoreError {
    fn is_conflict(&self) -> bool {
        StoreError::is_conflict(self)
    }
}

/// Runs `attempt` (load, decide, append) until it does not end in a conflict, at most
/// `policy.max_attempts` times, sleeping a jittered, growing delay between tries.
pub async fn retry_on_conflict<T, E, F, Fut>(policy: &RetryPolicy, mut attempt: F) -> Result<T, E>
where
    E: Conflicting,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(err) if err.is_conflict() && tries < policy.max_attempts => {
                tracing::debug!(attempt = tries, "conflict, retrying");
                tokio::time::sleep(policy.delay(tries)).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::StreamPosition;
    use serde_json::json;

    #[derive(serde::Serialize)]
    #[serde(tag = "type", content = "data")]
    enum Ev {
        #[serde(rename = "thing.counted")]
        Counted { n: u32 },
    }

    fn event(id: &str, seq: u64) -> Envelope {
        Envelope::encode(
            "test",
            StreamPosition::new("Thing", id, seq),
            &Ev::Counted { n: 1 },
        )
        .unwrap()
    }

    #[test]
    fn event_items_round_trip_through_dynamodb_attributes() {
        let e = event("a", 3);
        let item = event_item(&e);
        assert_eq!(item["pk"], AttributeValue::S("Thing#a".into()));
        assert_eq!(item["sk"], AttributeValue::N("3".into()));
        assert_eq!(item["kind"], AttributeValue::S("event".into()));
        assert_eq!(envelope_from_item(&item).unwrap(), e);
    }

    #[test]
    fn stream_images_give_events_and_skip_markers() {
        use serde_dynamo::AttributeValue as V;
        use std::collections::HashMap as Map;
        let e = event("a", 1);
        let image: serde_dynamo::Item = Map::from([
            ("kind".to_owned(), V::S("event".into())),
            ("envelope".to_owned(), V::S(e.to_json())),
        ])
        .into();
        assert_eq!(envelope_from_stream_image(&image).unwrap(), Some(e));
        let marker: serde_dynamo::Item =
            Map::from([("kind".to_owned(), V::S("dedupe".into()))]).into();
        assert_eq!(envelope_from_stream_image(&marker).unwrap(), None);
        let keys_only: serde_dynamo::Item = Map::from([("pk".to_owned(), V::S("x".into()))]).into();
        assert!(envelope_from_stream_image(&keys_only).is_err());
        let corrupt: serde_dynamo::Item = Map::from([
            ("kind".to_owned(), V::S("event".into())),
            ("envelope".to_owned(), V::S("{".into())),
        ])
        .into();
        assert!(envelope_from_stream_image(&corrupt).is_err());
    }

    #[test]
    fn dedupe_items_expire_after_the_retention() {
        let item = dedupe_item(&DedupeMarker::new("inventory", "e-1"), 1_000);
        assert_eq!(item["pk"], AttributeValue::S("dedupe#inventory#e-1".into()));
        assert_eq!(item["sk"], AttributeValue::N("0".into()));
        assert_eq!(
            item["expires_at"],
            AttributeValue::N((1_000 + DEDUPE_RETENTION.as_secs()).to_string())
        );
    }

    #[test]
    fn appends_are_checked_before_they_are_sent() {
        assert!(matches!(
            validate_append(&Append::default()),
            Err(StoreError::InvalidAppend(_))
        ));
        let twice = Append::events(vec![event("a", 1), event("a", 1)]);
        assert!(matches!(
            validate_append(&twice),
            Err(StoreError::InvalidAppend(_))
        ));
        let many = Append::events((1..=101).map(|s| event("a", s)).collect());
        assert!(matches!(
            validate_append(&many),
            Err(StoreError::InvalidAppend(_))
        ));
    }

    #[tokio::test]
    async fn memory_store_turns_a_taken_position_into_a_conflict_and_keeps_nothing() {
        let store = InMemoryEventStore::new();
        store
            .append(Append::events(vec![event("a", 1)]))
            .await
            .unwrap();
        let err = store
            .append(Append::events(vec![event("b", 1), event("a", 1)]))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { ref stream } if stream == "Thing#a"));
        assert!(store.read_stream("Thing", "b", 1).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn memory_store_reports_a_used_marker_as_duplicate() {
        let store = InMemoryEventStore::new();
        let marker = DedupeMarker::new("c", "src");
        store
            .append(Append::events(vec![event("a", 1)]).deduplicated_by(marker.clone()))
            .await
            .unwrap();
        let err = store
            .append(Append::events(vec![event("a", 2)]).deduplicated_by(marker))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Duplicate { .. }));
        assert_eq!(store.read_stream("Thing", "a", 1).await.unwrap().len(), 1);
        assert_eq!(json!(store.all_events().len()), json!(1));
    }

    #[tokio::test]
    async fn retry_on_conflict_stops_after_max_attempts() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        };
        let mut calls = 0;
        let result: Result<(), StoreError> = retry_on_conflict(&policy, || {
            calls += 1;
            async { Err(StoreError::Conflict { stream: "s".into() }) }
        })
        .await;
        assert!(result.unwrap_err().is_conflict());
        assert_eq!(calls, 3);
    }

    #[test]
    fn retry_delay_is_capped() {
        let policy = RetryPolicy::default();
        for attempt in 1..40 {
            assert!(policy.delay(attempt) <= policy.cap);
        }
    }
}
