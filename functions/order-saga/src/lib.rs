//! `order-saga`: moves an order on when inventory or payments have decided.
//!
//! `stock.rejected` → `order.cancelled` (out of stock); `payment.declined` → `order.cancelled`
//! (payment declined); `payment.captured` → `order.confirmed`. The rules are
//! [`domain::saga::decide`]; the answer is appended at the order's next version (the kit's
//! [`EventSourced`] adds the dedupe marker `dedupe#order-saga#<source event id>` to the same
//! write). A customer cancelling at the same moment takes the same stream position, so one of the
//! two appends loses, reloads, and sees the order already decided.
//!
//! Nearly every order holds only its `order.placed` when the saga hears of it, so the saga first
//! writes without reading ([`Reactor::presume`]): the answer at version 2, given that version 1
//! is there, one transaction in all. Where the order stands elsewhere (cancelled by its customer,
//! decided before with the marker gone, or not there at all) that write is refused, and the saga
//! reads the order and decides on what it holds.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use domain::inventory::Reservation;
use domain::order::Order;
use domain::payment::Payment;
use domain::saga::{SagaInput, decide, decide_placed};
use ripple_kit::consumer::{Delivery, EventSourced, NewEvent};
use ripple_kit::envelope::EnvelopeError;
use ripple_kit::store::DynamoEventStore;
use ripple_kit::{
    Aggregate, ConsumerError, Envelope, EventStore, Loaded, Reaction, Reactor, SqsConsumer,
    StreamPosition,
};

/// Settings, from the variables template.yaml gives this function: the events table.
pub use ripple_kit::config::EventStoreConfig as Config;

/// order-saga function: [`Saga`] behind its queue, over an event store.
pub type Handler<S = DynamoEventStore> = SqsConsumer<EventSourced<Saga, S>>;

/// The handler on the DynamoDB event store named in `config`.
pub fn handler(config: Config, aws: &aws_config::SdkConfig) -> Handler {
    let client = ripple_kit::requests::dynamodb_client(aws);
    handler_with(DynamoEventStore::new(client, config.events_table))
}

/// The handler over any event store (tests pass the in-memory one): it acts only on events the
/// system's producers may write ([`domain::producers`]).
pub fn handler_with<S: EventStore>(store: S) -> Handler<S> {
    SqsConsumer::event_sourced(Saga, store).with_producers(domain::producers())
}

/// Decides how an order reacts to what inventory and payments decided.
pub struct Saga;

impl<S: EventStore> Reactor<S> for Saga {
    const NAME: &'static str = "order-saga";
    const SOURCE: &'static str = domain::sources::ORDER_SAGA;
    type Input = SagaInput;
    type Error = std::convert::Infallible;

    /// Reservation and payment events, by the stream they come from.
    fn input(&self, event: &Envelope) -> Result<Option<SagaInput>, EnvelopeError> {
        match event.aggregatetype.as_str() {
            Reservation::TYPE => Ok(Some(SagaInput::Reservation(
                event.decode_for::<Reservation>()?,
            ))),
            Payment::TYPE => Ok(Some(SagaInput::Payment(event.decode_for::<Payment>()?))),
            _ => Err(EnvelopeError::UnknownType(event.event_type.clone())),
        }
    }

    /// The answer for an order that holds only `order.placed`, at version 2.
    async fn presume(
        &self,
        _: &S,
        input: &SagaInput,
        _: &Delivery<'_>,
    ) -> Result<Option<Reaction>, ConsumerError> {
        let order_id = input.order_id();
        let Some(event) = decide_placed(order_id, input) else {
            return Ok(None);
        };
        let at = StreamPosition::of::<Order>(order_id, 2);
        Ok(Some(Reaction::AppendPresumed(vec![NewEvent::new(
            at, &event,
        )?])))
    }

    async fn react(
        &self,
        store: &S,
        input: &SagaInput,
        delivery: &Delivery<'_>,
    ) -> Result<Reaction, ConsumerError> {
        let order_id = input.order_id();
        let history = store.read_stream(Order::TYPE, order_id, 1).await?;
        // The order already carries this event's effect (its marker may have expired since).
        if history
            .iter()
            .any(|e| e.causationid.as_deref() == Some(delivery.event.id.as_str()))
        {
            return Ok(Reaction::AlreadyApplied);
        }
        let order = Loaded::<Order>::from_stored(order_id, &history)?;
        if !order.exists() {
            return Err(ConsumerError::NotFound {
                stream: ripple_kit::envelope::stream_key(Order::TYPE, order_id),
            });
        }
        match decide(&order, input) {
            Some(event) => Ok(Reaction::append(order.next(), &event)?),
            None => {
                tracing::info!(order_id, status = ?order.state.status, "order already decided; nothing to do");
                Ok(Reaction::Ignored)
            }
        }
    }
}

#[cfg(test)]
mod tests;
