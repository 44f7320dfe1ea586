//! The idempotency table in memory (feature `test-twins`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use super::record::{
    Claim, IdempotencyRecord, IdempotencyStore, IdempotencyStoreError, epoch_millis, epoch_secs,
};

/// The idempotency table in memory, with the same claim condition as the DynamoDB adapter.
///
/// For unit tests of handlers and for the local runner.
#[derive(Debug, Default)]
pub struct InMemoryIdempotencyStore {
    records: Mutex<HashMap<String, IdempotencyRecord>>,
}

impl InMemoryIdempotencyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every stored record, in no particular order.
    pub fn records(&self) -> Vec<IdempotencyRecord> {
        self.records
            .lock()
            .map(|records| records.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Stores `record` as is, e.g. to set up a test.
    pub fn insert(&self, record: IdempotencyRecord) {
        if let Ok(mut records) = self.records.lock() {
            records.insert(record.key.clone(), record);
        }
    }

    fn lock(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<String, IdempotencyRecord>>, IdempotencyStoreError>
    {
        self.records
            .lock()
            .map_err(|_| IdempotencyStoreError::Backend("in-memory store poisoned".into()))
    }
}

impl IdempotencyStore for InMemoryIdempotencyStore {
    async fn put_in_progress(
        &self,
        record: &IdempotencyRecord,
        now: SystemTime,
    ) -> Result<Claim, IdempotencyStoreError> {
        let mut records = self.lock()?;
        if let Some(existing) = records.get(&record.key)
            && existing.blocks_claim(epoch_secs(now), epoch_millis(now))
        {
            return Ok(Claim::Taken(Some(existing.clone())));
        }
        records.insert(record.key.clone(), record.clone());
        Ok(Claim::Acquired)
    }

    async fn complete(&self, record: &IdempotencyRecord) -> Result<(), IdempotencyStoreError> {
        let mut records = self.lock()?;
        // UpdateItem semantics: attributes not set here (in_progress_expiry) are kept.
        let Some(entry) = records
            .get_mut(&record.key)
            .filter(|stored| stored.claim == record.claim)
        else {
            return Err(IdempotencyStoreError::NotOurs {
                key: record.key.clone(),
            });
        };
        entry.status = record.status;
        entry.expiration = record.expiration;
        entry.data = record.data.clone();
        if record.validation.is_some() {
            entry.validation = record.validation.clone();
        }
        Ok(())
    }

    async fn mark_sending(&self, claim: &IdempotencyRecord) -> Result<(), IdempotencyStoreError> {
        let mut records = self.lock()?;
        match records
            .get_mut(&claim.key)
            .filter(|stored| stored.claim == claim.claim)
        {
            Some(entry) => {
                entry.sending = true;
                Ok(())
            }
            None => Err(IdempotencyStoreError::NotOurs {
                key: claim.key.clone(),
            }),
        }
    }

    async fn delete(&self, claim: &IdempotencyRecord) -> Result<(), IdempotencyStoreError> {
        let mut records = self.lock()?;
        if records
            .get(&claim.key)
            .is_some_and(|stored| stored.claim == claim.claim)
        {
            records.remove(&claim.key);
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>, IdempotencyStoreError> {
        Ok(self.lock()?.get(key).cloned())
    }
}
