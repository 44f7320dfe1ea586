//! Each invariant holds for a healthy run and breaks, alone or with the ones that must break with
//! it, for each way a run can go wrong.

use std::collections::BTreeMap;

use domain::inventory::{Reservation, Stock, StockEvent};
use domain::order::{CancelReason, Order, OrderEvent};
use domain::payment::Payment;
use domain::testing::{self, stored};
use serde_json::json;

use super::*;
use crate::soak::truth::SinkMessage;
use crate::soak::workload::Poison;

const ORDER: &str = "o-1";

/// A run of one order placed, reserved, captured and confirmed, with one poison message
/// dead-lettered, and everything the harness reads back agreeing with it.
struct Run {
    stored: Stored,
    published: Vec<String>,
    customer_messages: Vec<String>,
    workload: Workload,
    answers: BTreeMap<u32, Answer>,
    reasons: BTreeMap<String, String>,
}

fn notification(order_id: &str, outcome: &str, message_id: &str) -> String {
    worded(order_id, outcome, message_id, "...")
}

fn worded(order_id: &str, outcome: &str, message_id: &str, text: &str) -> String {
    json!({
        "Type": "Notification",
        "MessageId": message_id,
        "Message": text,
        "MessageAttributes": {
            "type": {"Type": "String", "Value": outcome},
            "order_id": {"Type": "String", "Value": order_id},
        },
    })
    .to_string()
}

fn healthy() -> Run {
    let mut placed = testing::placed(ORDER);
    placed.customer_id = OrderSpec::customer(0, false);
    let events = vec![
        stored::<Stock>("SKU-1", 1, &testing::restocked("SKU-1", 10)),
        stored::<Order>(ORDER, 1, &OrderEvent::Placed(placed.clone())),
        stored::<Stock>(
            "SKU-1",
            2,
            &StockEvent::Allocated {
                sku: "SKU-1".into(),
                order_id: ORDER.into(),
                quantity: 2,
            },
        ),
        stored::<Reservation>(ORDER, 1, &testing::reserved(&placed)),
        stored::<Payment>(
            ORDER,
            1,
            &testing::captured(ORDER, placed.total.minor_units),
        ),
        stored::<Order>(ORDER, 2, &testing::confirmed(ORDER)),
    ];
    let mut run = Run {
        published: events.iter().map(Envelope::to_json).collect(),
        customer_messages: vec![notification(ORDER, "order.confirmed", "sns-1")],
        workload: Workload {
            orders: vec![OrderSpec {
                index: 0,
                customer: OrderSpec::customer(0, false),
                body: json!({}),
                hot: false,
                cancel_after: None,
            }],
            stock: vec![("SKU-1".into(), 10)],
            prices: vec![("SKU-1".into(), 1_000)],
            poison: vec![Poison {
                token: "soak-poison-0".into(),
                queue: 0,
                kind: "malformed JSON",
                body: "{\"soak-poison-0\": [".into(),
                after_orders: 0,
            }],
        },
        answers: BTreeMap::from([(
            0,
            Answer {
                status: 201,
                body: json!({"order_id": ORDER}),
                attempts: 1,
                statuses: vec![201],
            },
        )]),
        reasons: BTreeMap::from([("m-9".to_owned(), "record body is not JSON".to_owned())]),
        stored: Stored {
            sinks: vec![SinkMessage {
                queue: "s-inventory-dlq".into(),
                message_id: "m-9".into(),
                body: "{\"soak-poison-0\": [".into(),
            }],
            leftovers: BTreeMap::from([("s-inventory".to_owned(), 0)]),
            ..Stored::default()
        },
    };
    run.stored.events = events;
    refold(&mut run);
    run
}

/// Stores the view of the order as the fold of its events.
fn refold(run: &mut Run) {
    let events: Vec<ViewEvent> = run
        .stored
        .events
        .iter()
        .filter(|e| e.aggregatetype != Stock::TYPE)
        .filter_map(|e| ViewEvent::from_envelope(e).unwrap())
        .collect();
    run.stored
        .views
        .insert(ORDER.into(), Ok(OrderView::rebuild(ORDER, &events)));
}

/// Every invariant, checked against what `run` left.
fn checked(run: &Run) -> Vec<Invariant> {
    let reason = |id: &str| run.reasons.get(id).cloned();
    check(&Evidence {
        stored: &run.stored,
        published: &run.published,
        customer_messages: &run.customer_messages,
        workload: &run.workload,
        answers: &run.answers,
        reason: &reason,
        not_quiet: None,
    })
}

fn broken(run: &Run) -> Vec<&'static str> {
    checked(run)
        .into_iter()
        .filter(|i| !i.holds())
        .map(|i| i.name)
        .collect()
}

fn append(run: &mut Run, event: Envelope) {
    run.published.push(event.to_json());
    run.stored.events.push(event);
    refold(run);
}

#[test]
fn a_healthy_run_breaks_nothing() {
    assert_eq!(broken(&healthy()), Vec::<&str>::new());
}

#[test]
fn a_second_capture_is_a_double_charge_and_unbalances_the_money() {
    let mut run = healthy();
    append(
        &mut run,
        stored::<Payment>(ORDER, 2, &testing::captured(ORDER, 2500)),
    );
    assert_eq!(
        broken(&run),
        ["at most one capture per order", "money conserved"]
    );
}

#[test]
fn an_order_left_placed_is_not_terminal_and_gets_no_message() {
    let mut run = healthy();
    run.stored
        .events
        .retain(|e| !(e.aggregatetype == Order::TYPE && e.sequence == 2));
    run.published.pop();
    refold(&mut run);
    assert_eq!(
        broken(&run),
        [
            "every order terminal",
            "one customer message per outcome",
            "stock conserved",
            "money conserved"
        ]
    );
}

#[test]
fn a_refund_of_an_order_that_stays_confirmed_is_refused() {
    let mut run = healthy();
    let refund = domain::payment::PaymentEvent::Refunded {
        order_id: ORDER.into(),
        amount_cents: 2500,
        payment_id: "p-1".into(),
    };
    append(&mut run, stored::<Payment>(ORDER, 2, &refund));
    assert_eq!(
        broken(&run),
        [
            "refunds only for captured-then-cancelled orders",
            "money conserved"
        ]
    );
}

#[test]
fn a_customer_told_two_things_is_a_violation_but_a_copy_of_one_message_is_not() {
    let mut run = healthy();
    run.customer_messages
        .push(notification(ORDER, "order.confirmed", "sns-1"));
    assert_eq!(
        broken(&run),
        Vec::<&str>::new(),
        "the tap read one message twice"
    );
    run.customer_messages
        .push(notification(ORDER, "order.confirmed", "sns-2"));
    assert_eq!(
        broken(&run),
        Vec::<&str>::new(),
        "a Publish retried after its answer was lost: the same message under another SNS id"
    );
    assert_eq!(customer_message_copies(&run.customer_messages), 1);
    run.customer_messages
        .push(worded(ORDER, "order.confirmed", "sns-5", "something else"));
    assert_eq!(broken(&run), ["one customer message per outcome"]);
    let mut wrong = healthy();
    wrong.customer_messages = vec![notification(ORDER, "order.cancelled", "sns-3")];
    assert_eq!(broken(&wrong), ["one customer message per outcome"]);
    let mut untold = healthy();
    untold.customer_messages.clear();
    assert_eq!(broken(&untold), ["one customer message per outcome"]);
}

#[test]
fn a_cancelled_order_that_keeps_its_stock_breaks_conservation() {
    let mut run = healthy();
    run.stored.events.retain(|e| {
        e.aggregatetype != Payment::TYPE && !(e.aggregatetype == Order::TYPE && e.sequence == 2)
    });
    run.published = run.stored.events.iter().map(Envelope::to_json).collect();
    append(
        &mut run,
        stored::<Order>(
            ORDER,
            2,
            &testing::cancelled(ORDER, CancelReason::CustomerRequest),
        ),
    );
    run.customer_messages = vec![notification(ORDER, "order.cancelled", "sns-4")];
    assert_eq!(broken(&run), ["stock conserved"]);
}

#[test]
fn an_event_that_never_reached_the_topic_is_reported_with_its_stream() {
    let mut run = healthy();
    run.published.remove(3);
    assert_eq!(broken(&run), ["every stored event published"]);
    let published = checked(&run)
        .into_iter()
        .find(|i| i.name == "every stored event published")
        .unwrap();
    assert!(
        published.violations[0].contains("Reservation#o-1"),
        "{published:?}"
    );
}

#[test]
fn a_view_behind_its_stream_is_reported() {
    let mut run = healthy();
    let events: Vec<ViewEvent> = run.stored.events[..4]
        .iter()
        .filter(|e| e.aggregatetype != Stock::TYPE)
        .filter_map(|e| ViewEvent::from_envelope(e).unwrap())
        .collect();
    run.stored
        .views
        .insert(ORDER.into(), Ok(OrderView::rebuild(ORDER, &events)));
    assert_eq!(
        broken(&run),
        ["every read model equals the fold of its stream"]
    );
    run.stored.views.clear();
    assert_eq!(
        broken(&run),
        ["every read model equals the fold of its stream"]
    );
}

#[test]
fn dead_letters_must_be_the_poison_each_with_its_reason() {
    let mut run = healthy();
    run.reasons.clear();
    assert_eq!(
        broken(&run),
        ["dead letters are the injected poison"],
        "no reason logged"
    );
    let mut run = healthy();
    run.stored.sinks.push(SinkMessage {
        queue: "s-payments-dlq".into(),
        message_id: "m-10".into(),
        body: run.published[1].clone(),
    });
    assert_eq!(
        broken(&run),
        ["dead letters are the injected poison"],
        "a healthy message"
    );
    let mut run = healthy();
    run.stored.sinks.clear();
    assert_eq!(
        broken(&run),
        ["dead letters are the injected poison"],
        "poison lost"
    );
}

#[test]
fn a_dead_letter_counts_for_its_own_poison_not_for_one_whose_token_it_starts_with() {
    // Eleven poison messages: tokens 0 to 10, and only the tenth dead-lettered. A body of
    // `soak-poison-10` begins with `soak-poison-1`; the 10,000-order soak reported 90 poison
    // messages (10 to 99) as never dead-lettered because each was taken for 1 to 9.
    let mut run = healthy();
    run.workload.poison = (0..=10)
        .map(|n| Poison {
            token: format!("soak-poison-{n}"),
            queue: 0,
            kind: "malformed JSON",
            body: format!("{{\"soak-poison-{n}\": ["),
            after_orders: 0,
        })
        .collect();
    run.stored.sinks = vec![SinkMessage {
        queue: "s-inventory-dlq".into(),
        message_id: "m-9".into(),
        body: "{\"soak-poison-10\": [".into(),
    }];
    let invariant = checked(&run)
        .into_iter()
        .find(|i| i.name == "dead letters are the injected poison")
        .unwrap();
    let missing: Vec<&str> = invariant
        .violations
        .iter()
        .map(|v| v.split(' ').next().unwrap_or_default())
        .collect();
    let expected: Vec<String> = (0..=9).map(|n| format!("soak-poison-{n}")).collect();
    assert_eq!(missing, expected, "{:?}", invariant.violations);
}

#[test]
fn an_order_placed_twice_for_one_request_is_caught() {
    let mut run = healthy();
    let mut again = testing::placed("o-2");
    again.customer_id = OrderSpec::customer(0, false);
    append(
        &mut run,
        stored::<Order>("o-2", 1, &OrderEvent::Placed(again)),
    );
    let failed = broken(&run);
    assert!(failed.contains(&"one order per request"), "{failed:?}");
    assert!(failed.contains(&"every order terminal"), "{failed:?}");
    let mut refused = healthy();
    refused.answers.get_mut(&0).unwrap().status = 503;
    assert_eq!(broken(&refused), ["one order per request"]);
}

#[test]
fn a_pipeline_still_moving_or_a_queue_not_empty_is_reported() {
    let mut run = healthy();
    run.stored.leftovers.insert("s-inventory".into(), 3);
    assert_eq!(broken(&run), ["the pipeline went quiet"]);
}
