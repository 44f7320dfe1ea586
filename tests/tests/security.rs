//! The security model end to end: over the local HTTP API (tokens from the runner's issuer,
//! checked as API Gateway checks them) a customer needs a valid token with the right scope, sees
//! and cancels only their own orders, gets an order of their own for an `Idempotency-Key`, and
//! cannot set a price; and the outbox never publishes an event its source may not write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ripple::runtime::Runtime;
use ripple::runtime::issuer::{CUSTOMER_SCOPES, LocalIssuer};
use ripple_e2e::{TestStack, eventually, unique};
use ripple_kit::{Append, Envelope, EventStore, StreamPosition};
use serde_json::{Value, json};

/// The local API of a stack, called over HTTP with tokens its issuer mints.
struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Api {
    fn of(runtime: &Runtime) -> Self {
        Api {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: runtime.http_url().expect("the HTTP API runs"),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let response = self
            .client
            .request(request.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn order_body() -> Value {
    json!({"currency": "EUR", "lines": [{"sku": "TEE", "quantity": 2}]})
}

fn issuer(runtime: &Runtime) -> &LocalIssuer {
    runtime.issuer().expect("the API's routes start an issuer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_the_local_api_a_customer_needs_a_token_and_sees_only_their_own_orders() {
    let stack = TestStack::deploy("security-api").await;
    stack.restock(&[("TEE", 10)]).await;
    stack.price(&["TEE"]).await;
    let runtime = stack.serve(&["orders-api"]).await;
    let api = Api::of(&runtime);
    let alice = issuer(&runtime).token("alice", &CUSTOMER_SCOPES).unwrap();
    let bob = issuer(&runtime).token("bob", &CUSTOMER_SCOPES).unwrap();
    let reader = issuer(&runtime)
        .token("alice", &[CUSTOMER_SCOPES[1]])
        .unwrap();

    assert_eq!(
        api.call("POST", "/orders", None, None, Some(order_body()))
            .await
            .0,
        401
    );
    let impostor = LocalIssuer::generate(issuer(&runtime).url()).unwrap();
    let forged = impostor.token("alice", &CUSTOMER_SCOPES).unwrap();
    assert_eq!(
        api.call("POST", "/orders", Some(&forged), None, Some(order_body()))
            .await
            .0,
        401
    );
    assert_eq!(
        api.call("POST", "/orders", Some(&reader), None, Some(order_body()))
            .await
            .0,
        403
    );

    let (status, placed) = api
        .call("POST", "/orders", Some(&alice), None, Some(order_body()))
        .await;
    assert_eq!(status, 201, "{placed}");
    let order = placed["order_id"].as_str().unwrap().to_owned();
    let stored = stack.stream("Order", &order).await;
    assert_eq!(
        stored[0].data["customer_id"], "alice",
        "the token's subject owns it"
    );
    assert_eq!(
        stored[0].data["total"]["minor_units"],
        2 * ripple_e2e::UNIT_PRICE_CENTS,
        "the catalog's price"
    );

    for (method, path) in [
        ("GET", format!("/orders/{order}")),
        ("GET", format!("/orders/{order}?version=1")),
        ("GET", format!("/orders/{order}/events")),
        ("POST", format!("/orders/{order}/cancel")),
    ] {
        let (status, body) = api.call(method, &path, Some(&bob), None, None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("order_not_found")),
            "{path}"
        );
    }
    assert_eq!(
        stack.types("Order", &order).await,
        ["order.placed"],
        "bob cancelled nothing"
    );
    let (status, _) = api
        .call(
            "GET",
            &format!("/orders/{order}/events"),
            Some(&reader),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "alice reads her own order");

    let priced =
        json!({"currency": "EUR", "lines": [{"sku": "TEE", "quantity": 1, "unit_price_cents": 1}]});
    let (status, body) = api
        .call("POST", "/orders", Some(&alice), None, Some(priced))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("price_not_accepted"))
    );

    runtime.stop().await;
    stack.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_idempotency_key_from_two_customers_places_two_independent_orders() {
    let stack = TestStack::deploy("security-keys").await;
    stack.restock(&[("TEE", 10)]).await;
    stack.price(&["TEE"]).await;
    let runtime = stack.serve(&["orders-api"]).await;
    let api = Api::of(&runtime);
    let key = unique("key");
    let mut orders = Vec::new();
    for customer in ["alice", "bob", "alice"] {
        let token = issuer(&runtime).token(customer, &CUSTOMER_SCOPES).unwrap();
        let (status, body) = api
            .call(
                "POST",
                "/orders",
                Some(&token),
                Some(&key),
                Some(order_body()),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        orders.push(body["order_id"].as_str().unwrap().to_owned());
    }
    assert_ne!(orders[0], orders[1], "bob's key is his own");
    assert_eq!(orders[0], orders[2], "alice's retry replays her order");
    for (order, owner) in [(&orders[0], "alice"), (&orders[1], "bob")] {
        let stream = stack.stream("Order", order).await;
        assert_eq!(
            (stream.len(), stream[0].data["customer_id"].as_str()),
            (1, Some(owner))
        );
    }
    runtime.stop().await;
    stack.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_outbox_never_publishes_an_event_its_source_may_not_write() {
    let stack = TestStack::deploy("security-outbox").await;
    let inbox = stack.inbox("DomainEventsTopic").await;
    let runtime = stack.run(&["outbox-publisher"]).await;
    let store = stack.store();
    // The API's role may write Order streams, but an order is confirmed only by the saga.
    let forged = Envelope::encode(
        domain::sources::ORDERS_API,
        StreamPosition::new("Order", "o-forged", 1),
        &domain::testing::confirmed("o-forged"),
    )
    .unwrap();
    let genuine = domain::testing::stored::<domain::order::Order>(
        "o-genuine",
        1,
        &domain::order::OrderEvent::Placed(domain::testing::placed("o-genuine")),
    );
    store
        .append(Append::events(vec![forged.clone()]))
        .await
        .unwrap();
    store
        .append(Append::events(vec![genuine.clone()]))
        .await
        .unwrap();

    let received = std::sync::Mutex::new(Vec::new());
    eventually(
        "the genuine event on the topic",
        Duration::from_secs(60),
        || async {
            let drained = inbox.drain().await;
            let mut received = received.lock().unwrap();
            received.extend(drained);
            received
                .iter()
                .any(|b| b.contains(&genuine.id))
                .then_some(())
        },
    )
    .await;
    runtime
        .wait_until_quiet(Duration::from_secs(60), |_, _| {})
        .await
        .unwrap();
    let mut received = received.into_inner().unwrap();
    received.extend(inbox.drain().await);
    assert!(
        received.iter().all(|body| !body.contains(&forged.id)),
        "the forged confirmation was published"
    );
    assert_eq!(
        stack.stream("Order", "o-forged").await.len(),
        1,
        "it stays in the store"
    );
    runtime.stop().await;
    stack.teardown().await;
}
