//! Generated keys, payloads and records: the canonical JSON behind every key and payload hash is
//! the same value with its object keys sorted at every level, whatever order they were built in;
//! any item of the table is a record or a typed error, never a panic; every record round-trips.

use std::collections::HashMap;
use std::fmt;

use aws_sdk_dynamodb::types::AttributeValue;
use proptest::prelude::*;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::dynamo::{record_from_item, record_to_item};
use super::key::{canonical_json, hash_json, idempotency_key, is_missing_key};
use super::{IdempotencyRecord, IdempotencyStoreError, Status};
use crate::envelope::proptests::json_value;

/// Parses JSON text and fails if any object's keys are not in ascending order as written.
struct KeysInOrder;

impl<'de> Deserialize<'de> for KeysInOrder {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeysInOrder)
    }
}

impl<'de> Visitor<'de> for KeysInOrder {
    type Value = KeysInOrder;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut previous: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            if previous.as_ref().is_some_and(|p| *p >= key) {
                return Err(de::Error::custom(format!("{key:?} after {previous:?}")));
            }
            map.next_value::<KeysInOrder>()?;
            previous = Some(key);
        }
        Ok(KeysInOrder)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<KeysInOrder>()?.is_some() {}
        Ok(KeysInOrder)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(KeysInOrder)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(KeysInOrder)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(KeysInOrder)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(KeysInOrder)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(KeysInOrder)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(KeysInOrder)
    }
}

/// `value` with every object rebuilt from its entries in reverse order.
fn rebuilt_backwards(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut rebuilt = Map::new();
            for (key, item) in map.iter().rev() {
                rebuilt.insert(key.clone(), rebuilt_backwards(item));
            }
            Value::Object(rebuilt)
        }
        Value::Array(items) => Value::Array(items.iter().map(rebuilt_backwards).collect()),
        scalar => scalar.clone(),
    }
}

/// Any DynamoDB attribute value, nested a little.
fn attribute() -> impl Strategy<Value = AttributeValue> {
    let leaf = prop_oneof![
        ".{0,16}".prop_map(AttributeValue::S),
        prop_oneof!["-?[0-9]{1,19}", ".{0,6}"].prop_map(AttributeValue::N),
        any::<bool>().prop_map(AttributeValue::Bool),
        Just(AttributeValue::Null(true)),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(AttributeValue::L),
            prop::collection::hash_map("[a-z]{1,4}", inner, 0..3).prop_map(AttributeValue::M),
        ]
    })
}

/// An item with any of the record's attribute names, and others.
fn item() -> impl Strategy<Value = HashMap<String, AttributeValue>> {
    let name = prop::sample::select(
        &[
            "id",
            "status",
            "expiration",
            "in_progress_expiry",
            "data",
            "validation",
            "claim",
            "sending",
            "other",
        ][..],
    );
    prop::collection::hash_map(name.prop_map(str::to_owned), attribute(), 0..7)
}

fn record() -> impl Strategy<Value = IdempotencyRecord> {
    (
        ".{1,40}",
        prop_oneof![Just(Status::InProgress), Just(Status::Completed)],
        any::<i64>(),
        proptest::option::of(any::<i64>()),
        proptest::option::of(".{0,40}"),
        proptest::option::of("[0-9a-f]{64}"),
        proptest::option::of("[0-9a-z-]{1,36}"),
        any::<bool>(),
    )
        .prop_map(
            |(key, status, expiration, in_progress_expiry, data, validation, claim, sending)| {
                IdempotencyRecord {
                    key,
                    status,
                    expiration,
                    in_progress_expiry,
                    data,
                    validation,
                    claim,
                    sending,
                }
            },
        )
}

proptest! {
    #[test]
    fn canonical_json_is_the_same_value(value in json_value()) {
        let text = canonical_json(&value);
        prop_assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
    }

    #[test]
    fn canonical_json_writes_object_keys_in_order_at_every_level(value in json_value()) {
        let text = canonical_json(&value);
        prop_assert!(serde_json::from_str::<KeysInOrder>(&text).is_ok(), "{}", text);
    }

    #[test]
    fn keys_and_hashes_do_not_depend_on_the_order_fields_were_built_in(value in json_value(), name in "[a-z.#-]{1,20}") {
        let backwards = rebuilt_backwards(&value);
        prop_assert_eq!(canonical_json(&backwards), canonical_json(&value));
        prop_assert_eq!(hash_json(&backwards), hash_json(&value));
        let key = idempotency_key(&name, &value);
        let prefix = format!("{name}#");
        prop_assert!(key.starts_with(&prefix));
        prop_assert_eq!(key.len(), name.len() + 1 + 64);
    }

    #[test]
    fn missing_key_material_is_only_nothing_at_all(value in json_value()) {
        let nothing = match &value {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(items) => items.iter().all(Value::is_null),
            Value::Object(map) => map.values().all(Value::is_null),
            Value::Bool(_) | Value::Number(_) => false,
        };
        prop_assert_eq!(is_missing_key(&value), nothing);
    }

    #[test]
    fn any_item_is_a_record_or_malformed(item in item()) {
        match record_from_item(&item) {
            Ok(record) => prop_assert_eq!(Some(&AttributeValue::S(record.key.clone())), item.get("id")),
            Err(IdempotencyStoreError::Malformed { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
    }

    #[test]
    fn every_record_round_trips_through_its_item(record in record()) {
        prop_assert_eq!(record_from_item(&record_to_item(&record)).unwrap(), record);
    }
}
