//! How long a failed SQS record stays away: a visibility timeout that grows with its receive
//! count, and the arithmetic that sizes a queue's `maxReceiveCount` from it.
//!
//! Pure: the SQS calls that apply it are [`Redelivery`](super::Redelivery)'s (feature
//! `redelivery-sqs`). The settings come from the environment so that the template that sizes
//! `maxReceiveCount` and retention from them is their one home: `REDELIVERY_BASE_SECONDS` and
//! `REDELIVERY_CAP_SECONDS` ([`RedeliveryBackoff::from_env`]).

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;

use crate::config::{ConfigError, Env};

/// SQS's longest visibility timeout: 12 hours.
pub const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

/// How a failed record's visibility timeout grows with its receive count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedeliveryBackoff {
    /// The timeout after the first failed receive; doubles with every further receive.
    pub base: Duration,
    /// The longest timeout (SQS never allows more than [`MAX_VISIBILITY_TIMEOUT`]).
    pub cap: Duration,
    /// Draw each timeout uniformly from its upper half, so records that failed together do not
    /// all come back in the same second.
    pub jitter: bool,
}

impl Default for RedeliveryBackoff {
    /// 30 s, 1 min, 2 min, 4 min, … up to 15 min, with jitter.
    fn default() -> Self {
        RedeliveryBackoff {
            base: Duration::from_secs(30),
            cap: Duration::from_secs(15 * 60),
            jitter: true,
        }
    }
}

impl RedeliveryBackoff {
    /// The timeout for a record received `receive_count` times (1 on the first delivery):
    /// `base · 2^(receive_count - 1)`, at most `cap` and 12 h, in whole seconds. No jitter.
    pub fn visibility_for(&self, receive_count: u32) -> Duration {
        let doublings = receive_count.saturating_sub(1).min(31);
        let timeout = self
            .base
            .saturating_mul(1_u32 << doublings)
            .min(self.cap)
            .min(MAX_VISIBILITY_TIMEOUT);
        Duration::from_secs(timeout.as_secs())
    }

    /// [`visibility_for`](Self::visibility_for), with jitter when it is on.
    pub fn timeout_for(&self, receive_count: u32) -> Duration {
        let ceiling = self.visibility_for(receive_count).as_secs();
        if !self.jitter {
            return Duration::from_secs(ceiling);
        }
        Duration::from_secs(fastrand::u64(ceiling.div_ceil(2)..=ceiling))
    }
}

/// How many times SQS has delivered `record` (`ApproximateReceiveCount`; 1 when absent).
pub fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(1)
}

impl RedeliveryBackoff {
    /// The backoff the environment sets: `REDELIVERY_BASE_SECONDS` and `REDELIVERY_CAP_SECONDS`,
    /// each defaulting to [`RedeliveryBackoff::default`]'s; jitter is always on.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let default = RedeliveryBackoff::default();
        let base: u64 = env.parsed_or(BASE_VARIABLE, default.base.as_secs())?;
        let cap: u64 = env.parsed_or(CAP_VARIABLE, default.cap.as_secs())?;
        if cap < base {
            return Err(ConfigError::Invalid {
                key: CAP_VARIABLE.into(),
                value: cap.to_string(),
                reason: format!("must not be below {BASE_VARIABLE} ({base})"),
            });
        }
        Ok(RedeliveryBackoff {
            base: Duration::from_secs(base),
            cap: Duration::from_secs(cap),
            jitter: true,
        })
    }

    /// The least time that can pass between a record's first receive and its receive number
    /// `receive` when every receive before it fails: the sum of the shortest timeouts (jitter
    /// draws from the upper half, so half of each). A queue dead-letters nothing during an outage
    /// of length `t` when this, for `maxReceiveCount + 1`, is at least `t`.
    pub fn shortest_wait_before(&self, receive: u32) -> Duration {
        (1..receive)
            .map(|count| {
                let ceiling = self.visibility_for(count).as_secs();
                Duration::from_secs(if self.jitter {
                    ceiling.div_ceil(2)
                } else {
                    ceiling
                })
            })
            .sum()
    }

    /// The most time that can pass between a record's first receive and its receive number
    /// `receive`, besides the time the invocations themselves take: what a queue's retention
    /// must exceed for the record to reach its DLQ rather than expire.
    pub fn longest_wait_before(&self, receive: u32) -> Duration {
        (1..receive).map(|count| self.visibility_for(count)).sum()
    }
}

/// The variable with the first timeout, in seconds.
pub const BASE_VARIABLE: &str = "REDELIVERY_BASE_SECONDS";
/// The variable with the longest timeout, in seconds.
pub const CAP_VARIABLE: &str = "REDELIVERY_CAP_SECONDS";

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(base: u64, cap: u64) -> RedeliveryBackoff {
        RedeliveryBackoff {
            base: Duration::from_secs(base),
            cap: Duration::from_secs(cap),
            jitter: false,
        }
    }

    #[test]
    fn the_timeout_doubles_with_each_receive_up_to_the_cap() {
        let b = backoff(30, 600);
        let timeouts: Vec<u64> = (0..=7).map(|n| b.visibility_for(n).as_secs()).collect();
        assert_eq!(timeouts, vec![30, 30, 60, 120, 240, 480, 600, 600]);
    }

    #[test]
    fn the_timeout_never_exceeds_twelve_hours_nor_overflows() {
        let b = backoff(3600, u64::MAX / 2);
        assert_eq!(b.visibility_for(5), MAX_VISIBILITY_TIMEOUT);
        assert_eq!(b.visibility_for(u32::MAX), MAX_VISIBILITY_TIMEOUT);
        assert_eq!(backoff(0, 60).visibility_for(9), Duration::ZERO);
    }

    #[test]
    fn the_timeout_is_in_whole_seconds() {
        let b = RedeliveryBackoff {
            base: Duration::from_millis(1500),
            ..backoff(0, 60)
        };
        assert_eq!(b.visibility_for(1), Duration::from_secs(1));
        assert_eq!(b.visibility_for(2), Duration::from_secs(3));
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        let b = RedeliveryBackoff {
            jitter: true,
            ..backoff(100, 1000)
        };
        for _ in 0..200 {
            let t = b.timeout_for(2).as_secs();
            assert!((100..=200).contains(&t), "{t}");
        }
    }

    #[test]
    fn the_waits_add_the_shortest_and_the_longest_timeouts() {
        let jittered = RedeliveryBackoff {
            jitter: true,
            ..backoff(30, 120)
        };
        // Timeouts 30, 60, 120, 120; with jitter at least 15, 30, 60, 60.
        assert_eq!(jittered.shortest_wait_before(1), Duration::ZERO);
        assert_eq!(jittered.shortest_wait_before(5), Duration::from_secs(165));
        assert_eq!(jittered.longest_wait_before(5), Duration::from_secs(330));
        assert_eq!(
            backoff(30, 120).shortest_wait_before(5),
            Duration::from_secs(330)
        );
    }

    #[test]
    fn the_environment_sets_the_backoff_and_a_cap_below_the_base_is_refused() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            Env::new(move |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        assert_eq!(
            RedeliveryBackoff::from_env(&vars(&[])).unwrap(),
            RedeliveryBackoff::default()
        );
        let set = vars(&[(BASE_VARIABLE, "2"), (CAP_VARIABLE, "9")]);
        assert_eq!(
            RedeliveryBackoff::from_env(&set).unwrap(),
            RedeliveryBackoff {
                base: Duration::from_secs(2),
                cap: Duration::from_secs(9),
                jitter: true
            }
        );
        let inverted = vars(&[(BASE_VARIABLE, "60"), (CAP_VARIABLE, "30")]);
        assert!(RedeliveryBackoff::from_env(&inverted).is_err());
    }

    #[test]
    fn receive_counts_are_read_from_the_record() {
        let mut record = SqsMessage::default();
        assert_eq!(receive_count(&record), 1);
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), "4".into());
        assert_eq!(receive_count(&record), 4);
    }
}
