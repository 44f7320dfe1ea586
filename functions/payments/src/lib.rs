//! `payments`: charges an order once its stock is reserved, and refunds it if it is cancelled.
//!
//! `stock.reserved` → the gateway charges the order → `payment.captured` or `payment.declined`
//! on the order's `Payment` stream. `order.cancelled` after a capture → the gateway refunds →
//! `payment.refunded`.
//!
//! A reserved order has no payment yet, so a charge does not read the payment stream: it is
//! written at the stream's first position ([`Reactor::presume`]), which an earlier charge of the
//! order takes (then the charge is decided again on what the store holds). An order cancelled
//! out of stock or declined was never charged, so its cancellation is not even read.
//!
//! What is charged, and to whom, is read from the order's own stream (`order.placed`, priced by
//! the API from the catalog), never taken from the message that asked for the charge; the message
//! only says when.
//!
//! Two mechanisms make each effect happen once:
//! - the gateway call leaves the system, so it runs under the idempotency utility
//!   ([`ripple_kit::idempotency`], keys `payments#charge` / `payments#refund` + order id): a
//!   redelivered message, or a retry after a lost race, gets the stored answer and the gateway is
//!   not called again;
//! - the event is appended at the Payment stream's next version with the dedupe marker
//!   `dedupe#payments#<source event id>` in the same write (the kit's [`EventSourced`]).
//!
//! A run that died after the gateway call and before recording its answer leaves its claim in
//! progress; once that expires, a redelivery calls the gateway again, with the same gateway-side
//! idempotency key (`charge-<order id>`, `refund-<order id>`) and the same amount, so the provider
//! answers the first charge or refund instead of making a second one.
//!
//! A customer may cancel while the charge is in flight, so a charge is stored only if the order
//! is still at the version it was read at (the order stream is checked in the payment's
//! transaction, [`Reaction::AppendGiven`]). Either the capture is stored first, and the
//! cancellation, written after it, finds it when payments hears of it and refunds it; or the
//! cancellation is, and the charge is decided again on the cancelled order: the gateway's answer
//! (stored by the idempotency utility) is recorded and refunded in the same write.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod gateway;

use std::time::SystemTime;

use domain::inventory::{Reservation, ReservationEvent, StockReserved};
use domain::order::{Order, OrderEvent, OrderStatus};
use domain::payment::{
    ChargeRequest, ChargeResult, Payment, RefundReceipt, RefundRequest, charged, decide_charge,
    decide_refund, may_hold_a_charge, refunded,
};
use ripple_kit::batch::RedeliveryBackoff;
use ripple_kit::config::{ConfigError, Env};
use ripple_kit::consumer::{Delivery, EventSourced, NewEvent};
use ripple_kit::envelope::{EnvelopeError, stream_key};
use ripple_kit::idempotency::{
    DynamoIdempotencyStore, Idempotency, IdempotencyError, IdempotencyStore,
};
use ripple_kit::store::{DynamoEventStore, Unchanged};
use ripple_kit::{
    Aggregate, ConsumerError, Envelope, EventStore, Loaded, Reaction, Reactor, SqsConsumer,
};
use serde_json::json;

pub use gateway::{GatewayError, PaymentGateway, SimulatedGateway};

/// Idempotency name of gateway charges (the record key is this + `#` + a hash of the order id).
pub const CHARGE_KEY: &str = "payments#charge";
/// Idempotency name of gateway refunds.
pub const REFUND_KEY: &str = "payments#refund";

/// Settings, from the variables template.yaml gives this function.
#[derive(Debug, Clone)]
pub struct Config {
    /// The events table.
    pub events_table: String,
    /// The idempotency table guarding gateway calls.
    pub idempotency_table: String,
    /// Share of orders the simulated gateway declines, 0.0 to 1.0 (`PAYMENT_DECLINE_RATE`, default 0).
    pub decline_rate: f64,
    /// Amounts the simulated gateway declines above (`PAYMENT_MAX_AMOUNT_CENTS`, default none).
    pub max_amount_cents: Option<u64>,
    /// How failed messages back off (`REDELIVERY_BASE_SECONDS`, `REDELIVERY_CAP_SECONDS`).
    pub redelivery: RedeliveryBackoff,
}

impl Config {
    /// From any lookup: `ripple_kit::config::process_env` in Lambda, the template's variables in
    /// the local runner.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        let decline_rate: f64 = env.parsed_or("PAYMENT_DECLINE_RATE", 0.0)?;
        if !(0.0..=1.0).contains(&decline_rate) {
            return Err(ConfigError::Invalid {
                key: "PAYMENT_DECLINE_RATE".into(),
                value: decline_rate.to_string(),
                reason: "must be between 0.0 and 1.0".into(),
            });
        }
        let max_amount_cents = match env.optional("PAYMENT_MAX_AMOUNT_CENTS") {
            Some(_) => Some(env.parsed_or("PAYMENT_MAX_AMOUNT_CENTS", 0_u64)?),
            None => None,
        };
        Ok(Config {
            events_table: env.required("EVENTS_TABLE")?,
            idempotency_table: env.required("IDEMPOTENCY_TABLE")?,
            decline_rate,
            max_amount_cents,
            redelivery: RedeliveryBackoff::from_env(&env)?,
        })
    }
}

/// The payments function: [`Payments`] behind its queue, over an event store.
pub type Handler<S = DynamoEventStore, G = SimulatedGateway, I = DynamoIdempotencyStore> =
    SqsConsumer<EventSourced<Payments<G, I>, S>>;

/// The handler on the DynamoDB tables named in `config`, with the simulated gateway.
pub fn handler(config: Config, aws: &aws_config::SdkConfig) -> Handler {
    let client = ripple_kit::requests::dynamodb_client(aws);
    let gateway = SimulatedGateway::new(config.decline_rate, config.max_amount_cents);
    handler_with(
        DynamoEventStore::new(client.clone(), config.events_table),
        gateway,
        DynamoIdempotencyStore::new(client, config.idempotency_table),
    )
    .with_backoff(config.redelivery, aws)
}

/// The handler over any adapters (tests pass in-memory ones and a recording gateway).
pub fn handler_with<S, G, I>(store: S, gateway: G, idempotency: I) -> Handler<S, G, I>
where
    S: EventStore,
    G: PaymentGateway,
    I: IdempotencyStore + Clone,
{
    SqsConsumer::new(EventSourced::new(
        Payments::new(gateway, idempotency),
        store,
    ))
    .with_producers(domain::producers())
}

/// Decides what to charge and refund, and makes the gateway calls at most once each.
pub struct Payments<G, I> {
    gateway: G,
    charges: Idempotency<I>,
    refunds: Idempotency<I>,
}

/// What payments acts on.
pub enum Trigger {
    /// An order whose stock is reserved: charge it (the figures are the order's, not these).
    Reserved(StockReserved),
    /// An order that was cancelled: refund what it paid.
    Cancelled {
        /// The order.
        order_id: String,
    },
}

impl<G: PaymentGateway, I: IdempotencyStore + Clone> Payments<G, I> {
    /// Payments through `gateway`, its calls recorded in `idempotency`.
    pub fn new(gateway: G, idempotency: I) -> Self {
        Payments {
            charges: Idempotency::for_consumer(idempotency.clone(), CHARGE_KEY),
            refunds: Idempotency::for_consumer(idempotency, REFUND_KEY),
            gateway,
        }
    }
}

impl<G, I: IdempotencyStore> Payments<G, I> {
    /// Reads the time its idempotency records expire by from `clock` (for tests of a takeover).
    pub fn with_clock(
        mut self,
        clock: impl Fn() -> SystemTime + Clone + Send + Sync + 'static,
    ) -> Self {
        self.charges = self.charges.with_clock(clock.clone());
        self.refunds = self.refunds.with_clock(clock);
        self
    }
}

impl<G, I> Payments<G, I> {
    /// The gateway it charges through.
    pub fn gateway(&self) -> &G {
        &self.gateway
    }
}

/// What payments fails with besides the kit's errors: the gateway call.
pub type GatewayCallError = IdempotencyError<GatewayError>;

impl<S, G, I> Reactor<S> for Payments<G, I>
where
    S: EventStore,
    G: PaymentGateway,
    I: IdempotencyStore,
{
    const NAME: &'static str = "payments";
    const SOURCE: &'static str = domain::sources::PAYMENTS;
    type Input = Trigger;
    type Error = GatewayCallError;

    fn input(&self, event: &Envelope) -> Result<Option<Trigger>, EnvelopeError> {
        Ok(match event.aggregatetype.as_str() {
            Reservation::TYPE => match event.decode_for::<Reservation>()? {
                ReservationEvent::Reserved(reserved) => Some(Trigger::Reserved(reserved)),
                _ => None,
            },
            Order::TYPE => match event.decode_for::<Order>()? {
                // Out of stock or declined: never charged, nothing to read or refund.
                OrderEvent::Cancelled { order_id, reason } if may_hold_a_charge(reason) => {
                    Some(Trigger::Cancelled { order_id })
                }
                _ => None,
            },
            _ => return Err(EnvelopeError::UnknownType(event.event_type.clone())),
        })
    }

    /// A reserved order has no payment yet: charged without reading the payment stream, the
    /// charge written at its first position (taken, if an earlier delivery charged it).
    async fn presume(
        &self,
        store: &S,
        trigger: &Trigger,
        delivery: &Delivery<'_>,
    ) -> Result<Option<Reaction>, ConsumerError<GatewayCallError>> {
        match trigger {
            Trigger::Reserved(reserved) => {
                let none = Loaded::new(&reserved.order_id);
                self.charge(store, reserved, none, delivery.deadline)
                    .await
                    .map(Some)
            }
            Trigger::Cancelled { .. } => Ok(None),
        }
    }

    async fn react(
        &self,
        store: &S,
        trigger: &Trigger,
        delivery: &Delivery<'_>,
    ) -> Result<Reaction, ConsumerError<GatewayCallError>> {
        match trigger {
            Trigger::Reserved(reserved) => {
                let payment = store.load(&reserved.order_id).await?;
                self.charge(store, reserved, payment, delivery.deadline)
                    .await
            }
            Trigger::Cancelled { order_id } => {
                self.refund(store, order_id, delivery.deadline).await
            }
        }
    }
}

impl<G: PaymentGateway, I: IdempotencyStore> Payments<G, I> {
    /// Charges a reserved order once, its payment as `payment`.
    async fn charge<S: EventStore>(
        &self,
        store: &S,
        reserved: &StockReserved,
        payment: Loaded<Payment>,
        deadline: SystemTime,
    ) -> Result<Reaction, ConsumerError<GatewayCallError>> {
        let order_id = reserved.order_id.as_str();
        let order = load_order(store, order_id).await?;
        let Some(placed) = &order.state.placed else {
            return Err(ConsumerError::NotFound {
                stream: stream_key(Order::TYPE, order_id),
            });
        };
        let Some(request) = decide_charge(placed, &payment.state) else {
            return Ok(Reaction::AlreadyApplied);
        };
        if (
            reserved.total_cents,
            &reserved.customer_id,
            &reserved.currency,
        ) != (
            placed.total.minor_units,
            &placed.customer_id,
            &placed.total.currency,
        ) {
            tracing::warn!(
                order_id,
                "stock.reserved disagrees with the order; charging what the order says"
            );
        }
        // A charge that reached the gateway before the cancel (its event not stored: the append
        // failed) is finished here, recorded and refunded; only an order never charged is left
        // alone.
        if order.state.status == OrderStatus::Cancelled
            && !self
                .charges
                .has_record(&json!(order_id))
                .await
                .map_err(|e| ConsumerError::Own(IdempotencyError::Store(e)))?
        {
            tracing::info!(
                order_id,
                "order cancelled before it was charged; nothing to charge"
            );
            return Ok(Reaction::Ignored);
        }
        let result = self.call_charge(&request, deadline).await?;
        let charge = charged(&request, result);
        let mut events = vec![NewEvent::new(payment.next(), &charge)?];
        let mut charged_payment = payment;
        charged_payment.apply(&charge);
        if order.state.status == OrderStatus::Cancelled
            && let Some(refund) = decide_refund(order_id, &charged_payment.state)
        {
            tracing::info!(
                order_id,
                "order was cancelled during the charge; refunding it"
            );
            self.call_refund(&refund, deadline).await?;
            events.push(NewEvent::new(charged_payment.next(), &refunded(&refund))?);
        }
        // Stored only if the order has not moved on since it was read (module docs).
        Ok(Reaction::AppendGiven(events, vec![Unchanged::of(&order)]))
    }

    async fn call_charge(
        &self,
        request: &ChargeRequest,
        deadline: SystemTime,
    ) -> Result<ChargeResult, ConsumerError<GatewayCallError>> {
        let charged = self
            .charges
            .run(&json!(request.order_id), &json!(request), deadline, || {
                self.gateway.charge(request.clone())
            })
            .await
            .map_err(ConsumerError::Own)?;
        Ok(charged.value)
    }

    /// Refunds a captured payment once.
    async fn refund<S: EventStore>(
        &self,
        store: &S,
        order_id: &str,
        deadline: SystemTime,
    ) -> Result<Reaction, ConsumerError<GatewayCallError>> {
        let payment: Loaded<Payment> = store.load(order_id).await?;
        let Some(request) = decide_refund(order_id, &payment.state) else {
            return Ok(match payment.state {
                Payment::Refunded { .. } => Reaction::AlreadyApplied,
                _ => Reaction::Ignored,
            });
        };
        self.call_refund(&request, deadline).await?;
        Ok(Reaction::append(payment.next(), &refunded(&request))?)
    }

    async fn call_refund(
        &self,
        request: &RefundRequest,
        deadline: SystemTime,
    ) -> Result<RefundReceipt, ConsumerError<GatewayCallError>> {
        let refunded = self
            .refunds
            .run(&json!(request.order_id), &json!(request), deadline, || {
                self.gateway.refund(request.clone())
            })
            .await
            .map_err(ConsumerError::Own)?;
        Ok(refunded.value)
    }
}

/// The order `order_id`; an order the store does not hold is an error.
async fn load_order<S: EventStore, E>(
    store: &S,
    order_id: &str,
) -> Result<Loaded<Order>, ConsumerError<E>> {
    let order: Loaded<Order> = store.load(order_id).await?;
    if !order.exists() {
        return Err(ConsumerError::NotFound {
            stream: stream_key(Order::TYPE, order_id),
        });
    }
    Ok(order)
}

#[cfg(test)]
mod tests;
