//! `orders-api`: the HTTP API (API Gateway HTTP API, payload v2) of the order pipeline.
//!
//! - `POST /orders` validates the body and appends `order.placed` to a new order stream;
//! - `POST /orders/{id}/cancel` cancels an order until it is confirmed (a repeat is a no-op);
//! - `GET /orders/{id}` returns the order's read model, `?version=N` the order rebuilt from the
//!   store as it was after its N-th event;
//! - `GET /orders/{id}/events` returns the order's history, paged with `?from=N&limit=M`.
//!
//! Bad input gets a 4xx with a JSON body `{"code", "message", "field"?}` and nothing is written.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use base64::Engine;
use domain::order::{
    CancelReason, CancelRefused, Order, OrderEvent, PlaceOrder, decide_cancel, decide_place,
};
use domain::views::{DynamoViewStore, ViewStore};
use http::HeaderValue;
use http::header::{CONTENT_TYPE, LOCATION};
use lambda_runtime::{Error, LambdaEvent};
use ripple_kit::idempotency::{
    DynamoIdempotencyStore, Idempotency, IdempotencyError, IdempotencyStore,
};
use ripple_kit::store::{Conflicting, DynamoEventStore, RetryPolicy, retry_on_conflict};
use ripple_kit::telemetry::Metrics;
use ripple_kit::{Aggregate, Append, Envelope, EventStore, Loaded, StoreError, StreamPosition};
use serde_json::{Value, json};

/// The `source` of the events this function writes.
pub const SOURCE: &str = "ripple/orders-api";
/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

ripple_kit::settings! {
    /// Settings, from the variables template.yaml gives this function.
    pub struct Config {
        /// The events table.
        events_table: "EVENTS_TABLE",
        /// The idempotency table (`Idempotency-Key` responses).
        idempotency_table: "IDEMPOTENCY_TABLE",
        /// The order views table (the read model `GET /orders/{id}` serves).
        views_table: "VIEWS_TABLE",
    }
}

/// A request the API refuses, as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
    /// The offending field, when there is one.
    pub field: Option<String>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    fn body(&self) -> Value {
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(field) = &self.field {
            body["field"] = json!(field);
        }
        body
    }
}

impl From<domain::order::ValidationError> for ApiError {
    fn from(err: domain::order::ValidationError) -> Self {
        ApiError {
            status: 422,
            code: err.code,
            message: err.message,
            field: Some(err.field),
        }
    }
}

/// The name that prefixes `Idempotency-Key` records; never change it, or keys in flight are lost.
pub const IDEMPOTENCY_NAME: &str = "orders-api.place-order";
/// How long an `Idempotency-Key` replays its first response.
pub const IDEMPOTENCY_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The HTTP handler over an event store and an idempotency store.
pub struct Handler<S = DynamoEventStore, I = DynamoIdempotencyStore, V = DynamoViewStore> {
    store: S,
    idempotency: Idempotency<I>,
    views: V,
    retry: RetryPolicy,
    metrics: Metrics,
}

/// The handler on the DynamoDB tables named in `config`.
pub fn handler(config: Config, aws: &aws_config::SdkConfig) -> Handler {
    let client = aws_sdk_dynamodb::Client::new(aws);
    Handler::with_stores(
        DynamoEventStore::new(client.clone(), config.events_table),
        DynamoIdempotencyStore::new(client.clone(), config.idempotency_table),
        DynamoViewStore::new(client, config.views_table),
    )
}

impl<S: EventStore, I: IdempotencyStore, V: ViewStore> Handler<S, I, V> {
    /// The handler over any stores (tests pass the in-memory ones).
    pub fn with_stores(store: S, idempotency: I, views: V) -> Self {
        Handler {
            store,
            views,
            idempotency: Idempotency::new(idempotency, IDEMPOTENCY_NAME)
                .expires_after(IDEMPOTENCY_WINDOW),
            retry: RetryPolicy::default(),
            metrics: Metrics::new("Ripple", "orders-api"),
        }
    }

    /// Serves one request. Client mistakes become 4xx responses; only a failing store is an
    /// error (a 500 from API Gateway, which the client may retry).
    pub async fn handle(
        &self,
        event: LambdaEvent<ApiGatewayV2httpRequest>,
    ) -> Result<ApiGatewayV2httpResponse, Error> {
        let request = event.payload;
        let route = Route::of(&request);
        tracing::info!(request_id = %event.context.request_id, ?route, "request");
        let result = match route {
            Route::PlaceOrder => self.place_order(&request, event.context.deadline()).await,
            Route::CancelOrder(id) => self.cancel_order(&id).await,
            Route::GetOrder(id) => self.get_order(&id, query(&request, "version")).await,
            Route::OrderEvents(id) => {
                self.order_events(&id, query(&request, "from"), query(&request, "limit"))
                    .await
            }
            Route::Unknown => Err(ApiError::new(404, "route_not_found", "no such route").into()),
        };
        self.metrics.flush();
        match result {
            Ok(response) => Ok(response),
            Err(Failure::Client(err)) => {
                tracing::info!(code = err.code, status = err.status, "request refused");
                Ok(json_response(err.status, &err.body()))
            }
            Err(Failure::Store(err)) => {
                tracing::error!(error = %err, source = ?std::error::Error::source(&err), "event store failed");
                Ok(json_response(
                    503,
                    &ApiError::new(
                        503,
                        "store_unavailable",
                        "the event store is unavailable, retry later",
                    )
                    .body(),
                ))
            }
        }
    }

    /// `POST /orders`. With an `Idempotency-Key` header, the first response for that key is
    /// stored and replayed for the same body; another body with the same key is refused.
    async fn place_order(
        &self,
        request: &ApiGatewayV2httpRequest,
        deadline: std::time::SystemTime,
    ) -> Result<ApiGatewayV2httpResponse, Failure> {
        let body = parse_json_body(request)?;
        let command: PlaceOrder = serde_json::from_value(body.clone())
            .map_err(|e| ApiError::new(422, "invalid_request", e.to_string()))?;
        let order_id = uuid::Uuid::now_v7().to_string();
        let placed = decide_place(command, &order_id).map_err(ApiError::from)?;
        let traceparent = ripple_kit::telemetry::traceparent(header(request, "traceparent"));
        let append = || async {
            let event = Envelope::encode(
                SOURCE,
                StreamPosition::new(Order::TYPE, &order_id, 1),
                &OrderEvent::Placed(placed),
            )
            .map_err(|e| Failure::Store(StoreError::InvalidAppend(e.to_string())))?
            .with_traceparent(Some(traceparent));
            let event_id = event.id.clone();
            self.store.append(Append::events(vec![event])).await?;
            self.metrics.count("OrdersPlaced");
            tracing::info!(order_id = %order_id, event_id = %event_id, "order placed");
            Ok::<_, Failure>(StoredResponse {
                status: 201,
                body: json!({"order_id": order_id, "status": "placed", "event_id": event_id}),
            })
        };
        // A key that is not visible ASCII reads as empty and is refused, never ignored: ignoring
        // it would place a new order on every retry the client believes is protected.
        let key = request
            .headers
            .get("idempotency-key")
            .map(|value| value.to_str().unwrap_or_default());
        let (stored, replayed) = match key {
            None => (append().await?, false),
            Some(key) => {
                if key.trim().is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
                    return Err(ApiError {
                        field: Some("Idempotency-Key".into()),
                        ..ApiError::new(
                            400,
                            "invalid_idempotency_key",
                            format!(
                                "the key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
                            ),
                        )
                    }
                    .into());
                }
                let completed = self
                    .idempotency
                    .run(&json!(key), &body, deadline, append)
                    .await
                    .map_err(idempotency_failure)?;
                (completed.value, completed.replayed)
            }
        };
        let mut response = json_response(stored.status, &stored.body);
        if let Some(location) = stored.body["order_id"]
            .as_str()
            .and_then(|id| HeaderValue::from_str(&format!("/orders/{id}")).ok())
        {
            response.headers.insert(LOCATION, location);
        }
        if replayed {
            self.metrics.count("IdempotentReplays");
            response
                .headers
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        Ok(response)
    }

    async fn cancel_order(&self, order_id: &str) -> Result<ApiGatewayV2httpResponse, Failure> {
        check_order_id(order_id)?;
        let outcome: bool = retry_on_conflict(&self.retry, || async {
            let order: Loaded<Order> = self.store.load(order_id).await?;
            let cancelled = match decide_cancel(&order, CancelReason::CustomerRequest) {
                Ok(Some(cancelled)) => cancelled,
                Ok(None) => return Ok(false),
                Err(refused) => return Err(cancel_refused(order_id, refused).into()),
            };
            let event = Envelope::encode(SOURCE, order.next(), &cancelled)
                .map_err(|e| Failure::Store(StoreError::InvalidAppend(e.to_string())))?;
            self.store.append(Append::events(vec![event])).await?;
            Ok::<_, Failure>(true)
        })
        .await?;
        let (status, message) = if outcome {
            self.metrics.count("OrdersCancelled");
            (
                202,
                "cancellation accepted; reserved stock will be released",
            )
        } else {
            (200, "order was already cancelled; nothing changed")
        };
        Ok(json_response(
            status,
            &json!({"order_id": order_id, "status": "cancelled", "changed": outcome, "message": message}),
        ))
    }

    /// `GET /orders/{id}`: the read model; `?version=N`: the order rebuilt from its first N
    /// events. An order the projection has not caught up with yet is served from the store.
    async fn get_order(
        &self,
        order_id: &str,
        version: Option<&str>,
    ) -> Result<ApiGatewayV2httpResponse, Failure> {
        check_order_id(order_id)?;
        let version = match version {
            None => None,
            Some(v) => Some(v.parse::<u64>().ok().filter(|v| *v >= 1).ok_or_else(|| {
                ApiError::new(
                    400,
                    "invalid_version",
                    "version must be a whole number from 1",
                )
            })?),
        };
        if version.is_none() {
            match self.views.view(order_id).await {
                Ok(Some(view)) => {
                    return Ok(json_response(
                        200,
                        &json!({"order_id": order_id, "source": "read_model", "view": view}),
                    ));
                }
                Ok(None) => {}
                Err(err) => {
                    // The store can still answer: a stale-free answer beats an error.
                    tracing::warn!(error = %err, "order view unavailable; answering from the event store");
                }
            }
        }
        let history = self.store.read_stream(Order::TYPE, order_id, 1).await?;
        let current = history.len() as u64;
        if current == 0 {
            return Err(
                ApiError::new(404, "order_not_found", format!("no order {order_id}")).into(),
            );
        }
        let at = version.unwrap_or(current);
        if at > current {
            return Err(ApiError::new(
                404,
                "version_not_found",
                format!("order {order_id} is at version {current}; there is no version {at}"),
            )
            .into());
        }
        let order = Loaded::<Order>::from_stored(order_id, history.iter().take(at as usize))?;
        Ok(json_response(
            200,
            &json!({"order_id": order_id, "source": "event_store", "version": at, "latest_version": current, "order": order.state}),
        ))
    }

    async fn order_events(
        &self,
        order_id: &str,
        from: Option<&str>,
        limit: Option<&str>,
    ) -> Result<ApiGatewayV2httpResponse, Failure> {
        check_order_id(order_id)?;
        let from = parse_bounded(from, "from", 1, u64::MAX, 1)?;
        let limit = parse_bounded(limit, "limit", 1, MAX_PAGE, DEFAULT_PAGE)?;
        let mut events = self.store.read_stream(Order::TYPE, order_id, from).await?;
        // An empty page past the end of an order is an answer; an order with no events is not.
        if events.is_empty()
            && (from == 1
                || self
                    .store
                    .read_stream(Order::TYPE, order_id, 1)
                    .await?
                    .is_empty())
        {
            return Err(
                ApiError::new(404, "order_not_found", format!("no order {order_id}")).into(),
            );
        }
        let next = (events.len() as u64 > limit).then(|| from + limit);
        events.truncate(limit as usize);
        Ok(json_response(
            200,
            &json!({"order_id": order_id, "events": events, "next_from": next}),
        ))
    }
}

/// What a refused cancellation tells the client.
fn cancel_refused(order_id: &str, refused: CancelRefused) -> ApiError {
    match refused {
        CancelRefused::NotFound => {
            ApiError::new(404, "order_not_found", format!("no order {order_id}"))
        }
        CancelRefused::Confirmed => ApiError::new(409, "order_confirmed", refused.to_string()),
    }
}

/// Default and largest page of `GET /orders/{id}/events`.
const DEFAULT_PAGE: u64 = 100;
const MAX_PAGE: u64 = 1000;

fn check_order_id(order_id: &str) -> Result<(), ApiError> {
    if domain::is_valid_id(order_id) {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "invalid_order_id",
            "order ids are letters, digits, '-', '_' or '.'",
        ))
    }
}

/// A whole-number query parameter within `min..=max`, or `default` when absent.
fn parse_bounded(
    value: Option<&str>,
    name: &str,
    min: u64,
    max: u64,
    default: u64,
) -> Result<u64, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| ApiError {
                field: Some(name.to_owned()),
                ..ApiError::new(
                    400,
                    "invalid_query",
                    format!("{name} must be a whole number from {min} to {max}"),
                )
            }),
    }
}

fn query<'a>(request: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    request.query_string_parameters.first(name)
}

/// A response kept under an `Idempotency-Key`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StoredResponse {
    status: u16,
    body: Value,
}

/// What an idempotent `POST /orders` that did not complete tells the client.
fn idempotency_failure(err: IdempotencyError<Failure>) -> Failure {
    match err {
        IdempotencyError::Effect(failure) => failure,
        IdempotencyError::PayloadMismatch { .. } => ApiError {
            field: Some("Idempotency-Key".into()),
            ..ApiError::new(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different body",
            )
        }
        .into(),
        IdempotencyError::AlreadyInProgress { .. } | IdempotencyError::InconsistentState { .. } => {
            ApiError::new(
                409,
                "request_in_progress",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            )
            .into()
        }
        other => {
            tracing::error!(error = %other, "idempotency store failed");
            Failure::Store(StoreError::Backend(other.to_string().into()))
        }
    }
}

/// Why a request did not succeed.
enum Failure {
    Client(ApiError),
    Store(StoreError),
}

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        Failure::Client(err)
    }
}

impl Conflicting for Failure {
    fn is_conflict(&self) -> bool {
        matches!(self, Failure::Store(e) if e.is_conflict())
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Store(err)
    }
}

/// The routes this function serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /orders`
    PlaceOrder,
    /// `POST /orders/{id}/cancel`
    CancelOrder(String),
    /// `GET /orders/{id}` (optionally `?version=N`)
    GetOrder(String),
    /// `GET /orders/{id}/events` (optionally `?from=N&limit=M`)
    OrderEvents(String),
    /// Anything else.
    Unknown,
}

impl Route {
    /// The route of a request, from its method and path (works behind `$default` too).
    pub fn of(request: &ApiGatewayV2httpRequest) -> Route {
        let method = request.request_context.http.method.as_str();
        let path = request
            .raw_path
            .as_deref()
            .or(request.request_context.http.path.as_deref())
            .unwrap_or("/");
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let id = |segment: &str| {
            request
                .path_parameters
                .get("id")
                .cloned()
                .unwrap_or_else(|| segment.to_owned())
        };
        match (method, segments.as_slice()) {
            ("POST", ["orders"]) => Route::PlaceOrder,
            ("POST", ["orders", order, "cancel"]) => Route::CancelOrder(id(order)),
            ("GET", ["orders", order]) => Route::GetOrder(id(order)),
            ("GET", ["orders", order, "events"]) => Route::OrderEvents(id(order)),
            _ => Route::Unknown,
        }
    }
}

fn header<'a>(request: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request body as JSON: 413 when too large, 415 for another content type, 400 when it is
/// not JSON.
fn parse_json_body(request: &ApiGatewayV2httpRequest) -> Result<Value, ApiError> {
    if let Some(content_type) = header(request, CONTENT_TYPE.as_str())
        && !content_type
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
    {
        return Err(ApiError::new(
            415,
            "unsupported_media_type",
            "send application/json",
        ));
    }
    let raw = request.body.as_deref().unwrap_or_default();
    let bytes = if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| ApiError::new(400, "malformed_body", "body is not valid base64"))?
    } else {
        raw.as_bytes().to_vec()
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            "payload_too_large",
            format!(
                "body is {} bytes; the limit is {MAX_BODY_BYTES}",
                bytes.len()
            ),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(400, "empty_body", "a JSON body is required"));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(400, "malformed_json", format!("body is not JSON: {e}")))
}

/// A JSON response.
fn json_response(status: u16, body: &Value) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.body = Some(Body::Text(body.to_string()));
    response
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
