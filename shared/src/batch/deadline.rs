//! When a batch must stop starting records, and when it must answer.
//!
//! Lambda kills an invocation at its deadline: whatever the handler had not returned by then is
//! lost, no partial batch response goes back, and every message of the batch is redelivered,
//! the ones that never started included, each one receive closer to its DLQ. So a batch keeps
//! a margin before the deadline: no record starts within `margin` of it, a record still running
//! `margin / 2` before it is abandoned, and the response (with the redelivery calls that go with
//! it) is sent in the half margin left.
//!
//! The margin is [`DEADLINE_MARGIN`] (2 s), or a fifth of the time the invocation has when that
//! is less. Two seconds, because what must happen after the cut-off is one
//! `ChangeMessageVisibilityBatch` call per ten failed records, with the SDK's own retries, and the
//! response itself: a few hundred milliseconds normally, a second or more when SQS is slow. A
//! fifth, so that a short timeout (the fault soak compresses time) still leaves the records most
//! of it.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::idempotency::MAX_LAMBDA_TIMEOUT;

/// The longest margin a batch keeps before its invocation's deadline.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// The instants a batch works to, derived once from its invocation's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchDeadline {
    start_by: Instant,
    answer_by: Instant,
}

impl BatchDeadline {
    /// The cut-offs for an invocation that must be answered by `deadline`
    /// (`LambdaEvent::context.deadline()`), with the margin described in the module docs.
    ///
    /// A deadline not in the future (a test's default context) counts as [`MAX_LAMBDA_TIMEOUT`]
    /// from now, the rule the idempotency records follow too.
    pub fn of_invocation(deadline: SystemTime) -> Self {
        let remaining = remaining(deadline);
        BatchDeadline::with_margin(remaining, DEADLINE_MARGIN.min(remaining / 5))
    }

    /// Cut-offs `margin` and `margin / 2` before an end `remaining` from now.
    pub fn with_margin(remaining: Duration, margin: Duration) -> Self {
        let end = Instant::now() + remaining;
        BatchDeadline {
            start_by: end.checked_sub(margin).unwrap_or(end),
            answer_by: end.checked_sub(margin / 2).unwrap_or(end),
        }
    }

    /// True when a record must not start any more.
    pub fn too_late_to_start(&self) -> bool {
        Instant::now() >= self.start_by
    }

    /// When a record still running is abandoned.
    pub fn answer_by(&self) -> Instant {
        self.answer_by
    }
}

/// The last moment work may start for an invocation that must be answered by `deadline`: the
/// wall-clock time of [`BatchDeadline::of_invocation`]'s start cut-off, for work inside one
/// record (a retry loop) that must not outlast its batch.
pub fn latest_start(deadline: SystemTime) -> SystemTime {
    let now = SystemTime::now();
    let end = if deadline > now {
        deadline
    } else {
        now + MAX_LAMBDA_TIMEOUT
    };
    let remaining = end.duration_since(now).unwrap_or_default();
    end - DEADLINE_MARGIN.min(remaining / 5)
}

/// The time left until `deadline`, or [`MAX_LAMBDA_TIMEOUT`] when it is not in the future.
fn remaining(deadline: SystemTime) -> Duration {
    match deadline.duration_since(SystemTime::now()) {
        Ok(left) if !left.is_zero() => left,
        _ => MAX_LAMBDA_TIMEOUT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_two_seconds_or_a_fifth_of_a_short_invocation() {
        // What is left between the two cut-offs is half the margin.
        let gap = |deadline: BatchDeadline| deadline.answer_by - deadline.start_by;
        let long = BatchDeadline::of_invocation(SystemTime::now() + Duration::from_secs(60));
        assert_eq!(gap(long), Duration::from_secs(1), "capped at 2 s");
        let short = BatchDeadline::of_invocation(SystemTime::now() + Duration::from_secs(1));
        let gap = gap(short);
        assert!(
            gap <= Duration::from_millis(100) && gap > Duration::from_millis(90),
            "{gap:?}"
        );
        assert!(short.start_by > Instant::now() + Duration::from_millis(500));
    }

    #[test]
    fn work_starts_no_later_than_the_batch_cut_off() {
        let deadline = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(latest_start(deadline), deadline - DEADLINE_MARGIN);
        assert!(latest_start(SystemTime::UNIX_EPOCH) > SystemTime::now());
    }

    #[test]
    fn a_deadline_in_the_past_means_lambdas_longest_timeout() {
        let deadline = BatchDeadline::of_invocation(SystemTime::UNIX_EPOCH);
        assert!(!deadline.too_late_to_start());
        assert!(deadline.answer_by() > Instant::now() + Duration::from_secs(14 * 60));
    }
}
