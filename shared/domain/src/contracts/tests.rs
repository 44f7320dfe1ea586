use std::path::Path;

use serde_json::{Value, json};

use ripple_kit::envelope::event_type_of;

use super::*;
use crate::catalog::ProductEvent;
use crate::inventory::{Reservation, ReservationEvent, StockEvent};
use crate::order::{CancelReason, Order, OrderEvent};
use crate::payment::{Payment, PaymentEvent};
use crate::testing;

/// The type name of `order.placed`, from the enum.
fn placed_type() -> &'static str {
    event_type_of(&OrderEvent::Placed(testing::placed("o-1"))).unwrap()
}

const REGENERATE: &str = "`UPDATE_SCHEMAS=1 cargo test -p domain contracts` (or `make schemas`)";

fn committed_contracts() -> Vec<Contract> {
    committed(Path::new(SCHEMA_DIR)).expect("the committed contracts are readable")
}

fn validate(contracts: &[Contract], envelope: &Value) -> Result<(), String> {
    check(contracts, envelope).map_err(|violation| violation.to_string())
}

#[test]
fn the_committed_contracts_are_the_generated_ones() {
    let dir = Path::new(SCHEMA_DIR);
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    let committed = if dir.exists() {
        committed_contracts()
    } else {
        Vec::new()
    };
    let mut stale = Vec::new();
    for contract in generated() {
        let path = contract.path_in(dir);
        let text = contract.to_file_text();
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        if !update {
            let relative = path
                .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap_or(&path);
            stale.push(format!("  shared/domain/{}", relative.display()));
            continue;
        }
        // Regenerating never moves the baseline past the compatibility check.
        let old = committed_for(&committed, &contract.event_type, contract.schemaversion);
        if let Some(problem) = old.and_then(|old| incompatibility(old, &contract)) {
            panic!("not regenerated: {problem}");
        }
        std::fs::create_dir_all(path.parent().expect("a contract's file is in a directory"))
            .expect("the schema directory can be made");
        std::fs::write(&path, text).expect("the schema can be written");
    }
    assert!(
        stale.is_empty(),
        "the committed event schemas differ from the event types; regenerate them with \
         {REGENERATE} and commit the result:\n{}",
        stale.join("\n")
    );
}

#[test]
fn every_committed_contract_is_still_readable_under_the_types() {
    let generated = generated();
    let mut problems = Vec::new();
    for old in committed_contracts() {
        let (event_type, version) = (&old.event_type, old.schemaversion);
        match generated.iter().find(|g| &g.event_type == event_type) {
            None => problems.push(format!(
                "{event_type} v{version} is committed but no event enum has it any more: the \
                 history that holds it would become unreadable; keep the variant"
            )),
            Some(new) if new.schemaversion == version => {
                problems.extend(incompatibility(&old, new));
            }
            // An older version is frozen: its events are read through their upcaster.
            Some(new) if new.schemaversion > version => {}
            Some(new) => problems.push(format!(
                "{event_type} is generated at v{} but v{version} is committed: versions only grow",
                new.schemaversion
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn every_event_type_of_the_domain_has_a_contract_at_its_version() {
    let generated = generated();
    let types: Vec<&str> = generated.iter().map(|c| c.event_type.as_str()).collect();
    let mut expected: Vec<&str> = [
        event_types::<OrderEvent>(),
        event_types::<StockEvent>(),
        event_types::<ReservationEvent>(),
        event_types::<PaymentEvent>(),
        event_types::<ProductEvent>(),
    ]
    .concat();
    assert_eq!(types, expected);
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(
        expected.len(),
        types.len(),
        "an event type is declared twice"
    );
    let placed = committed_for(&generated, placed_type(), 2).unwrap();
    let data = &placed.schema["properties"]["data"];
    assert_eq!(data["$ref"], "#/$defs/OrderPlaced", "{data}");
    assert_eq!(placed.schema["properties"]["type"]["const"], placed_type());
}

#[test]
fn events_are_written_at_the_version_of_their_contract() {
    let generated = generated();
    for envelope in testing::confirmed_flow("o-1") {
        let contract = generated
            .iter()
            .find(|c| c.event_type == envelope.event_type)
            .unwrap();
        assert_eq!(
            envelope.schemaversion, contract.schemaversion,
            "{}",
            envelope.event_type
        );
    }
    let placed = &testing::confirmed_flow("o-1")[0];
    assert_eq!(
        (placed.event_type.as_str(), placed.schemaversion),
        (placed_type(), 2)
    );
}

#[test]
fn order_placed_v1_stays_committed_and_each_version_validates_only_its_own_shape() {
    let contracts = committed_contracts();
    assert!(committed_for(&contracts, placed_type(), 1).is_some());
    let v2 = testing::stored::<Order>("o-1", 1, &OrderEvent::Placed(testing::placed("o-1")));
    let v2: Value = serde_json::from_str(&v2.to_json()).unwrap();
    assert_eq!(validate(&contracts, &v2), Ok(()));
    let mut v1 = v2.clone();
    v1["schemaversion"] = json!(1);
    let total = v1["data"].as_object_mut().unwrap().remove("total").unwrap();
    v1["data"]["currency"] = total["currency"].clone();
    v1["data"]["total_cents"] = total["minor_units"].clone();
    assert_eq!(
        validate(&contracts, &v1),
        Ok(()),
        "history at v1 keeps its contract"
    );
    let mut mislabelled = v2;
    mislabelled["schemaversion"] = json!(1);
    assert!(
        validate(&contracts, &mislabelled).is_err(),
        "a v2 payload stamped v1 breaks v1's contract"
    );
}

#[test]
fn a_breaking_change_names_the_type_version_field_and_the_way_out() {
    let committed = committed_contracts();
    let old = committed_for(&committed, placed_type(), 1).unwrap();
    let mut new = old.clone();
    let placed = &mut new.schema["$defs"]["OrderPlaced"];
    placed["properties"]
        .as_object_mut()
        .unwrap()
        .remove("currency");
    placed["required"] = json!(["order_id", "customer_id", "lines", "total_cents", "channel"]);
    let message = incompatibility(old, &new).expect("a removed field is a break");
    let placed = placed_type();
    assert!(
        message.starts_with(&format!("{placed} v1 changed")),
        "{message}"
    );
    assert!(
        message.contains("field `data.currency` was removed"),
        "{message}"
    );
    assert!(
        message.contains("field `data.channel` is newly required"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "new schemaversion (v2) of {placed} plus an upcaster from v1 to v2"
        )),
        "{message}"
    );
}

#[test]
fn every_envelope_in_the_samples_matches_its_contract() {
    let contracts = committed_contracts();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
    let mut checked = 0;
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        let sample: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let envelopes = envelopes_in(&sample);
        // A queue's or a stream's records each carry one event; an API request carries none.
        if let Some(records) = sample["Records"].as_array() {
            assert_eq!(envelopes.len(), records.len(), "{}", path.display());
        }
        for envelope in envelopes {
            let result = validate(&contracts, &envelope);
            assert_eq!(result, Ok(()), "{}", path.display());
            checked += 1;
        }
    }
    assert!(
        checked >= 7,
        "only {checked} sample events found in {}",
        dir.display()
    );
}

/// Every envelope `sample` holds: as a JSON object, or as the text of an SQS body or a stored item.
fn envelopes_in(sample: &Value) -> Vec<Value> {
    match sample {
        Value::Object(map) if map.contains_key("specversion") => vec![sample.clone()],
        Value::Object(map) => map.values().flat_map(envelopes_in).collect(),
        Value::Array(items) => items.iter().flat_map(envelopes_in).collect(),
        Value::String(text) if text.contains("\"specversion\"") => serde_json::from_str(text)
            .map(|inner: Value| envelopes_in(&inner))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[test]
fn the_stored_events_of_a_saga_match_their_contracts() {
    let contracts = committed_contracts();
    let placed = testing::placed("o-2");
    let mut stored = testing::confirmed_flow("o-1");
    stored.extend([
        testing::stored::<Reservation>("o-2", 1, &testing::rejected("o-2")),
        testing::stored::<Payment>(
            "o-2",
            1,
            &testing::declined("o-2", placed.total.minor_units),
        ),
        testing::stored::<Order>("o-2", 2, &testing::cancelled("o-2", CancelReason::TimedOut)),
        testing::stored::<crate::inventory::Stock>("SKU-1", 1, &testing::restocked("SKU-1", 5)),
    ]);
    for envelope in stored {
        let value: Value = serde_json::from_str(&envelope.to_json()).unwrap();
        assert_eq!(validate(&contracts, &value), Ok(()));
    }
}

#[test]
fn an_envelope_that_breaks_its_contract_is_refused_with_the_place() {
    let contracts = committed_contracts();
    let envelope = testing::stored::<Order>("o-1", 1, &OrderEvent::Placed(testing::placed("o-1")));
    let good: Value = serde_json::from_str(&envelope.to_json()).unwrap();
    let mut bad = good.clone();
    bad["data"]["lines"][0]["quantity"] = json!("two");
    let error = validate(&contracts, &bad).unwrap_err();
    assert!(error.contains("/data/lines/0/quantity"), "{error}");
    let mut bad = good.clone();
    bad["time"] = json!("yesterday");
    assert!(validate(&contracts, &bad).unwrap_err().contains("/time"));
    let mut bad = good.clone();
    bad["data"]["total"]["currency"] = Value::Null;
    assert!(validate(&contracts, &bad).is_err());
    let mut bad = good;
    bad["data"]["reason"] = json!("not a field of order.placed, and ignored");
    bad["partnerext"] = json!("an extension attribute");
    assert_eq!(
        validate(&contracts, &bad),
        Ok(()),
        "unknown fields are readers' to ignore"
    );
}

#[test]
fn an_optional_field_a_newer_producer_adds_is_read_past_and_kept() {
    let contracts = committed_contracts();
    let envelope = testing::stored::<Order>("o-1", 1, &OrderEvent::Placed(testing::placed("o-1")));
    let mut newer: Value = serde_json::from_str(&envelope.to_json()).unwrap();
    newer["data"]["gift_note"] = json!("happy birthday");
    newer["data"]["lines"][0]["engraving"] = json!({"text": "A"});
    assert_eq!(validate(&contracts, &newer), Ok(()));
    let read = ripple_kit::Envelope::from_json(&newer.to_string()).unwrap();
    assert_eq!(
        read.decode_for::<Order>().unwrap(),
        OrderEvent::Placed(testing::placed("o-1")),
        "today's types read the event as they know it"
    );
    let written: Value = serde_json::from_str(&read.to_json()).unwrap();
    assert_eq!(written, newer, "and pass it on with what they do not know");
}
