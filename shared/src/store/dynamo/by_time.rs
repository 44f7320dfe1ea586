//! The time index on DynamoDB: a Query per bucket of the range, and BatchGetItem for the events.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use futures::{StreamExt as _, TryStreamExt as _};

use super::DynamoEventStore;
use crate::envelope::Envelope;
use crate::store::item::envelope_from_item;
use crate::store::{
    EventKey, KeysPage, StoreError, TIME_INDEX, TIME_INDEX_SHARDS, TimeCursor, TimeIndexed,
    TimeRange, attr,
};

/// DynamoDB's limit on keys in one BatchGetItem.
const MAX_BATCH_GET: usize = 100;
/// Rounds of retrying keys DynamoDB left unprocessed (throttling) before giving up.
const UNPROCESSED_ROUNDS: u32 = 8;

impl TimeIndexed for DynamoEventStore {
    async fn keys_in(
        &self,
        range: &TimeRange,
        cursor: &TimeCursor,
    ) -> Result<KeysPage, StoreError> {
        let buckets = range.buckets();
        let mut cursor = cursor.clone();
        // Empty buckets are skipped here, so a page is only empty at the end.
        while let Some(bucket) = buckets.get(cursor.bucket) {
            let (keys, last) = self
                .bucket_page(range, bucket, cursor.after.as_ref())
                .await?;
            cursor = match last {
                Some(last) => TimeCursor {
                    bucket: cursor.bucket,
                    after: Some(last),
                },
                None => TimeCursor {
                    bucket: cursor.bucket + 1,
                    after: None,
                },
            };
            if !keys.is_empty() {
                let done = cursor.bucket >= buckets.len();
                return Ok(KeysPage {
                    keys,
                    next: (!done).then_some(cursor),
                });
            }
        }
        Ok(KeysPage::default())
    }

    async fn all_keys_in(&self, range: &TimeRange) -> Result<Vec<EventKey>, StoreError> {
        let found: Vec<Vec<EventKey>> = futures::stream::iter(range.buckets())
            .map(|bucket| self.bucket_keys(range, bucket))
            .buffer_unordered(usize::from(TIME_INDEX_SHARDS))
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn events_at(&self, keys: &[EventKey]) -> Result<Vec<Envelope>, StoreError> {
        let mut events = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_BATCH_GET) {
            let wanted: Vec<_> = chunk.iter().map(table_key).collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(wanted))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Backend(Box::new(e)))?,
            );
            let mut round = 0;
            while let Some(request) = pending.take() {
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| StoreError::Backend(Box::new(e)))?;
                for item in output
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    let stream = match item.get(attr::PK) {
                        Some(AttributeValue::S(pk)) => pk.clone(),
                        _ => String::new(),
                    };
                    let event = envelope_from_item(item)
                        .map_err(|source| StoreError::Corrupt { stream, source })?;
                    events.push(event);
                }
                // Keys DynamoDB did not get to (throttling) come back to be asked again.
                pending = output
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .filter(|k| !k.keys().is_empty())
                    .cloned();
                if pending.is_some() {
                    round += 1;
                    if round > UNPROCESSED_ROUNDS {
                        return Err(StoreError::Backend(
                            "BatchGetItem kept leaving keys unprocessed".into(),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(50 << round.min(6))).await;
                }
            }
        }
        Ok(events)
    }
}

impl DynamoEventStore {
    /// Every key of `bucket` within `range`, page after page.
    async fn bucket_keys(
        &self,
        range: &TimeRange,
        bucket: String,
    ) -> Result<Vec<EventKey>, StoreError> {
        let mut keys = Vec::new();
        let mut after = None;
        loop {
            let (page, last) = self.bucket_page(range, &bucket, after.as_ref()).await?;
            keys.extend(page);
            match last {
                Some(last) => after = Some(last),
                None => return Ok(keys),
            }
        }
    }

    /// One Query page of `bucket` within `range`, after `after`; the last key when there is more.
    async fn bucket_page(
        &self,
        range: &TimeRange,
        bucket: &str,
        after: Option<&(String, EventKey)>,
    ) -> Result<(Vec<EventKey>, Option<(String, EventKey)>), StoreError> {
        let (from, to) = range.key_bounds();
        let start = after.map(|(time_key, key)| index_key(bucket, time_key, key));
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(TIME_INDEX)
            .key_condition_expression("#bucket = :bucket AND #key BETWEEN :from AND :to")
            .expression_attribute_names("#bucket", attr::TIME_BUCKET)
            .expression_attribute_names("#key", attr::TIME_KEY)
            .expression_attribute_values(":bucket", AttributeValue::S(bucket.to_owned()))
            .expression_attribute_values(":from", AttributeValue::S(from))
            .expression_attribute_values(":to", AttributeValue::S(to))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let keys = page
            .items()
            .iter()
            .map(|item| event_key(item).map(|(_, key)| key))
            .collect::<Result<Vec<_>, _>>()?;
        let last = page.last_evaluated_key().map(event_key).transpose()?;
        Ok((keys, last))
    }
}

/// The table key of an event.
fn table_key(key: &EventKey) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (attr::PK.to_owned(), AttributeValue::S(key.stream.clone())),
        (
            attr::SK.to_owned(),
            AttributeValue::N(key.sequence.to_string()),
        ),
    ])
}

/// The index key of an event in `bucket`: where a query continues after it.
fn index_key(bucket: &str, time_key: &str, key: &EventKey) -> HashMap<String, AttributeValue> {
    let mut item = table_key(key);
    item.insert(
        attr::TIME_BUCKET.to_owned(),
        AttributeValue::S(bucket.to_owned()),
    );
    item.insert(
        attr::TIME_KEY.to_owned(),
        AttributeValue::S(time_key.to_owned()),
    );
    item
}

/// The time key and event key of an index item.
fn event_key(item: &HashMap<String, AttributeValue>) -> Result<(String, EventKey), StoreError> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value.clone()),
        _ => None,
    };
    let sequence = match item.get(attr::SK) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    };
    let stream = text(attr::PK).unwrap_or_default();
    match (text(attr::TIME_KEY), sequence) {
        (Some(time_key), Some(sequence)) if !stream.is_empty() => {
            Ok((time_key, EventKey { stream, sequence }))
        }
        _ => Err(StoreError::Backend(
            format!("time index item without pk, sk and time_key: {item:?}").into(),
        )),
    }
}
