//! `ripple replay views`: a corrupted read model, an unreadable one and a missing one are
//! rebuilt to the fold of the store; one already its fold is left alone; again changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_dynamodb::types::AttributeValue;
use domain::view::ViewStatus;
use domain::views::{DynamoViewStore, ViewStore, attr, rebuild_from};
use ripple::replay::{ReplayError, Views};
use ripple_e2e::RunningStack;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupted_views_are_rebuilt_to_the_fold_of_the_store_and_a_second_replay_changes_nothing()
{
    let saga = RunningStack::start("replay", &[("SKU-1", 10)]).await;
    let stack = &saga.stack;
    let api = saga.api();
    let orders = [
        api.place("c-1", &[("SKU-1", 1)]).await,
        api.place("c-2", &[("SKU-1", 2)]).await,
        api.place("c-3", &[("SKU-1", 3)]).await,
        api.place("c-4", &[("SKU-1", 1)]).await,
    ];
    saga.settle().await;
    let table = stack.env("ProjectionsFunction")["VIEWS_TABLE"].clone();
    let views = DynamoViewStore::new(stack.clients.dynamodb.clone(), &table);
    // One view says the wrong thing, one is not a view at all, one is gone.
    let mut wrong = views.get(&orders[0]).await.unwrap().unwrap();
    wrong.view.status = ViewStatus::Cancelled;
    views.put(&wrong.view, wrong.version).await.unwrap();
    stack
        .clients
        .dynamodb
        .put_item()
        .table_name(&table)
        .item(attr::ID, AttributeValue::S(orders[1].clone()))
        .item(attr::VIEW, AttributeValue::S("{garbage".into()))
        .item(attr::VERSION, AttributeValue::N("7".into()))
        .send()
        .await
        .unwrap();
    stack
        .clients
        .dynamodb
        .delete_item()
        .table_name(&table)
        .key(attr::ID, AttributeValue::S(orders[2].clone()))
        .send()
        .await
        .unwrap();

    let replay = Views::of(&stack.deployment, &stack.clients.dynamodb).unwrap();
    let mut listed = replay.orders().await.unwrap();
    listed.sort();
    let mut placed = orders.to_vec();
    placed.sort();
    assert_eq!(listed, placed, "every order of the store, once");
    let mut rebuilt = Vec::new();
    for order in &listed {
        if replay.rebuild(order).await.unwrap() {
            rebuilt.push(order.clone());
        }
    }
    let mut again = 0;
    for order in &listed {
        again += usize::from(replay.rebuild(order).await.unwrap());
    }
    let store = stack.store();
    for order in &orders {
        let folded = rebuild_from::<_, ReplayError>(&store, order).await.unwrap();
        assert_eq!(views.view(order).await.unwrap().unwrap(), folded, "{order}");
    }
    saga.finish().await;
    let mut broken = orders[..3].to_vec();
    broken.sort();
    rebuilt.sort();
    assert_eq!(rebuilt, broken, "only the broken views are written");
    assert_eq!(again, 0, "a second replay changes nothing");
}
