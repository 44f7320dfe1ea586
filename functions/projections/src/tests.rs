//! Handler tests over the in-memory event and view stores: in order, duplicated, out of order,
//! shuffled, concurrent; plus the DynamoDB adapter against mocked responses.

use super::*;
use domain::inventory::{SkuQuantity, StockEvent, StockReserved};
use domain::order::OrderPlaced;
use domain::view::{PaymentStatus, ViewStatus};
use ripple_kit::Append;
use ripple_kit::store::InMemoryEventStore;
use ripple_kit::testing::{
    envelope, failed_message_ids, raw_sqs_message, sample_data, sqs_invocation,
    sqs_message as message,
};

const ORDER: &str = "o-1";
const SAMPLE_ORDER: &str = include_str!("../../../events/inventory-order-placed.json");

fn handler() -> Handler<InMemoryEventStore, InMemoryViewStore> {
    Handler::with_ports(InMemoryEventStore::new(), InMemoryViewStore::new())
}

/// The events of a confirmed order, in the order they were appended.
fn confirmed_flow() -> Vec<Envelope> {
    // The sample order of `events/`: SKU-1 ×2 for 25.00 EUR.
    let mut placed: OrderPlaced = sample_data(SAMPLE_ORDER);
    placed.order_id = ORDER.into();
    let placed = OrderEvent::Placed(placed);
    let reserved = ReservationEvent::Reserved(StockReserved {
        order_id: ORDER.into(),
        customer_id: "c-1".into(),
        total_cents: 2500,
        currency: "EUR".into(),
        lines: vec![SkuQuantity {
            sku: "SKU-1".into(),
            quantity: 2,
        }],
    });
    let captured = PaymentEvent::Captured {
        order_id: ORDER.into(),
        amount_cents: 2500,
        currency: "EUR".into(),
        payment_id: "p-1".into(),
    };
    vec![
        envelope("Order", ORDER, 1, &placed),
        envelope("Reservation", ORDER, 1, &reserved),
        envelope("Payment", ORDER, 1, &captured),
        envelope(
            "Order",
            ORDER,
            2,
            &OrderEvent::Confirmed {
                order_id: ORDER.into(),
            },
        ),
    ]
}

/// A handler whose event store holds `flow` (events are stored before they are published).
async fn given_stored(flow: &[Envelope]) -> Handler<InMemoryEventStore, InMemoryViewStore> {
    let h = handler();
    for event in flow {
        h.store()
            .append(Append::events(vec![event.clone()]))
            .await
            .unwrap();
    }
    h
}

async fn stored(h: &Handler<InMemoryEventStore, InMemoryViewStore>) -> StoredView {
    h.views().get(ORDER).await.unwrap().unwrap()
}

#[tokio::test]
async fn events_in_order_build_the_view_step_by_step() {
    let flow = confirmed_flow();
    let h = given_stored(&flow).await;
    assert_eq!(h.get_view(ORDER).await.unwrap(), None);
    for event in &flow {
        assert_eq!(
            h.handle_message(&message(event)).await.unwrap(),
            Outcome::Applied
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
    assert_eq!(view, h.rebuild(ORDER).await.unwrap());
}

#[tokio::test]
async fn a_duplicate_changes_nothing() {
    let flow = confirmed_flow();
    let h = given_stored(&flow).await;
    h.handle_message(&message(&flow[0])).await.unwrap();
    h.handle_message(&message(&flow[1])).await.unwrap();
    let before = stored(&h).await;
    assert_eq!(
        h.handle_message(&message(&flow[0])).await.unwrap(),
        Outcome::Duplicate
    );
    assert_eq!(
        h.handle_message(&message(&flow[1])).await.unwrap(),
        Outcome::Duplicate
    );
    assert_eq!(stored(&h).await, before);
}

#[tokio::test]
async fn an_event_ahead_of_its_stream_rebuilds_the_view_from_the_store() {
    let flow = confirmed_flow();
    let h = given_stored(&flow).await;
    // The payment stream may start on its own...
    assert_eq!(
        h.handle_message(&message(&flow[2])).await.unwrap(),
        Outcome::Applied
    );
    assert_eq!(stored(&h).await.view.customer_id, None);
    // ...but order #2 before order #1 is a gap: the store already holds everything.
    assert_eq!(
        h.handle_message(&message(&flow[3])).await.unwrap(),
        Outcome::Rebuilt
    );
    let StoredView { view, version } = stored(&h).await;
    assert_eq!((view.status, version), (ViewStatus::Confirmed, 4));
    for event in &flow {
        assert_eq!(
            h.handle_message(&message(event)).await.unwrap(),
            Outcome::Duplicate
        );
    }
}

#[tokio::test]
async fn an_event_the_store_does_not_hold_yet_fails_and_is_retried_later() {
    let flow = confirmed_flow();
    let h = given_stored(&flow[..1]).await;
    let err = h.handle_message(&message(&flow[3])).await.unwrap_err();
    assert!(
        matches!(err, ProjectionError::NotInStore { sequence: 2, .. }),
        "{err:?}"
    );
    assert_eq!(
        h.get_view(ORDER).await.unwrap(),
        None,
        "nothing was written"
    );
}

/// Property: any order of delivery, with duplicates, ends at the view rebuilt from the store.
#[tokio::test]
async fn shuffled_and_duplicated_delivery_converges_to_the_rebuilt_view() {
    let flow = confirmed_flow();
    let h0 = given_stored(&flow).await;
    let expected = h0.rebuild(ORDER).await.unwrap();
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
            h.handle_message(&message(event)).await.unwrap();
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
    let h = Handler::with_ports(InMemoryEventStore::new(), Interleaving::default());
    for event in &flow {
        h.store()
            .append(Append::events(vec![event.clone()]))
            .await
            .unwrap();
    }
    let messages: Vec<SqsMessage> = flow.iter().chain(flow.iter()).map(message).collect();
    let results = futures::future::join_all(messages.iter().map(|m| h.handle_message(m))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let stored = h.views().0.get(ORDER).await.unwrap().unwrap();
    assert_eq!(stored.view, h.rebuild(ORDER).await.unwrap());
    assert_eq!(stored.version, 4);
}

#[tokio::test]
async fn stock_events_and_poison_messages() {
    let h = handler();
    let restocked = envelope(
        "Stock",
        "SKU-1",
        1,
        &StockEvent::Restocked {
            sku: "SKU-1".into(),
            quantity: 1,
        },
    );
    assert_eq!(
        h.handle_message(&message(&restocked)).await.unwrap(),
        Outcome::Ignored
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

#[tokio::test]
async fn the_in_memory_store_refuses_a_stale_write() {
    let views = InMemoryViewStore::new();
    let view = OrderView::new(ORDER);
    views.put(&view, 0).await.unwrap();
    assert!(matches!(
        views.put(&view, 3).await,
        Err(ViewStoreError::Conflict { .. })
    ));
}

mod dynamo {
    use super::*;
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_smithy_mocks::{mock, mock_client};

    fn view() -> OrderView {
        let flow = confirmed_flow();
        let events: Vec<ViewEvent> = flow
            .iter()
            .map(|e| view_event(e).unwrap().unwrap())
            .collect();
        OrderView::rebuild(ORDER, &events)
    }

    #[tokio::test]
    async fn a_put_names_the_version_it_read() {
        let put = mock!(Client::put_item)
            .match_requests(|req| {
                req.table_name() == Some("views")
                    && req.condition_expression()
                        == Some("attribute_not_exists(#id) OR #version = :expected")
                    && req
                        .expression_attribute_values()
                        .and_then(|v| v.get(":expected"))
                        == Some(&AttributeValue::N("3".into()))
                    && req.item().and_then(|i| i.get("version"))
                        == Some(&AttributeValue::N("4".into()))
                    && req.item().and_then(|i| i.get("id"))
                        == Some(&AttributeValue::S(ORDER.into()))
            })
            .then_output(|| PutItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, [&put]);
        DynamoViewStore::new(client, "views")
            .put(&view(), 3)
            .await
            .unwrap();
        assert_eq!(put.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_failed_condition_is_a_conflict() {
        let put = mock!(Client::put_item).then_error(|| {
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder().build(),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, [&put]);
        let err = DynamoViewStore::new(client, "views")
            .put(&view(), 3)
            .await
            .unwrap_err();
        assert!(matches!(err, ViewStoreError::Conflict { ref order_id } if order_id == ORDER));
    }

    #[tokio::test]
    async fn a_stored_item_reads_back_as_the_view() {
        let expected = view();
        let item = views::view_item(&expected).unwrap();
        let get = mock!(Client::get_item)
            .match_requests(|req| req.consistent_read() == Some(true))
            .then_output(move || {
                GetItemOutput::builder()
                    .set_item(Some(item.clone()))
                    .build()
            });
        let missing = mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        let client = mock_client!(
            aws_sdk_dynamodb,
            aws_smithy_mocks::RuleMode::Sequential,
            [&get, &missing]
        );
        let store = DynamoViewStore::new(client, "views");
        assert_eq!(get_view(&store, ORDER).await.unwrap(), Some(expected));
        assert_eq!(get_view(&store, "o-404").await.unwrap(), None);
    }

    #[test]
    fn an_item_without_a_view_is_corrupt() {
        let item =
            std::collections::HashMap::from([("id".to_owned(), AttributeValue::S(ORDER.into()))]);
        assert!(matches!(
            views::view_from_item(ORDER, &item),
            Err(ViewStoreError::Corrupt { .. })
        ));
    }
}

#[test]
fn config_needs_both_tables() {
    assert!(Config::from_lookup(|k| (k == "EVENTS_TABLE").then(|| "e".to_owned())).is_err());
    let config = Config::from_lookup(|k| Some(format!("{k}-value"))).unwrap();
    assert_eq!(
        (config.events_table.as_str(), config.views_table.as_str()),
        ("EVENTS_TABLE-value", "VIEWS_TABLE-value")
    );
}
