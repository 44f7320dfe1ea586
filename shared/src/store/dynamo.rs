//! The event store on a DynamoDB table (feature `store-dynamodb`).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

use super::item::{dedupe_item, envelope_from_item, event_item, snapshot_from_item, snapshot_item};
use super::{Append, EventStore, Snapshot, StoreError, attr, collision};
use crate::envelope::{Envelope, stream_key};

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
                Err(match failed.item().map(envelope_from_item) {
                    Some(Ok(stored)) => append.taken_by(&stored),
                    _ => collision(append, 0),
                })
            }
            _ => Err(StoreError::Backend(Box::new(err))),
        }
    }

    /// A transaction item checking `condition` on the item at `stream`, `sequence`.
    fn check(
        &self,
        stream: String,
        sequence: u64,
        condition: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key(attr::PK, AttributeValue::S(stream))
            .key(attr::SK, AttributeValue::N(sequence.to_string()))
            .condition_expression(condition)
            .build()
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
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
        for unchanged in &append.unchanged {
            // Nothing stored after the version the decision read.
            let check = self.check(
                unchanged.stream_key(),
                unchanged.version + 1,
                "attribute_not_exists(pk)",
            )?;
            writes.push(check);
        }
        for (stream, version) in append.predecessors() {
            // The event a presumed position follows is there.
            writes.push(self.check(stream, version, "attribute_exists(pk)")?);
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
        // A hot partition: the items are fine, the transaction must wait and go again.
        if reasons.iter().any(|r| {
            matches!(
                r.code(),
                Some("ThrottlingError" | "ProvisionedThroughputExceeded")
            )
        }) {
            return StoreError::Throttled;
        }
    }
    StoreError::Backend(Box::new(err))
}

impl EventStore for DynamoEventStore {
    async fn append(&self, append: Append) -> Result<(), StoreError> {
        append.validate()?;
        let mut items: Vec<_> = append.events.iter().map(event_item).collect();
        if let Some(marker) = &append.dedupe {
            items.push(dedupe_item(marker, chrono::Utc::now().timestamp()));
        }
        if items.len() == 1 && append.unchanged.is_empty() && append.predecessors().is_empty() {
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

    async fn read_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(
                attr::PK,
                AttributeValue::S(stream_key(aggregate_type, aggregate_id)),
            )
            .key(attr::SK, AttributeValue::N("0".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(output.item().and_then(snapshot_from_item))
    }

    async fn write_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        let stream = stream_key(aggregate_type, aggregate_id);
        // The same rule as `Snapshot::replaced_by`: never an older snapshot over a newer one.
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(snapshot_item(&stream, snapshot)))
            .condition_expression(
                "attribute_not_exists(pk) OR #version <= :version OR #schema <> :schema",
            )
            .expression_attribute_names("#version", attr::VERSION)
            .expression_attribute_names("#schema", attr::SCHEMA)
            .expression_attribute_values(
                ":version",
                AttributeValue::N(snapshot.version.to_string()),
            )
            .expression_attribute_values(":schema", AttributeValue::N(snapshot.schema.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // A newer snapshot is stored: this one is not needed.
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(StoreError::Backend(Box::new(err))),
        }
    }
}

mod by_time;
#[cfg(test)]
mod sdk_tests;
