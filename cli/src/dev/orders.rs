//! Placing the sample orders: POST /orders over real HTTP to the local API (or over HTTPS to a
//! deployed one, `ripple load --stack`), a few at a time or at a rate, each with a bearer token
//! of its customer.

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::sample::SampleOrder;

/// Orders in flight at once while loading the API.
const CONCURRENT_ORDERS: usize = 4;

/// At most this many orders in flight when they are placed at a rate.
const MAX_IN_FLIGHT: usize = 64;

/// What the API answered one order: its status (0 when no response came back) and the new
/// order's id.
pub type Placed = (u16, Option<String>);

/// POSTs every order to `url`, each with an idempotency key unique to the stack and the token
/// `token` gives for its customer (none: sent without one); `on_done` is called as each one is
/// answered. Without a `rate`, [`CONCURRENT_ORDERS`] at a time; with one, order `i` leaves
/// `i / rate` seconds after the first, however long the others take (up to [`MAX_IN_FLIGHT`]
/// unanswered).
pub(crate) async fn place_all(
    url: &str,
    key_prefix: &str,
    orders: Vec<SampleOrder>,
    rate: Option<f64>,
    token: impl Fn(&str) -> Option<String>,
    on_done: impl Fn(),
) -> Vec<Placed> {
    let client = http_client();
    let rate = rate.filter(|r| r.is_finite() && *r > 0.0);
    let in_flight = rate.map_or(CONCURRENT_ORDERS, |_| MAX_IN_FLIGHT);
    let first = tokio::time::Instant::now();
    futures::stream::iter(orders.into_iter().enumerate())
        .map(|(i, order)| {
            let client = &client;
            let on_done = &on_done;
            let key = format!("{key_prefix}-order-{i}");
            let bearer = token(&order.customer);
            async move {
                if let Some(rate) = rate {
                    let due = first + std::time::Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due).await;
                }
                let placed = post_order(client, url, &key, bearer.as_deref(), &order.body).await;
                on_done();
                placed
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for `http://` and `https://` URLs, trusting the system's root certificates (none
/// found: `https://` fails, each request saying why, and `http://` still works).
fn http_client() -> HttpClient {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_native_roots() {
        Ok(builder) => builder,
        Err(err) => {
            tracing::warn!(error = %err, "no root certificates: https URLs cannot be verified");
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        }
    };
    let connector = builder.https_or_http().enable_http1().build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// POSTs one order; the status (0 when no response came back) and the new order's id.
async fn post_order(
    client: &HttpClient,
    url: &str,
    idempotency_key: &str,
    token: Option<&str>,
    order: &serde_json::Value,
) -> Placed {
    let mut request = hyper::Request::post(url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", idempotency_key)
        .header(
            hyper::header::USER_AGENT,
            concat!("ripple-dev/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(token) = token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Full::new(Bytes::from(order.to_string())));
    let request = match request {
        Ok(request) => request,
        Err(err) => {
            tracing::warn!(error = %err, "cannot build an order request");
            return (0, None);
        }
    };
    match client.request(request).await {
        Ok(response) => {
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if !status.is_success() {
                tracing::warn!(status = status.as_u16(), body = %String::from_utf8_lossy(&body), "order refused");
                return (status.as_u16(), None);
            }
            let order_id = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|b| b["order_id"].as_str().map(str::to_owned));
            (status.as_u16(), order_id)
        }
        Err(err) => {
            tracing::warn!(error = %ripple_kit::telemetry::error_chain(&err), "order request failed");
            (0, None)
        }
    }
}
