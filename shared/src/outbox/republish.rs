//! Publishing a time range of stored events again, from the store itself.
//!
//! What the stream can no longer give (it keeps 24 hours; a quarantined event is fixed; an
//! operator wants to be sure) is read from the store's time index and published the way the
//! outbox publishes it. Consumers deduplicate by event id and stream position, so an event they
//! already have changes nothing: republishing is always safe, and a range may be given generously.
//!
//! It lets out only what the outbox would: an event is published only if it was found at its own
//! stream position and, given the system's [`Producers`], its source may write it. Anything else
//! is reported failed with the code `Refused`, never published.

use std::collections::BTreeMap;

use crate::envelope::Envelope;
use crate::producers::Producers;
use crate::publish::{FailedPublish, Publisher, publish_each};
use crate::store::{EventKey, StoreError, TimeCursor, TimeIndexed, TimeRange};

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
/// (events of one page in time order), admitting only what `producers` lets its source write;
/// `progress` sees the running totals after each page. A refused event does not stop the rest:
/// it is listed in the report.
pub async fn republish<S, P>(
    store: &S,
    publisher: &P,
    range: &TimeRange,
    producers: Option<&Producers>,
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
        report.found += events.len();
        let (events, refused) = admitted(events, &page.keys, producers);
        report.failed.extend(refused);
        let published = publish_each(publisher, &events).await;
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

/// The events fit to publish, and the refusals of the others: an event must claim a position
/// that was asked for and that no other event of the page claims (an item stored under another
/// key names the position of the genuine one), and its source must be allowed to write it.
fn admitted(
    events: Vec<Envelope>,
    asked: &[EventKey],
    producers: Option<&Producers>,
) -> (Vec<Envelope>, Vec<FailedPublish>) {
    let position = |e: &Envelope| EventKey {
        stream: e.stream_key(),
        sequence: e.sequence,
    };
    let mut claims: BTreeMap<EventKey, usize> = BTreeMap::new();
    for event in &events {
        *claims.entry(position(event)).or_default() += 1;
    }
    let refuse = |event: &Envelope, reason: String| FailedPublish {
        event_id: event.id.clone(),
        code: "Refused".into(),
        reason,
        permanent: true,
    };
    let mut refused = Vec::new();
    let fit = events
        .into_iter()
        .filter(|event| {
            let at = position(event);
            let verdict = if !asked.contains(&at) || claims.get(&at) != Some(&1) {
                Err(format!(
                    "not the event stored at {} sequence {}",
                    at.stream, at.sequence
                ))
            } else {
                producers.map_or(Ok(()), |p| p.check(event).map_err(|r| r.to_string()))
            };
            match verdict {
                Ok(()) => true,
                Err(reason) => {
                    refused.push(refuse(event, reason));
                    false
                }
            }
        })
        .collect();
    (fit, refused)
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
        let report = republish(&store, &publisher, &range, None, |_| pages += 1)
            .await
            .unwrap();
        assert_eq!(*publisher.0.lock().unwrap(), stored[1..3].to_vec());
        assert_eq!((report.found, report.published), (2, 2));
        assert!(report.failed.is_empty());
        assert_eq!(pages, 1);
    }

    #[test]
    fn only_events_at_their_own_position_and_from_an_allowed_source_are_let_out() {
        use crate::fixtures::Thing;
        let genuine = event("t-1", 1);
        let mut forged_source = event("t-2", 1);
        forged_source.source = "someone/else".into();
        // Stored under Thing#t-9/1, but its envelope names t-1's position.
        let mut misplaced = event("t-1", 1);
        misplaced.id = "misplaced".into();
        let asked = [
            EventKey {
                stream: "Thing#t-1".into(),
                sequence: 1,
            },
            EventKey {
                stream: "Thing#t-2".into(),
                sequence: 1,
            },
            EventKey {
                stream: "Thing#t-9".into(),
                sequence: 1,
            },
        ];
        let producers = Producers::new().allow_all::<Thing>("test");
        let (fit, refused) = admitted(
            vec![genuine.clone(), forged_source.clone(), misplaced],
            &asked,
            Some(&producers),
        );
        assert!(
            fit.is_empty(),
            "t-1's position is claimed twice: neither is let out"
        );
        let codes: Vec<_> = refused
            .iter()
            .map(|r| (r.event_id.as_str(), r.code.as_str()))
            .collect();
        assert_eq!(
            codes,
            [
                (genuine.id.as_str(), "Refused"),
                (forged_source.id.as_str(), "Refused"),
                ("misplaced", "Refused")
            ]
        );
        let (fit, refused) = admitted(vec![genuine.clone()], &asked, Some(&producers));
        assert_eq!((fit, refused.len()), (vec![genuine], 0));
    }
}
