//! Generated stream images: any `NewImage` is an event to publish, an item to skip or a typed
//! error, never a panic; and an event item's image is that event.

use std::collections::HashMap;

use proptest::prelude::*;
use serde_dynamo::AttributeValue as Image;

use super::*;
use crate::envelope::proptests::envelope;

/// Any stream attribute value, nested a little.
fn image_value() -> impl Strategy<Value = Image> {
    let leaf = prop_oneof![
        ".{0,16}".prop_map(Image::S),
        "-?[0-9]{1,8}".prop_map(Image::N),
        any::<bool>().prop_map(Image::Bool),
        Just(Image::Null(true)),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Image::B),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Image::L),
            prop::collection::hash_map("[a-z]{1,6}", inner, 0..4).prop_map(Image::M),
        ]
    })
}

/// An image with any of the attributes the outbox reads, and others.
fn image() -> impl Strategy<Value = HashMap<String, Image>> {
    let name = prop_oneof![
        Just("kind".to_owned()),
        Just("envelope".to_owned()),
        Just("pk".to_owned()),
        "[a-z]{1,6}"
    ];
    prop::collection::hash_map(name, image_value(), 0..5)
}

proptest! {
    #[test]
    fn any_image_is_an_event_an_item_to_skip_or_a_typed_error(image in image()) {
        let kind = image.get("kind").cloned();
        match envelope_from_stream_image(&image.into()) {
            Ok(Some(envelope)) => prop_assert!(envelope.validate().is_ok()),
            Ok(None) => prop_assert!(
                matches!(kind, Some(ref k) if *k != Image::S(KIND_EVENT.to_owned()))
            ),
            Err(EnvelopeError::Invalid(_) | EnvelopeError::Malformed(_)) => {}
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
    }

    #[test]
    fn an_event_items_image_is_its_event(envelope in envelope(), extra in image()) {
        let mut image = extra;
        image.insert("kind".to_owned(), Image::S(KIND_EVENT.to_owned()));
        image.insert("envelope".to_owned(), Image::S(envelope.to_json()));
        prop_assert_eq!(envelope_from_stream_image(&image.into()).unwrap(), Some(envelope));
    }

    #[test]
    fn an_event_item_with_any_other_envelope_is_published_or_refused(text in any::<String>()) {
        let image: HashMap<String, Image> = HashMap::from([
            ("kind".to_owned(), Image::S(KIND_EVENT.to_owned())),
            ("envelope".to_owned(), Image::S(text)),
        ]);
        match envelope_from_stream_image(&image.into()) {
            Ok(Some(_)) | Err(EnvelopeError::Malformed(_) | EnvelopeError::Invalid(_)) => {}
            other => prop_assert!(false, "unexpected {other:?}"),
        }
    }
}
