//! Publishing a time range of stored events again, from the store itself.
//!
//! What the stream can no longer give (it keeps 24 hours; a quarantined event is fixed; an
//! operator wants to be sure) is read from the store's time index and published the way the
//! outbox publishes it. Consumers deduplicate by event id and stream position, so an event they
//! already have changes nothing: republishing is always safe, and a range may be given generously.

use crate::publish::{FailedPublish, Publisher, publish_each};
use crate::store::{StoreError, TimeCursor, TimeIndexed, TimeRange};

/// What a republish did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepublishReport {
    /// Events found in the range.
    pub found: usize,
    /// Events published.
    pub published: usize,
    /// Events the publisher refused, with why; publish them again (the same range is fine).
    pub failed: Vec<FailedPublish>,
}

/// Publishes every event `store` holds with a `time` in `range` through `publisher`, page by page
/// (events of one page in time order); `progress` sees the running totals after each page. A
/// refused event does not stop the rest: it is listed in the report.
pub async fn republish<S, P>(
    store: &S,
    publisher: &P,
    range: &TimeRange,
    mut progress: impl FnMut(&RepublishReport),
) -> Result<RepublishReport, StoreError>
where
    S: TimeIndexed,
    P: Publisher,
{
    let mut report = RepublishReport::default();
    let mut cursor = Some(TimeCursor::start());
    while let Some(at) = cursor.take() {
        let page = store.keys_in(range, &at).await?;
        cursor = page.next;
        if page.keys.is_empty() {
            continue;
        }
        let mut events = store.events_at(&page.keys).await?;
        events.retain(|e| range.contains(e.time));
        events.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
        let published = publish_each(publisher, &events).await;
        report.found += events.len();
        report.published += published.published.len();
        report.failed.extend(published.failed);
        report.failed.extend(
            published
                .not_attempted
                .into_iter()
                .map(|event_id| FailedPublish {
                    event_id,
                    code: "NotAttempted".into(),
                    reason: "the publisher stopped before it".into(),
                    permanent: false,
                }),
        );
        progress(&report);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::{Duration, Utc};

    use super::*;
    use crate::envelope::Envelope;
    use crate::fixtures::event;
    use crate::publish::PublishReport;
    use crate::store::{Append, EventStore, InMemoryEventStore};

    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>);

    impl Publisher for Recording {
        async fn publish(&self, events: &[Envelope]) -> PublishReport {
            let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
            self.0.lock().unwrap().extend(ids.clone());
            PublishReport {
                published: ids,
                ..PublishReport::default()
            }
        }
    }

    #[tokio::test]
    async fn every_event_of_the_range_is_published_again_and_nothing_outside_it() {
        let store = InMemoryEventStore::new();
        let now = Utc::now();
        let mut stored = Vec::new();
        for (i, minutes_ago) in [90, 30, 10, 1].into_iter().enumerate() {
            let mut e = event(&format!("t-{i}"), 1);
            e.time = now - Duration::minutes(minutes_ago);
            store.append(Append::events(vec![e.clone()])).await.unwrap();
            stored.push(e.id);
        }
        let publisher = Recording::default();
        let range = TimeRange::new(now - Duration::hours(1), now - Duration::minutes(5));
        let mut pages = 0;
        let report = republish(&store, &publisher, &range, |_| pages += 1)
            .await
            .unwrap();
        assert_eq!(*publisher.0.lock().unwrap(), stored[1..3].to_vec());
        assert_eq!((report.found, report.published), (2, 2));
        assert!(report.failed.is_empty());
        assert_eq!(pages, 1);
    }
}
