//! A complete producer: a shopping cart behind API Gateway (HTTP API, payload v2) that appends
//! events to its own stream with optimistic concurrency.
//!
//! `POST /carts/{id}/items` with `{"sku": "...", "quantity": n}` loads the cart, decides with a
//! pure function (`add_item`: at most 20 lines, quantities 1 to 99), and appends `item.added` at
//! the cart's next version. Two requests for the same cart at the same moment take the same
//! stream position; the loser's conditional write fails, and `retry_on_conflict` reloads and
//! decides again, so no item is lost and none is counted twice. Nothing here publishes: the
//! table's stream is the outbox, and the kit's `Outbox` publishes what was stored.
//!
//! Deploy it with `EVENTS_TABLE` naming the event store's table; try it here with
//! `cargo run -p ripple-kit --example order_producer -- --demo`.

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_runtime::LambdaEvent;
use ripple_kit::store::{
    Conflicting, DynamoEventStore, InMemoryEventStore, RetryPolicy, retry_on_conflict,
};
use ripple_kit::{Aggregate, Append, Envelope, EventStore, Loaded, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const SOURCE: &str = "shop/carts";
const MAX_LINES: usize = 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum CartEvent {
    #[serde(rename = "item.added")]
    ItemAdded { sku: String, quantity: u32 },
}

/// A cart, folded from its stream `Cart#<id>`.
#[derive(Debug, Default)]
struct Cart {
    lines: Vec<(String, u32)>,
}

impl Aggregate for Cart {
    const TYPE: &'static str = "Cart";
    type Event = CartEvent;

    fn apply(&mut self, event: &CartEvent) {
        let CartEvent::ItemAdded { sku, quantity } = event;
        match self.lines.iter_mut().find(|(s, _)| s == sku) {
            Some((_, q)) => *q += quantity,
            None => self.lines.push((sku.clone(), *quantity)),
        }
    }
}

/// The command: what the client asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddItem {
    sku: String,
    quantity: u32,
}

/// Adds the item, or says which rule it breaks.
fn add_item(cart: &Cart, command: AddItem) -> Result<CartEvent, &'static str> {
    if command.sku.is_empty() || command.sku.len() > 64 {
        return Err("sku must be 1 to 64 characters");
    }
    if !(1..=99).contains(&command.quantity) {
        return Err("quantity must be between 1 and 99");
    }
    let new_line = !cart.lines.iter().any(|(sku, _)| *sku == command.sku);
    if new_line && cart.lines.len() >= MAX_LINES {
        return Err("a cart holds at most 20 lines");
    }
    Ok(CartEvent::ItemAdded {
        sku: command.sku,
        quantity: command.quantity,
    })
}

/// Why a request did not succeed: a client mistake, or the store.
enum Failure {
    Client(u16, String),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Store(err)
    }
}

impl Conflicting for Failure {
    fn is_conflict(&self) -> bool {
        matches!(self, Failure::Store(err) if err.is_conflict())
    }
}

/// Serves one request over any event store.
async fn handle<S: EventStore>(
    store: &S,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, lambda_runtime::Error> {
    let request = event.payload;
    let Some(cart_id) = request.path_parameters.get("id").cloned() else {
        return Ok(response(404, json!({"message": "no such route"})));
    };
    let body = request.body.as_deref().unwrap_or_default();
    let added = retry_on_conflict(&RetryPolicy::default(), || async {
        let command: AddItem = serde_json::from_str(body)
            .map_err(|e| Failure::Client(422, format!("invalid request: {e}")))?;
        let cart: Loaded<Cart> = store.load(&cart_id).await?;
        let added =
            add_item(&cart.state, command).map_err(|rule| Failure::Client(422, rule.into()))?;
        let envelope = Envelope::encode(SOURCE, cart.next(), &added)
            .map_err(|e| Failure::Store(StoreError::InvalidAppend(e.to_string())))?;
        store.append(Append::events(vec![envelope.clone()])).await?;
        Ok::<_, Failure>(envelope)
    })
    .await;
    Ok(match added {
        Ok(envelope) => response(
            201,
            json!({"cart_id": cart_id, "version": envelope.sequence, "event_id": envelope.id}),
        ),
        Err(Failure::Client(status, message)) => response(status, json!({"message": message})),
        Err(Failure::Store(err)) => {
            tracing::error!(error = %ripple_kit::telemetry::error_chain(&err), "event store failed");
            response(503, json!({"message": "retry later"}))
        }
    })
}

fn response(status: u16, body: Value) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.body = Some(Body::Text(body.to_string()));
    response
}

/// Two requests for one cart at the same moment, over the in-memory store: both items land.
async fn demo() -> Result<(), lambda_runtime::Error> {
    let store = InMemoryEventStore::new();
    let request = |sku: &str| {
        let mut request = ApiGatewayV2httpRequest::default();
        request.path_parameters.insert("id".into(), "cart-1".into());
        request.body = Some(json!({"sku": sku, "quantity": 2}).to_string());
        LambdaEvent::new(request, Default::default())
    };
    let (a, b) = tokio::join!(handle(&store, request("A")), handle(&store, request("B")));
    let cart: Loaded<Cart> = store.load("cart-1").await?;
    println!(
        "statuses {} and {}; cart-1 at version {} holds {:?}",
        a?.status_code, b?.status_code, cart.version, cart.state.lines
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    if std::env::args().any(|arg| arg == "--demo") {
        return demo().await;
    }
    let store = ripple_kit::lambda::init(
        |lookup| ripple_kit::config::Env::new(lookup).required("EVENTS_TABLE"),
        |table, aws| DynamoEventStore::new(aws_sdk_dynamodb::Client::new(aws), table),
    )
    .await?;
    lambda_runtime::run(lambda_runtime::service_fn(|event| handle(&store, event))).await
}
