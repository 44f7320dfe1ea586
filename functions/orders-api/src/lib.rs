//! `orders-api`: the HTTP API (API Gateway HTTP API, payload v2) of the order pipeline.
//!
//! - `POST /orders` prices the body's lines from the catalog and appends `order.placed` to a new
//!   order stream, owned by the caller, provided no product's stream moved on since it was read
//!   (the products stay in the execution environment between invocations, [`Cached`], so a
//!   warm order reads nothing; a price set meanwhile makes the order be priced again);
//! - `POST /orders/{id}/cancel` cancels an order until it is confirmed (a repeat is a no-op);
//! - `GET /orders/{id}` returns the order's read model, `?version=N` the order rebuilt from the
//!   store as it was after its N-th event;
//! - `GET /orders/{id}/events` returns the order's history, paged with `?from=N&limit=M`.
//!
//! Every route needs a verified identity ([`identity`]): the customer is the token's subject,
//! placing and cancelling need the write scope, reading the read scope, and an order of another
//! customer answers exactly as an order that does not exist (404).
//!
//! `Idempotency-Key` needs no record of its own: the order id follows from the caller and the
//! key ([`order_id_for`]), and an order stream starts only once, so the order is its own record.
//! A retry under the same key, whether its first attempt answered, died after its append or is
//! still running, lands on that order's first position, is refused there, and answers the order
//! stored (`idempotent-replayed: true`); a retry asking for another order under the key is
//! refused (422). A keyed order is one write, as an order without a key is.
//!
//! Bad input gets a 4xx with a JSON body `{"code", "message", "field"?}` and nothing is written.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod catalog;
pub mod identity;
mod response;

use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use domain::order::{
    CancelReason, CancelRefused, Order, OrderEvent, OrderPlaced, PlaceOrder, decide_cancel,
    decide_place,
};
use domain::views::{DynamoViewStore, ViewStore};
use http::HeaderValue;
use http::header::LOCATION;
use lambda_runtime::{Error, LambdaEvent};
use ripple_kit::store::{Cached, DynamoEventStore, RetryPolicy, Unchanged, retry_on_conflict};
use ripple_kit::telemetry::Metrics;
use ripple_kit::{Aggregate, Append, Envelope, EventStore, Loaded, StoreError, StreamPosition};
use serde_json::json;
use uuid::Uuid;

use identity::{Caller, scopes};
use response::{Failure, header, json_response, parse_bounded, parse_json_body, query};

pub use response::{ApiError, MAX_BODY_BYTES};

/// The `source` of the events this function writes.
pub const SOURCE: &str = domain::sources::ORDERS_API;

ripple_kit::settings! {
    /// Settings, from the variables template.yaml gives this function.
    pub struct Config {
        /// The events table.
        events_table: "EVENTS_TABLE",
        /// The order views table (the read model `GET /orders/{id}` serves).
        views_table: "VIEWS_TABLE",
    }
}

/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
/// Times an order is priced at most when prices keep moving on under it.
const REPRICINGS: u32 = 3;

/// The namespace of order ids derived from a caller and an `Idempotency-Key` (UUID v5); never
/// change it, or a retry in flight would place a second order.
const ORDER_ID_NAMESPACE: Uuid = Uuid::from_u128(0xe0b7_29ee_b134_4c8d_909d_2c13_d272_6cc3);

/// The id of the order `customer_id` places under `idempotency_key`: the same pair always gives
/// the same id, and different pairs (another customer's same key) different ones.
pub fn order_id_for(customer_id: &str, idempotency_key: &str) -> String {
    // A JSON array keeps the two apart: ("a:b", "c") and ("a", "b:c") name different orders.
    let name = json!([customer_id, idempotency_key]).to_string();
    Uuid::new_v5(&ORDER_ID_NAMESPACE, name.as_bytes()).to_string()
}

/// The HTTP handler over an event store and the order views.
pub struct Handler<S = Cached<DynamoEventStore>, V = DynamoViewStore> {
    store: S,
    views: V,
    retry: RetryPolicy,
    metrics: Metrics,
}

/// The handler on the DynamoDB tables named in `config`.
pub fn handler(config: Config, aws: &aws_config::SdkConfig) -> Handler {
    let client = ripple_kit::requests::dynamodb_client(aws);
    Handler::with_stores(
        Cached::new(DynamoEventStore::new(client.clone(), config.events_table)),
        DynamoViewStore::new(client, config.views_table),
    )
}

impl<S: EventStore, V: ViewStore> Handler<S, V> {
    /// The handler over any stores (tests pass the in-memory ones).
    pub fn with_stores(store: S, views: V) -> Self {
        Handler {
            store,
            views,
            retry: RetryPolicy::default(),
            metrics: Metrics::new("Ripple", "orders-api"),
        }
    }

    /// The event store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Serves one request. Client mistakes become 4xx responses; only a failing store is an
    /// error (a 503, which the client may retry).
    pub async fn handle(
        &self,
        event: LambdaEvent<ApiGatewayV2httpRequest>,
    ) -> Result<ApiGatewayV2httpResponse, Error> {
        let request = event.payload;
        let route = Route::of(&request);
        tracing::info!(request_id = %event.context.request_id, ?route, "request");
        let result = match route {
            Route::PlaceOrder => self.place_order(&request).await,
            Route::CancelOrder(id) => self.cancel_order(&request, &id).await,
            Route::GetOrder(id) => self.get_order(&request, &id).await,
            Route::OrderEvents(id) => self.order_events(&request, &id).await,
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

    /// `POST /orders`. With an `Idempotency-Key` header, the order placed first for that caller
    /// and key is answered again for the same order; another order under the key is refused.
    async fn place_order(
        &self,
        request: &ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, Failure> {
        let caller = Caller::of(request, scopes::WRITE)?;
        let body = parse_json_body(request)?;
        let command = PlaceOrder::from_json(&body).map_err(ApiError::from)?;
        let key = idempotency_key(request)?;
        let order_id = match key {
            Some(key) => order_id_for(&caller.customer_id, key),
            None => Uuid::now_v7().to_string(),
        };
        let traceparent = ripple_kit::telemetry::traceparent(header(request, "traceparent"));
        let order_stream = ripple_kit::envelope::stream_key(Order::TYPE, &order_id);
        let mut attempt = 1;
        let placed = loop {
            let skus = command.lines.iter().map(|l| l.sku.as_str());
            let priced = catalog::load(&self.store, skus).await?;
            let placed = decide_place(
                command.clone(),
                &caller.customer_id,
                &order_id,
                &priced.catalog,
            )
            .map_err(ApiError::from)?;
            match self
                .append_placed(&placed, &priced.read, traceparent.clone())
                .await
            {
                // A price was set between pricing and appending: price the order again.
                Err(Failure::Store(err))
                    if catalog::repriced(&err, &order_stream) && attempt < REPRICINGS =>
                {
                    tracing::info!(
                        order_id,
                        attempt,
                        "a product's price moved on; pricing again"
                    );
                    attempt += 1;
                }
                other => break other?,
            }
        };
        Ok(self.placed_response(&placed))
    }

    /// Appends `order.placed` as the first event of its order, provided the products it was
    /// priced from are still as `read`.
    async fn append_placed(
        &self,
        placed: &OrderPlaced,
        read: &[Unchanged],
        traceparent: String,
    ) -> Result<Placed, Failure> {
        let order_id = &placed.order_id;
        let event = Envelope::encode(
            SOURCE,
            StreamPosition::of::<Order>(order_id, 1),
            &OrderEvent::Placed(placed.clone()),
        )
        .map_err(|e| Failure::Store(StoreError::InvalidAppend(e.to_string())))?
        .with_traceparent(Some(traceparent));
        let event_id = event.id.clone();
        let order_stream = event.stream_key();
        let append = Append::events(vec![event]).given_unchanged(read.iter().cloned());
        match self.store.append(append).await {
            Ok(()) => {}
            // Only an order id derived from an Idempotency-Key can be taken: by an earlier
            // attempt under the same key.
            Err(StoreError::Conflict { stream }) if stream == order_stream => {
                return self.already_placed(placed).await;
            }
            Err(err) => return Err(err.into()),
        }
        self.metrics.count("OrdersPlaced");
        tracing::info!(order_id = %order_id, event_id = %event_id, "order placed");
        Ok(Placed {
            order_id: order_id.clone(),
            event_id,
            replayed: false,
        })
    }

    /// The answer for an order an earlier attempt under the same key placed: that order, if it
    /// is the one asked for again; a refusal if the key was reused for another order.
    async fn already_placed(&self, placed: &OrderPlaced) -> Result<Placed, Failure> {
        let history = self
            .store
            .read_stream(Order::TYPE, &placed.order_id, 1)
            .await?;
        let first = history.first().ok_or_else(|| StoreError::Conflict {
            stream: ripple_kit::envelope::stream_key(Order::TYPE, &placed.order_id),
        })?;
        let stored = match first.decode_for::<Order>() {
            Ok(OrderEvent::Placed(stored)) => stored,
            Ok(_) => {
                return Err(StoreError::Corrupt {
                    stream: first.stream_key(),
                    source: ripple_kit::envelope::EnvelopeError::Invalid(
                        "the order does not start with order.placed".into(),
                    ),
                }
                .into());
            }
            Err(source) => {
                return Err(StoreError::Corrupt {
                    stream: first.stream_key(),
                    source,
                }
                .into());
            }
        };
        if !stored.is_the_same_order_as(placed) {
            return Err(key_reused().into());
        }
        tracing::info!(order_id = %placed.order_id, event_id = %first.id, "order already placed under this key; answering it");
        Ok(Placed {
            order_id: placed.order_id.clone(),
            event_id: first.id.clone(),
            replayed: true,
        })
    }

    fn placed_response(&self, placed: &Placed) -> ApiGatewayV2httpResponse {
        let body =
            json!({"order_id": placed.order_id, "status": "placed", "event_id": placed.event_id});
        let mut response = json_response(201, &body);
        if let Ok(location) = HeaderValue::from_str(&format!("/orders/{}", placed.order_id)) {
            response.headers.insert(LOCATION, location);
        }
        if placed.replayed {
            self.metrics.count("IdempotentReplays");
            response
                .headers
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }

    async fn cancel_order(
        &self,
        request: &ApiGatewayV2httpRequest,
        order_id: &str,
    ) -> Result<ApiGatewayV2httpResponse, Failure> {
        let caller = Caller::of(request, scopes::WRITE)?;
        check_order_id(order_id)?;
        let outcome: bool = retry_on_conflict(&self.retry, || async {
            let order: Loaded<Order> = self.store.load(order_id).await?;
            if !order.state.is_owned_by(&caller.customer_id) {
                return Err(ApiError::no_order(order_id).into());
            }
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
        request: &ApiGatewayV2httpRequest,
        order_id: &str,
    ) -> Result<ApiGatewayV2httpResponse, Failure> {
        let caller = Caller::of(request, scopes::READ)?;
        check_order_id(order_id)?;
        let version = match query(request, "version") {
            None => None,
            Some(v) => Some(v.parse::<u64>().ok().filter(|v| *v >= 1).ok_or_else(|| {
                ApiError::new(
                    400,
                    "invalid_version",
                    "version must be a whole number from 1",
                )
            })?),
        };
        if version.is_none()
            && let Some(view) = self.owned_view(&caller, order_id).await?
        {
            return Ok(json_response(
                200,
                &json!({"order_id": order_id, "source": "read_model", "view": view}),
            ));
        }
        let history = self.owned_history(&caller, order_id).await?;
        let current = history.len() as u64;
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
        request: &ApiGatewayV2httpRequest,
        order_id: &str,
    ) -> Result<ApiGatewayV2httpResponse, Failure> {
        let caller = Caller::of(request, scopes::READ)?;
        check_order_id(order_id)?;
        let from = parse_bounded(query(request, "from"), "from", 1, u64::MAX, 1)?;
        let limit = parse_bounded(query(request, "limit"), "limit", 1, MAX_PAGE, DEFAULT_PAGE)?;
        let history = self.owned_history(&caller, order_id).await?;
        // An empty page past the end of an order is an answer; an order with no events is not.
        let mut events: Vec<Envelope> =
            history.into_iter().filter(|e| e.sequence >= from).collect();
        let next = (events.len() as u64 > limit).then(|| from + limit);
        events.truncate(limit as usize);
        Ok(json_response(
            200,
            &json!({"order_id": order_id, "events": events, "next_from": next}),
        ))
    }

    /// The order's read model, if it is projected and `caller` placed it: the same 404 as for no
    /// order when another customer did; `None` when the store must answer (no view yet, a view
    /// not projected from `order.placed` yet, or the views table failing).
    async fn owned_view(
        &self,
        caller: &Caller,
        order_id: &str,
    ) -> Result<Option<domain::view::OrderView>, Failure> {
        match self.views.view(order_id).await {
            Ok(Some(view)) => match view.customer_id.as_deref() {
                Some(owner) if owner == caller.customer_id => Ok(Some(view)),
                Some(_) => Err(ApiError::no_order(order_id).into()),
                None => Ok(None),
            },
            Ok(None) => Ok(None),
            Err(err) => {
                // The store can still answer: a stale-free answer beats an error.
                tracing::warn!(error = %err, "order view unavailable; answering from the event store");
                Ok(None)
            }
        }
    }

    /// Every event of the order, if `caller` placed it; the same 404 for an order that does not
    /// exist and for another customer's.
    async fn owned_history(
        &self,
        caller: &Caller,
        order_id: &str,
    ) -> Result<Vec<Envelope>, Failure> {
        let history = self.store.read_stream(Order::TYPE, order_id, 1).await?;
        let placed = Loaded::<Order>::from_stored(order_id, history.iter().take(1))?;
        if !placed.state.is_owned_by(&caller.customer_id) {
            return Err(ApiError::no_order(order_id).into());
        }
        Ok(history)
    }
}

/// The request's `Idempotency-Key`, if it sends one. A key that is not visible ASCII reads as
/// empty and is refused, never ignored: ignoring it would place a new order on every retry the
/// client believes is protected.
fn idempotency_key(request: &ApiGatewayV2httpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = request.headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    if key.trim().is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(ApiError::new(
            400,
            "invalid_idempotency_key",
            format!("the key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"),
        )
        .on("Idempotency-Key"));
    }
    Ok(Some(key))
}

/// What a refused cancellation tells the client.
fn cancel_refused(order_id: &str, refused: CancelRefused) -> ApiError {
    match refused {
        CancelRefused::NotFound => ApiError::no_order(order_id),
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

/// The order a `POST /orders` placed, or found placed under its `Idempotency-Key`.
#[derive(Debug)]
struct Placed {
    order_id: String,
    event_id: String,
    /// Placed by an earlier request under the same key.
    replayed: bool,
}

fn key_reused() -> ApiError {
    ApiError::new(
        422,
        "idempotency_key_reused",
        "this Idempotency-Key was used for another order",
    )
    .on("Idempotency-Key")
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

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
