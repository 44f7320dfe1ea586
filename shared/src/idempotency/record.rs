//! Idempotency records, and the store they live in.

use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a record is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// An invocation has claimed the key and is running the effect.
    InProgress,
    /// The effect succeeded; `data` holds its result.
    Completed,
}

impl Status {
    /// The stored form: `INPROGRESS` or `COMPLETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "INPROGRESS",
            Status::Completed => "COMPLETED",
        }
    }

    /// The status from its stored form.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "INPROGRESS" => Some(Status::InProgress),
            "COMPLETED" => Some(Status::Completed),
            _ => None,
        }
    }
}

/// One row of the idempotency table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// `<name>#<sha256 hex>`.
    pub key: String,
    /// In progress or completed.
    pub status: Status,
    /// Epoch seconds after which the record is void (and TTL may delete it).
    pub expiration: i64,
    /// Epoch milliseconds after which an `INPROGRESS` record may be taken over.
    pub in_progress_expiry: Option<i64>,
    /// The effect's result as JSON text, once completed.
    pub data: Option<String>,
    /// sha256 hex of the payload, to refuse a reused key with another payload.
    pub validation: Option<String>,
    /// The token of the call that claimed the key: a retried put that finds its own claim in the
    /// way knows it holds the key, and completing or releasing a record names the claim, so a
    /// call never completes or deletes a claim another call has taken over.
    pub claim: Option<String>,
    /// Set ([`IdempotencyStore::mark_sending`]) right before an
    /// [at-most-once](crate::Idempotency::at_most_once) effect starts: an abandoned claim without
    /// it died before its effect could have happened, so it may be taken over.
    pub sending: bool,
}

impl IdempotencyRecord {
    /// True when the record is past its `expiration` and counts as absent.
    pub fn is_expired(&self, now_epoch_secs: i64) -> bool {
        self.expiration < now_epoch_secs
    }

    /// True for an `INPROGRESS` record whose invocation timed out or died without finishing after
    /// it marked its effect as starting (`sending`): that effect may or may not have happened.
    /// One that died before the mark never ran it.
    pub fn is_abandoned(&self, now_epoch_secs: i64, now_epoch_millis: i64) -> bool {
        self.status == Status::InProgress
            && self.sending
            && !self.is_expired(now_epoch_secs)
            && self
                .in_progress_expiry
                .is_some_and(|expiry| expiry < now_epoch_millis)
    }

    /// True when the record still stops a new claim: the condition of the claiming put, in Rust.
    ///
    /// A claim succeeds when there is no record, or it expired, or it is `INPROGRESS` past its
    /// `in_progress_expiry` (the invocation that claimed it has timed out).
    pub fn blocks_claim(&self, now_epoch_secs: i64, now_epoch_millis: i64) -> bool {
        let abandoned = self.status == Status::InProgress
            && self
                .in_progress_expiry
                .is_some_and(|expiry| expiry < now_epoch_millis);
        !(self.is_expired(now_epoch_secs) || abandoned)
    }
}

/// What the idempotency table failed with.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyStoreError {
    /// The record is no longer this call's claim: it expired and another call took it over
    /// (or it was removed). Nothing was written.
    #[error("idempotency record {key} is no longer this call's claim")]
    NotOurs {
        /// The record's key.
        key: String,
    },
    /// A stored item is not a record this module wrote.
    #[error("malformed idempotency record {key:?}: {reason}")]
    Malformed {
        /// The record's key (empty when the item has none).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// DynamoDB failed (throttling, network, permissions); the SDK already retried.
    #[error("idempotency store request failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The outcome of trying to claim a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The `INPROGRESS` record is ours: run the effect.
    Acquired,
    /// A live record holds the key. `None` when the store could not return it in the same round
    /// trip (some emulators ignore `ReturnValuesOnConditionCheckFailure`): read it with
    /// [`IdempotencyStore::get`].
    Taken(Option<IdempotencyRecord>),
}

/// The persistence behind [`Idempotency`](crate::Idempotency): DynamoDB in Lambda, memory in tests.
pub trait IdempotencyStore: Send + Sync {
    /// Puts `record` (an `INPROGRESS` one) unless a record that [blocks a
    /// claim](IdempotencyRecord::blocks_claim) at `now` holds its key.
    fn put_in_progress(
        &self,
        record: &IdempotencyRecord,
        now: SystemTime,
    ) -> impl Future<Output = Result<Claim, IdempotencyStoreError>> + Send;

    /// Marks the record `COMPLETED` with its result and new expiration, if it still is the claim
    /// `record.claim` ([`IdempotencyStoreError::NotOurs`] otherwise). Retrying it is harmless:
    /// the condition names the claim, which a completed record keeps.
    fn complete(
        &self,
        record: &IdempotencyRecord,
    ) -> impl Future<Output = Result<(), IdempotencyStoreError>> + Send;

    /// Marks the claim `claim.claim` as starting its effect (`sending`), if it still is that claim
    /// ([`IdempotencyStoreError::NotOurs`] otherwise). Retrying it is harmless.
    fn mark_sending(
        &self,
        claim: &IdempotencyRecord,
    ) -> impl Future<Output = Result<(), IdempotencyStoreError>> + Send;

    /// Removes the claim `claim` so the next delivery runs the effect again; a record that is
    /// gone already (a retried delete), or is another call's claim, is left as it is.
    fn delete(
        &self,
        claim: &IdempotencyRecord,
    ) -> impl Future<Output = Result<(), IdempotencyStoreError>> + Send;

    /// The record under `key`, expired or not (TTL deletes lazily).
    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, IdempotencyStoreError>> + Send;
}

impl<S: IdempotencyStore> IdempotencyStore for Arc<S> {
    fn put_in_progress(
        &self,
        record: &IdempotencyRecord,
        now: SystemTime,
    ) -> impl Future<Output = Result<Claim, IdempotencyStoreError>> + Send {
        S::put_in_progress(self, record, now)
    }

    fn complete(
        &self,
        record: &IdempotencyRecord,
    ) -> impl Future<Output = Result<(), IdempotencyStoreError>> + Send {
        S::complete(self, record)
    }

    fn mark_sending(
        &self,
        claim: &IdempotencyRecord,
    ) -> impl Future<Output = Result<(), IdempotencyStoreError>> + Send {
        S::mark_sending(self, claim)
    }

    fn delete(
        &self,
        claim: &IdempotencyRecord,
    ) -> impl Future<Output = Result<(), IdempotencyStoreError>> + Send {
        S::delete(self, claim)
    }

    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, IdempotencyStoreError>> + Send {
        S::get(self, key)
    }
}

pub(crate) fn epoch_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub(crate) fn epoch_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_blocks_a_claim_until_it_expires_or_its_invocation_times_out() {
        let record = IdempotencyRecord {
            key: "k".into(),
            status: Status::InProgress,
            expiration: 100,
            in_progress_expiry: Some(50_000),
            data: None,
            validation: None,
            claim: None,
            sending: false,
        };
        assert!(record.blocks_claim(40, 40_000));
        assert!(!record.blocks_claim(51, 51_000), "the claimer timed out");
        assert!(!record.blocks_claim(101, 0), "expired");
        let completed = IdempotencyRecord {
            status: Status::Completed,
            ..record
        };
        assert!(
            completed.blocks_claim(51, 51_000),
            "completed records ignore the deadline"
        );
    }
}
