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
//!    record, so the redelivered message runs the effect again;
//! 4. a repeat finds the record in the same round trip (`ReturnValuesOnConditionCheckFailure`):
//!    `COMPLETED` returns the stored result without running the effect, a live `INPROGRESS` is
//!    [`IdempotencyError::AlreadyInProgress`], and a payload whose hash differs from the stored one
//!    is [`IdempotencyError::PayloadMismatch`].
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
pub const CONSUMER_CACHE_ITEMS: usize = 256;
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
            cache: None,
            clock: Arc::new(SystemTime::now),
        }
    }

    /// Idempotent effects of a queue consumer (a gateway call, a message sent), named `name` and
    /// recorded in `store`: a result is replayed as long as dedupe markers are kept
    /// ([`DEDUPE_RETENTION`], longer than any message can be redelivered), and the last
    /// [`CONSUMER_CACHE_ITEMS`] are kept in memory for hot redeliveries.
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

        if let Some(record) = self.cached(&key, now_s) {
            if let Verdict::Replay(data) = judge(&record, &validation, now_s, now_ms)? {
                tracing::debug!(%key, "idempotent result replayed from the local cache");
                return replay(&key, &data);
            }
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

        match effect().await {
            Ok(value) => {
                self.save(claim, &value).await;
                Ok(Completed {
                    value,
                    replayed: false,
                })
            }
            Err(err) => {
                if let Err(store_err) = self.store.delete(&key).await {
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
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::time::UNIX_EPOCH;

    const T0: u64 = 1_800_000_000;

    /// A clock the test moves by hand, in seconds since the epoch.
    fn clock() -> (
        Arc<AtomicU64>,
        impl Fn() -> SystemTime + Send + Sync + 'static,
    ) {
        let secs = Arc::new(AtomicU64::new(T0));
        let read = secs.clone();
        (secs, move || {
            UNIX_EPOCH + Duration::from_secs(read.load(Ordering::SeqCst))
        })
    }

    fn deadline() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(T0 + 10)
    }

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Receipt {
        charge_id: String,
    }

    fn runner() -> (Arc<AtomicU64>, Idempotency<Arc<InMemoryIdempotencyStore>>) {
        let (time, clock) = clock();
        let store = Arc::new(InMemoryIdempotencyStore::new());
        (
            time,
            Idempotency::new(store, "payments.capture").with_clock(clock),
        )
    }

    async fn charge(calls: &AtomicUsize) -> Result<Receipt, String> {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Receipt {
            charge_id: format!("ch-{n}"),
        })
    }

    #[tokio::test]
    async fn a_repeat_returns_the_stored_result_without_running_the_effect() {
        let (_, idempotency) = runner();
        let calls = AtomicUsize::new(0);
        let key = json!({"order_id": "o-1"});
        let payload = json!({"order_id": "o-1", "amount": 2500});
        let first = idempotency
            .run(&key, &payload, deadline(), || charge(&calls))
            .await
            .unwrap();
        let second = idempotency
            .run(&key, &payload, deadline(), || charge(&calls))
            .await
            .unwrap();
        assert_eq!(
            first.value,
            Receipt {
                charge_id: "ch-1".into()
            }
        );
        assert!(!first.replayed);
        assert_eq!(second.value, first.value);
        assert!(second.replayed);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let records = idempotency.store().records();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].status, Status::Completed);
        assert_eq!(records[0].expiration, (T0 + 3600) as i64);
        assert_eq!(
            records[0].in_progress_expiry,
            Some(((T0 + 10) * 1000) as i64)
        );
    }

    #[tokio::test]
    async fn the_same_key_with_another_payload_is_refused() {
        let (_, idempotency) = runner();
        let calls = AtomicUsize::new(0);
        let key = json!("o-1");
        idempotency
            .run(&key, &json!({"amount": 1}), deadline(), || charge(&calls))
            .await
            .unwrap();
        let err = idempotency
            .run(&key, &json!({"amount": 2}), deadline(), || charge(&calls))
            .await
            .unwrap_err();
        assert!(
            matches!(err, IdempotencyError::PayloadMismatch { .. }),
            "{err:?}"
        );
        assert!(!err.is_retryable());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_live_in_progress_record_is_reported_and_taken_over_after_the_deadline() {
        let (time, idempotency) = runner();
        let calls = AtomicUsize::new(0);
        let key = json!("o-1");
        let payload = json!({"amount": 1});
        // Another invocation claimed the key and is still running (or died) until T0 + 10.
        idempotency.store().insert(IdempotencyRecord {
            key: idempotency.key(&key),
            status: Status::InProgress,
            expiration: (T0 + 3600) as i64,
            in_progress_expiry: Some(((T0 + 10) * 1000) as i64),
            data: None,
            validation: Some(hash_json(&payload)),
        });
        let err = idempotency
            .run(&key, &payload, deadline(), || charge(&calls))
            .await
            .unwrap_err();
        assert!(
            matches!(err, IdempotencyError::AlreadyInProgress { .. }),
            "{err:?}"
        );
        assert!(err.is_retryable());
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        time.store(T0 + 11, Ordering::SeqCst);
        let later = UNIX_EPOCH + Duration::from_secs(T0 + 20);
        let receipt = idempotency
            .run(&key, &payload, later, || charge(&calls))
            .await
            .unwrap();
        assert_eq!(receipt.value.charge_id, "ch-1");
    }

    #[tokio::test]
    async fn a_concurrent_duplicate_is_turned_away_while_the_first_runs() {
        let (_, idempotency) = runner();
        let key = json!("o-1");
        let started = tokio::sync::Notify::new();
        let release = tokio::sync::Notify::new();
        let first = idempotency.run(&key, &key, deadline(), || async {
            started.notify_one();
            release.notified().await;
            Ok::<_, String>(1)
        });
        let second = async {
            started.notified().await;
            let result = idempotency
                .run(&key, &key, deadline(), || async { Ok::<_, String>(2) })
                .await;
            release.notify_one();
            result
        };
        let (first, second) = tokio::join!(first, second);
        assert_eq!(first.unwrap().value, 1);
        assert!(matches!(
            second,
            Err(IdempotencyError::AlreadyInProgress { .. })
        ));
    }

    #[tokio::test]
    async fn a_failed_effect_releases_the_key_and_keeps_its_own_error() {
        let (_, idempotency) = runner();
        let calls = AtomicUsize::new(0);
        let key = json!("o-1");
        let err = idempotency
            .run(&key, &key, deadline(), || async {
                Err::<Receipt, _>("gateway timeout")
            })
            .await
            .unwrap_err();
        assert_eq!(err.effect(), Some(&"gateway timeout"));
        assert!(idempotency.store().records().is_empty());
        let receipt = idempotency
            .run(&key, &key, deadline(), || charge(&calls))
            .await
            .unwrap();
        assert_eq!(receipt.value.charge_id, "ch-1");
    }

    #[tokio::test]
    async fn has_record_tells_whether_an_effect_ran_until_its_record_expires() {
        let (time, idempotency) = runner();
        let idempotency = idempotency.expires_after(Duration::from_secs(60));
        let calls = AtomicUsize::new(0);
        let key = json!("o-1");
        assert!(!idempotency.has_record(&key).await.unwrap());
        idempotency
            .run(&key, &key, deadline(), || charge(&calls))
            .await
            .unwrap();
        assert!(idempotency.has_record(&key).await.unwrap());
        assert!(!idempotency.has_record(&json!("o-2")).await.unwrap());
        time.store(T0 + 61, Ordering::SeqCst);
        assert!(!idempotency.has_record(&key).await.unwrap());
    }

    #[tokio::test]
    async fn a_short_expiry_does_not_void_a_claim_before_its_invocation_ends() {
        let (time, idempotency) = runner();
        let idempotency = idempotency.expires_after(Duration::from_secs(1));
        let key = json!("o-1");
        let first_deadline = UNIX_EPOCH + Duration::from_secs(T0 + 300);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (finish_tx, finish_rx) = tokio::sync::oneshot::channel::<()>();
        let first = idempotency.run(&key, &key, first_deadline, || async {
            let _ = started_tx.send(());
            let _ = finish_rx.await;
            Ok::<_, String>(Receipt {
                charge_id: "ch-1".into(),
            })
        });
        let second = async {
            let _ = started_rx.await;
            // A duplicate, well past `expires_after` but before the first invocation's deadline.
            time.store(T0 + 120, Ordering::SeqCst);
            let far = UNIX_EPOCH + Duration::from_secs(T0 + 400);
            let refused = idempotency
                .run(&key, &key, far, || async {
                    Ok::<_, String>(Receipt {
                        charge_id: "ch-2".into(),
                    })
                })
                .await;
            let _ = finish_tx.send(());
            refused
        };
        let (first, second) = tokio::join!(first, second);
        assert_eq!(first.unwrap().value.charge_id, "ch-1");
        assert!(
            matches!(second, Err(IdempotencyError::AlreadyInProgress { .. })),
            "{second:?}"
        );
    }

    #[tokio::test]
    async fn a_completed_record_is_replayed_only_until_it_expires() {
        let (time, idempotency) = runner();
        let idempotency = idempotency.expires_after(Duration::from_secs(60));
        let calls = AtomicUsize::new(0);
        let key = json!("o-1");
        idempotency
            .run(&key, &key, deadline(), || charge(&calls))
            .await
            .unwrap();
        time.store(T0 + 61, Ordering::SeqCst);
        let far = UNIX_EPOCH + Duration::from_secs(T0 + 100);
        let again = idempotency
            .run(&key, &key, far, || charge(&calls))
            .await
            .unwrap();
        assert_eq!(again.value.charge_id, "ch-2");
    }

    #[tokio::test]
    async fn empty_key_material_is_an_error_unless_allowed() {
        let (_, idempotency) = runner();
        let calls = AtomicUsize::new(0);
        for empty in [
            json!(null),
            json!(""),
            json!([]),
            json!({"a": null}),
            json!([null]),
        ] {
            let err = idempotency
                .run(&empty, &empty, deadline(), || charge(&calls))
                .await
                .unwrap_err();
            assert!(matches!(err, IdempotencyError::MissingKey), "{empty}");
        }
        let lenient = idempotency.run_without_key(true);
        lenient
            .run(&json!(null), &json!(null), deadline(), || charge(&calls))
            .await
            .unwrap();
        lenient
            .run(&json!(null), &json!(null), deadline(), || charge(&calls))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(lenient.store().records().is_empty());
    }

    #[tokio::test]
    async fn a_stored_result_of_another_type_is_a_corrupt_record() {
        let (_, idempotency) = runner();
        let key = json!("o-1");
        idempotency
            .run(&key, &key, deadline(), || async { Ok::<_, String>(42_u32) })
            .await
            .unwrap();
        let err = idempotency
            .run(&key, &key, deadline(), || async {
                Ok::<_, String>(Receipt {
                    charge_id: "x".into(),
                })
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, IdempotencyError::CorruptRecord { .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_past_deadline_falls_back_to_the_longest_lambda_timeout() {
        let (_, idempotency) = runner();
        let key = json!("o-1");
        idempotency
            .run(&key, &key, UNIX_EPOCH, || async { Ok::<_, String>(1) })
            .await
            .unwrap();
        let record = &idempotency.store().records()[0];
        assert_eq!(
            record.in_progress_expiry,
            Some(((T0 + MAX_LAMBDA_TIMEOUT.as_secs()) * 1000) as i64)
        );
    }

    /// A store that counts calls, to see the local cache save round trips.
    #[derive(Default)]
    struct Counting {
        inner: InMemoryIdempotencyStore,
        puts: AtomicUsize,
    }

    impl IdempotencyStore for Counting {
        async fn put_in_progress(
            &self,
            record: &IdempotencyRecord,
            now: SystemTime,
        ) -> Result<Claim, IdempotencyStoreError> {
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.inner.put_in_progress(record, now).await
        }
        async fn complete(&self, record: &IdempotencyRecord) -> Result<(), IdempotencyStoreError> {
            self.inner.complete(record).await
        }
        async fn delete(&self, key: &str) -> Result<(), IdempotencyStoreError> {
            self.inner.delete(key).await
        }
        async fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>, IdempotencyStoreError> {
            self.inner.get(key).await
        }
    }

    #[tokio::test]
    async fn the_local_cache_answers_hot_duplicates_and_still_checks_the_payload() {
        let (_, clock) = clock();
        let store = Arc::new(Counting::default());
        let idempotency = Idempotency::new(store.clone(), "n")
            .with_clock(clock)
            .with_local_cache(2);
        let calls = AtomicUsize::new(0);
        let key = json!("o-1");
        idempotency
            .run(&key, &key, deadline(), || charge(&calls))
            .await
            .unwrap();
        idempotency
            .run(&key, &key, deadline(), || charge(&calls))
            .await
            .unwrap();
        assert_eq!(
            store.puts.load(Ordering::SeqCst),
            1,
            "the repeat never reached the store"
        );
        let err = idempotency
            .run(&key, &json!("other"), deadline(), || charge(&calls))
            .await
            .unwrap_err();
        assert!(matches!(err, IdempotencyError::PayloadMismatch { .. }));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_local_cache_evicts_the_least_recently_used_and_the_expired() {
        let record = |key: &str, expiration| IdempotencyRecord {
            key: key.into(),
            status: Status::Completed,
            expiration,
            in_progress_expiry: None,
            data: Some("1".into()),
            validation: None,
        };
        let (_, runner) = runner();
        let runner = runner.with_local_cache(2);
        runner.remember(record("a", 100));
        runner.remember(record("b", 100));
        assert!(runner.cached("a", 0).is_some());
        runner.remember(record("c", 100));
        assert!(
            runner.cached("b", 0).is_none(),
            "b was the least recently used"
        );
        assert!(runner.cached("a", 0).is_some());
        assert!(runner.cached("c", 0).is_some());
        assert!(runner.cached("a", 101).is_none(), "expired");
        assert!(
            runner.cached("a", 0).is_none(),
            "an expired entry leaves the cache"
        );
    }
}
