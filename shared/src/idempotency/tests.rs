//! The idempotency runner over the in-memory store, with a clock the tests move by hand.

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

/// Another invocation claimed `key` for `payload` and runs (or died) until T0 + 10.
fn claimed_until_t0_plus_10(
    idempotency: &Idempotency<Arc<InMemoryIdempotencyStore>>,
    key: &Value,
    payload: &Value,
) {
    idempotency.store().insert(IdempotencyRecord {
        key: idempotency.key(key),
        status: Status::InProgress,
        expiration: (T0 + 3600) as i64,
        in_progress_expiry: Some(((T0 + 10) * 1000) as i64),
        data: None,
        validation: Some(hash_json(payload)),
        claim: Some("another call".into()),
        sending: true,
    });
}

#[tokio::test]
async fn a_live_in_progress_record_is_reported_and_taken_over_after_the_deadline() {
    let (time, idempotency) = runner();
    let calls = AtomicUsize::new(0);
    let key = json!("o-1");
    let payload = json!({"amount": 1});
    claimed_until_t0_plus_10(&idempotency, &key, &payload);
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
async fn an_at_most_once_effect_whose_claim_was_abandoned_is_not_run_again() {
    let (time, clock) = clock();
    let store = Arc::new(InMemoryIdempotencyStore::new());
    let idempotency = Idempotency::new(store, "notify")
        .with_clock(clock)
        .at_most_once();
    let calls = AtomicUsize::new(0);
    let key = json!("o-1");
    let payload = json!({"to": "c-1"});
    claimed_until_t0_plus_10(&idempotency, &key, &payload);
    time.store(T0 + 11, Ordering::SeqCst);
    let later = UNIX_EPOCH + Duration::from_secs(T0 + 20);
    let err = idempotency
        .run(&key, &payload, later, || charge(&calls))
        .await
        .unwrap_err();
    assert!(matches!(err, IdempotencyError::Abandoned { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the effect may have happened: not again"
    );
    // A key nobody claimed still runs once, and replays after.
    let other = json!("o-2");
    idempotency
        .run(&other, &payload, later, || charge(&calls))
        .await
        .unwrap();
    let again = idempotency
        .run(&other, &payload, later, || charge(&calls))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_at_most_once_claim_that_died_before_its_effect_started_is_taken_over() {
    let (time, clock) = clock();
    let store = Arc::new(InMemoryIdempotencyStore::new());
    let idempotency = Idempotency::new(store, "notify")
        .with_clock(clock)
        .at_most_once();
    let calls = AtomicUsize::new(0);
    let key = json!("o-1");
    let payload = json!({"to": "c-1"});
    // The other call claimed the key and died before it marked its effect as starting (its
    // invocation was cut while the claim's answer was on its way).
    claimed_until_t0_plus_10(&idempotency, &key, &payload);
    let stored = idempotency.key(&key);
    let mut unmarked = idempotency.store().get(&stored).await.unwrap().unwrap();
    unmarked.sending = false;
    idempotency.store().insert(unmarked);
    time.store(T0 + 11, Ordering::SeqCst);
    let later = UNIX_EPOCH + Duration::from_secs(T0 + 20);
    let sent = idempotency
        .run(&key, &payload, later, || charge(&calls))
        .await
        .unwrap();
    assert!(!sent.replayed);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "its effect never ran: once now"
    );
}

#[tokio::test]
async fn an_at_most_once_effect_is_marked_as_starting_before_it_runs() {
    let (_, clock) = clock();
    let store = Arc::new(InMemoryIdempotencyStore::new());
    let idempotency = Idempotency::new(store.clone(), "notify")
        .with_clock(clock)
        .at_most_once();
    let key = json!("o-2");
    let stored = idempotency.key(&key);
    let marked = idempotency
        .run(&key, &key, deadline(), || async {
            let record = store.get(&stored).await.unwrap().unwrap();
            Ok::<_, String>(record.sending)
        })
        .await
        .unwrap();
    assert!(marked.value, "the mark is stored before the effect starts");
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
    async fn mark_sending(&self, claim: &IdempotencyRecord) -> Result<(), IdempotencyStoreError> {
        self.inner.mark_sending(claim).await
    }
    async fn delete(&self, claim: &IdempotencyRecord) -> Result<(), IdempotencyStoreError> {
        self.inner.delete(claim).await
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
        claim: None,
        sending: false,
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
