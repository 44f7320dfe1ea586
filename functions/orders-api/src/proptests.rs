//! Generated requests: whatever body, content type, encoding, `Idempotency-Key`, path or query a
//! client sends, the API answers it (a 2xx for a valid order, its own 4xx otherwise), never
//! panics and never fails, and a refused request writes nothing. Requests carry the sample's
//! identity (customer `c-1`); the catalog prices `SKU-1`, `A` and `B`.

use aws_lambda_events::encodings::Body;
use domain::catalog::{Catalog, Product};
use domain::views::InMemoryViewStore;
use http::header::CONTENT_TYPE;
use proptest::prelude::*;
use ripple_kit::store::InMemoryEventStore;
use serde_json::Value;

use super::*;

type TestHandler = Handler<InMemoryEventStore, InMemoryViewStore>;

const POST_ORDER: &str = include_str!("../../../events/orders-api-post-order.json");

/// The skus the catalog sells, all at one price in EUR.
const PRICED: [&str; 3] = ["SKU-1", "A", "B"];
const PRICE_CENTS: u64 = 1250;
/// The customer of the sample request's token.
const CUSTOMER: &str = "c-1";

/// A handler over a store holding the catalog.
async fn handler() -> Result<TestHandler, TestCaseError> {
    let store = InMemoryEventStore::new();
    for sku in PRICED {
        catalog::set_price(&store, sku, "EUR", PRICE_CENTS)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    Ok(Handler::with_stores(store, InMemoryViewStore::new()))
}

/// The catalog as the handler's store holds it.
fn catalog() -> Catalog {
    PRICED
        .iter()
        .map(|sku| {
            let product = Product {
                prices: [("EUR".to_owned(), PRICE_CENTS)].into(),
            };
            ((*sku).to_owned(), product)
        })
        .collect()
}

fn post() -> ApiGatewayV2httpRequest {
    serde_json::from_str(POST_ORDER).unwrap_or_default()
}

/// Serves `request` on a fresh handler; its status, its JSON body, and how many orders it stored.
fn serve(request: ApiGatewayV2httpRequest) -> Result<(i64, Value, usize), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    runtime.block_on(async {
        let h = handler().await?;
        let response = h
            .handle(LambdaEvent::new(
                request,
                lambda_runtime::Context::default(),
            ))
            .await
            .map_err(|e| TestCaseError::fail(format!("an error, not an answer: {e}")))?;
        let body = match response.body {
            Some(Body::Text(text)) => serde_json::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?,
            other => return Err(TestCaseError::fail(format!("no text body: {other:?}"))),
        };
        let stored = h
            .store
            .all_events()
            .iter()
            .filter(|e| e.aggregatetype == Order::TYPE)
            .count();
        Ok((response.status_code, body, stored))
    })
}

/// Any JSON, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A `POST /orders` body close to a valid one: each field valid, broken or missing.
/// An order body: mostly skus of the catalog, sometimes others; sometimes fields a client may
/// not send (a customer, a price) or may not invent.
fn order_body() -> impl Strategy<Value = Value> {
    let id = prop_oneof!["[A-Za-z0-9._-]{1,64}", ".{0,70}"];
    let sku = prop_oneof![
        3 => prop::sample::select(&PRICED[..]).prop_map(str::to_owned),
        1 => id.clone(),
    ];
    let line = (
        sku,
        prop_oneof![0_i64..5, Just(10_001), Just(-1)],
        proptest::option::weighted(0.1, prop_oneof![1_i64..100_000, Just(0)]),
        proptest::option::weighted(0.1, Just("red")),
    )
        .prop_map(|(sku, quantity, price, colour)| {
            let mut line = serde_json::json!({"sku": sku, "quantity": quantity});
            if let Some(price) = price {
                line["unit_price_cents"] = Value::from(price);
            }
            if let Some(colour) = colour {
                line["colour"] = Value::from(colour);
            }
            line
        });
    (
        proptest::option::weighted(0.1, id),
        proptest::option::of(prop_oneof![Just("EUR".to_owned()), "[A-Za-z]{0,4}"]),
        proptest::option::of(prop::collection::vec(line, 0..4)),
        proptest::option::weighted(0.1, json_value()),
    )
        .prop_map(|(customer, currency, lines, extra)| {
            let mut body = serde_json::Map::new();
            if let Some(customer) = customer {
                body.insert("customer_id".into(), customer.into());
            }
            if let Some(currency) = currency {
                body.insert("currency".into(), currency.into());
            }
            if let Some(lines) = lines {
                body.insert("lines".into(), lines.into());
            }
            if let Some(extra) = extra {
                body.insert("note".into(), extra);
            }
            Value::Object(body)
        })
}

fn is_client_error(status: i64) -> bool {
    [400, 404, 409, 413, 415, 422].contains(&status)
}

proptest! {
    #[test]
    fn any_body_is_an_order_or_a_4xx_that_writes_nothing(
        body in prop_oneof![any::<String>(), json_value().prop_map(|v| v.to_string()), order_body().prop_map(|v| v.to_string())],
        base64 in any::<bool>(),
    ) {
        let mut request = post();
        request.is_base64_encoded = base64;
        request.body = Some(body);
        let (status, answer, stored) = serve(request)?;
        if status == 201 {
            prop_assert_eq!(stored, 1);
            prop_assert!(answer["order_id"].is_string());
        } else {
            prop_assert!(is_client_error(status), "{} {}", status, answer);
            prop_assert_eq!(stored, 0);
            prop_assert!(answer["code"].is_string() && answer["message"].is_string(), "{}", answer);
        }
    }

    #[test]
    fn every_valid_order_is_placed_whatever_else_it_holds(body in order_body()) {
        let valid = PlaceOrder::from_json(&body)
            .ok()
            .and_then(|command| decide_place(command, CUSTOMER, "o-1", &catalog()).ok())
            .is_some();
        let mut request = post();
        request.body = Some(body.to_string());
        let (status, answer, _) = serve(request)?;
        prop_assert_eq!(status == 201, valid, "{} {}", status, answer);
    }

    #[test]
    fn any_content_type_is_json_or_a_415(content_type in prop_oneof![Just("application/json; charset=utf-8".to_owned()), "[ -~]{0,30}"]) {
        let mut request = post();
        let Ok(value) = HeaderValue::from_str(&content_type) else { return Ok(()) };
        request.headers.insert(CONTENT_TYPE, value);
        let (status, answer, _) = serve(request)?;
        let json = content_type.trim_start().to_ascii_lowercase().starts_with("application/json");
        prop_assert_eq!(status == 415, !json, "{} {}", status, answer);
    }

    #[test]
    fn any_idempotency_key_is_honoured_or_refused_as_such(key in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut request = post();
        let Ok(value) = HeaderValue::from_bytes(&key) else { return Ok(()) };
        request.headers.insert("idempotency-key", value);
        let (status, answer, stored) = serve(request)?;
        let usable = std::str::from_utf8(&key).is_ok_and(|k| {
            !k.trim().is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN && k.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\t')
        });
        if status == 201 {
            prop_assert!(usable, "{:?}", key);
            prop_assert_eq!(stored, 1);
        } else {
            prop_assert_eq!((status, answer["code"].as_str()), (400, Some("invalid_idempotency_key")));
            prop_assert_eq!(stored, 0);
        }
    }

    #[test]
    fn any_path_method_and_query_is_routed_or_a_4xx(
        method in prop::sample::select(&["GET", "POST", "PUT", "DELETE", "PATCH"][..]),
        path in prop_oneof!["/orders/[A-Za-z0-9._-]{1,70}(/events|/cancel)?", "/.{0,40}"],
        version in proptest::option::of(".{0,6}"),
    ) {
        let mut request = post();
        request.request_context.http.method = method.parse().unwrap_or_default();
        request.raw_path = Some(path.clone());
        request.path_parameters.clear();
        if let Some(version) = version {
            let query: std::collections::HashMap<String, String> =
                [("version".to_owned(), version)].into();
            request.query_string_parameters = query.into();
        }
        let route = Route::of(&request);
        let (status, answer, _) = serve(request)?;
        prop_assert!(status < 500, "{:?} {} {}", route, status, answer);
        if route == Route::Unknown {
            prop_assert_eq!(status, 404);
        }
    }
}
