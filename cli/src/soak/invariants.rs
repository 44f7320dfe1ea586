//! The invariants a soak asserts, checked against what the emulator holds at the end.
//!
//! Every check reads the store, the views, the queues and the topics' deliveries (the taps);
//! the harness's own knowledge is only what it asked for (the load: which orders, which poison)
//! and what it was answered, never what it believes happened. Each invariant lists its
//! violations, each violation saying which order, message or sku and what is wrong with it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use domain::inventory::{Reservation, ReservationEvent, Stock, StockEvent};
use domain::order::{Order, OrderEvent, OrderStatus};
use domain::payment::{Payment, PaymentEvent};
use domain::view::{OrderView, ViewEvent};
use ripple_kit::{Aggregate, Envelope, Loaded};
use serde::Serialize;
use serde_json::Value;

use super::client::Answer;
use super::truth::Stored;
use super::workload::{OrderSpec, Workload};

/// Violations shown per invariant in reports (all are counted).
pub const EXAMPLES: usize = 20;

/// One invariant and how it fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invariant {
    /// Its name.
    pub name: &'static str,
    /// What it asserts.
    pub asserts: &'static str,
    /// How many things it checked (orders, skus, events, messages).
    pub checked: u64,
    /// Each violation, described.
    pub violations: Vec<String>,
}

impl Invariant {
    fn new(name: &'static str, asserts: &'static str) -> Self {
        Invariant {
            name,
            asserts,
            checked: 0,
            violations: Vec::new(),
        }
    }

    fn check(&mut self, holds: bool, violation: impl FnOnce() -> String) {
        self.checked += 1;
        if !holds {
            self.violations.push(violation());
        }
    }

    /// True when nothing broke it.
    pub fn holds(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Everything the invariants are checked against.
pub struct Evidence<'a> {
    /// What the emulator holds.
    pub stored: &'a Stored,
    /// Bodies the domain-events topic delivered to its tap (raw envelopes).
    pub published: &'a [String],
    /// Bodies the notifications topic delivered to its tap (SNS notifications).
    pub customer_messages: &'a [String],
    /// What the soak asked for.
    pub workload: &'a Workload,
    /// What the API finally answered each order's placement, by order index.
    pub answers: &'a BTreeMap<u32, Answer>,
    /// The failure reason logged for a message id.
    pub reason: &'a dyn Fn(&str) -> Option<String>,
    /// Why the pipeline did not go quiet, if it did not.
    pub not_quiet: Option<String>,
}

/// One order's story: its three streams, and what the stock streams say about it.
#[derive(Debug, Default)]
struct Story<'a> {
    order: Vec<&'a Envelope>,
    reservation: Vec<&'a Envelope>,
    payment: Vec<&'a Envelope>,
    allocated: Vec<(String, u64)>,
    deallocated: Vec<(String, u64)>,
}

/// Every order's story, by order id; and every sku's stock stream.
struct Stories<'a> {
    orders: BTreeMap<String, Story<'a>>,
    stocks: BTreeMap<String, Vec<&'a Envelope>>,
}

fn stories(events: &[Envelope]) -> Stories<'_> {
    let mut orders: BTreeMap<String, Story<'_>> = BTreeMap::new();
    let mut stocks: BTreeMap<String, Vec<&Envelope>> = BTreeMap::new();
    for event in events {
        match event.aggregatetype.as_str() {
            Order::TYPE => orders
                .entry(event.subject.clone())
                .or_default()
                .order
                .push(event),
            Reservation::TYPE => orders
                .entry(event.subject.clone())
                .or_default()
                .reservation
                .push(event),
            domain::payment::Payment::TYPE => orders
                .entry(event.subject.clone())
                .or_default()
                .payment
                .push(event),
            Stock::TYPE => {
                stocks.entry(event.subject.clone()).or_default().push(event);
                match event.decode_for::<Stock>() {
                    Ok(StockEvent::Allocated {
                        sku,
                        order_id,
                        quantity,
                    }) => orders
                        .entry(order_id)
                        .or_default()
                        .allocated
                        .push((sku, quantity)),
                    Ok(StockEvent::Deallocated {
                        sku,
                        order_id,
                        quantity,
                    }) => orders
                        .entry(order_id)
                        .or_default()
                        .deallocated
                        .push((sku, quantity)),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    for story in orders.values_mut() {
        for stream in [&mut story.order, &mut story.reservation, &mut story.payment] {
            stream.sort_by_key(|e| e.sequence);
        }
    }
    for stream in stocks.values_mut() {
        stream.sort_by_key(|e| e.sequence);
    }
    Stories { orders, stocks }
}

fn decoded<A: Aggregate>(stream: &[&Envelope]) -> Vec<A::Event> {
    stream
        .iter()
        .filter_map(|e| e.decode_for::<A>().ok())
        .collect()
}

impl Story<'_> {
    fn state(&self, id: &str) -> Order {
        Loaded::<Order>::from_stored(id, self.order.iter().copied())
            .map(|loaded| loaded.state)
            .unwrap_or_default()
    }

    fn payments(&self) -> Vec<PaymentEvent> {
        decoded::<Payment>(&self.payment)
    }

    fn reservations(&self) -> Vec<ReservationEvent> {
        decoded::<Reservation>(&self.reservation)
    }

    /// Captured minus refunded, in cents.
    fn net_paid(&self) -> i128 {
        self.payments()
            .iter()
            .map(|p| match p {
                PaymentEvent::Captured { amount_cents, .. } => i128::from(*amount_cents),
                PaymentEvent::Refunded { amount_cents, .. } => -i128::from(*amount_cents),
                PaymentEvent::Declined { .. } => 0,
            })
            .sum()
    }

    /// Where the order stands, in a few words, for a violation.
    fn describe(&self, id: &str) -> String {
        let order = self.state(id);
        let types = |stream: &[&Envelope]| {
            let names: Vec<&str> = stream.iter().map(|e| e.event_type.as_str()).collect();
            if names.is_empty() {
                "-".to_owned()
            } else {
                names.join(",")
            }
        };
        let customer = order
            .placed
            .as_ref()
            .map_or("?", |p| p.customer_id.as_str());
        format!(
            "order {id} ({customer}): {:?}; order [{}], reservation [{}], payment [{}]",
            order.status,
            types(&self.order),
            types(&self.reservation),
            types(&self.payment)
        )
    }
}

/// Checks every invariant.
pub fn check(evidence: &Evidence<'_>) -> Vec<Invariant> {
    let stories = stories(&evidence.stored.events);
    vec![
        one_order_per_request(evidence, &stories),
        every_order_terminal(&stories),
        one_reservation_per_order(&stories),
        at_most_one_capture(&stories),
        refunds_only_after_capture_and_cancel(&stories),
        one_customer_message_per_outcome(evidence, &stories),
        stock_conserved(evidence, &stories),
        money_conserved(&stories),
        every_event_published(evidence),
        views_equal_their_fold(evidence, &stories),
        dead_letters_are_poison(evidence),
        store_readable(evidence),
        pipeline_quiet(evidence),
    ]
}

fn one_order_per_request(evidence: &Evidence<'_>, stories: &Stories<'_>) -> Invariant {
    let mut invariant = Invariant::new(
        "one order per request",
        "every order of the load was accepted and is exactly one order in the store",
    );
    let mut by_index: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for (id, story) in &stories.orders {
        let Some(placed) = story.state(id).placed else {
            continue;
        };
        match OrderSpec::index_of(&placed.customer_id) {
            Some(index) => by_index.entry(index).or_default().push(id),
            None => invariant.violations.push(format!(
                "order {id} of customer {} is not one the soak placed",
                placed.customer_id
            )),
        }
    }
    for spec in &evidence.workload.orders {
        let ids = by_index.get(&spec.index).cloned().unwrap_or_default();
        let answer = evidence.answers.get(&spec.index);
        let answered = answer.map_or_else(
            || "never sent".to_owned(),
            |a| format!("last answer {} after {} attempt(s)", a.status, a.attempts),
        );
        let accepted = answer.is_some_and(|a| (200..300).contains(&a.status));
        invariant.check(ids.len() == 1 && accepted, || match ids.len() {
            0 => format!("order #{} is not in the store ({answered})", spec.index),
            1 => format!(
                "order #{} is stored as {} but the API never accepted it ({answered})",
                spec.index, ids[0]
            ),
            n => format!(
                "order #{} was placed {n} times: {} ({answered})",
                spec.index,
                ids.join(", ")
            ),
        });
        if let (Some(answered_id), [stored]) = (answer.and_then(Answer::order_id), ids.as_slice())
            && answered_id != *stored
        {
            invariant.violations.push(format!(
                "order #{}: the API answered {answered_id}, the store holds {stored}",
                spec.index
            ));
        }
    }
    invariant
}

fn every_order_terminal(stories: &Stories<'_>) -> Invariant {
    let mut invariant = Invariant::new(
        "every order terminal",
        "every order ends confirmed, or cancelled with its reason",
    );
    for (id, story) in &stories.orders {
        let order = story.state(id);
        if order.status == OrderStatus::Unplaced && story.order.is_empty() {
            invariant.check(false, || {
                format!(
                    "{}: events for an order the store does not hold",
                    story.describe(id)
                )
            });
            continue;
        }
        invariant.check(is_terminal(&order), || story.describe(id));
    }
    invariant
}

fn is_terminal(order: &Order) -> bool {
    order.status == OrderStatus::Confirmed
        || (order.status == OrderStatus::Cancelled && order.cancel_reason.is_some())
}

/// The orders of `events` that are placed and not yet confirmed or cancelled.
pub fn unfinished(events: &[Envelope]) -> Vec<String> {
    stories(events)
        .orders
        .iter()
        .filter(|(id, story)| !story.order.is_empty() && !is_terminal(&story.state(id)))
        .map(|(id, _)| id.clone())
        .collect()
}

fn one_reservation_per_order(stories: &Stories<'_>) -> Invariant {
    let mut invariant = Invariant::new(
        "one reservation per order",
        "inventory decided each order once, allocated each of its skus at most once and gave back only what it took",
    );
    for (id, story) in &stories.orders {
        let reservations = story.reservations();
        let decisions = reservations
            .iter()
            .filter(|r| !matches!(r, ReservationEvent::Released { .. }))
            .count();
        let releases = reservations.len() - decisions;
        let reserved_lines: BTreeMap<String, u64> = reservations
            .iter()
            .find_map(|r| match r {
                ReservationEvent::Reserved(reserved) => Some(
                    reserved
                        .lines
                        .iter()
                        .map(|l| (l.sku.clone(), l.quantity))
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_default();
        let allocated = per_sku(&story.allocated);
        let deallocated = per_sku(&story.deallocated);
        let mut problems = Vec::new();
        if decisions > 1 {
            problems.push(format!("{decisions} reservation decisions"));
        }
        if releases > 1 {
            problems.push(format!("released {releases} times"));
        }
        if story.allocated.len() != allocated.len() {
            problems.push("a sku allocated twice".to_owned());
        }
        if allocated != reserved_lines {
            problems.push(format!(
                "allocated {allocated:?} but reserved {reserved_lines:?}"
            ));
        }
        if deallocated
            .iter()
            .any(|(sku, q)| allocated.get(sku) != Some(q))
            || story.deallocated.len() != deallocated.len()
        {
            problems.push(format!("gave back {deallocated:?} of {allocated:?}"));
        }
        invariant.check(problems.is_empty(), || {
            format!("{}: {}", story.describe(id), problems.join("; "))
        });
    }
    invariant
}

fn per_sku(lines: &[(String, u64)]) -> BTreeMap<String, u64> {
    let mut sums = BTreeMap::new();
    for (sku, quantity) in lines {
        *sums.entry(sku.clone()).or_insert(0) += quantity;
    }
    sums
}

fn at_most_one_capture(stories: &Stories<'_>) -> Invariant {
    let mut invariant = Invariant::new(
        "at most one capture per order",
        "each order was charged at most once: one capture or one decline, never both",
    );
    for (id, story) in &stories.orders {
        let payments = story.payments();
        let captures = payments
            .iter()
            .filter(|p| matches!(p, PaymentEvent::Captured { .. }))
            .count();
        let declines = payments
            .iter()
            .filter(|p| matches!(p, PaymentEvent::Declined { .. }))
            .count();
        invariant.check(captures + declines <= 1, || {
            format!(
                "{}: {captures} capture(s), {declines} decline(s)",
                story.describe(id)
            )
        });
    }
    invariant
}

fn refunds_only_after_capture_and_cancel(stories: &Stories<'_>) -> Invariant {
    let mut invariant = Invariant::new(
        "refunds only for captured-then-cancelled orders",
        "a refund follows a capture of an order that was cancelled, once",
    );
    for (id, story) in &stories.orders {
        let payments = story.payments();
        let refunds: Vec<usize> = payments
            .iter()
            .enumerate()
            .filter(|(_, p)| matches!(p, PaymentEvent::Refunded { .. }))
            .map(|(i, _)| i)
            .collect();
        if refunds.is_empty() {
            continue;
        }
        let captured_before = payments[..refunds[0]]
            .iter()
            .any(|p| matches!(p, PaymentEvent::Captured { .. }));
        let cancelled = story.state(id).status == OrderStatus::Cancelled;
        invariant.check(refunds.len() == 1 && captured_before && cancelled, || {
            format!(
                "{}: {} refund(s), captured before: {captured_before}, cancelled: {cancelled}",
                story.describe(id),
                refunds.len()
            )
        });
    }
    invariant
}

/// One customer message as the tap received it.
struct CustomerMessage {
    /// The notification's identity: `(order id, outcome)`, its `order_id` and `type` attributes.
    identity: (String, String),
    /// SNS's id of the message (one per Publish call).
    message_id: String,
    /// What it says.
    text: String,
}

/// A customer message from the SNS notification around it.
fn customer_message(body: &str) -> Option<CustomerMessage> {
    let notification: Value = serde_json::from_str(body).ok()?;
    let attribute = |name: &str| {
        notification["MessageAttributes"][name]["Value"]
            .as_str()
            .map(str::to_owned)
    };
    let field = |name: &str| notification[name].as_str().unwrap_or_default().to_owned();
    Some(CustomerMessage {
        identity: (attribute("order_id")?, attribute("type")?),
        message_id: field("MessageId"),
        text: field("Message"),
    })
}

/// What customer messages were sent, by identity: each Publish (SNS message id) with its text.
type Sent = BTreeMap<(String, String), BTreeMap<String, String>>;

fn sent_messages(bodies: &[String], unreadable: &mut Vec<String>) -> Sent {
    let mut sent = Sent::new();
    for body in bodies {
        match customer_message(body) {
            Some(message) => {
                sent.entry(message.identity)
                    .or_default()
                    .insert(message.message_id, message.text);
            }
            None => unreadable.push(format!("an unreadable customer message: {}", excerpt(body))),
        }
    }
    sent
}

/// Publish calls beyond the first for one notification: SNS publishes at least once, and a
/// Publish whose answer was lost is sent again by the SDK's retry with no way for SNS to tell.
/// Receivers see the copies under the same identity (`order_id` and `type`) and the same text.
pub fn customer_message_copies(bodies: &[String]) -> u64 {
    sent_messages(bodies, &mut Vec::new())
        .values()
        .map(|publishes| publishes.len().saturating_sub(1) as u64)
        .sum()
}

/// One message per outcome as a customer (or the mail service deduplicating on the message's
/// identity) sees it: copies of one notification count once, two different messages about one
/// outcome are two.
fn one_customer_message_per_outcome(evidence: &Evidence<'_>, stories: &Stories<'_>) -> Invariant {
    let mut invariant = Invariant::new(
        "one customer message per outcome",
        "every confirmed or cancelled order got exactly one customer message saying so (its copies, under one identity and with one text, count once), and no other order got one",
    );
    let sent = sent_messages(evidence.customer_messages, &mut invariant.violations);
    let mut expected = BTreeSet::new();
    for (id, story) in &stories.orders {
        let outcome = match story.state(id).status {
            OrderStatus::Confirmed => event_type(&OrderEvent::Confirmed {
                order_id: id.clone(),
            }),
            OrderStatus::Cancelled => event_type(&OrderEvent::Cancelled {
                order_id: id.clone(),
                reason: domain::order::CancelReason::CustomerRequest,
            }),
            _ => continue,
        };
        let key = (id.clone(), outcome.to_owned());
        let texts: BTreeSet<&String> = sent
            .get(&key)
            .into_iter()
            .flat_map(|p| p.values())
            .collect();
        invariant.check(texts.len() == 1, || {
            format!(
                "{}: {} different {outcome} message(s)",
                story.describe(id),
                texts.len()
            )
        });
        expected.insert(key);
    }
    for ((order, outcome), messages) in &sent {
        if !expected.contains(&(order.clone(), outcome.clone())) {
            invariant.violations.push(format!(
                "{} {outcome} message(s) for order {order}, which did not end that way",
                messages.len()
            ));
        }
    }
    invariant
}

fn event_type(event: &OrderEvent) -> &'static str {
    ripple_kit::envelope::event_type_of(event).unwrap_or_default()
}

fn stock_conserved(evidence: &Evidence<'_>, stories: &Stories<'_>) -> Invariant {
    let mut invariant = Invariant::new(
        "stock conserved",
        "per sku, the units seeded are free or on a confirmed order, and no cancelled order holds any",
    );
    let mut confirmed_units: BTreeMap<String, u64> = BTreeMap::new();
    for (id, story) in &stories.orders {
        let order = story.state(id);
        let held = per_sku(&story.allocated);
        let given_back = per_sku(&story.deallocated);
        if order.status == OrderStatus::Confirmed {
            for (sku, units) in &held {
                *confirmed_units.entry(sku.clone()).or_default() +=
                    units.saturating_sub(given_back.get(sku).copied().unwrap_or(0));
            }
        } else if order.status == OrderStatus::Cancelled {
            let still_held: u64 = held
                .iter()
                .map(|(sku, units)| units.saturating_sub(given_back.get(sku).copied().unwrap_or(0)))
                .sum();
            if still_held > 0 {
                invariant.violations.push(format!(
                    "{}: still holds {still_held} unit(s)",
                    story.describe(id)
                ));
            }
        }
    }
    for (sku, seeded) in &evidence.workload.stock {
        let stream = stories.stocks.get(sku).cloned().unwrap_or_default();
        let stock = Loaded::<Stock>::from_stored(sku, stream.iter().copied())
            .map(|l| l.state)
            .unwrap_or_default();
        let confirmed = confirmed_units.get(sku).copied().unwrap_or(0);
        invariant.check(
            stock.available + stock.allocated == *seeded && stock.allocated == confirmed,
            || {
                format!(
                    "{sku}: seeded {seeded}, available {}, allocated {}, on confirmed orders {confirmed}",
                    stock.available, stock.allocated
                )
            },
        );
    }
    invariant
}

fn money_conserved(stories: &Stories<'_>) -> Invariant {
    let mut invariant = Invariant::new(
        "money conserved",
        "captured minus refunded is the total of the confirmed orders, order by order and in all",
    );
    let (mut net, mut confirmed_total) = (0_i128, 0_i128);
    for (id, story) in &stories.orders {
        let order = story.state(id);
        let paid = story.net_paid();
        net += paid;
        let owed = match (order.status, &order.placed) {
            (OrderStatus::Confirmed, Some(placed)) => i128::from(placed.total.minor_units),
            _ => 0,
        };
        confirmed_total += owed;
        invariant.check(paid == owed, || {
            format!("{}: paid {paid} cents, owes {owed}", story.describe(id))
        });
    }
    if net != confirmed_total {
        invariant.violations.push(format!(
            "in all: captured - refunded = {net} cents, confirmed orders total {confirmed_total}"
        ));
    }
    invariant
}

fn every_event_published(evidence: &Evidence<'_>) -> Invariant {
    let mut invariant = Invariant::new(
        "every stored event published",
        "every event in the store reached the domain-events topic at least once",
    );
    let mut published: HashMap<String, u32> = HashMap::new();
    for body in evidence.published {
        if let Some(id) = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned))
        {
            *published.entry(id).or_default() += 1;
        }
    }
    for event in &evidence.stored.events {
        invariant.check(published.contains_key(&event.id), || {
            format!(
                "{} {} (sequence {}, {}) was never published",
                event.event_type,
                event.id,
                event.sequence,
                event.stream_key()
            )
        });
    }
    invariant
}

fn views_equal_their_fold(evidence: &Evidence<'_>, stories: &Stories<'_>) -> Invariant {
    let mut invariant = Invariant::new(
        "every read model equals the fold of its stream",
        "each order's view is OrderView::rebuild of its Order, Reservation and Payment streams",
    );
    for (id, story) in &stories.orders {
        let events: Vec<ViewEvent> = story
            .order
            .iter()
            .chain(&story.reservation)
            .chain(&story.payment)
            .filter_map(|e| ViewEvent::from_envelope(e).ok().flatten())
            .collect();
        let folded = OrderView::rebuild(id, &events);
        let stored = evidence.stored.views.get(id);
        invariant.check(stored == Some(&Ok(folded.clone())), || match stored {
            None => format!("{}: no view", story.describe(id)),
            Some(Err(why)) => format!("{}: unreadable view: {why}", story.describe(id)),
            Some(Ok(view)) => format!(
                "{}: view at {:?} ({:?}), stream at {:?} ({:?})",
                story.describe(id),
                view.versions,
                view.status,
                folded.versions,
                folded.status
            ),
        });
    }
    for id in evidence.stored.views.keys() {
        if !stories.orders.contains_key(id) {
            invariant
                .violations
                .push(format!("a view of order {id}, which has no events"));
        }
    }
    invariant
}

fn dead_letters_are_poison(evidence: &Evidence<'_>) -> Invariant {
    let mut invariant = Invariant::new(
        "dead letters are the injected poison",
        "every message in a DLQ or on-failure destination is an injected poison message with its reason logged, and every poison message is in one",
    );
    let mut found = BTreeSet::new();
    for message in &evidence.stored.sinks {
        let poison = evidence
            .workload
            .poison
            .iter()
            .find(|p| carries(&message.body, &p.token));
        let reason = (evidence.reason)(&message.message_id);
        if let Some(poison) = poison {
            found.insert(poison.token.clone());
        }
        invariant.check(poison.is_some() && reason.is_some(), || {
            match (poison, reason) {
                (Some(p), None) => format!(
                    "{} ({}) is in {} with no reason logged",
                    p.token, p.kind, message.queue
                ),
                (None, reason) => format!(
                    "{} holds message {} that is not poison ({}): {}",
                    message.queue,
                    message.message_id,
                    reason.unwrap_or_else(|| "no reason logged".to_owned()),
                    excerpt(&message.body)
                ),
                (Some(_), Some(_)) => String::new(),
            }
        });
    }
    for poison in &evidence.workload.poison {
        invariant.check(found.contains(&poison.token), || {
            format!(
                "{} ({}) never reached a dead-letter queue",
                poison.token, poison.kind
            )
        });
    }
    invariant
}

/// Whether `body` carries `token` itself: not only as the start of a longer one
/// (`soak-poison-1` is not in a body of `soak-poison-12`).
fn carries(body: &str, token: &str) -> bool {
    body.match_indices(token)
        .any(|(at, _)| !body[at + token.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

fn store_readable(evidence: &Evidence<'_>) -> Invariant {
    let mut invariant = Invariant::new(
        "every stored event readable",
        "every event item of the store is a valid envelope",
    );
    invariant.checked = (evidence.stored.events.len() + evidence.stored.unreadable.len()) as u64;
    invariant.violations = evidence.stored.unreadable.clone();
    invariant
}

fn pipeline_quiet(evidence: &Evidence<'_>) -> Invariant {
    let mut invariant = Invariant::new(
        "the pipeline went quiet",
        "nothing was still moving at the end and every consumed queue was empty",
    );
    invariant.check(evidence.not_quiet.is_none(), || {
        evidence.not_quiet.clone().unwrap_or_default()
    });
    for (queue, left) in &evidence.stored.leftovers {
        invariant.check(*left == 0, || format!("{left} message(s) left in {queue}"));
    }
    invariant
}

fn excerpt(text: &str) -> String {
    let cut: String = text.chars().take(120).collect();
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests;
