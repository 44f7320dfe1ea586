//! What a consumer lets through before it acts: events its allowlist says their producer may
//! write, inside the replay window.
//!
//! Unique event ids and dedupe markers stop a redelivered event from acting twice, but only while
//! the marker lives ([`DEDUPE_RETENTION`]). An event older than that, replayed, would find no
//! marker and act again, so it is refused; so is one stamped further in the future than clocks
//! drift, whose window would otherwise outlast its marker. Every admissible event is younger than
//! the marker it leaves: `MAX_EVENT_AGE + MAX_CLOCK_SKEW <= DEDUPE_RETENTION`.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

use crate::envelope::Envelope;
use crate::parse::ParseError;
use crate::producers::Producers;
use crate::store::DEDUPE_RETENTION;

/// How far ahead of the consumer's clock an event's `time` may be.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// The oldest event a consumer acts on: its marker outlives every admissible replay of it.
pub const MAX_EVENT_AGE: Duration =
    Duration::from_secs(DEDUPE_RETENTION.as_secs() - MAX_CLOCK_SKEW.as_secs());

/// The times an event may carry to be acted on, relative to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Oldest admissible age.
    pub max_age: Duration,
    /// Furthest admissible distance into the future.
    pub max_skew: Duration,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            max_age: MAX_EVENT_AGE,
            max_skew: MAX_CLOCK_SKEW,
        }
    }
}

impl ReplayWindow {
    /// Refuses `event` if its time is outside the window around `now`.
    pub fn admit(&self, event: &Envelope, now: SystemTime) -> Result<(), ParseError> {
        let now: DateTime<Utc> = now.into();
        let outside = |why| ParseError::OutsideReplayWindow {
            event_id: event.id.clone(),
            time: event.time.to_rfc3339(),
            why,
        };
        let skew = chrono::Duration::from_std(self.max_skew).unwrap_or(chrono::Duration::MAX);
        let age = chrono::Duration::from_std(self.max_age).unwrap_or(chrono::Duration::MAX);
        if event.time > now + skew {
            return Err(outside("in the future"));
        }
        if event.time < now - age {
            return Err(outside("too old"));
        }
        Ok(())
    }
}

/// Admission of one event: its producer may write it (when an allowlist is given) and its time is
/// inside `window`.
pub(super) fn admit(
    event: &Envelope,
    producers: Option<&Producers>,
    window: &ReplayWindow,
    now: SystemTime,
) -> Result<(), ParseError> {
    if let Some(producers) = producers {
        producers
            .check(event)
            .map_err(|reason| ParseError::Refused {
                event_id: event.id.clone(),
                reason,
            })?;
    }
    window.admit(event, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::event;

    #[test]
    fn every_admissible_event_is_younger_than_its_dedupe_marker() {
        let window = ReplayWindow::default();
        assert!(window.max_age + window.max_skew <= DEDUPE_RETENTION);
        assert!(
            window.max_age >= Duration::from_secs(14 * 24 * 3600),
            "SQS keeps 14 days"
        );
    }

    #[test]
    fn the_window_admits_the_recent_past_and_refuses_the_stale_and_the_future() {
        let e = event("a", 1);
        let sent: SystemTime = e.time.into();
        let window = ReplayWindow::default();
        let at = |offset: Duration, later: bool| {
            if later { sent + offset } else { sent - offset }
        };
        assert!(window.admit(&e, sent).is_ok());
        assert!(window.admit(&e, at(MAX_EVENT_AGE, true)).is_ok());
        assert!(matches!(
            window.admit(&e, at(MAX_EVENT_AGE + Duration::from_secs(1), true)),
            Err(ParseError::OutsideReplayWindow { why: "too old", .. })
        ));
        assert!(window.admit(&e, at(MAX_CLOCK_SKEW, false)).is_ok());
        assert!(matches!(
            window.admit(&e, at(MAX_CLOCK_SKEW + Duration::from_secs(1), false)),
            Err(ParseError::OutsideReplayWindow {
                why: "in the future",
                ..
            })
        ));
    }
}
