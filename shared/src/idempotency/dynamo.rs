//! The idempotency table on DynamoDB (feature `idempotency-dynamodb`).

use std::collections::HashMap;
use std::time::SystemTime;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::record::{
    Claim, IdempotencyRecord, IdempotencyStore, IdempotencyStoreError, Status, epoch_millis,
    epoch_secs,
};

/// Attribute names of the idempotency table.
pub(crate) mod attr {
    /// Hash key: `<name>#<sha256 hex of the key material>`.
    pub(crate) const ID: &str = "id";
    /// Epoch seconds after which the record is void; the table's TTL attribute.
    pub(crate) const EXPIRATION: &str = "expiration";
    /// Epoch milliseconds after which an `INPROGRESS` record may be taken over.
    pub(crate) const IN_PROGRESS_EXPIRY: &str = "in_progress_expiry";
    /// `INPROGRESS` or `COMPLETED`.
    pub(crate) const STATUS: &str = "status";
    /// The effect's result as JSON text.
    pub(crate) const DATA: &str = "data";
    /// sha256 hex of the payload's canonical JSON.
    pub(crate) const VALIDATION: &str = "validation";
    /// The claiming call's token.
    pub(crate) const CLAIM: &str = "claim";
    /// Set when an at-most-once effect starts.
    pub(crate) const SENDING: &str = "sending";
}

/// The DynamoDB item for a record.
pub(crate) fn record_to_item(record: &IdempotencyRecord) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (attr::ID.into(), AttributeValue::S(record.key.clone())),
        (
            attr::EXPIRATION.into(),
            AttributeValue::N(record.expiration.to_string()),
        ),
        (
            attr::STATUS.into(),
            AttributeValue::S(record.status.as_str().into()),
        ),
    ]);
    if let Some(expiry) = record.in_progress_expiry {
        item.insert(
            attr::IN_PROGRESS_EXPIRY.into(),
            AttributeValue::N(expiry.to_string()),
        );
    }
    if let Some(data) = &record.data {
        item.insert(attr::DATA.into(), AttributeValue::S(data.clone()));
    }
    if let Some(validation) = &record.validation {
        item.insert(
            attr::VALIDATION.into(),
            AttributeValue::S(validation.clone()),
        );
    }
    if let Some(claim) = &record.claim {
        item.insert(attr::CLAIM.into(), AttributeValue::S(claim.clone()));
    }
    if record.sending {
        item.insert(attr::SENDING.into(), AttributeValue::Bool(true));
    }
    item
}

/// The record in a DynamoDB item.
pub(crate) fn record_from_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<IdempotencyRecord, IdempotencyStoreError> {
    let key = match item.get(attr::ID) {
        Some(AttributeValue::S(key)) => key.clone(),
        _ => {
            return Err(IdempotencyStoreError::Malformed {
                key: String::new(),
                reason: "no string `id`".into(),
            });
        }
    };
    let malformed = |reason: &str| IdempotencyStoreError::Malformed {
        key: key.clone(),
        reason: reason.to_owned(),
    };
    let string = |name: &str| match item.get(name) {
        Some(AttributeValue::S(text)) => Ok(Some(text.clone())),
        None => Ok(None),
        Some(_) => Err(malformed(&format!("`{name}` is not a string"))),
    };
    let number = |name: &str| match item.get(name) {
        Some(AttributeValue::N(n)) => n
            .parse::<i64>()
            .map(Some)
            .map_err(|_| malformed(&format!("`{name}` is not an integer"))),
        None => Ok(None),
        Some(_) => Err(malformed(&format!("`{name}` is not a number"))),
    };
    let status = string(attr::STATUS)?
        .as_deref()
        .and_then(Status::parse)
        .ok_or_else(|| malformed("`status` is not INPROGRESS or COMPLETED"))?;
    let expiration = number(attr::EXPIRATION)?.ok_or_else(|| malformed("no `expiration`"))?;
    Ok(IdempotencyRecord {
        status,
        expiration,
        in_progress_expiry: number(attr::IN_PROGRESS_EXPIRY)?,
        data: string(attr::DATA)?,
        validation: string(attr::VALIDATION)?,
        claim: string(attr::CLAIM)?,
        sending: matches!(item.get(attr::SENDING), Some(AttributeValue::Bool(true))),
        key,
    })
}

const CLAIM_CONDITION: &str = "attribute_not_exists(#id) OR #expiration < :now \
     OR (#status = :inprogress AND #in_progress_expiry < :now_ms)";

/// The idempotency table on DynamoDB (layout in the [module docs](crate::idempotency)).
#[derive(Clone, Debug)]
pub struct DynamoIdempotencyStore {
    client: Client,
    table: String,
}

impl DynamoIdempotencyStore {
    /// The store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoIdempotencyStore {
            client,
            table: table.into(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

fn backend<E: std::error::Error + Send + Sync + 'static>(err: E) -> IdempotencyStoreError {
    IdempotencyStoreError::Backend(Box::new(err))
}

/// The answer to an update conditioned on the record's claim: a failed condition means the
/// record is no longer this run's.
fn under_claim<O, R>(
    answer: Result<O, SdkError<UpdateItemError, R>>,
    key: &str,
) -> Result<(), IdempotencyStoreError>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match answer {
        Ok(_) => Ok(()),
        Err(err)
            if matches!(
                err.as_service_error(),
                Some(UpdateItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Err(IdempotencyStoreError::NotOurs {
                key: key.to_owned(),
            })
        }
        Err(err) => Err(backend(err)),
    }
}

impl IdempotencyStore for DynamoIdempotencyStore {
    async fn put_in_progress(
        &self,
        record: &IdempotencyRecord,
        now: SystemTime,
    ) -> Result<Claim, IdempotencyStoreError> {
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record_to_item(record)))
            .condition_expression(CLAIM_CONDITION)
            // `status` and `data` are DynamoDB reserved words; every name goes through `#` alike.
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#expiration", attr::EXPIRATION)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#in_progress_expiry", attr::IN_PROGRESS_EXPIRY)
            .expression_attribute_values(":now", AttributeValue::N(epoch_secs(now).to_string()))
            .expression_attribute_values(
                ":now_ms",
                AttributeValue::N(epoch_millis(now).to_string()),
            )
            .expression_attribute_values(
                ":inprogress",
                AttributeValue::S(Status::InProgress.as_str().into()),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Claim::Acquired),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    let existing = failed.item().map(record_from_item).transpose()?;
                    Ok(Claim::Taken(existing))
                }
                _ => Err(backend(err)),
            },
        }
    }

    async fn complete(&self, record: &IdempotencyRecord) -> Result<(), IdempotencyStoreError> {
        let mut expression =
            "SET #status = :status, #expiration = :expiration, #data = :data".to_owned();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::ID, AttributeValue::S(record.key.clone()))
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#expiration", attr::EXPIRATION)
            .expression_attribute_names("#data", attr::DATA)
            .expression_attribute_values(
                ":status",
                AttributeValue::S(record.status.as_str().into()),
            )
            .expression_attribute_values(
                ":expiration",
                AttributeValue::N(record.expiration.to_string()),
            )
            .expression_attribute_values(
                ":data",
                AttributeValue::S(record.data.clone().unwrap_or_else(|| "null".into())),
            );
        if let Some(validation) = &record.validation {
            expression.push_str(", #validation = :validation");
            update = update
                .expression_attribute_names("#validation", attr::VALIDATION)
                .expression_attribute_values(":validation", AttributeValue::S(validation.clone()));
        }
        // The condition names the claim, not the status: a completion retried after its first
        // attempt was stored meets its own record, still under its claim, and passes again.
        if let Some(claim) = &record.claim {
            update = update
                .condition_expression("#claim = :claim")
                .expression_attribute_names("#claim", attr::CLAIM)
                .expression_attribute_values(":claim", AttributeValue::S(claim.clone()));
        }
        under_claim(
            update.update_expression(expression).send().await,
            &record.key,
        )
    }

    async fn mark_sending(&self, claim: &IdempotencyRecord) -> Result<(), IdempotencyStoreError> {
        let token = claim.claim.clone().unwrap_or_default();
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::ID, AttributeValue::S(claim.key.clone()))
            .update_expression("SET #sending = :sending")
            .condition_expression("#claim = :claim")
            .expression_attribute_names("#sending", attr::SENDING)
            .expression_attribute_names("#claim", attr::CLAIM)
            .expression_attribute_values(":sending", AttributeValue::Bool(true))
            .expression_attribute_values(":claim", AttributeValue::S(token));
        under_claim(update.send().await, &claim.key)
    }

    async fn delete(&self, claim: &IdempotencyRecord) -> Result<(), IdempotencyStoreError> {
        let mut delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(attr::ID, AttributeValue::S(claim.key.clone()));
        if let Some(token) = &claim.claim {
            delete = delete
                .condition_expression("#claim = :claim")
                .expression_attribute_names("#claim", attr::CLAIM)
                .expression_attribute_values(":claim", AttributeValue::S(token.clone()));
        }
        match delete.send().await {
            Ok(_) => Ok(()),
            // Gone (a retried delete whose first attempt removed it) or another call's claim:
            // either way there is nothing of ours left to remove.
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(DeleteItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                tracing::debug!(key = %claim.key, "idempotency record already gone or taken over; left as it is");
                Ok(())
            }
            Err(err) => Err(backend(err)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>, IdempotencyStoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::ID, AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        output.item().map(record_from_item).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_dynamodb_items() {
        let record = IdempotencyRecord {
            key: "n#abc".into(),
            status: Status::Completed,
            expiration: 1_700_000_000,
            in_progress_expiry: Some(1_700_000_000_123),
            data: Some(r#"{"ok":true}"#.into()),
            validation: Some("ff".into()),
            claim: Some("0190c1e2-7b2a-7c3d-8e4f-5a6b7c8d9e0f".into()),
            sending: true,
        };
        let item = record_to_item(&record);
        assert_eq!(item["status"], AttributeValue::S("COMPLETED".into()));
        assert_eq!(
            item["in_progress_expiry"],
            AttributeValue::N("1700000000123".into())
        );
        assert_eq!(record_from_item(&item).unwrap(), record);
        let mut bad = item.clone();
        bad.insert("status".into(), AttributeValue::S("EXPIRED".into()));
        assert!(matches!(
            record_from_item(&bad),
            Err(IdempotencyStoreError::Malformed { key, .. }) if key == "n#abc"
        ));
    }
}

#[cfg(test)]
mod sdk_tests;
