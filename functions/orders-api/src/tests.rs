//! Handler tests over the in-memory event store, starting from the sample events in `events/`.

use super::*;
use domain::views::InMemoryViewStore;
use ripple_kit::idempotency::InMemoryIdempotencyStore;
use ripple_kit::store::InMemoryEventStore;

type TestHandler = Handler<InMemoryEventStore, InMemoryIdempotencyStore, InMemoryViewStore>;

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

fn handler() -> TestHandler {
    Handler::with_stores(
        InMemoryEventStore::new(),
        InMemoryIdempotencyStore::new(),
        InMemoryViewStore::new(),
    )
}

#[tokio::test]
async fn posting_the_sample_order_stores_order_placed() {
    let h = handler();
    let (status, body) = call(&h, request(POST_ORDER)).await;
    assert_eq!(status, 201, "{body}");
    let order_id = body["order_id"].as_str().unwrap().to_owned();
    let stored = h.store.read_stream("Order", &order_id, 1).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_type, "order.placed");
    assert_eq!(stored[0].sequence, 1);
    assert_eq!(stored[0].id, body["event_id"].as_str().unwrap());
    assert!(stored[0].traceparent.is_some());
}

#[tokio::test]
async fn the_history_of_a_placed_order_is_served() {
    let h = handler();
    let (_, placed) = call(&h, request(POST_ORDER)).await;
    let order_id = placed["order_id"].as_str().unwrap();
    let (status, body) = call(&h, get_events(order_id)).await;
    assert_eq!(status, 200);
    assert_eq!(body["events"][0]["type"], "order.placed");
    assert_eq!(body["events"][0]["subject"], order_id);
}

#[tokio::test]
async fn unknown_and_malformed_order_ids_are_refused() {
    let h = handler();
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
    let h = handler();
    let valid = r#"{"customer_id":"c-1","currency":"EUR","lines":[{"sku":"A","quantity":1,"unit_price_cents":5}]}"#;
    let cases: Vec<(ApiGatewayV2httpRequest, i64, &str)> = vec![
        (post("{not json"), 400, "malformed_json"),
        (post(""), 400, "empty_body"),
        (
            post(
                r#"{"customer_id":"c-1","currency":"EUR","lines":[{"sku":"A","quantity":"two","unit_price_cents":5}]}"#,
            ),
            422,
            "invalid_request",
        ),
        (
            post(r#"{"customer_id":"c-1","currency":"EUR"}"#),
            422,
            "invalid_request",
        ),
        (
            post(r#"{"customer_id":"c-1","currency":"EUR","lines":[]}"#),
            422,
            "no_lines",
        ),
        (
            post(
                r#"{"customer_id":"c-1","currency":"EUR","lines":[{"sku":"A","quantity":-1,"unit_price_cents":5}]}"#,
            ),
            422,
            "invalid_request",
        ),
        (
            post(&format!(
                r#"{{"customer_id":"{}","currency":"EUR","lines":[]}}"#,
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
    assert!(
        h.store.all_events().is_empty(),
        "nothing is written for bad input"
    );
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let h = handler();
    let (status, body) = call(
        &h,
        post(r#"{"customer_id":"c-1","currency":"EUR","lines":[{"sku":"A","quantity":0,"unit_price_cents":5}]}"#),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "invalid_quantity");
    assert_eq!(body["field"], "lines[0].quantity");
}

#[tokio::test]
async fn a_base64_body_is_decoded() {
    let h = handler();
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
    let h = handler();
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
    let h = handler();
    let id = place(&h).await;
    let confirmed = Envelope::encode(
        "test",
        StreamPosition::new("Order", &id, 2),
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
    let h = handler();
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
    let h = handler();
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
    let h = handler();
    let (s1, first) = call(&h, with_key(request(POST_ORDER), "k-1")).await;
    let (s2, second) = call(&h, with_key(request(POST_ORDER), "k-1")).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(first, second);
    assert_eq!(h.store.all_events().len(), 1, "one order, not two");
    let (_, other) = call(&h, with_key(request(POST_ORDER), "k-2")).await;
    assert_ne!(other["order_id"], first["order_id"]);
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_body_is_refused() {
    let h = handler();
    call(&h, with_key(request(POST_ORDER), "k-1")).await;
    let other = post(
        r#"{"customer_id":"c-2","currency":"EUR","lines":[{"sku":"A","quantity":1,"unit_price_cents":5}]}"#,
    );
    let (status, body) = call(&h, with_key(other, "k-1")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    assert_eq!(h.store.all_events().len(), 1);
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
    assert_eq!(h.store.all_events().len(), 1);
}

#[tokio::test]
async fn the_read_model_answers_once_the_projection_has_written_it() {
    let h = handler();
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
