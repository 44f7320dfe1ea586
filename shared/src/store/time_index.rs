//! Finding stored events by their time: the store's own record of what it holds, independent of
//! the stream that publishes it.
//!
//! A DynamoDB stream keeps records for 24 hours; an outage of the publishing path longer than
//! that, or a record given up on, must not make an event unreachable. So every event item also
//! carries its place in a time index: the global secondary index [`TIME_INDEX`], partitioned by
//! `time_bucket` (the hour of the event's `time` and one of [`TIME_INDEX_SHARDS`] shards picked
//! by a hash of its stream, so that one hour's writes spread over several index partitions
//! instead of throttling the table through one hot index partition) and sorted by `time_key`
//! (the time to the millisecond, then the event id). The index projects only the keys: what it
//! answers is where the events are ([`EventKey`]); [`TimeIndexed::events_at`] reads them.
//!
//! Reading a time range queries each shard of each hour it spans ([`TimeRange::buckets`]), page
//! by page ([`TimeCursor`]). The index is eventually consistent and an event's `time` is taken
//! when it is encoded, a moment before it is written: a reader that wants every event up to a
//! time stays a little behind it (the sweeper keeps minutes).
//!
//! The shard count is part of the table layout: raising it is harmless (old hours leave the new
//! shards empty), lowering it hides the events of the shards dropped.

use std::future::Future;

use chrono::{DateTime, Duration as TimeDelta, SecondsFormat, Timelike, Utc};
use sha2::{Digest, Sha256};

use super::StoreError;
use crate::envelope::Envelope;

/// The name of the time index.
pub const TIME_INDEX: &str = "by-time";
/// Shards per hour of the time index.
pub const TIME_INDEX_SHARDS: u8 = 16;

/// Where a stored event is: its stream key (`<AggregateType>#<id>`) and sequence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventKey {
    /// The stream key, `<AggregateType>#<id>`.
    pub stream: String,
    /// The event's position in its stream.
    pub sequence: u64,
}

impl EventKey {
    /// The stream's aggregate type and id.
    pub fn aggregate(&self) -> (&str, &str) {
        self.stream.split_once('#').unwrap_or((&self.stream, ""))
    }
}

/// The events whose `time` is at or after `from` and before `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// The first instant in the range.
    pub from: DateTime<Utc>,
    /// The first instant after it.
    pub to: DateTime<Utc>,
}

impl TimeRange {
    /// `[from, to)`; empty when `to` is not after `from`.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        TimeRange { from, to }
    }

    /// True when no instant is in the range.
    pub fn is_empty(&self) -> bool {
        self.to <= self.from
    }

    /// True when `time` is in the range.
    pub fn contains(&self, time: DateTime<Utc>) -> bool {
        self.from <= time && time < self.to
    }

    /// Every index partition the range touches, hour by hour, shard by shard.
    pub fn buckets(&self) -> Vec<String> {
        let mut buckets = Vec::new();
        if self.is_empty() {
            return buckets;
        }
        let mut hour = truncate_to_hour(self.from);
        while hour < self.to {
            for shard in 0..TIME_INDEX_SHARDS {
                buckets.push(bucket_name(hour, shard));
            }
            hour += TimeDelta::hours(1);
        }
        buckets
    }

    /// The sort-key bounds of the range, `[from, to)` as [`time_key`]s compare: every key at
    /// `from` sorts at or after the first, every key at `to` after the second.
    #[cfg_attr(not(feature = "store-dynamodb"), allow(dead_code))]
    pub(crate) fn key_bounds(&self) -> (String, String) {
        (millis(self.from), millis(self.to))
    }
}

/// The index partition of an event: its hour and shard.
#[cfg_attr(not(feature = "store-dynamodb"), allow(dead_code))]
pub(crate) fn time_bucket(stream: &str, time: DateTime<Utc>) -> String {
    let shard = Sha256::digest(stream.as_bytes())[0] % TIME_INDEX_SHARDS;
    bucket_name(truncate_to_hour(time), shard)
}

/// The index sort key of an event: its time to the millisecond, then its id.
#[cfg_attr(not(feature = "store-dynamodb"), allow(dead_code))]
pub(crate) fn time_key(event: &Envelope) -> String {
    format!("{}#{}", millis(event.time), event.id)
}

fn bucket_name(hour: DateTime<Utc>, shard: u8) -> String {
    format!("{}#{shard:02}", hour.format("%Y-%m-%dT%H"))
}

fn millis(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn truncate_to_hour(time: DateTime<Utc>) -> DateTime<Utc> {
    time.with_nanosecond(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_minute(0))
        .unwrap_or(time)
}

/// Where a reading of a time range stands: the bucket it is in, and the last key it read there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeCursor {
    pub(crate) bucket: usize,
    pub(crate) after: Option<(String, EventKey)>,
}

impl TimeCursor {
    /// The start of a range.
    pub fn start() -> Self {
        TimeCursor {
            bucket: 0,
            after: None,
        }
    }
}

/// One page of a time range's event keys, and where the next page starts (`None`: done).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeysPage {
    /// The keys found, in index order within their bucket.
    pub keys: Vec<EventKey>,
    /// Where to continue.
    pub next: Option<TimeCursor>,
}

/// An event store that can say which events it holds by time.
pub trait TimeIndexed: Send + Sync {
    /// One page of the keys of the events stored with a `time` in `range`, from `cursor` on.
    fn keys_in(
        &self,
        range: &TimeRange,
        cursor: &TimeCursor,
    ) -> impl Future<Output = Result<KeysPage, StoreError>> + Send;

    /// Every key of the events stored with a `time` in `range`, the index partitions read at
    /// once (for a window small enough to hold in memory: a sweep's step, not a republish).
    fn all_keys_in(
        &self,
        range: &TimeRange,
    ) -> impl Future<Output = Result<Vec<EventKey>, StoreError>> + Send;

    /// The stored events at `keys`, in no particular order; a key with no event is skipped.
    fn events_at(
        &self,
        keys: &[EventKey],
    ) -> impl Future<Output = Result<Vec<Envelope>, StoreError>> + Send;
}

impl<S: TimeIndexed> TimeIndexed for std::sync::Arc<S> {
    fn keys_in(
        &self,
        range: &TimeRange,
        cursor: &TimeCursor,
    ) -> impl Future<Output = Result<KeysPage, StoreError>> + Send {
        S::keys_in(self, range, cursor)
    }

    fn all_keys_in(
        &self,
        range: &TimeRange,
    ) -> impl Future<Output = Result<Vec<EventKey>, StoreError>> + Send {
        S::all_keys_in(self, range)
    }

    fn events_at(
        &self,
        keys: &[EventKey],
    ) -> impl Future<Output = Result<Vec<Envelope>, StoreError>> + Send {
        S::events_at(self, keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::event;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_range_touches_every_shard_of_every_hour_it_spans() {
        let range = TimeRange::new(at("2026-05-01T12:59:00Z"), at("2026-05-01T14:00:00Z"));
        let buckets = range.buckets();
        assert_eq!(buckets.len(), 2 * usize::from(TIME_INDEX_SHARDS));
        assert_eq!(buckets[0], "2026-05-01T12#00");
        assert_eq!(buckets.last().unwrap(), "2026-05-01T13#15");
        assert!(TimeRange::new(range.to, range.from).buckets().is_empty());
    }

    #[test]
    fn an_event_lands_in_its_hour_and_a_shard_fixed_by_its_stream() {
        let mut e = event("a", 1);
        e.time = at("2026-05-01T13:04:05.123Z");
        let bucket = time_bucket(&e.stream_key(), e.time);
        assert!(bucket.starts_with("2026-05-01T13#"), "{bucket}");
        assert_eq!(
            bucket,
            time_bucket(&e.stream_key(), at("2026-05-01T13:59:59Z"))
        );
        assert_eq!(time_key(&e), format!("2026-05-01T13:04:05.123Z#{}", e.id));
        let range = TimeRange::new(at("2026-05-01T13:04:05.123Z"), at("2026-05-01T13:04:06Z"));
        let (from, to) = range.key_bounds();
        assert!(from.as_str() <= time_key(&e).as_str() && time_key(&e).as_str() < to.as_str());
        let ends_here = TimeRange::new(at("2026-05-01T13:00:00Z"), e.time);
        assert!(time_key(&e).as_str() > ends_here.key_bounds().1.as_str());
    }

    #[test]
    fn shards_spread_streams() {
        let shards: std::collections::HashSet<String> = (0..200)
            .map(|i| time_bucket(&format!("Order#o-{i}"), at("2026-05-01T13:00:00Z")))
            .collect();
        assert_eq!(shards.len(), usize::from(TIME_INDEX_SHARDS));
    }
}
