//! The sweeper over the in-memory store: what each pass finds in its window and what it does.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Duration as TimeDelta, Utc};
use domain::inventory::Reservation;
use domain::order::{CancelReason, Order, OrderEvent, OrderStatus};
use domain::testing::{confirmed, placed, reserved, stored};
use domain::view::{OrderView, ViewEvent};
use domain::views::{InMemoryViewStore, ViewStore};
use ripple_kit::store::InMemoryEventStore;
use ripple_kit::{Aggregate, Append, Envelope, EventStore, Loaded};

use super::*;

const DEADLINE: Duration = Duration::from_secs(2 * 3600);
const SETTLE: Duration = Duration::from_secs(300);

type Tested = Sweeper<InMemoryEventStore, InMemoryViewStore, InMemoryCursors>;

fn sweeper() -> Tested {
    Sweeper::new(
        InMemoryEventStore::new(),
        InMemoryViewStore::new(),
        InMemoryCursors::default(),
        DEADLINE,
        SETTLE,
    )
}

fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(60)
}

/// `event` of aggregate `A`, stored at `at`.
async fn store_at<A: Aggregate>(
    sweeper: &Tested,
    id: &str,
    sequence: u64,
    event: &A::Event,
    at: DateTime<Utc>,
) -> Envelope {
    let mut envelope = stored::<A>(id, sequence, event);
    envelope.time = at;
    sweeper
        .store()
        .append(Append::events(vec![envelope.clone()]))
        .await
        .unwrap();
    envelope
}

/// `order.placed` of `id`, stored at `at`.
async fn place_at(sweeper: &Tested, id: &str, at: DateTime<Utc>) {
    store_at::<Order>(sweeper, id, 1, &OrderEvent::Placed(placed(id)), at).await;
}

async fn order(sweeper: &Tested, id: &str) -> Loaded<Order> {
    sweeper.store().load(id).await.unwrap()
}

#[tokio::test]
async fn an_order_still_placed_at_its_deadline_is_cancelled_timed_out_and_a_decided_one_is_left_alone()
 {
    let s = sweeper();
    let now = Utc::now();
    let long_ago = now - TimeDelta::minutes(150);
    store_at::<Order>(
        &s,
        "stuck",
        1,
        &OrderEvent::Placed(placed("stuck")),
        long_ago,
    )
    .await;
    store_at::<Order>(&s, "done", 1, &OrderEvent::Placed(placed("done")), long_ago).await;
    store_at::<Order>(&s, "done", 2, &confirmed("done"), long_ago).await;
    let recent = now - TimeDelta::minutes(10);
    store_at::<Order>(&s, "young", 1, &OrderEvent::Placed(placed("young")), recent).await;

    let report = s.sweep(now, later()).await.unwrap();
    assert_eq!((report.orders_checked, report.orders_timed_out), (2, 1));
    let stuck = order(&s, "stuck").await;
    assert_eq!(stuck.state.status, OrderStatus::Cancelled);
    assert_eq!(stuck.state.cancel_reason, Some(CancelReason::TimedOut));
    let cancellation = &s
        .store()
        .read_stream(Order::TYPE, "stuck", 2)
        .await
        .unwrap()[0];
    assert_eq!(cancellation.source, SOURCE);
    assert_eq!(order(&s, "done").await.state.status, OrderStatus::Confirmed);
    assert_eq!(
        order(&s, "young").await.state.status,
        OrderStatus::Placed,
        "not due yet"
    );
}

#[tokio::test]
async fn a_view_behind_its_streams_is_rebuilt_and_one_up_to_date_is_left_alone() {
    let s = sweeper();
    let now = Utc::now();
    let at = now - TimeDelta::minutes(20);
    let placed_behind = placed("behind");
    let first = store_at::<Order>(
        &s,
        "behind",
        1,
        &OrderEvent::Placed(placed_behind.clone()),
        at,
    )
    .await;
    store_at::<Reservation>(&s, "behind", 1, &reserved(&placed_behind), at).await;
    // The projection saw order.placed, and its stock.reserved was lost.
    let seen = ViewEvent::from_envelope(&first).unwrap().unwrap();
    s.views()
        .put(&OrderView::rebuild("behind", &[seen]), 0)
        .await
        .unwrap();
    // This one's view is missing altogether.
    store_at::<Order>(&s, "missing", 1, &OrderEvent::Placed(placed("missing")), at).await;

    let report = s.sweep(now, later()).await.unwrap();
    assert_eq!((report.views_checked, report.views_repaired), (2, 2));
    let behind = s.views().view("behind").await.unwrap().unwrap();
    assert_eq!(behind.version_of(Reservation::TYPE), 1);
    assert!(s.views().view("missing").await.unwrap().is_some());

    let again = s.sweep(now + TimeDelta::minutes(1), later()).await.unwrap();
    assert_eq!(again.views_repaired, 0, "up to date now");
}

#[tokio::test]
async fn each_pass_reads_only_what_was_stored_since_its_cursor() {
    let s = sweeper();
    let now = Utc::now();
    place_at(&s, "o-1", now - TimeDelta::minutes(30)).await;
    let first = s.sweep(now, later()).await.unwrap();
    assert_eq!(first.views_checked, 1);
    assert_eq!(first.views_swept_to, Some(now - TimeDelta::minutes(5)));
    assert_eq!(
        s.cursors().get(Pass::Views).await.unwrap(),
        first.views_swept_to
    );
    let second = s.sweep(now + TimeDelta::minutes(1), later()).await.unwrap();
    assert_eq!(second.views_checked, 0, "nothing new since the cursor");
}

#[tokio::test]
async fn a_sweep_out_of_time_starts_no_step_and_moves_no_cursor() {
    let s = sweeper();
    let now = Utc::now();
    place_at(&s, "o-1", now - TimeDelta::minutes(30)).await;
    let report = s.sweep(now, SystemTime::now()).await.unwrap();
    assert_eq!(report.views_checked, 0);
    assert_eq!(s.cursors().get(Pass::Views).await.unwrap(), None);
}

#[test]
fn config_needs_both_tables_and_defaults_the_times() {
    assert!(Config::from_lookup(|k| (k == "EVENTS_TABLE").then(|| "e".to_owned())).is_err());
    let config = Config::from_lookup(|k| k.ends_with("TABLE").then(|| k.to_lowercase())).unwrap();
    assert_eq!((config.deadline, config.settle), (DEADLINE, SETTLE));
    let zero = Config::from_lookup(|k| match k {
        "ORDER_DEADLINE_SECONDS" => Some("0".to_owned()),
        _ => Some("t".to_owned()),
    });
    assert!(zero.is_err());
}

mod cursors {
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_smithy_mocks::{mock, mock_client};

    use super::*;

    #[tokio::test]
    async fn a_cursor_only_moves_forward_and_a_put_whose_answer_was_lost_is_done() {
        let at = DateTime::from_timestamp_millis(1_800_000_000_000).unwrap();
        // Stored, answered with a 500; the SDK's retry meets `at <= :at`, which its own
        // stored value passes (in DynamoDB); here the worst case: the condition fails.
        let put = mock!(Client::put_item)
            .match_requests(|req| {
                req.condition_expression() == Some("attribute_not_exists(pk) OR #at <= :at")
                    && req.item().unwrap()["pk"]
                        .as_s()
                        .is_ok_and(|k| k == "sweep#views")
                    && req.item().unwrap()["kind"]
                        .as_s()
                        .is_ok_and(|k| k == "cursor")
            })
            .sequence()
            .http_status(500, None)
            .error(|| {
                PutItemError::ConditionalCheckFailedException(
                    ConditionalCheckFailedException::builder().build(),
                )
            })
            .build();
        let client = mock_client!(aws_sdk_dynamodb, [&put]);
        DynamoCursors::new(client, "events")
            .advance(Pass::Views, at)
            .await
            .unwrap();
        assert_eq!(put.num_calls(), 2);
    }
}
