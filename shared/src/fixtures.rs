//! Events for the kit's own unit tests.

use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, StreamPosition};

/// The events of the `Thing` aggregate the tests write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub(crate) enum ThingEvent {
    #[serde(rename = "thing.counted")]
    Counted { n: u32 },
}

/// The aggregate of the `Thing#<id>` streams, for tests that need its type (an allowlist).
#[derive(Default)]
pub(crate) struct Thing;

impl crate::Aggregate for Thing {
    const TYPE: &'static str = "Thing";
    type Event = ThingEvent;
    fn apply(&mut self, _: &ThingEvent) {}
}

/// `thing.counted` as event `sequence` of the stream `Thing#<id>`.
pub(crate) fn event(id: &str, sequence: u64) -> Envelope {
    Envelope::encode(
        "test",
        StreamPosition::new("Thing", id, sequence),
        &ThingEvent::Counted { n: 1 },
    )
    .expect("a test event encodes")
}

/// The events of the snapshotted `Level` aggregate the store tests write.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub(crate) enum LevelEvent {
    #[serde(rename = "level.raised")]
    Raised { by: u64 },
}

/// A level raised by each event's `by`: an aggregate with snapshots every 10 events.
#[derive(Default, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Level {
    pub(crate) value: u64,
}

impl crate::Aggregate for Level {
    const TYPE: &'static str = "Level";
    type Event = LevelEvent;
    fn apply(&mut self, LevelEvent::Raised { by }: &LevelEvent) {
        self.value += by;
    }
}

impl crate::store::Snapshotted for Level {
    const SCHEMA: u32 = 2;
    const EVERY: u64 = 10;
}
