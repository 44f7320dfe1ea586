//! Handler tests over the in-memory event and view stores: in order, duplicated, out of order,
//! shuffled, concurrent; plus the DynamoDB adapter against mocked responses.

use super::*;
use aws_lambda_events::event::sqs::SqsMessage;
use domain::inventory::Stock;
use domain::testing::{self as story, stored as stored_event};
use domain::view::{PaymentStatus, ViewStatus};
use domain::views::{InMemoryViewStore, StoredView};
use ripple_kit::store::InMemoryEventStore;
use ripple_kit::testing::{
    deadline, failed_message_ids, raw_sqs_message, sqs_invocation, sqs_message as message,
};
use ripple_kit::{Append, Envelope};

const ORDER: &str = "o-1";

type TestHandler<V = InMemoryViewStore> = Handler<InMemoryEventStore, V>;

fn handler() -> TestHandler {
    handler_with(InMemoryEventStore::new(), InMemoryViewStore::new())
}

fn projection<V: ViewStore>(h: &TestHandler<V>) -> &Projection<InMemoryEventStore, V> {
    h.consumer()
}

async fn handle<V: ViewStore>(
    h: &TestHandler<V>,
    message: &SqsMessage,
) -> Result<Handled, ProjectionError> {
    h.handle_message(message, deadline()).await
}

/// The events of a confirmed order, in the order they were appended.
fn confirmed_flow() -> Vec<Envelope> {
    story::confirmed_flow(ORDER)
}

/// A handler whose event store holds `flow` (events are stored before they are published).
async fn given_stored(flow: &[Envelope]) -> TestHandler {
    let h = handler();
    for event in flow {
        projection(&h)
            .store()
            .append(Append::events(vec![event.clone()]))
            .await
            .unwrap();
    }
    h
}

async fn stored(h: &TestHandler) -> StoredView {
    projection(h).views().get(ORDER).await.unwrap().unwrap()
}

#[tokio::test]
async fn events_in_order_build_the_view_step_by_step() {
    let flow = confirmed_flow();
    let h = given_stored(&flow).await;
    assert_eq!(projection(&h).views().view(ORDER).await.unwrap(), None);
    for event in &flow {
        assert_eq!(
            handle(&h, &message(event)).await.unwrap(),
            Handled::Applied("view.updated")
        );
    }
    let StoredView { view, version } = stored(&h).await;
    assert_eq!(version, 4);
    assert_eq!(view.status, ViewStatus::Confirmed);
    assert_eq!(
        view.payment.as_ref().map(|p| p.status),
        Some(PaymentStatus::Captured)
    );
    assert_eq!(view.versions.get("Order"), Some(&2));
    assert_eq!(view.updated_at, Some(flow[3].time));
    assert_eq!(view, projection(&h).rebuild(ORDER).await.unwrap());
}

#[tokio::test]
async fn a_duplicate_changes_nothing() {
    let flow = confirmed_flow();
    let h = given_stored(&flow).await;
    handle(&h, &message(&flow[0])).await.unwrap();
    handle(&h, &message(&flow[1])).await.unwrap();
    let before = stored(&h).await;
    assert_eq!(
        handle(&h, &message(&flow[0])).await.unwrap(),
        Handled::Duplicate
    );
    assert_eq!(
        handle(&h, &message(&flow[1])).await.unwrap(),
        Handled::Duplicate
    );
    assert_eq!(stored(&h).await, before);
}

#[tokio::test]
async fn an_event_ahead_of_its_stream_rebuilds_the_view_from_the_store() {
    let flow = confirmed_flow();
    let h = given_stored(&flow).await;
    // The payment stream may start on its own...
    assert_eq!(
        handle(&h, &message(&flow[2])).await.unwrap(),
        Handled::Applied("view.updated")
    );
    assert_eq!(stored(&h).await.view.customer_id, None);
    // ...but order #2 before order #1 is a gap: the store already holds everything.
    assert_eq!(
        handle(&h, &message(&flow[3])).await.unwrap(),
        Handled::Applied("view.rebuilt")
    );
    let StoredView { view, version } = stored(&h).await;
    assert_eq!((view.status, version), (ViewStatus::Confirmed, 4));
    for event in &flow {
        assert_eq!(
            handle(&h, &message(event)).await.unwrap(),
            Handled::Duplicate
        );
    }
}

#[tokio::test]
async fn an_event_the_store_does_not_hold_yet_fails_and_is_retried_later() {
    let flow = confirmed_flow();
    let h = given_stored(&flow[..1]).await;
    let err = handle(&h, &message(&flow[3])).await.unwrap_err();
    assert!(
        matches!(
            err,
            ConsumerError::Own(ViewError::NotInStore { sequence: 2, .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        projection(&h).views().view(ORDER).await.unwrap(),
        None,
        "nothing was written"
    );
}

/// Property: any order of delivery, with duplicates, ends at the view rebuilt from the store.
#[tokio::test]
async fn shuffled_and_duplicated_delivery_converges_to_the_rebuilt_view() {
    let flow = confirmed_flow();
    let h0 = given_stored(&flow).await;
    let expected = projection(&h0).rebuild(ORDER).await.unwrap();
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % n as u64) as usize
    };
    for round in 0..100 {
        let h = given_stored(&flow).await;
        let mut deliveries: Vec<&Envelope> = flow
            .iter()
            .chain(flow.iter().take(next(flow.len() + 1)))
            .collect();
        for i in (1..deliveries.len()).rev() {
            deliveries.swap(i, next(i + 1));
        }
        for event in deliveries {
            handle(&h, &message(event)).await.unwrap();
        }
        let StoredView { view, version } = stored(&h).await;
        assert_eq!(view, expected, "round {round}");
        assert_eq!(version, 4, "round {round}");
    }
}

/// A view store that yields between a read and the caller's write, so deliveries interleave.
#[derive(Default)]
struct Interleaving(InMemoryViewStore);

impl ViewStore for Interleaving {
    async fn get(&self, order_id: &str) -> Result<Option<StoredView>, ViewStoreError> {
        let stored = self.0.get(order_id).await;
        tokio::task::yield_now().await;
        stored
    }
    async fn put(&self, view: &OrderView, expected: u64) -> Result<(), ViewStoreError> {
        self.0.put(view, expected).await
    }
}

#[tokio::test]
async fn concurrent_deliveries_for_one_order_lose_no_update() {
    let flow = confirmed_flow();
    let h = handler_with(InMemoryEventStore::new(), Interleaving::default());
    for event in &flow {
        projection(&h)
            .store()
            .append(Append::events(vec![event.clone()]))
            .await
            .unwrap();
    }
    let messages: Vec<SqsMessage> = flow.iter().chain(flow.iter()).map(message).collect();
    let results = futures::future::join_all(messages.iter().map(|m| handle(&h, m))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let stored = projection(&h).views().0.get(ORDER).await.unwrap().unwrap();
    assert_eq!(stored.view, projection(&h).rebuild(ORDER).await.unwrap());
    assert_eq!(stored.version, 4);
}

#[tokio::test]
async fn stock_events_and_poison_messages() {
    let h = handler();
    let restocked = stored_event::<Stock>("SKU-1", 1, &story::restocked("SKU-1", 1));
    assert_eq!(
        handle(&h, &message(&restocked)).await.unwrap(),
        Handled::Ignored
    );

    let flow = confirmed_flow();
    let h = given_stored(&flow).await;
    let poison = raw_sqs_message("poison", "not json");
    let event = sqs_invocation(vec![message(&flow[0]), poison, message(&flow[1])]);
    let response = h.handle(event).await.unwrap();
    let failed = failed_message_ids(&response);
    assert_eq!(failed, vec!["poison"]);
    assert_eq!(stored(&h).await.version, 2);
}

#[test]
fn config_needs_both_tables() {
    assert!(Config::from_lookup(|k| (k == "EVENTS_TABLE").then(|| "e".to_owned())).is_err());
    let config = Config::from_lookup(|k| match k {
        "REDELIVERY_BASE_SECONDS" => Some("5".to_owned()),
        "REDELIVERY_CAP_SECONDS" => None,
        _ => Some(format!("{k}-value")),
    })
    .unwrap();
    assert_eq!(
        (config.events_table.as_str(), config.views_table.as_str()),
        ("EVENTS_TABLE-value", "VIEWS_TABLE-value")
    );
    assert_eq!(config.redelivery.base, std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn an_event_of_an_unknown_producer_changes_no_view() {
    let h = handler();
    let mut forged = confirmed_flow().remove(0);
    forged.source = "someone/else".into();
    assert!(handle(&h, &message(&forged)).await.is_err());
    assert!(projection(&h).views.view(ORDER).await.unwrap().is_none());
}

/// The in-memory view store, shared, counting the reads a DynamoDB store would make.
#[derive(Clone, Default)]
struct CountingViews {
    views: std::sync::Arc<InMemoryViewStore>,
    gets: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl CountingViews {
    fn gets(&self) -> u64 {
        self.gets.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl ViewStore for CountingViews {
    async fn get(&self, order_id: &str) -> Result<Option<StoredView>, ViewStoreError> {
        self.gets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.views.get(order_id).await
    }

    async fn put(&self, view: &OrderView, expected: u64) -> Result<(), ViewStoreError> {
        self.views.put(view, expected).await
    }
}

#[tokio::test]
async fn a_warm_projection_writes_each_event_without_reading_the_view() {
    let views = CountingViews::default();
    let h = handler_with(InMemoryEventStore::new(), views.clone());
    for event in &confirmed_flow() {
        handle(&h, &message(event)).await.unwrap();
        // A redelivery is told from the copy too.
        assert_eq!(
            handle(&h, &message(event)).await.unwrap(),
            Handled::Duplicate
        );
    }
    assert_eq!(views.gets(), 0, "every event applied to the copy");
    let stored = views.get(ORDER).await.unwrap().unwrap();
    assert_eq!(stored.version, 4);
    assert_eq!(stored.view.status, ViewStatus::Confirmed);
}

#[tokio::test]
async fn a_copy_made_stale_by_another_writer_is_refused_by_the_version_check_and_read_again() {
    let flow = confirmed_flow();
    let views = CountingViews::default();
    let store = std::sync::Arc::new(InMemoryEventStore::new());
    for event in &flow {
        store
            .append(Append::events(vec![event.clone()]))
            .await
            .unwrap();
    }
    let ours = handler_with(store.clone(), views.clone());
    let theirs = handler_with(store.clone(), views.clone());
    ours.handle_message(&message(&flow[0]), deadline())
        .await
        .unwrap();
    // Another execution environment applies the next two events.
    for event in &flow[1..3] {
        theirs
            .handle_message(&message(event), deadline())
            .await
            .unwrap();
    }

    let last = ours
        .handle_message(&message(&flow[3]), deadline())
        .await
        .unwrap();

    assert_eq!(last, Handled::Applied("view.updated"));
    let stored = views.get(ORDER).await.unwrap().unwrap();
    assert_eq!(stored.version, 4, "nothing lost");
    assert_eq!(stored.view, ours.consumer().rebuild(ORDER).await.unwrap());
}
