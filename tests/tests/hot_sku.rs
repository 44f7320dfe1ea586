//! A hot aggregate: many orders at once on one sku collide on its stream position again and
//! again; the contention must resolve inside the pipeline's retries and backoff, with every
//! order decided, stock conserved and nothing dead-lettered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ripple_e2e::RunningStack;

const ORDERS: usize = 20;
const STOCK: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_racing_for_one_sku_all_end_decided_and_nothing_is_dead_lettered() {
    let saga = RunningStack::start("hot", &[("HOT", STOCK)]).await;
    let api = saga.api();
    let placed =
        futures::future::join_all((0..ORDERS).map(|i| api.place_owned(format!("c-{i}"), "HOT", 1)))
            .await;
    saga.settle().await;
    let stack = &saga.stack;

    let mut confirmed = 0;
    for order in &placed {
        let types = stack.types("Order", order).await;
        match types.last().map(String::as_str) {
            Some("order.confirmed") => confirmed += 1,
            Some("order.cancelled") => {}
            other => panic!("order {order} undecided: {other:?} ({types:?})"),
        }
    }
    assert_eq!(confirmed, STOCK as usize, "every unit sold once, no more");
    let (stock, _) = stack.inventory().stock("HOT").await.unwrap();
    assert_eq!((stock.available, stock.allocated), (0, STOCK));
    assert_eq!(stack.dead_lettered().await, 0, "nothing dead-lettered");
    saga.finish().await;
}
