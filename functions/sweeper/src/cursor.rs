//! How far each pass of the sweeper has gone: one item per pass in the events table
//! (`pk = sweep#<pass>`, `sk = 0`, `at` = epoch milliseconds), never moved back.
//!
//! The items are not events (`kind = cursor`): the outbox skips them. A cursor moves forward
//! with a conditional put (`attribute_not_exists(pk) OR at <= :at`): two sweeps overlapping
//! cannot move it back, and a put the SDK retries after its first attempt was stored meets its
//! own value and passes the same condition.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

/// A pass of the sweeper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pass {
    /// Views checked against their streams.
    Views,
    /// Orders checked against their deadline.
    Deadlines,
}

impl Pass {
    /// The cursor item's partition key.
    pub fn key(self) -> &'static str {
        match self {
            Pass::Views => "sweep#views",
            Pass::Deadlines => "sweep#deadlines",
        }
    }
}

/// The cursor table failed.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    /// A stored cursor is not one this function wrote.
    #[error("cursor {key} is unreadable")]
    Corrupt {
        /// The cursor's key.
        key: &'static str,
    },
    /// DynamoDB failed; the SDK already retried.
    #[error("cursor request failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where each pass stands.
pub trait Cursors: Send + Sync {
    /// Up to where `pass` has swept, if it ever has.
    fn get(
        &self,
        pass: Pass,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, CursorError>> + Send;

    /// Records that `pass` has swept up to `to` (a cursor already further stays where it is).
    fn advance(
        &self,
        pass: Pass,
        to: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), CursorError>> + Send;
}

/// The cursors in the events table.
#[derive(Debug, Clone)]
pub struct DynamoCursors {
    client: Client,
    table: String,
}

impl DynamoCursors {
    /// The cursors in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoCursors {
            client,
            table: table.into(),
        }
    }
}

impl Cursors for DynamoCursors {
    async fn get(&self, pass: Pass) -> Result<Option<DateTime<Utc>>, CursorError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pass.key().into()))
            .key("sk", AttributeValue::N("0".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| CursorError::Backend(Box::new(e)))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let millis = match item.get("at") {
            Some(AttributeValue::N(n)) => n.parse::<i64>().ok(),
            _ => None,
        };
        millis
            .and_then(DateTime::from_timestamp_millis)
            .map(Some)
            .ok_or(CursorError::Corrupt { key: pass.key() })
    }

    async fn advance(&self, pass: Pass, to: DateTime<Utc>) -> Result<(), CursorError> {
        let at = AttributeValue::N(to.timestamp_millis().to_string());
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(pass.key().into()))
            .item("sk", AttributeValue::N("0".into()))
            .item("kind", AttributeValue::S("cursor".into()))
            .item("at", at.clone())
            .condition_expression("attribute_not_exists(pk) OR #at <= :at")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":at", at)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            // Another sweep went further meanwhile: the cursor stays there.
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(CursorError::Backend(Box::new(err))),
        }
    }
}

/// The cursors in memory, for tests and tools.
#[derive(Debug, Default)]
pub struct InMemoryCursors {
    at: Mutex<HashMap<Pass, DateTime<Utc>>>,
}

impl Cursors for InMemoryCursors {
    async fn get(&self, pass: Pass) -> Result<Option<DateTime<Utc>>, CursorError> {
        Ok(self.at.lock().ok().and_then(|at| at.get(&pass).copied()))
    }

    async fn advance(&self, pass: Pass, to: DateTime<Utc>) -> Result<(), CursorError> {
        if let Ok(mut at) = self.at.lock() {
            let cursor = at.entry(pass).or_insert(to);
            *cursor = (*cursor).max(to);
        }
        Ok(())
    }
}
