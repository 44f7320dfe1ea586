//! Handler tests over the in-memory event store, starting from the sample events in `events/`.
//! Requests carry the identity API Gateway's authorizer verified (customer `c-1`, both scopes,
//! in the samples); the catalog prices `SKU-1` and `A` at 12.50 EUR.

use std::sync::Arc;

use super::*;
use aws_lambda_events::encodings::Body;
use base64::Engine;
use domain::views::InMemoryViewStore;
use http::header::CONTENT_TYPE;
use ripple_kit::store::InMemoryEventStore;
use serde_json::Value;

type TestHandler = Handler<InMemoryEventStore, InMemoryViewStore>;

const POST_ORDER: &str = include_str!("../../../events/orders-api-post-order.json");
const GET_EVENTS: &str = include_str!("../../../events/orders-api-get-events.json");

fn request(fixture: &str) -> ApiGatewayV2httpRequest {
    serde_json::from_str(fixture).expect("fixture is an API Gateway v2 request")
}

fn post(body: &str) -> ApiGatewayV2httpRequest {
    let mut r = request(POST_ORDER);
    r.body = Some(body.to_owned());
    r
}

fn get_events(order_id: &str) -> ApiGatewayV2httpRequest {
    let mut r = request(GET_EVENTS);
    r.raw_path = Some(format!("/orders/{order_id}/events"));
    r.path_parameters.insert("id".into(), order_id.into());
    r
}

async fn call(handler: &TestHandler, r: ApiGatewayV2httpRequest) -> (i64, Value) {
    let response = handler
        .handle(LambdaEvent::new(r, lambda_runtime::Context::default()))
        .await
        .expect("client errors are responses, not errors");
    let body = match response.body {
        Some(Body::Text(text)) => serde_json::from_str(&text).expect("JSON body"),
        other => panic!("expected a text body, got {other:?}"),
    };
    (response.status_code, body)
}

/// The catalog every test starts with.
async fn seed_catalog<S: EventStore>(store: &S) {
    for sku in ["SKU-1", "A", "B"] {
        catalog::set_price(store, sku, "EUR", 1250).await.unwrap();
    }
}

async fn handler() -> TestHandler {
    let store = InMemoryEventStore::new();
    seed_catalog(&store).await;
    Handler::with_stores(store, InMemoryViewStore::new())
}

/// Every Order event in the store.
fn orders<V>(h: &Handler<InMemoryEventStore, V>) -> Vec<Envelope> {
    orders_in(&h.store)
}

/// `r` as sent by `customer` with a token granting `scopes`.
fn as_customer(
    mut r: ApiGatewayV2httpRequest,
    customer: &str,
    scopes: &[&str],
) -> ApiGatewayV2httpRequest {
    let authorizer = r
        .request_context
        .authorizer
        .get_or_insert_with(Default::default);
    let jwt = authorizer.jwt.get_or_insert_with(Default::default);
    jwt.claims.insert("sub".into(), customer.into());
    jwt.claims.insert("scope".into(), scopes.join(" "));
    jwt.scopes = Some(scopes.iter().map(|s| (*s).to_owned()).collect());
    r
}

/// `r` with no identity at all, as a route without the authorizer would pass it.
fn anonymous(mut r: ApiGatewayV2httpRequest) -> ApiGatewayV2httpRequest {
    r.request_context.authorizer = None;
    r
}

const BOTH: &[&str] = &[scopes::WRITE, scopes::READ];

#[tokio::test]
async fn posting_the_sample_order_stores_order_placed_for_the_caller_at_catalog_prices() {
    let h = handler().await;
    let (status, body) = call(&h, request(POST_ORDER)).await;
    assert_eq!(status, 201, "{body}");
    let order_id = body["order_id"].as_str().unwrap().to_owned();
    let stored = h.store.read_stream("Order", &order_id, 1).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_type, "order.placed");
    assert_eq!(stored[0].sequence, 1);
    assert_eq!(stored[0].source, domain::sources::ORDERS_API);
    assert_eq!(stored[0].id, body["event_id"].as_str().unwrap());
    assert!(stored[0].traceparent.is_some());
    let OrderEvent::Placed(placed) = stored[0].decode_for::<Order>().unwrap() else {
        panic!("not order.placed");
    };
    assert_eq!(placed.customer_id, "c-1", "the token's subject");
    assert_eq!(
        (placed.lines[0].unit_price_cents, placed.total.minor_units),
        (1250, 2500)
    );
}

#[tokio::test]
async fn the_history_of_a_placed_order_is_served() {
    let h = handler().await;
    let (_, placed) = call(&h, request(POST_ORDER)).await;
    let order_id = placed["order_id"].as_str().unwrap();
    let (status, body) = call(&h, get_events(order_id)).await;
    assert_eq!(status, 200);
    assert_eq!(body["events"][0]["type"], "order.placed");
    assert_eq!(body["events"][0]["subject"], order_id);
}

#[tokio::test]
async fn unknown_and_malformed_order_ids_are_refused() {
    let h = handler().await;
    assert_eq!(
        call(&h, get_events("no-such-order")).await.1["code"],
        "order_not_found"
    );
    let (status, body) = call(&h, get_events("bad id!")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_order_id"))
    );
}

#[tokio::test]
async fn bad_input_of_every_kind_gets_a_clear_error_and_writes_nothing() {
    let h = handler().await;
    let valid = r#"{"currency":"EUR","lines":[{"sku":"A","quantity":1}]}"#;
    let cases: Vec<(ApiGatewayV2httpRequest, i64, &str)> = vec![
        (post("{not json"), 400, "malformed_json"),
        (post(""), 400, "empty_body"),
        (
            post(r#"{"currency":"EUR","lines":[{"sku":"A","quantity":"two"}]}"#),
            422,
            "invalid_request",
        ),
        (post(r#"{"currency":"EUR"}"#), 422, "invalid_request"),
        (post(r#"{"currency":"EUR","lines":[]}"#), 422, "no_lines"),
        (
            post(r#"{"currency":"EUR","lines":[{"sku":"A","quantity":-1}]}"#),
            422,
            "invalid_request",
        ),
        (
            post(r#"{"currency":"EUR","lines":[{"sku":"A","quantity":1,"unit_price_cents":1}]}"#),
            422,
            "price_not_accepted",
        ),
        (
            post(r#"{"customer_id":"c-2","currency":"EUR","lines":[{"sku":"A","quantity":1}]}"#),
            422,
            "customer_not_accepted",
        ),
        (
            post(r#"{"currency":"EUR","lines":[{"sku":"NOT-SOLD","quantity":1}]}"#),
            422,
            "unknown_sku",
        ),
        (
            post(r#"{"currency":"XTS","lines":[{"sku":"A","quantity":1}]}"#),
            422,
            "unsupported_currency",
        ),
        (
            post(r#"{"currency":"USD","lines":[{"sku":"A","quantity":1}]}"#),
            422,
            "not_sold_in_currency",
        ),
        (
            post(&format!(
                r#"{{"currency":"{}","lines":[]}}"#,
                "x".repeat(MAX_BODY_BYTES)
            )),
            413,
            "payload_too_large",
        ),
        (
            {
                let mut r = post(valid);
                r.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                r
            },
            415,
            "unsupported_media_type",
        ),
        (
            {
                let mut r = post(valid);
                r.raw_path = Some("/orderz".into());
                r
            },
            404,
            "route_not_found",
        ),
    ];
    for (r, status, code) in cases {
        let (got_status, body) = call(&h, r).await;
        assert_eq!(
            (got_status, body["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert!(orders(&h).is_empty(), "nothing is written for bad input");
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let h = handler().await;
    let (status, body) = call(
        &h,
        post(r#"{"currency":"EUR","lines":[{"sku":"A","quantity":0}]}"#),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "invalid_quantity");
    assert_eq!(body["field"], "lines[0].quantity");
}

#[tokio::test]
async fn a_base64_body_is_decoded() {
    let h = handler().await;
    let mut r = request(POST_ORDER);
    let raw = r.body.take().unwrap();
    r.body = Some(base64::engine::general_purpose::STANDARD.encode(raw));
    r.is_base64_encoded = true;
    assert_eq!(call(&h, r).await.0, 201);
}

/// A request to `method path?query`, built from the GET sample.
fn to(method: &str, path: &str, query: &[(&str, &str)]) -> ApiGatewayV2httpRequest {
    let mut r = request(GET_EVENTS);
    r.raw_path = Some(path.to_owned());
    r.path_parameters.clear();
    r.request_context.http.method = method.parse().unwrap();
    let qs: String = query.iter().map(|(k, v)| format!("{k}={v}&")).collect();
    r.raw_query_string = Some(qs.clone());
    r.query_string_parameters = qs.trim_end_matches('&').parse().unwrap_or_default();
    r
}

async fn place(h: &TestHandler) -> String {
    call(h, request(POST_ORDER)).await.1["order_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn cancelling_twice_cancels_once_and_says_so() {
    let h = handler().await;
    let id = place(&h).await;
    let (status, body) = call(&h, to("POST", &format!("/orders/{id}/cancel"), &[])).await;
    assert_eq!((status, &body["changed"]), (202, &json!(true)));
    let (status, body) = call(&h, to("POST", &format!("/orders/{id}/cancel"), &[])).await;
    assert_eq!((status, &body["changed"]), (200, &json!(false)));
    let types: Vec<_> = h
        .store
        .read_stream("Order", &id, 1)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, vec!["order.placed", "order.cancelled"]);
    assert_eq!(
        call(&h, to("POST", "/orders/missing/cancel", &[])).await.0,
        404
    );
}

#[tokio::test]
async fn a_confirmed_order_cannot_be_cancelled() {
    let h = handler().await;
    let id = place(&h).await;
    let confirmed = Envelope::encode(
        domain::sources::ORDER_SAGA,
        StreamPosition::of::<Order>(&id, 2),
        &OrderEvent::Confirmed {
            order_id: id.clone(),
        },
    )
    .unwrap();
    h.store
        .append(Append::events(vec![confirmed]))
        .await
        .unwrap();
    let (status, body) = call(&h, to("POST", &format!("/orders/{id}/cancel"), &[])).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("order_confirmed"))
    );
}

#[tokio::test]
async fn an_order_can_be_read_as_it_was_at_any_version() {
    let h = handler().await;
    let id = place(&h).await;
    call(&h, to("POST", &format!("/orders/{id}/cancel"), &[])).await;
    let path = format!("/orders/{id}");
    let (_, now) = call(&h, to("GET", &path, &[])).await;
    assert_eq!(
        (now["version"].as_u64(), now["order"]["status"].as_str()),
        (Some(2), Some("cancelled"))
    );
    let (_, then) = call(&h, to("GET", &path, &[("version", "1")])).await;
    assert_eq!(
        (then["version"].as_u64(), then["order"]["status"].as_str()),
        (Some(1), Some("placed"))
    );
    assert_eq!(
        call(&h, to("GET", &path, &[("version", "3")])).await.1["code"],
        "version_not_found"
    );
    assert_eq!(
        call(&h, to("GET", &path, &[("version", "zero")])).await.1["code"],
        "invalid_version"
    );
}

#[tokio::test]
async fn history_is_paged() {
    let h = handler().await;
    let id = place(&h).await;
    call(&h, to("POST", &format!("/orders/{id}/cancel"), &[])).await;
    let path = format!("/orders/{id}/events");
    let (_, first) = call(&h, to("GET", &path, &[("limit", "1")])).await;
    assert_eq!(first["events"].as_array().unwrap().len(), 1);
    assert_eq!(first["next_from"], json!(2));
    let (_, second) = call(&h, to("GET", &path, &[("from", "2"), ("limit", "1")])).await;
    assert_eq!(second["events"][0]["type"], "order.cancelled");
    assert_eq!(second["next_from"], Value::Null);
    let (status, past_the_end) = call(&h, to("GET", &path, &[("from", "9")])).await;
    assert_eq!((status, past_the_end["events"].clone()), (200, json!([])));
    let (status, unknown) = call(
        &h,
        to("GET", "/orders/no-such-order/events", &[("from", "2")]),
    )
    .await;
    assert_eq!(
        (status, unknown["code"].as_str()),
        (404, Some("order_not_found"))
    );
    assert_eq!(
        call(&h, to("GET", &path, &[("limit", "0")])).await.1["code"],
        "invalid_query"
    );
}

fn with_key(mut r: ApiGatewayV2httpRequest, key: &str) -> ApiGatewayV2httpRequest {
    r.headers
        .insert("idempotency-key", HeaderValue::from_str(key).unwrap());
    r
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_replay_the_first_response() {
    let h = handler().await;
    let (s1, first) = call(&h, with_key(request(POST_ORDER), "k-1")).await;
    let (s2, second) = call(&h, with_key(request(POST_ORDER), "k-1")).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(first, second);
    assert_eq!(orders(&h).len(), 1, "one order, not two");
    let (_, other) = call(&h, with_key(request(POST_ORDER), "k-2")).await;
    assert_ne!(other["order_id"], first["order_id"]);
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_body_is_refused() {
    let h = handler().await;
    call(&h, with_key(request(POST_ORDER), "k-1")).await;
    let other = post(r#"{"currency":"EUR","lines":[{"sku":"A","quantity":1}]}"#);
    let (status, body) = call(&h, with_key(other, "k-1")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    assert_eq!(orders(&h).len(), 1);
    let (status, body) = call(&h, with_key(request(POST_ORDER), &"k".repeat(300))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_idempotency_key"))
    );
    // A key of UTF-8 bytes is refused too, not ignored (which would place an order per retry).
    let mut utf8 = request(POST_ORDER);
    utf8.headers.insert(
        "idempotency-key",
        HeaderValue::from_bytes("clé-1".as_bytes()).unwrap(),
    );
    let (status, body) = call(&h, utf8).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_idempotency_key"))
    );
    assert_eq!(orders(&h).len(), 1);
}

#[tokio::test]
async fn the_read_model_answers_once_the_projection_has_written_it() {
    let h = handler().await;
    let id = place(&h).await;
    let path = format!("/orders/{id}");
    let (_, before) = call(&h, to("GET", &path, &[])).await;
    assert_eq!(
        before["source"], "event_store",
        "not projected yet: served from the store"
    );
    let mut view = domain::view::OrderView::new(&id);
    view.customer_id = Some("c-1".into());
    h.views.put(&view, 0).await.unwrap();
    let (status, after) = call(&h, to("GET", &path, &[])).await;
    assert_eq!(
        (status, after["source"].as_str()),
        (200, Some("read_model"))
    );
    assert_eq!(after["view"]["customer_id"], "c-1");
    let (_, pinned) = call(&h, to("GET", &path, &[("version", "1")])).await;
    assert_eq!(
        pinned["source"], "event_store",
        "a version is always rebuilt from the store"
    );
}

/// Every route of the API, for order `id`.
fn every_route(id: &str) -> Vec<ApiGatewayV2httpRequest> {
    vec![
        request(POST_ORDER),
        to("POST", &format!("/orders/{id}/cancel"), &[]),
        to("GET", &format!("/orders/{id}"), &[]),
        to("GET", &format!("/orders/{id}"), &[("version", "1")]),
        to("GET", &format!("/orders/{id}/events"), &[]),
    ]
}

#[tokio::test]
async fn a_request_without_a_verified_identity_is_401_on_every_route() {
    let h = handler().await;
    let id = place(&h).await;
    for r in every_route(&id) {
        let (status, body) = call(&h, anonymous(r)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("unauthenticated")),
            "{body}"
        );
    }
    let mut no_subject = request(POST_ORDER);
    if let Some(jwt) = no_subject
        .request_context
        .authorizer
        .as_mut()
        .and_then(|a| a.jwt.as_mut())
    {
        jwt.claims.remove("sub");
    }
    assert_eq!(call(&h, no_subject).await.0, 401);
    assert_eq!(orders(&h).len(), 1, "nothing placed without an identity");
}

#[tokio::test]
async fn a_token_without_the_routes_scope_is_403() {
    let h = handler().await;
    let id = place(&h).await;
    let reader = |r| as_customer(r, "c-1", &[scopes::READ]);
    let writer = |r| as_customer(r, "c-1", &[scopes::WRITE]);
    let (status, body) = call(&h, reader(request(POST_ORDER))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let cancel = to("POST", &format!("/orders/{id}/cancel"), &[]);
    assert_eq!(call(&h, reader(cancel)).await.0, 403);
    for path in [format!("/orders/{id}"), format!("/orders/{id}/events")] {
        assert_eq!(
            call(&h, writer(to("GET", &path, &[]))).await.0,
            403,
            "{path}"
        );
    }
    assert_eq!(
        h.store.read_stream("Order", &id, 1).await.unwrap().len(),
        1,
        "not cancelled"
    );
}

#[tokio::test]
async fn another_customers_order_is_not_found_on_every_route() {
    let h = handler().await;
    let id = place(&h).await;
    let mut view = domain::view::OrderView::new(&id);
    view.customer_id = Some("c-1".into());
    for read_model in [false, true] {
        if read_model {
            h.views.put(&view, 0).await.unwrap();
        }
        for r in every_route(&id).into_iter().skip(1) {
            let path = r.raw_path.clone();
            let (status, body) = call(&h, as_customer(r, "c-2", BOTH)).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (404, Some("order_not_found")),
                "{path:?} {body}"
            );
            // The same answer as for an order that does not exist: no existence oracle.
            assert_eq!(body["message"], format!("no order {id}"));
        }
    }
    assert_eq!(
        h.store.read_stream("Order", &id, 1).await.unwrap().len(),
        1,
        "not cancelled"
    );
    let (status, _) = call(&h, to("GET", &format!("/orders/{id}/events"), &[])).await;
    assert_eq!(status, 200, "its owner still sees it");
}

#[tokio::test]
async fn the_same_idempotency_key_from_two_customers_places_two_independent_orders() {
    let h = handler().await;
    let (s1, first) = call(
        &h,
        with_key(as_customer(request(POST_ORDER), "c-1", BOTH), "k-1"),
    )
    .await;
    let (s2, second) = call(
        &h,
        with_key(as_customer(request(POST_ORDER), "c-2", BOTH), "k-1"),
    )
    .await;
    assert_eq!((s1, s2), (201, 201));
    assert_ne!(first["order_id"], second["order_id"]);
    assert_eq!(orders(&h).len(), 2);
    for (customer, body) in [("c-1", &first), ("c-2", &second)] {
        let path = format!("/orders/{}", body["order_id"].as_str().unwrap());
        let (status, order) = call(&h, as_customer(to("GET", &path, &[]), customer, BOTH)).await;
        assert_eq!(
            (status, order["order"]["placed"]["customer_id"].as_str()),
            (200, Some(customer))
        );
    }
    // Each key's replay is its own customer's order.
    let (_, again) = call(
        &h,
        with_key(as_customer(request(POST_ORDER), "c-2", BOTH), "k-1"),
    )
    .await;
    assert_eq!(again, second);
}

#[test]
fn order_ids_follow_from_the_caller_and_the_key() {
    assert_eq!(order_id_for("c-1", "k"), order_id_for("c-1", "k"));
    assert_ne!(order_id_for("c-1", "k"), order_id_for("c-2", "k"));
    assert_ne!(order_id_for("a:b", "c"), order_id_for("a", "b:c"));
    assert!(domain::is_valid_id(&order_id_for("c-1", "k")));
}

async fn call_any<S: EventStore, V: ViewStore>(
    handler: &Handler<S, V>,
    r: ApiGatewayV2httpRequest,
) -> (i64, Value) {
    let (status, _, body) = call_with_headers(handler, r).await;
    (status, body)
}

async fn call_with_headers<S: EventStore, V: ViewStore>(
    handler: &Handler<S, V>,
    r: ApiGatewayV2httpRequest,
) -> (i64, http::HeaderMap, Value) {
    let response = handler
        .handle(LambdaEvent::new(r, lambda_runtime::Context::default()))
        .await
        .unwrap();
    let Some(Body::Text(text)) = response.body else {
        panic!("a text body");
    };
    (
        response.status_code,
        response.headers,
        serde_json::from_str(&text).unwrap(),
    )
}

fn orders_in(store: &InMemoryEventStore) -> Vec<Envelope> {
    store
        .all_events()
        .into_iter()
        .filter(|e| e.aggregatetype == Order::TYPE)
        .collect()
}

#[tokio::test]
async fn a_retry_whose_first_answer_was_lost_answers_the_order_already_placed() {
    let store = Arc::new(InMemoryEventStore::new());
    seed_catalog(&store).await;
    // The first attempt appends its order; its answer never reaches the client.
    let first_process = Handler::with_stores(store.clone(), InMemoryViewStore::new());
    let (status, first) = call_any(&first_process, with_key(request(POST_ORDER), "k-1")).await;
    assert_eq!(status, 201);
    // The retry reaches another execution environment, with nothing of the first in memory; a
    // price set meanwhile changes nothing, since the order asked for is the same.
    catalog::set_price(&store, "SKU-1", "EUR", 990)
        .await
        .unwrap();
    let retry_process = Handler::with_stores(store.clone(), InMemoryViewStore::new());
    let (status, headers, retried) =
        call_with_headers(&retry_process, with_key(request(POST_ORDER), "k-1")).await;
    assert_eq!(status, 201, "{retried}");
    assert_eq!(retried, first);
    assert_eq!(
        headers.get("idempotent-replayed").map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(
        headers.get("location").map(|v| v.as_bytes()),
        Some(format!("/orders/{}", first["order_id"].as_str().unwrap()).as_bytes())
    );
    let orders = orders_in(&store);
    assert_eq!(orders.len(), 1, "one order, not two");
    let OrderEvent::Placed(placed) = orders[0].decode_for::<Order>().unwrap() else {
        panic!("not order.placed");
    };
    assert_ne!(placed.lines[0].unit_price_cents, 990, "priced once, first");
}

#[tokio::test]
async fn two_attempts_under_one_key_at_once_place_one_order_and_both_answer_it() {
    let store = Arc::new(InMemoryEventStore::new());
    seed_catalog(&store).await;
    let one = Handler::with_stores(store.clone(), InMemoryViewStore::new());
    let other = Handler::with_stores(store.clone(), InMemoryViewStore::new());
    let ((s1, a), (s2, b)) = tokio::join!(
        call_any(&one, with_key(request(POST_ORDER), "k-1")),
        call_any(&other, with_key(request(POST_ORDER), "k-1")),
    );
    assert_eq!((s1, s2), (201, 201), "{a} {b}");
    assert_eq!(a, b);
    assert_eq!(orders_in(&store).len(), 1);
    // Another order under the key, even from a fresh environment, is refused.
    let later = Handler::with_stores(store.clone(), InMemoryViewStore::new());
    let another = post(r#"{"currency":"EUR","lines":[{"sku":"SKU-1","quantity":3}]}"#);
    let (status, body) = call_any(&later, with_key(another, "k-1")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    assert_eq!(orders_in(&store).len(), 1);
}

#[tokio::test]
async fn a_warm_api_prices_from_its_copies_and_a_price_set_meanwhile_prices_the_order_again() {
    let store = std::sync::Arc::new(InMemoryEventStore::new());
    seed_catalog(&store).await;
    let h = Handler::with_stores(
        ripple_kit::store::Cached::new(store.clone()),
        InMemoryViewStore::new(),
    );
    let (status, _) = call_any(&h, request(POST_ORDER)).await;
    assert_eq!(status, 201);
    // An operator sets a new price behind the copy's back.
    catalog::set_price(&store, "SKU-1", "EUR", 990)
        .await
        .unwrap();

    let (status, body) = call_any(&h, request(POST_ORDER)).await;

    assert_eq!(status, 201, "{body}");
    let order_id = body["order_id"].as_str().unwrap();
    let stored = store.read_stream("Order", order_id, 1).await.unwrap();
    let OrderEvent::Placed(placed) = stored[0].decode_for::<Order>().unwrap() else {
        panic!("not order.placed");
    };
    assert_eq!(
        placed.lines[0].unit_price_cents, 990,
        "never the price the copy held"
    );
}
