//! Handler tests over the in-memory event and idempotency stores and a counting gateway:
//! capture, decline, redelivery at every step, refunds, and a cancel racing the charge.

use super::*;
use domain::order::CancelReason;
use domain::payment::{PaymentEvent, RefundRequest};
use domain::testing::{self as story, stored};
use ripple_kit::consumer::Handled;
use ripple_kit::envelope::event_type_of;
use ripple_kit::idempotency::InMemoryIdempotencyStore;
use ripple_kit::store::InMemoryEventStore;
use ripple_kit::testing::{
    DiesBeforeComplete, ManualClock, deadline, failed_message_ids, raw_sqs_message, sqs_invocation,
    sqs_message as message,
};
use ripple_kit::{Append, StoreError};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

const ORDER: &str = "o-1";

/// The event store shared between the handler and the test (and a gateway that cancels).
type Store = Arc<InMemoryEventStore>;

/// The simulated gateway, counting calls and keeping every request as a provider's ledger
/// would; it can fail, and can run something mid-charge.
#[derive(Default)]
struct Recording {
    inner: SimulatedGateway,
    charges: AtomicUsize,
    refunds: AtomicUsize,
    charge_requests: Mutex<Vec<ChargeRequest>>,
    refund_requests: Mutex<Vec<RefundRequest>>,
    unavailable_once: AtomicBool,
    during_charge: Mutex<Option<(Store, Envelope)>>,
}

impl Recording {
    /// Charges the provider made: a repeat of an idempotency key answers the first one.
    fn distinct_charges(&self) -> usize {
        let keys: std::collections::BTreeSet<_> = self
            .charge_requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.idempotency_key.clone())
            .collect();
        keys.len()
    }
}

impl PaymentGateway for Arc<Recording> {
    async fn charge(&self, request: ChargeRequest) -> Result<ChargeResult, GatewayError> {
        if self.unavailable_once.swap(false, Ordering::SeqCst) {
            return Err(GatewayError::Unavailable("timeout".into()));
        }
        self.charges.fetch_add(1, Ordering::SeqCst);
        self.charge_requests.lock().unwrap().push(request.clone());
        let during = self.during_charge.lock().unwrap().take();
        if let Some((store, event)) = during {
            store.append(Append::events(vec![event])).await.unwrap();
        }
        self.inner.charge(request).await
    }

    async fn refund(&self, request: RefundRequest) -> Result<RefundReceipt, GatewayError> {
        self.refunds.fetch_add(1, Ordering::SeqCst);
        self.refund_requests.lock().unwrap().push(request.clone());
        self.inner.refund(request).await
    }
}

type TestHandler = Handler<Store, Arc<Recording>, Arc<InMemoryIdempotencyStore>>;

fn handler_over(gateway: SimulatedGateway) -> TestHandler {
    let recording = Recording {
        inner: gateway,
        ..Recording::default()
    };
    handler_with(
        Store::default(),
        Arc::new(recording),
        Arc::new(InMemoryIdempotencyStore::new()),
    )
}

fn store(h: &TestHandler) -> &Store {
    h.consumer().store()
}

fn gateway(h: &TestHandler) -> &Arc<Recording> {
    h.consumer().reactor().gateway()
}

fn cancelled(reason: CancelReason) -> Envelope {
    stored::<Order>(ORDER, 2, &story::cancelled(ORDER, reason))
}

/// Stores the customer's cancellation of the order and returns it.
async fn given_a_cancellation(store: &InMemoryEventStore) -> Envelope {
    let cancel = cancelled(CancelReason::CustomerRequest);
    store
        .append(Append::events(vec![cancel.clone()]))
        .await
        .unwrap();
    cancel
}

/// Stores the sample `order.placed` (25.00 EUR) for `customer_id` and returns the
/// `stock.reserved` that follows it.
async fn given_a_reserved_order(store: &InMemoryEventStore, customer_id: &str) -> Envelope {
    let mut placed = story::placed(ORDER);
    placed.customer_id = customer_id.into();
    let reserved = stored::<Reservation>(ORDER, 1, &story::reserved(&placed));
    let placed = stored::<Order>(ORDER, 1, &OrderEvent::Placed(placed));
    store
        .append(Append::events(vec![placed, reserved.clone()]))
        .await
        .unwrap();
    reserved
}

/// The events of the order's Payment stream.
async fn payment_events<S: EventStore>(store: &S) -> Vec<PaymentEvent> {
    let stream = store.read_stream(Payment::TYPE, ORDER, 1).await.unwrap();
    stream
        .iter()
        .map(|e| e.decode_for::<Payment>().unwrap())
        .collect()
}

async fn payments(h: &TestHandler) -> Vec<PaymentEvent> {
    payment_events(store(h)).await
}

fn charges(h: &TestHandler) -> usize {
    gateway(h).charges.load(Ordering::SeqCst)
}

fn refunds(h: &TestHandler) -> usize {
    gateway(h).refunds.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_reserved_order_is_charged_once_however_often_it_is_delivered() {
    let h = handler_over(SimulatedGateway::default());
    let reserved = given_a_reserved_order(store(&h), "c-1").await;
    let m = message(&reserved);
    assert_eq!(
        h.handle_message(&m, deadline()).await.unwrap(),
        Handled::Applied("payment.captured")
    );
    // One read, the order's: the payment stream is presumed empty (its first position is the
    // check), and nothing is read again after the capture, which was stored only if the order
    // had not moved on.
    assert_eq!(store(&h).reads(), 1);
    assert_eq!(
        h.handle_message(&m, deadline()).await.unwrap(),
        Handled::Duplicate
    );
    assert_eq!(
        h.handle_message(&m, deadline()).await.unwrap(),
        Handled::Duplicate
    );

    assert_eq!(charges(&h), 1);
    let stream = store(&h)
        .read_stream(Payment::TYPE, ORDER, 1)
        .await
        .unwrap();
    assert_eq!(stream.len(), 1);
    assert_eq!(stream[0].causationid.as_deref(), Some(reserved.id.as_str()));
    assert!(
        matches!(&payments(&h).await[0], PaymentEvent::Captured { amount_cents: 2500, currency, .. } if currency == "EUR")
    );
}

#[tokio::test]
async fn a_declined_card_records_payment_declined_with_the_reason() {
    let h = handler_over(SimulatedGateway::new(0.0, Some(1_000_000)));
    let reserved = given_a_reserved_order(store(&h), "declined-c-9").await;
    let m = message(&reserved);
    assert_eq!(
        h.handle_message(&m, deadline()).await.unwrap(),
        Handled::Applied("payment.declined")
    );
    assert_eq!(
        h.handle_message(&m, deadline()).await.unwrap(),
        Handled::Duplicate
    );
    assert_eq!(
        payments(&h).await,
        vec![PaymentEvent::Declined {
            order_id: ORDER.into(),
            amount_cents: 2500,
            reason: "card_declined".into()
        }]
    );
    // The saga cancels the order; payments has nothing to refund.
    let cancel = message(&cancelled(CancelReason::PaymentDeclined));
    assert_eq!(
        h.handle_message(&cancel, deadline()).await.unwrap(),
        Handled::Ignored
    );
    assert_eq!((charges(&h), refunds(&h)), (1, 0));
}

#[tokio::test]
async fn an_amount_over_the_limit_is_declined() {
    let h = handler_over(SimulatedGateway::new(0.0, Some(1_000)));
    let reserved = given_a_reserved_order(store(&h), "c-1").await;
    h.handle_message(&message(&reserved), deadline())
        .await
        .unwrap();
    assert!(
        matches!(&payments(&h).await[0], PaymentEvent::Declined { reason, .. } if reason == "amount_over_limit")
    );
}

/// A store whose next append to a Payment stream fails as if DynamoDB were unreachable.
#[derive(Clone, Default)]
struct Flaky {
    inner: Store,
    fail_next_payment_append: Arc<AtomicBool>,
}
impl EventStore for Flaky {
    async fn append(&self, append: Append) -> Result<(), StoreError> {
        let payment = append
            .events
            .iter()
            .any(|e| e.aggregatetype == Payment::TYPE);
        if payment && self.fail_next_payment_append.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Backend("throttled".into()));
        }
        self.inner.append(append).await
    }
    async fn read_stream(&self, t: &str, id: &str, from: u64) -> Result<Vec<Envelope>, StoreError> {
        self.inner.read_stream(t, id, from).await
    }
}

/// A handler over a [`Flaky`] store holding a reserved order; returns the `stock.reserved`.
async fn given_a_flaky_store() -> (Flaky, Arc<Recording>, FlakyHandler, Envelope) {
    let gateway = Arc::new(Recording::default());
    let store = Flaky::default();
    let h = handler_with(
        store.clone(),
        gateway.clone(),
        Arc::new(InMemoryIdempotencyStore::new()),
    );
    let reserved = given_a_reserved_order(&store.inner, "c-1").await;
    (store, gateway, h, reserved)
}

type FlakyHandler = Handler<Flaky, Arc<Recording>, Arc<InMemoryIdempotencyStore>>;

#[tokio::test]
async fn a_charge_whose_event_was_not_stored_is_not_charged_again_on_redelivery() {
    let (store, gateway, h, reserved) = given_a_flaky_store().await;
    store.fail_next_payment_append.store(true, Ordering::SeqCst);
    let m = message(&reserved);
    let err = h.handle_message(&m, deadline()).await.unwrap_err();
    assert!(
        matches!(err, ConsumerError::Store(StoreError::Backend(_))),
        "{err:?}"
    );
    assert_eq!(
        gateway.charges.load(Ordering::SeqCst),
        1,
        "the gateway was charged"
    );

    // SQS redelivers: the stored answer is replayed and recorded, the gateway is not called.
    assert_eq!(
        h.handle_message(&m, deadline()).await.unwrap(),
        Handled::Applied("payment.captured")
    );
    assert_eq!(gateway.charges.load(Ordering::SeqCst), 1);
    let stream = payment_events(&store).await;
    let expected_id = match SimulatedGateway::default()
        .decide(&decide_charge(&story::placed(ORDER), &Payment::None).unwrap())
    {
        ChargeResult::Captured { payment_id } => payment_id,
        other => panic!("{other:?}"),
    };
    assert!(
        matches!(&stream[..], [PaymentEvent::Captured { payment_id, .. }] if *payment_id == expected_id)
    );
}

#[tokio::test]
async fn a_charge_not_stored_before_the_order_was_cancelled_is_recorded_and_refunded() {
    let (store, gateway, h, reserved) = given_a_flaky_store().await;
    store.fail_next_payment_append.store(true, Ordering::SeqCst);
    let m = message(&reserved);
    h.handle_message(&m, deadline()).await.unwrap_err();
    assert_eq!(gateway.charges.load(Ordering::SeqCst), 1);

    // The customer cancels before the redelivery; payments has no capture on record yet.
    let cancel = given_a_cancellation(&store.inner).await;
    assert_eq!(
        h.handle_message(&message(&cancel), deadline())
            .await
            .unwrap(),
        Handled::Ignored
    );

    // The redelivered reservation records the capture the gateway made and its refund.
    assert_eq!(
        h.handle_message(&m, deadline()).await.unwrap(),
        Handled::Applied("payment.refunded")
    );
    assert_eq!(
        (
            gateway.charges.load(Ordering::SeqCst),
            gateway.refunds.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
    let stream = store.read_stream(Payment::TYPE, ORDER, 1).await.unwrap();
    let types: Vec<_> = stream.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, vec!["payment.captured", "payment.refunded"]);
}

#[tokio::test]
async fn an_unavailable_gateway_fails_the_message_and_the_redelivery_charges() {
    let h = handler_over(SimulatedGateway::default());
    let reserved = given_a_reserved_order(store(&h), "c-1").await;
    gateway(&h).unavailable_once.store(true, Ordering::SeqCst);
    let err = h
        .handle_message(&message(&reserved), deadline())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ConsumerError::Own(IdempotencyError::Effect(GatewayError::Unavailable(_)))
    ));
    assert!(payments(&h).await.is_empty());
    assert_eq!(
        h.handle_message(&message(&reserved), deadline())
            .await
            .unwrap(),
        Handled::Applied("payment.captured")
    );
    assert_eq!(charges(&h), 1);
}

#[tokio::test]
async fn a_captured_order_that_is_cancelled_is_refunded_once() {
    let h = handler_over(SimulatedGateway::default());
    let reserved = given_a_reserved_order(store(&h), "c-1").await;
    h.handle_message(&message(&reserved), deadline())
        .await
        .unwrap();
    let cancel = given_a_cancellation(store(&h)).await;

    let m = message(&cancel);
    assert_eq!(
        h.handle_message(&m, deadline()).await.unwrap(),
        Handled::Applied("payment.refunded")
    );
    assert_eq!(
        h.handle_message(&m, deadline()).await.unwrap(),
        Handled::Duplicate
    );
    // And a late redelivery of the reservation charges nothing and refunds nothing more.
    assert_eq!(
        h.handle_message(&message(&reserved), deadline())
            .await
            .unwrap(),
        Handled::Duplicate
    );

    assert_eq!((charges(&h), refunds(&h)), (1, 1));
    let stream = store(&h)
        .read_stream(Payment::TYPE, ORDER, 1)
        .await
        .unwrap();
    let types: Vec<_> = stream.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, vec!["payment.captured", "payment.refunded"]);
    assert_eq!(stream[1].causationid.as_deref(), Some(cancel.id.as_str()));
    assert!(matches!(
        &payments(&h).await[1],
        PaymentEvent::Refunded {
            amount_cents: 2500,
            ..
        }
    ));
}

#[tokio::test]
async fn an_order_cancelled_out_of_stock_or_declined_is_not_even_read() {
    let h = handler_over(SimulatedGateway::default());
    for reason in [CancelReason::OutOfStock, CancelReason::PaymentDeclined] {
        assert_eq!(
            h.handle_message(&message(&cancelled(reason)), deadline())
                .await
                .unwrap(),
            Handled::Ignored
        );
    }
    assert_eq!(store(&h).reads(), 0);
    assert_eq!((charges(&h), refunds(&h)), (0, 0));
}

#[tokio::test]
async fn an_order_cancelled_before_its_charge_is_never_charged() {
    let h = handler_over(SimulatedGateway::default());
    let reserved = given_a_reserved_order(store(&h), "c-1").await;
    let cancel = given_a_cancellation(store(&h)).await;
    assert_eq!(
        h.handle_message(&message(&cancel), deadline())
            .await
            .unwrap(),
        Handled::Ignored
    );
    assert_eq!(
        h.handle_message(&message(&reserved), deadline())
            .await
            .unwrap(),
        Handled::Ignored
    );
    assert_eq!((charges(&h), refunds(&h)), (0, 0));
    assert!(payments(&h).await.is_empty());
}

#[tokio::test]
async fn a_cancel_that_lands_while_the_charge_is_in_flight_is_refunded_with_the_capture() {
    let h = handler_over(SimulatedGateway::default());
    let reserved = given_a_reserved_order(store(&h), "c-1").await;
    let cancel = cancelled(CancelReason::CustomerRequest);
    // The customer cancels while the gateway is charging: the capture, checked against the order
    // it read, is refused; decided again on the cancelled order, it is stored with its refund...
    *gateway(&h).during_charge.lock().unwrap() = Some((store(&h).clone(), cancel.clone()));
    assert_eq!(
        h.handle_message(&message(&reserved), deadline())
            .await
            .unwrap(),
        Handled::Applied("payment.refunded")
    );
    // ...and the cancel message finds nothing left to do.
    assert_eq!(
        h.handle_message(&message(&cancel), deadline())
            .await
            .unwrap(),
        Handled::Duplicate
    );
    assert_eq!((charges(&h), refunds(&h)), (1, 1));
    let types: Vec<_> = payments(&h)
        .await
        .iter()
        .map(|e| event_type_of(e).unwrap())
        .collect();
    assert_eq!(types, vec!["payment.captured", "payment.refunded"]);
}

#[tokio::test]
async fn the_batch_reports_only_the_poison_record() {
    let h = handler_over(SimulatedGateway::default());
    let reserved = given_a_reserved_order(store(&h), "c-1").await;
    let mut event = sqs_invocation(vec![message(&reserved), raw_sqs_message("poison", "[]")]);
    event.context.deadline =
        u64::try_from(deadline().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
    let response = h.handle(event).await.unwrap();
    let failed = failed_message_ids(&response);
    assert_eq!(failed, vec!["poison"]);
    assert_eq!(charges(&h), 1);
}

#[test]
fn config_reads_the_gateway_settings_and_rejects_a_bad_rate() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    const BASE: &[(&str, &str)] = &[("EVENTS_TABLE", "e"), ("IDEMPOTENCY_TABLE", "i")];
    let config = Config::from_lookup(env(BASE)).unwrap();
    assert_eq!((config.decline_rate, config.max_amount_cents), (0.0, None));
    const FULL: &[(&str, &str)] = &[
        ("EVENTS_TABLE", "e"),
        ("IDEMPOTENCY_TABLE", "i"),
        ("PAYMENT_DECLINE_RATE", "0.25"),
        ("PAYMENT_MAX_AMOUNT_CENTS", "100000"),
    ];
    let config = Config::from_lookup(env(FULL)).unwrap();
    assert_eq!(
        (config.decline_rate, config.max_amount_cents),
        (0.25, Some(100_000))
    );
    const BAD: &[(&str, &str)] = &[
        ("EVENTS_TABLE", "e"),
        ("IDEMPOTENCY_TABLE", "i"),
        ("PAYMENT_DECLINE_RATE", "1.5"),
    ];
    assert!(matches!(
        Config::from_lookup(env(BAD)),
        Err(ConfigError::Invalid { .. })
    ));
    assert!(Config::from_lookup(env(&[("EVENTS_TABLE", "e")])).is_err());
}

#[tokio::test]
async fn the_charge_is_the_orders_total_and_customer_not_the_messages() {
    let h = handler_over(SimulatedGateway::new(0.0, Some(1_000_000)));
    given_a_reserved_order(store(&h), "c-1").await;
    // A stock.reserved whose figures were tampered with: another payer, one cent.
    let mut placed = story::placed(ORDER);
    placed.customer_id = "declined-someone".into();
    placed.total.minor_units = 1;
    let tampered = stored::<Reservation>(ORDER, 1, &story::reserved(&placed));
    assert_eq!(
        h.handle_message(&message(&tampered), deadline())
            .await
            .unwrap(),
        Handled::Applied("payment.captured")
    );
    let requests = gateway(&h).charge_requests.lock().unwrap().clone();
    assert_eq!(
        (requests[0].customer_id.as_str(), requests[0].amount_cents),
        ("c-1", 2500),
        "charged as the order was placed"
    );
}

#[tokio::test]
async fn an_event_its_source_may_not_write_charges_nothing() {
    let h = handler_over(SimulatedGateway::default());
    let reserved = given_a_reserved_order(store(&h), "c-1").await;
    let mut forged = reserved.clone();
    forged.id = "forged-1".into();
    forged.source = domain::sources::ORDERS_API.into();
    let err = h
        .handle_message(&message(&forged), deadline())
        .await
        .unwrap_err();
    assert!(matches!(err, ConsumerError::Parse(_)), "{err:?}");
    assert_eq!(charges(&h), 0);
}

/// A payments handler whose idempotency records never complete (the process dies after each
/// gateway call), over `store`, on `clock`.
fn dying(
    store: Flaky,
    gateway: Arc<Recording>,
    records: Arc<InMemoryIdempotencyStore>,
    clock: &ManualClock,
) -> Handler<Flaky, Arc<Recording>, DiesBeforeComplete<Arc<InMemoryIdempotencyStore>>> {
    SqsConsumer::new(EventSourced::new(
        Payments::new(gateway, DiesBeforeComplete(records)).with_clock(clock.reader()),
        store,
    ))
    .with_producers(domain::producers())
}

/// The payments handler of a process started later, over the same stores and clock.
fn restarted(
    store: Flaky,
    gateway: Arc<Recording>,
    records: Arc<InMemoryIdempotencyStore>,
    clock: &ManualClock,
) -> FlakyHandler {
    SqsConsumer::new(EventSourced::new(
        Payments::new(gateway, records).with_clock(clock.reader()),
        store,
    ))
    .with_producers(domain::producers())
}

#[tokio::test]
async fn a_rerun_that_takes_over_an_abandoned_charge_does_not_charge_twice() {
    let (store, gateway, _, reserved) = given_a_flaky_store().await;
    let records = Arc::new(InMemoryIdempotencyStore::new());
    let clock = ManualClock::at(std::time::SystemTime::now());
    // The gateway charges; the process dies before recording the answer or the event.
    store.fail_next_payment_append.store(true, Ordering::SeqCst);
    let first = dying(store.clone(), gateway.clone(), records.clone(), &clock);
    first
        .handle_message(&message(&reserved), deadline())
        .await
        .unwrap_err();
    assert_eq!(gateway.charges.load(Ordering::SeqCst), 1);

    // The claim expires with the dead invocation; the redelivery takes it over.
    clock.advance(std::time::Duration::from_secs(11));
    let later = restarted(store.clone(), gateway.clone(), records, &clock);
    assert_eq!(
        later
            .handle_message(&message(&reserved), deadline())
            .await
            .unwrap(),
        Handled::Applied("payment.captured")
    );
    // The gateway was asked again, with the same key and amount: the provider charged once.
    let requests = gateway.charge_requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0], requests[1]);
    assert_eq!(gateway.distinct_charges(), 1);
    let stream = payment_events(&store).await;
    assert!(matches!(
        &stream[..],
        [PaymentEvent::Captured {
            amount_cents: 2500,
            ..
        }]
    ));
}

#[tokio::test]
async fn a_rerun_that_takes_over_an_abandoned_refund_does_not_refund_twice() {
    let (store, gateway, h, reserved) = given_a_flaky_store().await;
    h.handle_message(&message(&reserved), deadline())
        .await
        .unwrap();
    let cancel = given_a_cancellation(&store.inner).await;
    let records = Arc::new(InMemoryIdempotencyStore::new());
    let clock = ManualClock::at(std::time::SystemTime::now());
    store.fail_next_payment_append.store(true, Ordering::SeqCst);
    let first = dying(store.clone(), gateway.clone(), records.clone(), &clock);
    first
        .handle_message(&message(&cancel), deadline())
        .await
        .unwrap_err();
    assert_eq!(gateway.refunds.load(Ordering::SeqCst), 1);

    clock.advance(std::time::Duration::from_secs(11));
    let later = restarted(store.clone(), gateway.clone(), records, &clock);
    assert_eq!(
        later
            .handle_message(&message(&cancel), deadline())
            .await
            .unwrap(),
        Handled::Applied("payment.refunded")
    );
    let requests = gateway.refund_requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0], requests[1], "the same refund key and amount");
    let types: Vec<_> = payment_events(&store)
        .await
        .iter()
        .map(|e| event_type_of(e).unwrap())
        .collect();
    assert_eq!(types, vec!["payment.captured", "payment.refunded"]);
}
