//! Event type names, read from an event enum's own serde attributes.
//!
//! An event enum is written once, with `#[serde(tag = "type", content = "data")]` and a
//! `#[serde(rename = "order.placed")]` per variant. Code that needs the names (a log line, an
//! allowlist, a filter policy check, a schema) asks the enum through [`event_types`] and
//! [`event_type_of`] instead of repeating the strings next to the renames.
//!
//! ```
//! use ripple_kit::envelope::{event_type_of, event_types};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! #[serde(tag = "type", content = "data")]
//! enum OrderEvent {
//!     #[serde(rename = "order.placed")]
//!     Placed { total_cents: u64 },
//!     #[serde(rename = "order.cancelled")]
//!     Cancelled,
//! }
//!
//! assert_eq!(event_types::<OrderEvent>(), ["order.placed", "order.cancelled"]);
//! assert_eq!(event_type_of(&OrderEvent::Cancelled), Some("order.cancelled"));
//! ```

use std::cell::Cell;
use std::rc::Rc;

use serde::de::value::{Error as ValueError, MapDeserializer};
use serde::de::{DeserializeOwned, Error as _, IntoDeserializer, Visitor};
use serde::{Deserializer, Serialize};

/// Every event type an adjacently tagged event enum `E` reads, in declaration order; empty for a
/// type that is not such an enum.
///
/// serde's derive passes the variant names to the deserializer when it reads the `type` field;
/// a deserializer that stops right there hands them back without reading any data.
pub fn event_types<E: DeserializeOwned>() -> &'static [&'static str] {
    let seen = Rc::new(Cell::new(None));
    let fields = [("type", VariantNames(seen.clone()))];
    let deserializer: MapDeserializer<'_, _, ValueError> = MapDeserializer::new(fields.into_iter());
    // Stops with an error by design once the names are seen.
    let _ = E::deserialize(deserializer);
    seen.get().unwrap_or(&[])
}

/// The event type `event` serialises with, as one of [`event_types`]`::<E>()`; `None` when `E`
/// is not an adjacently tagged enum.
pub fn event_type_of<E: Serialize + DeserializeOwned>(event: &E) -> Option<&'static str> {
    let value = serde_json::to_value(event).ok()?;
    let name = value.get("type")?.as_str()?;
    event_types::<E>()
        .iter()
        .copied()
        .find(|known| *known == name)
}

/// Deserializes the `type` field by noting the variant names serde offers, then stopping.
struct VariantNames(Rc<Cell<Option<&'static [&'static str]>>>);

const STOP: &str = "variant names noted";

impl<'de> Deserializer<'de> for VariantNames {
    type Error = ValueError;

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.set(Some(variants));
        Err(ValueError::custom(STOP))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(ValueError::custom(STOP))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

impl<'de> IntoDeserializer<'de, ValueError> for VariantNames {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum Ev {
        #[serde(rename = "thing.made")]
        Made { n: u32 },
        #[serde(rename = "thing.named")]
        Named(String),
        #[serde(rename = "thing.gone")]
        Gone,
    }

    #[derive(Serialize, Deserialize)]
    struct NotAnEnum {
        n: u32,
    }

    #[test]
    fn the_names_are_the_serde_renames_in_declaration_order() {
        assert_eq!(
            event_types::<Ev>(),
            ["thing.made", "thing.named", "thing.gone"]
        );
        assert!(event_types::<NotAnEnum>().is_empty());
    }

    #[test]
    fn every_variant_shape_names_its_type() {
        assert_eq!(event_type_of(&Ev::Made { n: 1 }), Some("thing.made"));
        assert_eq!(event_type_of(&Ev::Named("x".into())), Some("thing.named"));
        assert_eq!(event_type_of(&Ev::Gone), Some("thing.gone"));
        assert_eq!(event_type_of(&NotAnEnum { n: 1 }), None);
    }
}
