//! `inventory`: reserves stock for placed orders and gives it back for cancelled ones.
//!
//! `order.placed` → `stock.reserved` (with a `stock.allocated` per sku) or `stock.rejected`;
//! `order.cancelled` → `stock.released` (with a `stock.deallocated` per sku) for whatever the order
//! holds. The rules are [`domain::inventory`]'s; the kit's [`EventSourced`] appends the decision
//! with the dedupe marker `dedupe#inventory#<source event id>` in one transaction, so a
//! redelivered message changes nothing, and two orders racing for the last unit collide on the
//! sku's stream position, so one of them decides again and sees the stock gone.
//!
//! The stocks and reservations it loads stay in the execution environment between invocations
//! ([`Cached`]), and a placed order has no reservation yet, so a warm reservation reads nothing:
//! it is decided on the copies and its outcome written at the reservation stream's first
//! position ([`Reactor::presume`]); an order decided before (or cancelled first) has that
//! position taken, and is decided again on what the store holds. A copy made stale by another
//! writer is caught by that same
//! transaction: a sku it changes has its next position taken, and a sku it only read (a
//! rejection for want of it) is checked unchanged in the transaction ([`Unchanged`]); either
//! way the append is a conflict, the copy is brought up to date and the order decided again.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use domain::inventory::{
    Decision, Reservation, Stock, StockEvent, Stocks, decide_release, decide_reservation,
};
use domain::order::{Order, OrderEvent, OrderPlaced};
use ripple_kit::consumer::{Delivery, EventSourced, NewEvent};
use ripple_kit::envelope::EnvelopeError;
use ripple_kit::store::{Cached, DynamoEventStore, RetryPolicy, Unchanged, retry_on_conflict};
use ripple_kit::{
    Aggregate, Append, ConsumerError, Envelope, EventStore, Loaded, Reaction, Reactor, SqsConsumer,
    StoreError,
};

/// Settings, from the variables template.yaml gives this function: the events table.
pub use ripple_kit::config::EventStoreConfig as Config;

/// inventory function: [`Inventory`] behind its queue, over an event store.
pub type Handler<S = Cached<DynamoEventStore>> = SqsConsumer<EventSourced<Inventory, S>>;

/// The handler on the DynamoDB event store named in `config`, keeping copies of the streams it
/// reads between invocations.
pub fn handler(config: Config, aws: &aws_config::SdkConfig) -> Handler {
    let client = ripple_kit::requests::dynamodb_client(aws);
    handler_with(Cached::new(DynamoEventStore::new(
        client,
        config.events_table,
    )))
}

/// The handler over any event store (tests pass the in-memory one): it acts only on events the
/// system's producers may write ([`domain::producers`]).
pub fn handler_with<S: EventStore>(store: S) -> Handler<S> {
    SqsConsumer::event_sourced(Inventory, store).with_producers(domain::producers())
}

/// Decides what an order event means for stock.
pub struct Inventory;

/// What inventory acts on.
pub enum Input {
    /// An order to reserve stock for.
    Placed(OrderPlaced),
    /// An order whose stock goes back.
    Cancelled {
        /// The order.
        order_id: String,
    },
}

impl<S: EventStore> Reactor<S> for Inventory {
    const NAME: &'static str = "inventory";
    const SOURCE: &'static str = domain::sources::INVENTORY;
    type Input = Input;
    type Error = std::convert::Infallible;

    fn input(&self, event: &Envelope) -> Result<Option<Input>, EnvelopeError> {
        if event.aggregatetype != Order::TYPE {
            return Err(EnvelopeError::UnknownType(event.event_type.clone()));
        }
        Ok(match event.decode_for::<Order>()? {
            OrderEvent::Placed(placed) => Some(Input::Placed(placed)),
            OrderEvent::Cancelled { order_id, .. } => Some(Input::Cancelled { order_id }),
            OrderEvent::Confirmed { .. } => None,
        })
    }

    /// A placed order has no reservation yet.
    async fn presume(
        &self,
        store: &S,
        input: &Input,
        _: &Delivery<'_>,
    ) -> Result<Option<Reaction>, ConsumerError> {
        match input {
            Input::Placed(placed) => {
                let none = Loaded::<Reservation>::new(&placed.order_id);
                decide_reserve(store, placed, &none).await.map(Some)
            }
            Input::Cancelled { .. } => Ok(None),
        }
    }

    async fn react(
        &self,
        store: &S,
        input: &Input,
        _: &Delivery<'_>,
    ) -> Result<Reaction, ConsumerError> {
        match input {
            Input::Placed(placed) => reserve(store, placed).await,
            Input::Cancelled { order_id } => release(store, order_id).await,
        }
    }
}

async fn reserve<S: EventStore>(
    store: &S,
    placed: &OrderPlaced,
) -> Result<Reaction, ConsumerError> {
    let reservation: Loaded<Reservation> = store.load(&placed.order_id).await?;
    match reservation.state {
        Reservation::None => {}
        // Decided by an earlier delivery of this order.
        Reservation::Reserved(_) | Reservation::Rejected => return Ok(Reaction::AlreadyApplied),
        // Cancelled (before or after reserving): nothing to set aside.
        Reservation::Released => return Ok(Reaction::Ignored),
    }
    decide_reserve(store, placed, &reservation).await
}

/// The reservation of `placed` on the current stock of its skus, its outcome written after
/// `reservation`.
async fn decide_reserve<S: EventStore>(
    store: &S,
    placed: &OrderPlaced,
    reservation: &Loaded<Reservation>,
) -> Result<Reaction, ConsumerError> {
    let stocks = stocks(store, placed.lines.iter().map(|l| l.sku.as_str())).await?;
    let decision = decide_reservation(placed, &stocks);
    reaction(reservation, decision, &stocks)
}

async fn release<S: EventStore>(store: &S, order_id: &str) -> Result<Reaction, ConsumerError> {
    let reservation: Loaded<Reservation> = store.load(order_id).await?;
    let skus: Vec<&str> = match &reservation.state {
        Reservation::Reserved(lines) => lines.iter().map(|l| l.sku.as_str()).collect(),
        // Cancelled before inventory decided: an empty release closes the reservation.
        Reservation::None => Vec::new(),
        Reservation::Rejected | Reservation::Released => return Ok(Reaction::Ignored),
    };
    let stocks = stocks(store, skus.into_iter()).await?;
    match decide_release(order_id, &reservation.state, &stocks) {
        Some(decision) => reaction(&reservation, decision, &stocks),
        None => Ok(Reaction::Ignored),
    }
}

/// The decision's events, given that every sku it read and does not change is still as read.
fn reaction(
    reservation: &Loaded<Reservation>,
    decision: Decision,
    stocks: &Stocks,
) -> Result<Reaction, ConsumerError> {
    let unchanged = stocks
        .iter()
        .filter(|(sku, _)| !decision.changes.iter().any(|c| &c.sku == *sku))
        .map(|(_, stock)| Unchanged::of(stock))
        .collect();
    Ok(Reaction::AppendGiven(
        events_of(reservation, decision)?,
        unchanged,
    ))
}

/// A decision's events: the stock changes, then the reservation's outcome at its next position.
fn events_of(
    reservation: &Loaded<Reservation>,
    decision: Decision,
) -> Result<Vec<NewEvent>, EnvelopeError> {
    let mut events = Vec::with_capacity(decision.changes.len() + 1);
    for change in &decision.changes {
        let at = ripple_kit::StreamPosition::new(Stock::TYPE, &change.sku, change.sequence);
        events.push(NewEvent::new(at, &change.event)?);
    }
    events.push(NewEvent::new(reservation.next(), &decision.outcome)?);
    Ok(events)
}

/// The current stock of each of `skus`, loaded at once.
async fn stocks<'a, S: EventStore>(
    store: &S,
    skus: impl Iterator<Item = &'a str>,
) -> Result<Stocks, StoreError> {
    let loads = skus.map(|sku| async move {
        Ok::<_, StoreError>((sku.to_owned(), store.load_snapshotted::<Stock>(sku).await?))
    });
    futures::future::try_join_all(loads)
        .await
        .map(|loaded| loaded.into_iter().collect())
}

/// The current stock of `sku`.
pub async fn stock<S: EventStore>(store: &S, sku: &str) -> Result<Loaded<Stock>, StoreError> {
    store.load_snapshotted(sku).await
}

/// Adds `quantity` units of `sku` (an operator's action: seeding, deliveries).
pub async fn restock<S: EventStore>(store: &S, sku: &str, quantity: u64) -> Result<(), StoreError> {
    retry_on_conflict(&RetryPolicy::default(), || async {
        let stock: Loaded<Stock> = store.load_snapshotted(sku).await?;
        let event = Envelope::encode(
            <Inventory as Reactor<S>>::SOURCE,
            stock.next(),
            &StockEvent::Restocked {
                sku: sku.to_owned(),
                quantity,
            },
        )
        .map_err(|e| StoreError::InvalidAppend(e.to_string()))?;
        store.append(Append::events(vec![event])).await
    })
    .await
}

#[cfg(test)]
mod tests;
