//! Generated view items and view events: any item of the views table is a view or a typed
//! `Corrupt` error, never a panic; every view written reads back as itself; any stored event is
//! a view event, no view event, or a typed error; and the fold of an order's events does not
//! depend on the order or the repeats they arrive in.

#![allow(clippy::unwrap_used)]

mod proptests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;
    use domain::testing::{self, stored};
    use domain::view::{OrderView, ViewEvent};
    use domain::views::{ViewStoreError, attr, view_from_item, view_item};
    use proptest::prelude::*;
    use ripple_kit::Envelope;
    use ripple_kit::envelope::EnvelopeError;

    const ORDER: &str = "o-1";

    /// The stored events of one order's life: placed, reserved, captured, confirmed, or cancelled
    /// and refunded.
    fn flow(cancelled: bool) -> Vec<Envelope> {
        use domain::order::Order;
        use domain::payment::{Payment, PaymentEvent};
        let mut events = testing::confirmed_flow(ORDER);
        if cancelled {
            events.pop();
            let reason = domain::order::CancelReason::CustomerRequest;
            events.push(stored::<Order>(
                ORDER,
                2,
                &testing::cancelled(ORDER, reason),
            ));
            let refund = PaymentEvent::Refunded {
                order_id: ORDER.into(),
                amount_cents: 2500,
                payment_id: "p-1".into(),
            };
            events.push(stored::<Payment>(ORDER, 2, &refund));
        }
        events
    }

    fn view_events(events: &[Envelope]) -> Vec<ViewEvent> {
        events
            .iter()
            .filter_map(|e| ViewEvent::from_envelope(e).ok().flatten())
            .collect()
    }

    /// A view folded from a prefix of one of the flows.
    fn view() -> impl Strategy<Value = OrderView> {
        (any::<bool>(), 0_usize..7).prop_map(|(cancelled, n)| {
            let events = flow(cancelled);
            let n = n.min(events.len());
            OrderView::rebuild(ORDER, &view_events(&events[..n]))
        })
    }

    fn attribute() -> impl Strategy<Value = AttributeValue> {
        prop_oneof![
            ".{0,24}".prop_map(AttributeValue::S),
            prop_oneof!["[0-9]{1,20}", ".{0,6}"].prop_map(AttributeValue::N),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Null(true)),
            prop::collection::vec(".{0,4}".prop_map(AttributeValue::S), 0..3)
                .prop_map(AttributeValue::L),
        ]
    }

    /// An item with the view's attribute names (and others), holding anything.
    fn item() -> impl Strategy<Value = HashMap<String, AttributeValue>> {
        let name = prop::sample::select(&[attr::ID, attr::VIEW, attr::VERSION, "other"][..]);
        prop::collection::hash_map(name.prop_map(str::to_owned), attribute(), 0..4)
    }

    proptest! {
        #[test]
        fn any_item_is_a_view_or_corrupt(item in item()) {
            match view_from_item(ORDER, &item) {
                Ok(stored) => prop_assert_eq!(
                    item.get(attr::VERSION),
                    Some(&AttributeValue::N(stored.version.to_string()))
                ),
                Err(ViewStoreError::Corrupt { order_id, .. }) => prop_assert_eq!(order_id, ORDER),
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }

        #[test]
        fn any_text_in_the_view_attribute_is_a_view_or_corrupt(text in any::<String>(), version in any::<u64>()) {
            let item = HashMap::from([
                (attr::ID.to_owned(), AttributeValue::S(ORDER.into())),
                (attr::VIEW.to_owned(), AttributeValue::S(text)),
                (attr::VERSION.to_owned(), AttributeValue::N(version.to_string())),
            ]);
            match view_from_item(ORDER, &item) {
                Ok(stored) => prop_assert_eq!(stored.version, version),
                Err(ViewStoreError::Corrupt { .. }) => {}
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }

        #[test]
        fn every_view_written_reads_back_as_itself(view in view()) {
            let stored = view_from_item(ORDER, &view_item(&view).unwrap()).unwrap();
            prop_assert_eq!(stored.version, view.events_applied());
            prop_assert_eq!(stored.view, view);
        }

        #[test]
        fn any_stored_event_is_a_view_event_none_or_a_typed_error(
            cancelled in any::<bool>(),
            pick in 0_usize..6,
            event_type in prop_oneof![Just(None), "[a-z]{1,6}\\.[a-z]{1,8}".prop_map(Some)],
            aggregate in prop_oneof![Just(None), "[A-Z][a-z]{0,8}".prop_map(Some)],
            data in prop_oneof![Just(None), ".{0,12}".prop_map(|s| Some(serde_json::json!({"order_id": s})))],
        ) {
            let events = flow(cancelled);
            let mut event = events[pick % events.len()].clone();
            if let Some(t) = event_type { event.event_type = t; }
            if let Some(a) = aggregate { event.aggregatetype = a; }
            if let Some(d) = data { event.data = d; }
            match ViewEvent::from_envelope(&event) {
                Ok(Some(view_event)) => prop_assert_eq!(view_event.sequence, event.sequence),
                Ok(None) => prop_assert!(!["Order", "Reservation", "Payment"].contains(&event.aggregatetype.as_str())),
                Err(EnvelopeError::UnknownType(_) | EnvelopeError::Payload { .. }) => {}
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }

        #[test]
        fn the_fold_ignores_delivery_order_and_repeats(cancelled in any::<bool>(), order in prop::collection::vec(0_usize..8, 0..20)) {
            let events = view_events(&flow(cancelled));
            let delivered: Vec<ViewEvent> = order
                .iter()
                .map(|i| events[i % events.len()].clone())
                .chain(events.iter().cloned())
                .collect();
            prop_assert_eq!(
                OrderView::rebuild(ORDER, &delivered),
                OrderView::rebuild(ORDER, &events)
            );
        }
    }
}
