//! A complete event-sourced consumer: a loyalty account that earns points when an order is
//! confirmed, one account per customer.
//!
//! It shows the whole shape of a consumer built on the kit: an aggregate folded from its stream
//! (`Account`), a pure decision (`award`), and a [`Reactor`] that loads the account, decides, and
//! returns the events to append. `EventSourced` does the rest: the dedupe marker in the same
//! transaction (a redelivered `order.confirmed` awards nothing), the retry when another order of
//! the same customer took the account's next position first, the metrics and the partial batch
//! response.
//!
//! Deploy it as a Lambda behind an SQS queue subscribed to `order.confirmed`, with `EVENTS_TABLE`
//! naming the event store's table. Run it here with
//! `cargo run -p ripple-kit --example loyalty_consumer -- --demo`, which feeds it a batch holding
//! the same confirmation twice, over the in-memory store.

use ripple_kit::consumer::{Delivery, EventSourced};
use ripple_kit::envelope::EnvelopeError;
use ripple_kit::store::InMemoryEventStore;
use ripple_kit::{
    Aggregate, ConsumerError, Envelope, EventStore, Loaded, Reaction, Reactor, SqsConsumer,
    StreamPosition,
};
use serde::{Deserialize, Serialize};

/// What the orders service publishes (only the part this consumer reads).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum OrderEvent {
    #[serde(rename = "order.confirmed")]
    Confirmed {
        order_id: String,
        customer_id: String,
        total_cents: u64,
    },
}

/// The loyalty account's events.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum AccountEvent {
    #[serde(rename = "points.awarded")]
    Awarded { order_id: String, points: u64 },
    #[serde(rename = "tier.reached")]
    TierReached { tier: Tier },
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Serialize, Deserialize)]
enum Tier {
    #[default]
    Member,
    Silver,
    Gold,
}

/// A customer's loyalty account, folded from its stream `Account#<customer id>`.
#[derive(Debug, Default)]
struct Account {
    points: u64,
    tier: Tier,
}

impl Aggregate for Account {
    const TYPE: &'static str = "Account";
    type Event = AccountEvent;

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Awarded { points, .. } => self.points += points,
            AccountEvent::TierReached { tier } => self.tier = *tier,
        }
    }
}

/// One point per euro; a tier is announced once, when the points first reach it.
fn award(account: &Account, order_id: &str, total_cents: u64) -> Vec<AccountEvent> {
    let points = total_cents / 100;
    let mut events = vec![AccountEvent::Awarded {
        order_id: order_id.to_owned(),
        points,
    }];
    let tier = match account.points + points {
        1000.. => Tier::Gold,
        200.. => Tier::Silver,
        _ => Tier::Member,
    };
    if tier > account.tier {
        events.push(AccountEvent::TierReached { tier });
    }
    events
}

struct Loyalty;

impl<S: EventStore> Reactor<S> for Loyalty {
    const NAME: &'static str = "loyalty";
    const SOURCE: &'static str = "shop/loyalty";
    type Input = OrderEvent;
    type Error = std::convert::Infallible;

    fn input(&self, event: &Envelope) -> Result<Option<OrderEvent>, EnvelopeError> {
        event.decode().map(Some)
    }

    async fn react(
        &self,
        store: &S,
        input: &OrderEvent,
        _: &Delivery<'_>,
    ) -> Result<Reaction, ConsumerError> {
        let OrderEvent::Confirmed {
            order_id,
            customer_id,
            total_cents,
        } = input;
        let mut account: Loaded<Account> = store.load(customer_id).await?;
        let mut events = Vec::new();
        for event in award(&account.state, order_id, *total_cents) {
            events.push(ripple_kit::consumer::NewEvent::new(account.next(), &event)?);
            account.apply(&event);
        }
        Ok(Reaction::Append(events))
    }
}

/// The same confirmation delivered twice in one batch, over the in-memory store.
async fn demo() -> Result<(), lambda_runtime::Error> {
    use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
    let handler = SqsConsumer::new(EventSourced::new(Loyalty, InMemoryEventStore::new()));
    let confirmed = Envelope::encode(
        "shop/orders",
        StreamPosition::new("Order", "o-1", 3),
        &OrderEvent::Confirmed {
            order_id: "o-1".into(),
            customer_id: "c-1".into(),
            total_cents: 25_000,
        },
    )?;
    let mut batch = SqsEvent::default();
    for id in ["m-1", "m-2"] {
        let mut record = SqsMessage::default();
        record.message_id = Some(id.into());
        record.body = Some(confirmed.to_json());
        batch.records.push(record);
    }
    let response = handler
        .handle(lambda_runtime::LambdaEvent::new(batch, Default::default()))
        .await?;
    let account: Loaded<Account> = handler.consumer().store().load("c-1").await?;
    println!(
        "failed records: {}; account c-1: {} points, {:?}, {} events",
        response.batch_item_failures.len(),
        account.state.points,
        account.state.tier,
        account.version
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    if std::env::args().any(|arg| arg == "--demo") {
        return demo().await;
    }
    ripple_kit::lambda::run_reactor(Loyalty, "EVENTS_TABLE").await
}
