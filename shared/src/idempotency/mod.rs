//! Idempotency for side effects outside the event store: a payment gateway call, a notification.
//!
//! Event-sourced consumers get exactly-once for free from the dedupe marker in their append
//! transaction ([`crate::store::DedupeMarker`]). An effect that leaves the system cannot ride in that
//! transaction, so [`Idempotency::run`] brackets it with a record in its own table:
//!
//! 1. a conditional put of an `INPROGRESS` record claims the key; its `in_progress_expiry` is the
//!    invocation's deadline, so a Lambda that died mid-effect blocks retries only until it would
//!    have timed out anyway;
//! 2. the effect runs;
//! 3. success turns the record `COMPLETED` with the result stored as JSON text; failure deletes the
//!    record, so the redelivered message runs the effect again. Both name the call's claim token,
//!    so neither touches a record another call has taken over in the meantime;
//! 4. a repeat finds the record in the same round trip (`ReturnValuesOnConditionCheckFailure`):
//!    `COMPLETED` returns the stored result without running the effect, a live `INPROGRESS` is
//!    [`IdempotencyError::AlreadyInProgress`], and a payload whose hash differs from the stored one
//!    is [`IdempotencyError::PayloadMismatch`];
//! 5. every write may be retried by the SDK after its first attempt was stored and its answer
//!    lost, and each recognises its own earlier attempt: a claim that finds its own token in the
//!    way holds the key, a completion's condition (the token) still holds for its retry, and a
//!    delete that finds the record gone is done.
//!
//! An `INPROGRESS` record past its expiry was abandoned: its invocation died, before or after the
//! effect. By default the next call takes it over and runs the effect again, which is right for an
//! effect the other side deduplicates (a payment gateway given the same idempotency key) or that
//! is harmless twice. An effect that must never happen twice and that nothing downstream can
//! deduplicate (an e-mail to a person) uses [`Idempotency::at_most_once`] instead: the claim is
//! marked right before the effect starts, and an abandoned record so marked is never taken over
//! (the call is [`IdempotencyError::Abandoned`]); one that died before the mark, whose effect
//! cannot have happened, is taken over as usual.
//!
//! The key is `<name>#<sha256 of the canonical JSON of the key material>`. The name is chosen by the
//! caller (e.g. `notifications.order-confirmed`) and never derived from a function or module path,
//! so moving or renaming code does not change keys and replay what was already done.
//!
//! # Table layout
//!
//! One table per system (or per function), declared in `template.yaml` as:
//!
//! | attribute            | type | meaning                                                            |
//! |----------------------|------|--------------------------------------------------------------------|
//! | `id`                 | S    | hash key: `<name>#<sha256 hex>`                                    |
//! | `expiration`         | N    | epoch seconds; the table's TTL attribute (default: 1 hour after)  |
//! | `in_progress_expiry` | N    | epoch **milliseconds**: the Lambda deadline of the claiming call   |
//! | `status`             | S    | `INPROGRESS` or `COMPLETED`                                        |
//! | `data`               | S    | the effect's result as JSON text (`COMPLETED` only)                |
//! | `validation`         | S    | sha256 hex of the canonical JSON of the payload                    |
//! | `claim`              | S    | the claiming call's token (a UUID)                                 |
//!
//! ```yaml
//! IdempotencyTable:
//!   Type: AWS::DynamoDB::Table
//!   Properties:
//!     BillingMode: PAY_PER_REQUEST
//!     AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
//!     KeySchema: [{AttributeName: id, KeyType: HASH}]
//!     TimeToLiveSpecification: {AttributeName: expiration, Enabled: true}
//! ```
//!
//! The function needs `dynamodb:PutItem`, `GetItem`, `UpdateItem` and `DeleteItem` on it.
//! DynamoDB's TTL deletes lazily (up to days later), which is why every check compares
//! `expiration` itself rather than trusting that an expired record is gone.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use lru::LruCache;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::store::DEDUPE_RETENTION;

#[cfg(feature = "idempotency-dynamodb")]
mod dynamo;
mod key;
#[cfg(any(test, feature = "test-twins"))]
mod memory;
#[cfg(all(test, feature = "idempotency-dynamodb"))]
mod proptests;
mod record;

use key::{hash_json, idempotency_key, is_missing_key};
use record::{epoch_millis, epoch_secs};

#[cfg(feature = "idempotency-dynamodb")]
pub use dynamo::DynamoIdempotencyStore;
#[cfg(any(test, feature = "test-twins"))]
pub use memory::InMemoryIdempotencyStore;
pub use record::{Claim, IdempotencyRecord, IdempotencyStore, IdempotencyStoreError, Status};

/// How long a completed result is kept and replayed, unless configured otherwise.
pub const DEFAULT_EXPIRES_AFTER: Duration = Duration::from_secs(3600);
/// Completed results a queue consumer keeps in memory ([`Idempotency::for_consumer`]).
const CONSUMER_CACHE_ITEMS: usize = 256;
/// Lambda's longest timeout: no invocation can still be running this long after it started.
pub const MAX_LAMBDA_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How many times a claim is tried again when the record it collided with vanished or expired
/// between the put and the read (the same bound Powertools uses).
const MAX_CLAIM_RETRIES: usize = 2;

/// Why an idempotent call did not return the effect's result. `E` is the effect's own error.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError<E> {
    /// The effect ran and failed; its record was deleted so a retry runs it again.
    #[error("the idempotent effect failed")]
    Effect(#[source] E),
    /// Another invocation holds the key and has not timed out: retry later (let the message be
    /// redelivered); never run the effect alongside it.
    #[error("an earlier call with idempotency key {key} is still in progress")]
    AlreadyInProgress {
        /// The record's key.
        key: String,
    },
    /// The key was used before with a different payload: a client bug or a replay attack, never
    /// retried.
    #[error("idempotency key {key} was already used with a different payload")]
    PayloadMismatch {
        /// The record's key.
        key: String,
    },
    /// The key material is null or empty, so no key can be made (see
    /// [`Idempotency::run_without_key`]).
    #[error("no idempotency key: the key material is empty")]
    MissingKey,
    /// The stored result does not deserialize into the type asked for (the result type changed
    /// while records were live, or the record was edited).
    #[error("stored result of idempotency key {key} is unreadable")]
    CorruptRecord {
        /// The record's key.
        key: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// The record kept changing between the claim and the read: retry later.
    #[error("idempotency record {key} changed while it was being claimed")]
    InconsistentState {
        /// The record's key.
        key: String,
    },
    /// An earlier call claimed the key and never finished (its invocation died): the effect may
    /// have happened, and an [at-most-once](Idempotency::at_most_once) effect is not run again.
    #[error("an earlier call with idempotency key {key} was abandoned; the effect is not repeated")]
    Abandoned {
        /// The record's key.
        key: String,
    },
    /// The idempotency table failed; the effect did not run.
    #[error("idempotency store failed")]
    Store(#[source] IdempotencyStoreError),
}

impl<E> IdempotencyError<E> {
    /// The effect's own error, if the effect ran and failed.
    pub fn effect(&self) -> Option<&E> {
        match self {
            IdempotencyError::Effect(err) => Some(err),
            _ => None,
        }
    }

    /// The effect's own error, by value.
    pub fn into_effect(self) -> Option<E> {
        match self {
            IdempotencyError::Effect(err) => Some(err),
            _ => None,
        }
    }

    /// True when redelivering the same message later can succeed without a fix: the key is
    /// busy, the store failed or raced. False for a mismatch, a missing key, a corrupt record,
    /// and for the effect's own error (the caller decides about that one).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            IdempotencyError::AlreadyInProgress { .. }
                | IdempotencyError::InconsistentState { .. }
                | IdempotencyError::Store(_)
        )
    }
}

/// An effect's result, and whether it was replayed from an earlier call instead of running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed<T> {
    /// The effect's result, fresh or stored.
    pub value: T,
    /// True when the effect did not run because an earlier call completed it.
    pub replayed: bool,
}

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// What a found record means for this call.
enum Verdict {
    /// Completed with this result text.
    Replay(String),
    /// Expired or abandoned in the meantime: claim again.
    ClaimAgain,
}

/// Runs side effects at most once per key (see the [module docs](self)).
///
/// Build one per effect kind when the function starts and keep it for the life of the execution
/// environment (the local cache lives in it).
pub struct Idempotency<S> {
    store: S,
    name: String,
    expires_after: Duration,
    run_without_key: bool,
    /// Whether an abandoned in-progress record is taken over (at least once) or not (at most once).
    take_over: bool,
    /// Completed records of this execution environment, so a hot duplicate costs no round
    /// trip; the least recently used goes first, and an expired one is never answered.
    cache: Option<Mutex<LruCache<String, IdempotencyRecord>>>,
    clock: Clock,
}

impl<S> std::fmt::Debug for Idempotency<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("name", &self.name)
            .field("expires_after", &self.expires_after)
            .field("run_without_key", &self.run_without_key)
            .field("take_over", &self.take_over)
            .field("local_cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: IdempotencyStore> Idempotency<S> {
    /// Idempotent effects named `name` (the key prefix; choose it once and never derive it from
    /// code paths), recorded in `store`, replayed for [`DEFAULT_EXPIRES_AFTER`], no local cache.
    pub fn new(store: S, name: impl Into<String>) -> Self {
        Idempotency {
            store,
            name: name.into(),
            expires_after: DEFAULT_EXPIRES_AFTER,
            run_without_key: false,
            take_over: true,
            cache: None,
            clock: Arc::new(SystemTime::now),
        }
    }

    /// Idempotent effects of a queue consumer (a gateway call, a message sent), named `name` and
    /// recorded in `store`: a result is replayed as long as dedupe markers are kept
    /// ([`DEDUPE_RETENTION`], longer than any message can be redelivered), and the last
    /// 256 are kept in memory for hot redeliveries.
    pub fn for_consumer(store: S, name: impl Into<String>) -> Self {
        Self::new(store, name)
            .expires_after(DEDUPE_RETENTION)
            .with_local_cache(CONSUMER_CACHE_ITEMS)
    }

    /// How long a completed result is replayed (and the record kept); at least one second, and
    /// never less than the claiming invocation's remaining time.
    pub fn expires_after(mut self, expires_after: Duration) -> Self {
        self.expires_after = expires_after.max(Duration::from_secs(1));
        self
    }

    /// Keeps up to `max_items` completed results in memory, so a duplicate delivered to the same
    /// execution environment is answered without a DynamoDB call.
    pub fn with_local_cache(mut self, max_items: usize) -> Self {
        let capacity = NonZeroUsize::new(max_items).unwrap_or(NonZeroUsize::MIN);
        self.cache = Some(Mutex::new(LruCache::new(capacity)));
        self
    }

    /// With `true`, empty key material runs the effect unprotected (logging a warning) instead of
    /// failing with [`IdempotencyError::MissingKey`].
    pub fn run_without_key(mut self, run_without_key: bool) -> Self {
        self.run_without_key = run_without_key;
        self
    }

    /// Never takes over an abandoned claim whose effect may have started: the claim is marked
    /// ([`IdempotencyStore::mark_sending`]) right before the effect runs, and an abandoned claim
    /// so marked is given up ([`IdempotencyError::Abandoned`]) rather than repeated. One that died
    /// before the mark (cut at its deadline while claiming) is taken over, or the effect would be
    /// lost without ever having run. For effects that nothing downstream can deduplicate; costs
    /// one read before each claim and one write before each effect.
    pub fn at_most_once(mut self) -> Self {
        self.take_over = false;
        self
    }

    /// Reads the time from `clock` instead of the system clock (for tests of expiry).
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The record key this runner uses for `key_material`.
    pub fn key(&self, key_material: &Value) -> String {
        idempotency_key(&self.name, key_material)
    }

    /// True when an effect for `key_material` has run or is running: a record that has not
    /// expired holds its key. A caller that must not start the effect any more (say the order was
    /// cancelled) asks this first, since an effect that already started still has to be finished
    /// and answered for.
    pub async fn has_record(&self, key_material: &Value) -> Result<bool, IdempotencyStoreError> {
        let key = self.key(key_material);
        let now_s = epoch_secs((self.clock)());
        if self.cached(&key, now_s).is_some() {
            return Ok(true);
        }
        let record = self.store.get(&key).await?;
        Ok(record.is_some_and(|record| !record.is_expired(now_s)))
    }

    /// Runs `effect` at most once per `key_material` and returns its result, fresh or stored
    /// ([`Completed::replayed`] says which, for a "duplicates skipped" metric or a header).
    ///
    /// `payload` is what the stored result answers: a repeat with the same key but a different
    /// payload is refused. `deadline` is the invocation's (`LambdaEvent::context.deadline()`); an
    /// in-progress record blocks other calls only until then. A deadline not in the future (a
    /// test's default context) counts as [`MAX_LAMBDA_TIMEOUT`] from now.
    pub async fn run<T, E, F, Fut>(
        &self,
        key_material: &Value,
        payload: &Value,
        deadline: SystemTime,
        effect: F,
    ) -> Result<Completed<T>, IdempotencyError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if is_missing_key(key_material) {
            if !self.run_without_key {
                return Err(IdempotencyError::MissingKey);
            }
            tracing::warn!(name = %self.name, "no idempotency key; running the effect unprotected");
            let value = effect().await.map_err(IdempotencyError::Effect)?;
            return Ok(Completed {
                value,
                replayed: false,
            });
        }
        let key = self.key(key_material);
        let validation = hash_json(payload);
        let now = (self.clock)();
        let (now_s, now_ms) = (epoch_secs(now), epoch_millis(now));

        if let Some(record) = self.cached(&key, now_s)
            && let Verdict::Replay(data) = judge(&record, &validation, now_s, now_ms)?
        {
            tracing::debug!(%key, "idempotent result replayed from the local cache");
            return replay(&key, &data);
        }

        // Read first: the claiming put would take an abandoned record over.
        if !self.take_over
            && let Some(existing) = self
                .store
                .get(&key)
                .await
                .map_err(IdempotencyError::Store)?
            && existing.is_abandoned(now_s, now_ms)
        {
            return Err(IdempotencyError::Abandoned { key });
        }

        let in_progress_expiry = if deadline > now {
            epoch_millis(deadline)
        } else {
            epoch_millis(now + MAX_LAMBDA_TIMEOUT)
        };
        // Never void before the invocation that claims it is over: a short `expires_after` must
        // not let a duplicate take over an effect still running.
        let expiration = now_s
            .saturating_add(i64::try_from(self.expires_after.as_secs()).unwrap_or(i64::MAX))
            .max(in_progress_expiry.saturating_add(999) / 1000);
        let claim = IdempotencyRecord {
            key: key.clone(),
            status: Status::InProgress,
            expiration,
            in_progress_expiry: Some(in_progress_expiry),
            data: None,
            validation: Some(validation.clone()),
            claim: Some(uuid::Uuid::now_v7().to_string()),
            sending: false,
        };
        let mut acquired = false;
        for _ in 0..=MAX_CLAIM_RETRIES {
            let existing = match self
                .store
                .put_in_progress(&claim, now)
                .await
                .map_err(IdempotencyError::Store)?
            {
                Claim::Acquired => {
                    acquired = true;
                    break;
                }
                Claim::Taken(Some(record)) => Some(record),
                Claim::Taken(None) => self
                    .store
                    .get(&key)
                    .await
                    .map_err(IdempotencyError::Store)?,
            };
            // Gone (its effect failed and it was deleted) between the put and the read: claim again.
            let Some(existing) = existing else { continue };
            // The SDK retried a put whose first attempt was stored (its answer was lost): the
            // record in the way is this very claim, so the key is ours.
            if existing.status == Status::InProgress && existing.claim == claim.claim {
                acquired = true;
                break;
            }
            match judge(&existing, &validation, now_s, now_ms)? {
                Verdict::Replay(data) => {
                    tracing::info!(%key, "idempotent result replayed; the effect did not run again");
                    let outcome = replay(&key, &data)?;
                    self.remember(existing);
                    return Ok(outcome);
                }
                Verdict::ClaimAgain => continue,
            }
        }
        if !acquired {
            return Err(IdempotencyError::InconsistentState { key });
        }
        // At most once: from here on the effect may happen, so a takeover must give it up; a run
        // that dies before this mark is taken over like any other.
        if !self.take_over
            && let Err(err) = self.store.mark_sending(&claim).await
        {
            if let Err(store_err) = self.store.delete(&claim).await {
                tracing::error!(%key, error = %store_err, "could not release the idempotency record after failing to mark it");
            }
            return Err(IdempotencyError::Store(err));
        }

        match effect().await {
            Ok(value) => {
                self.save(claim, &value).await;
                Ok(Completed {
                    value,
                    replayed: false,
                })
            }
            Err(err) => {
                if let Err(store_err) = self.store.delete(&claim).await {
                    // The record stays INPROGRESS until the deadline, then a retry takes it over.
                    tracing::error!(%key, error = %store_err, "could not release the idempotency record after the effect failed");
                }
                Err(IdempotencyError::Effect(err))
            }
        }
    }

    /// Stores the result. A failure here is logged, not returned: the effect has happened, and
    /// reporting an error would get the message redelivered and the effect run twice.
    async fn save<T: Serialize>(&self, mut record: IdempotencyRecord, value: &T) {
        let data = match serde_json::to_string(value) {
            Ok(data) => data,
            Err(err) => {
                tracing::error!(key = %record.key, error = %err, "idempotent result is not serialisable; the record stays in progress until the deadline");
                return;
            }
        };
        record.status = Status::Completed;
        record.data = Some(data);
        match self.store.complete(&record).await {
            Ok(()) => self.remember(record),
            Err(err) => {
                tracing::error!(key = %record.key, error = %err, "could not store the idempotent result; the record stays in progress until the deadline");
            }
        }
    }

    fn cached(&self, key: &str, now_s: i64) -> Option<IdempotencyRecord> {
        let mut cache = self.cache.as_ref()?.lock().ok()?;
        match cache.get(key) {
            Some(record) if record.is_expired(now_s) => {
                cache.pop(key);
                None
            }
            found => found.cloned(),
        }
    }

    fn remember(&self, record: IdempotencyRecord) {
        if record.status != Status::Completed {
            return;
        }
        if let Some(mut cache) = self.cache.as_ref().and_then(|c| c.lock().ok()) {
            cache.put(record.key.clone(), record);
        }
    }
}

/// What `record`, found holding the key, means for a call with payload hash `validation`.
fn judge<E>(
    record: &IdempotencyRecord,
    validation: &str,
    now_s: i64,
    now_ms: i64,
) -> Result<Verdict, IdempotencyError<E>> {
    if !record.blocks_claim(now_s, now_ms) {
        return Ok(Verdict::ClaimAgain);
    }
    // A record without a hash (written by another tool) cannot be checked; one with a hash must match.
    if record
        .validation
        .as_deref()
        .is_some_and(|v| v != validation)
    {
        return Err(IdempotencyError::PayloadMismatch {
            key: record.key.clone(),
        });
    }
    match (record.status, &record.data) {
        (Status::InProgress, _) => Err(IdempotencyError::AlreadyInProgress {
            key: record.key.clone(),
        }),
        (Status::Completed, Some(data)) => Ok(Verdict::Replay(data.clone())),
        (Status::Completed, None) => {
            Err(IdempotencyError::Store(IdempotencyStoreError::Malformed {
                key: record.key.clone(),
                reason: "COMPLETED without `data`".into(),
            }))
        }
    }
}

fn replay<T: DeserializeOwned, E>(
    key: &str,
    data: &str,
) -> Result<Completed<T>, IdempotencyError<E>> {
    serde_json::from_str(data)
        .map(|value| Completed {
            value,
            replayed: true,
        })
        .map_err(|source| IdempotencyError::CorruptRecord {
            key: key.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests;
