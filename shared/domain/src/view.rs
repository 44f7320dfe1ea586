//! The order read model: one [`OrderView`] per order, folded from three streams.
//!
//! An order's story is spread over its `Order`, `Reservation` and `Payment` streams, and the
//! queue that feeds the projection delivers their events at least once and in any order. The view
//! therefore remembers, per stream, the last sequence it applied ([`OrderView::versions`]) and
//! takes only the next one: an older or equal sequence is a [`ApplyOutcome::Duplicate`], a later one a
//! [`ApplyOutcome::Gap`] (something in between has not arrived yet; the caller rebuilds from the store
//! or waits for the redelivery). Every field shown is derived from the three per-stream states,
//! never from the order in which streams were interleaved, so any delivery order that ends with
//! the same per-stream versions ends with the same view.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use ripple_kit::envelope::EnvelopeError;
use ripple_kit::{Aggregate, Envelope};

use crate::inventory::{Reservation, ReservationEvent, Shortage};
use crate::order::{CancelReason, Order, OrderEvent, OrderLine};
use crate::payment::{Payment, PaymentEvent};

/// Where an order stands, as customers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewStatus {
    /// Placed; stock not yet reserved.
    Placed,
    /// Stock reserved, waiting for the payment.
    Reserved,
    /// Paid and confirmed.
    Confirmed,
    /// Cancelled; see `reasons`.
    Cancelled,
}

/// What inventory did for the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Every line is set aside.
    Reserved,
    /// Some line could not be filled.
    Rejected,
    /// What was set aside went back to stock.
    Released,
}

/// The reservation part of the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationView {
    /// The latest reservation outcome.
    pub status: ReservationStatus,
    /// What was missing, when rejected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shortages: Vec<Shortage>,
}

/// Where the money stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Taken.
    Captured,
    /// Refused.
    Declined,
    /// Taken and given back.
    Refunded,
}

/// The payment part of the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentView {
    /// The latest payment outcome.
    pub status: PaymentStatus,
    /// The gateway's payment id (none for a declined charge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    /// Amount captured, declined or refunded.
    pub amount_cents: u64,
    /// The gateway's reason, when declined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An event of one of the view's source streams, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    /// From the `Order` stream.
    Order(OrderEvent),
    /// From the `Reservation` stream.
    Reservation(ReservationEvent),
    /// From the `Payment` stream.
    Payment(PaymentEvent),
}

impl SourceEvent {
    /// The aggregate type of the stream the event belongs to.
    pub fn aggregate_type(&self) -> &'static str {
        match self {
            SourceEvent::Order(_) => Order::TYPE,
            SourceEvent::Reservation(_) => Reservation::TYPE,
            SourceEvent::Payment(_) => Payment::TYPE,
        }
    }

    /// The order the event belongs to.
    pub fn order_id(&self) -> &str {
        match self {
            SourceEvent::Order(OrderEvent::Placed(p)) => &p.order_id,
            SourceEvent::Order(
                OrderEvent::Confirmed { order_id } | OrderEvent::Cancelled { order_id, .. },
            ) => order_id,
            SourceEvent::Reservation(ReservationEvent::Reserved(r)) => &r.order_id,
            SourceEvent::Reservation(
                ReservationEvent::Rejected { order_id, .. }
                | ReservationEvent::Released { order_id, .. },
            ) => order_id,
            SourceEvent::Payment(p) => p.order_id(),
        }
    }
}

/// A stored event as the view needs it: its stream position, its time and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewEvent {
    /// The sequence it holds in its stream (1 for the first).
    pub sequence: u64,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// The payload.
    pub event: SourceEvent,
}

impl ViewEvent {
    /// The view event a stored event carries, or `None` for a stream that is not part of an
    /// order view (`Stock`, say).
    pub fn from_envelope(envelope: &Envelope) -> Result<Option<ViewEvent>, EnvelopeError> {
        let event = match envelope.aggregatetype.as_str() {
            Order::TYPE => SourceEvent::Order(envelope.decode_for::<Order>()?),
            Reservation::TYPE => SourceEvent::Reservation(envelope.decode_for::<Reservation>()?),
            Payment::TYPE => SourceEvent::Payment(envelope.decode_for::<Payment>()?),
            _ => return Ok(None),
        };
        Ok(Some(ViewEvent {
            sequence: envelope.sequence,
            time: envelope.time,
            event,
        }))
    }
}

/// What [`OrderView::apply`] did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// It was the next one of its stream and is now part of the view.
    Applied,
    /// Its sequence was applied before: the view is unchanged.
    Duplicate,
    /// An earlier event of its stream is missing: the view is unchanged.
    Gap {
        /// The stream's aggregate type.
        aggregate_type: &'static str,
        /// The sequence the view needs next.
        expected: u64,
        /// The sequence that arrived.
        got: u64,
    },
    /// It belongs to another order: the view is unchanged.
    OtherOrder,
}

/// The read model of one order (what `GET /orders/{id}` returns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// The order.
    pub order_id: String,
    /// Where it stands, derived from the parts below.
    pub status: ViewStatus,
    /// Who ordered (`None` until `order.placed` is applied: other streams may arrive first).
    pub customer_id: Option<String>,
    /// ISO 4217 code (`None` until `order.placed` is applied).
    pub currency: Option<String>,
    /// What was ordered.
    pub lines: Vec<OrderLine>,
    /// The order's total (`None` until `order.placed` is applied).
    pub total_cents: Option<u64>,
    /// True once the order stream says `order.confirmed`.
    pub confirmed: bool,
    /// Why the order stream says it was cancelled, if it does.
    pub cancel_reason: Option<CancelReason>,
    /// What inventory did, if anything yet.
    pub reservation: Option<ReservationView>,
    /// What happened to the money, if anything yet.
    pub payment: Option<PaymentView>,
    /// Why the order did not go through, derived from the parts above.
    pub reasons: Vec<String>,
    /// The last sequence applied per source stream, by aggregate type.
    pub versions: BTreeMap<String, u64>,
    /// Time of the latest event applied.
    pub updated_at: Option<DateTime<Utc>>,
}

impl OrderView {
    /// The view of an order before any of its events.
    pub fn new(order_id: &str) -> Self {
        OrderView {
            order_id: order_id.to_owned(),
            status: ViewStatus::Placed,
            customer_id: None,
            currency: None,
            lines: Vec::new(),
            total_cents: None,
            confirmed: false,
            cancel_reason: None,
            reservation: None,
            payment: None,
            reasons: Vec::new(),
            versions: BTreeMap::new(),
            updated_at: None,
        }
    }

    /// Folds the complete histories of an order's streams, given in any order and with repeats.
    pub fn rebuild<'a>(order_id: &str, events: impl IntoIterator<Item = &'a ViewEvent>) -> Self {
        let mut events: Vec<&ViewEvent> = events.into_iter().collect();
        events.sort_by_key(|e| (e.event.aggregate_type(), e.sequence));
        let mut view = OrderView::new(order_id);
        for event in events {
            view.apply(event);
        }
        view
    }

    /// The last sequence applied from the stream of `aggregate_type` (0 for none).
    pub fn version_of(&self, aggregate_type: &str) -> u64 {
        self.versions.get(aggregate_type).copied().unwrap_or(0)
    }

    /// How many events the view holds, over all its streams.
    pub fn events_applied(&self) -> u64 {
        self.versions.values().sum()
    }

    /// True once `order.placed` is applied.
    pub fn is_placed(&self) -> bool {
        self.version_of(Order::TYPE) > 0
    }

    /// Applies `event` if it is the next one of its stream.
    pub fn apply(&mut self, event: &ViewEvent) -> ApplyOutcome {
        if event.event.order_id() != self.order_id {
            return ApplyOutcome::OtherOrder;
        }
        let aggregate_type = event.event.aggregate_type();
        let version = self.version_of(aggregate_type);
        if event.sequence <= version {
            return ApplyOutcome::Duplicate;
        }
        if event.sequence > version + 1 {
            return ApplyOutcome::Gap {
                aggregate_type,
                expected: version + 1,
                got: event.sequence,
            };
        }
        match &event.event {
            SourceEvent::Order(e) => self.apply_order(e),
            SourceEvent::Reservation(e) => self.apply_reservation(e),
            SourceEvent::Payment(e) => self.apply_payment(e),
        }
        self.versions
            .insert(aggregate_type.to_owned(), event.sequence);
        // The latest time, not the last applied: arrival order must not show.
        self.updated_at = self.updated_at.max(Some(event.time));
        self.derive();
        ApplyOutcome::Applied
    }

    fn apply_order(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::Placed(placed) => {
                self.customer_id = Some(placed.customer_id.clone());
                self.currency = Some(placed.total.currency.clone());
                self.lines = placed.lines.clone();
                self.total_cents = Some(placed.total.minor_units);
            }
            OrderEvent::Confirmed { .. } => self.confirmed = true,
            OrderEvent::Cancelled { reason, .. } => self.cancel_reason = Some(*reason),
        }
    }

    fn apply_reservation(&mut self, event: &ReservationEvent) {
        self.reservation = Some(match event {
            ReservationEvent::Reserved(_) => ReservationView {
                status: ReservationStatus::Reserved,
                shortages: Vec::new(),
            },
            ReservationEvent::Rejected { shortages, .. } => ReservationView {
                status: ReservationStatus::Rejected,
                shortages: shortages.clone(),
            },
            ReservationEvent::Released { .. } => ReservationView {
                status: ReservationStatus::Released,
                shortages: Vec::new(),
            },
        });
    }

    fn apply_payment(&mut self, event: &PaymentEvent) {
        self.payment = Some(match event {
            PaymentEvent::Captured {
                amount_cents,
                payment_id,
                ..
            } => PaymentView {
                status: PaymentStatus::Captured,
                payment_id: Some(payment_id.clone()),
                amount_cents: *amount_cents,
                reason: None,
            },
            PaymentEvent::Declined {
                amount_cents,
                reason,
                ..
            } => PaymentView {
                status: PaymentStatus::Declined,
                payment_id: None,
                amount_cents: *amount_cents,
                reason: Some(reason.clone()),
            },
            PaymentEvent::Refunded {
                amount_cents,
                payment_id,
                ..
            } => PaymentView {
                status: PaymentStatus::Refunded,
                payment_id: Some(payment_id.clone()),
                amount_cents: *amount_cents,
                reason: None,
            },
        });
    }

    /// Recomputes `status` and `reasons` from the per-stream parts, in a fixed order.
    fn derive(&mut self) {
        let reserved = self
            .reservation
            .as_ref()
            .is_some_and(|r| r.status == ReservationStatus::Reserved);
        self.status = if self.cancel_reason.is_some() {
            ViewStatus::Cancelled
        } else if self.confirmed {
            ViewStatus::Confirmed
        } else if reserved {
            ViewStatus::Reserved
        } else {
            ViewStatus::Placed
        };
        let mut reasons = Vec::new();
        if let Some(reason) = self.cancel_reason {
            reasons.push(cancel_reason_code(reason).to_owned());
        }
        if let Some(reservation) = &self.reservation {
            reasons.extend(reservation.shortages.iter().map(|s| {
                format!(
                    "out_of_stock: {} ({} requested, {} available)",
                    s.sku, s.requested, s.available
                )
            }));
        }
        if let Some(PaymentView {
            reason: Some(reason),
            ..
        }) = &self.payment
        {
            reasons.push(format!("payment_declined: {reason}"));
        }
        self.reasons = reasons;
    }
}

/// The stable code of a cancellation reason, as it appears in `order.cancelled`.
pub fn cancel_reason_code(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::OutOfStock => "out_of_stock",
        CancelReason::PaymentDeclined => "payment_declined",
        CancelReason::CustomerRequest => "customer_request",
        CancelReason::TimedOut => "timed_out",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{SkuQuantity, StockReserved};
    use crate::order::OrderPlaced;
    use chrono::TimeZone;

    const ORDER: &str = "o-1";

    /// A small deterministic generator (xorshift64*), so failures replay from their seed.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Self {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn shuffle<T>(&mut self, items: &mut [T]) {
            for i in (1..items.len()).rev() {
                items.swap(i, self.below(i + 1));
            }
        }
    }

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, second)
            .single()
            .unwrap()
    }

    fn placed() -> SourceEvent {
        SourceEvent::Order(OrderEvent::Placed(OrderPlaced {
            order_id: ORDER.into(),
            customer_id: "c-1".into(),
            lines: vec![OrderLine {
                sku: "A".into(),
                quantity: 2,
                unit_price_cents: 1250,
            }],
            total: crate::money::Money::new("EUR", 2500),
        }))
    }

    fn reserved() -> SourceEvent {
        SourceEvent::Reservation(ReservationEvent::Reserved(StockReserved {
            order_id: ORDER.into(),
            customer_id: "c-1".into(),
            total_cents: 2500,
            currency: "EUR".into(),
            lines: vec![SkuQuantity {
                sku: "A".into(),
                quantity: 2,
            }],
        }))
    }

    fn released() -> SourceEvent {
        SourceEvent::Reservation(ReservationEvent::Released {
            order_id: ORDER.into(),
            lines: vec![],
        })
    }

    fn captured() -> SourceEvent {
        SourceEvent::Payment(PaymentEvent::Captured {
            order_id: ORDER.into(),
            amount_cents: 2500,
            currency: "EUR".into(),
            payment_id: "p-1".into(),
        })
    }

    fn cancelled(reason: CancelReason) -> SourceEvent {
        SourceEvent::Order(OrderEvent::Cancelled {
            order_id: ORDER.into(),
            reason,
        })
    }

    /// Events in the order they were appended (one global order consistent with causality),
    /// each at its stream's next sequence.
    fn history(events: Vec<SourceEvent>) -> Vec<ViewEvent> {
        let mut next: BTreeMap<&'static str, u64> = BTreeMap::new();
        events
            .into_iter()
            .zip(0..)
            .map(|(event, second)| {
                let sequence = next.entry(event.aggregate_type()).or_insert(0);
                *sequence += 1;
                ViewEvent {
                    sequence: *sequence,
                    time: at(second),
                    event,
                }
            })
            .collect()
    }

    fn confirmed_story() -> Vec<ViewEvent> {
        history(vec![
            placed(),
            reserved(),
            captured(),
            SourceEvent::Order(OrderEvent::Confirmed {
                order_id: ORDER.into(),
            }),
        ])
    }

    fn declined_story() -> Vec<ViewEvent> {
        history(vec![
            placed(),
            reserved(),
            SourceEvent::Payment(PaymentEvent::Declined {
                order_id: ORDER.into(),
                amount_cents: 2500,
                reason: "card_declined".into(),
            }),
            cancelled(CancelReason::PaymentDeclined),
            released(),
        ])
    }

    fn out_of_stock_story() -> Vec<ViewEvent> {
        history(vec![
            placed(),
            SourceEvent::Reservation(ReservationEvent::Rejected {
                order_id: ORDER.into(),
                shortages: vec![Shortage {
                    sku: "A".into(),
                    requested: 2,
                    available: 0,
                }],
            }),
            cancelled(CancelReason::OutOfStock),
        ])
    }

    fn refunded_story() -> Vec<ViewEvent> {
        history(vec![
            placed(),
            reserved(),
            cancelled(CancelReason::CustomerRequest),
            captured(),
            released(),
            SourceEvent::Payment(PaymentEvent::Refunded {
                order_id: ORDER.into(),
                amount_cents: 2500,
                payment_id: "p-1".into(),
            }),
        ])
    }

    fn stories() -> Vec<Vec<ViewEvent>> {
        vec![
            confirmed_story(),
            declined_story(),
            out_of_stock_story(),
            refunded_story(),
        ]
    }

    #[test]
    fn given_a_confirmed_story_then_the_view_shows_it() {
        let view = OrderView::rebuild(ORDER, &confirmed_story());
        assert_eq!(view.status, ViewStatus::Confirmed);
        assert_eq!(view.customer_id.as_deref(), Some("c-1"));
        assert_eq!(view.total_cents, Some(2500));
        let payment = view.payment.as_ref().unwrap();
        assert_eq!(
            (payment.status, payment.payment_id.as_deref()),
            (PaymentStatus::Captured, Some("p-1"))
        );
        assert!(view.reasons.is_empty());
        assert_eq!(view.events_applied(), 4);
        assert_eq!(view.version_of("Order"), 2);
        assert_eq!(view.updated_at, Some(at(3)));
    }

    #[test]
    fn given_failed_stories_then_the_view_says_why() {
        let declined = OrderView::rebuild(ORDER, &declined_story());
        assert_eq!(declined.status, ViewStatus::Cancelled);
        assert_eq!(
            declined.reasons,
            vec!["payment_declined", "payment_declined: card_declined"]
        );
        let out = OrderView::rebuild(ORDER, &out_of_stock_story());
        assert_eq!(
            out.reasons,
            vec!["out_of_stock", "out_of_stock: A (2 requested, 0 available)"]
        );
        let refunded = OrderView::rebuild(ORDER, &refunded_story());
        assert_eq!(refunded.status, ViewStatus::Cancelled);
        assert_eq!(refunded.payment.unwrap().status, PaymentStatus::Refunded);
        assert_eq!(refunded.reasons, vec!["customer_request"]);
    }

    #[test]
    fn the_status_moves_through_reserved() {
        let story = confirmed_story();
        let mut view = OrderView::new(ORDER);
        let statuses: Vec<ViewStatus> = story
            .iter()
            .map(|e| {
                assert_eq!(view.apply(e), ApplyOutcome::Applied);
                view.status
            })
            .collect();
        use ViewStatus::*;
        assert_eq!(statuses, vec![Placed, Reserved, Reserved, Confirmed]);
    }

    #[test]
    fn old_sequences_are_duplicates_and_skipped_ones_are_gaps() {
        let story = confirmed_story();
        let (placed, confirmed) = (&story[0], &story[3]);
        let mut view = OrderView::new(ORDER);
        assert_eq!(
            view.apply(confirmed),
            ApplyOutcome::Gap {
                aggregate_type: "Order",
                expected: 1,
                got: 2
            }
        );
        assert_eq!(view, OrderView::new(ORDER), "a gap changes nothing");
        assert_eq!(view.apply(placed), ApplyOutcome::Applied);
        let before = view.clone();
        assert_eq!(view.apply(placed), ApplyOutcome::Duplicate);
        assert_eq!(view, before, "a duplicate changes nothing");
        let mut other = story[1].clone();
        other.event = SourceEvent::Order(OrderEvent::Confirmed {
            order_id: "o-2".into(),
        });
        assert_eq!(view.apply(&other), ApplyOutcome::OtherOrder);
    }

    #[test]
    fn a_stream_may_start_before_the_order_itself_arrives() {
        let story = confirmed_story();
        let mut view = OrderView::new(ORDER);
        assert_eq!(
            view.apply(&story[2]),
            ApplyOutcome::Applied,
            "payment #1 needs nothing before it"
        );
        assert!(!view.is_placed());
        assert_eq!(view.customer_id, None);
        assert_eq!(view.status, ViewStatus::Placed);
    }

    #[test]
    fn views_round_trip_through_json() {
        for story in stories() {
            let view = OrderView::rebuild(ORDER, &story);
            let text = serde_json::to_string(&view).unwrap();
            assert_eq!(serde_json::from_str::<OrderView>(&text).unwrap(), view);
        }
    }

    /// Property: shuffled, duplicated delivery with the projection's rule (apply the next
    /// sequence; on a gap rebuild from what the store holds at that moment) always ends at the
    /// rebuild of the complete history, and no view along the way goes backwards.
    #[test]
    fn any_delivery_order_with_rebuild_on_gap_converges() {
        for story in stories() {
            let expected = OrderView::rebuild(ORDER, &story);
            for seed in 0..500 {
                let mut rng = Rng::new(seed);
                let mut stored: Vec<ViewEvent> = Vec::new();
                let mut in_flight: Vec<ViewEvent> = Vec::new();
                let mut view = OrderView::new(ORDER);
                let mut appended = story.iter();
                loop {
                    // Either the next event is appended (and published, maybe twice) or a
                    // message in flight is delivered.
                    let append = in_flight.is_empty() || rng.below(3) == 0;
                    if append && let Some(event) = appended.next() {
                        stored.push(event.clone());
                        for _ in 0..=rng.below(2) {
                            in_flight.push(event.clone());
                        }
                        continue;
                    }
                    if in_flight.is_empty() {
                        break;
                    }
                    let message = in_flight.swap_remove(rng.below(in_flight.len()));
                    let before = view.events_applied();
                    if let ApplyOutcome::Gap { .. } = view.apply(&message) {
                        view = OrderView::rebuild(ORDER, &stored);
                    }
                    assert!(
                        view.events_applied() >= before,
                        "seed {seed}: the view went back"
                    );
                }
                assert_eq!(view, expected, "seed {seed}");
            }
        }
    }

    /// Property: without rebuilds, a gap's message comes back later (SQS redelivery) and the
    /// view still converges, whatever the order and however many duplicates.
    #[test]
    fn any_delivery_order_with_redelivery_of_gaps_converges() {
        for story in stories() {
            let expected = OrderView::rebuild(ORDER, &story);
            for seed in 0..500 {
                let mut rng = Rng::new(seed);
                let mut queue: Vec<ViewEvent> = story.clone();
                for _ in 0..rng.below(story.len() + 1) {
                    let again = story[rng.below(story.len())].clone();
                    queue.push(again);
                }
                rng.shuffle(&mut queue);
                let mut view = OrderView::new(ORDER);
                let mut deliveries = 0;
                while let Some(message) = queue.pop() {
                    deliveries += 1;
                    assert!(deliveries < 10_000, "seed {seed}: no progress");
                    if let ApplyOutcome::Gap { .. } = view.apply(&message) {
                        let back = rng.below(queue.len() + 1);
                        queue.insert(back, message);
                    }
                }
                assert_eq!(view, expected, "seed {seed}");
            }
        }
    }

    #[test]
    fn rebuild_ignores_input_order_and_repeats() {
        for story in stories() {
            let expected = OrderView::rebuild(ORDER, &story);
            let mut rng = Rng::new(7);
            let mut shuffled: Vec<ViewEvent> = story.iter().chain(story.iter()).cloned().collect();
            rng.shuffle(&mut shuffled);
            assert_eq!(OrderView::rebuild(ORDER, &shuffled), expected);
        }
    }
}
