//! The ratios the template reasons with, checked on the compressed stack the soak runs, and the
//! soak's order deadline sized by the template's own rule.
//!
//! The template sizes its consumer queues from the function timeout and the redelivery backoff
//! (`REDELIVERY_*_SECONDS`): the visibility timeout is at least six times the timeout, an outage
//! is ridden out before `maxReceiveCount` receives are used up, and the retention outlasts every
//! receive a message can get. Its order deadline (`OrderDeadlineSeconds`, 2 h) is twice the
//! consumers' budget for the one-hour outage they ride out. The soak's outage is shorter than an
//! hour, so its deadline keeps that ratio to the soak's outage instead: twice the longest a
//! message can take to get through it ([`ride_out`]); a deadline compressed from 2 h would leave
//! a stranded order undecided for longer than a soak runs.

use std::collections::BTreeMap;
use std::time::Duration;

use ripple_kit::batch::{DEADLINE_MARGIN, RedeliveryBackoff};
use ripple_kit::config::Env;

use crate::provision::Deployment;
use crate::template::{EventSource, Stack};

/// What AWS recommends between a consumer queue's visibility timeout and its function's timeout.
const VISIBILITY_FACTOR: u32 = 6;
/// The template's order deadline over the outage its consumers ride out (2 h over 1 h).
pub const DEADLINE_OVER_OUTAGE: u32 = 2;
/// SQS keeps a message four days when the queue does not say.
const DEFAULT_RETENTION_SECONDS: u32 = 345_600;

/// The variables each function reads, by logical id.
pub type Environments = BTreeMap<String, BTreeMap<String, String>>;

/// The variables of every function of `deployment`.
pub fn environments(deployment: &Deployment) -> Environments {
    deployment
        .functions
        .values()
        .map(|f| (f.logical_id.clone(), f.environment.clone()))
        .collect()
}

/// The redelivery backoff the kit builds from `variables` (as a consumer does at start-up).
pub fn backoff(variables: &BTreeMap<String, String>) -> Result<RedeliveryBackoff, String> {
    RedeliveryBackoff::from_env(&Env::new(|key: &str| variables.get(key).cloned()))
        .map_err(|e| e.to_string())
}

/// The longest a message can take to get through an outage of `outage`: the outage, then the
/// longest backoff its last failed receive inside the outage can draw. Receives come no faster
/// than the shortest backoffs, so that receive is at most the last one those fit in.
pub fn ride_out(backoff: &RedeliveryBackoff, outage: Duration) -> Duration {
    if outage.is_zero() {
        return Duration::ZERO;
    }
    let first_after = (1..=64)
        .find(|&receive| backoff.shortest_wait_before(receive) >= outage)
        .unwrap_or(64);
    outage + backoff.visibility_for(first_after - 1)
}

/// The soak's order deadline: [`DEADLINE_OVER_OUTAGE`] times the longest [`ride_out`] of `outage`
/// over the consumers' backoffs.
pub fn order_deadline(stack: &Stack, environments: &Environments, outage: Duration) -> Duration {
    consumers(stack)
        .filter_map(|(_, function, _)| {
            let backoff = backoff(environments.get(function)?).ok()?;
            Some(ride_out(&backoff, outage) * DEADLINE_OVER_OUTAGE)
        })
        .max()
        .unwrap_or(outage * DEADLINE_OVER_OUTAGE)
}

/// Every `(queue logical id, function logical id, function timeout)` of an SQS event source.
fn consumers(stack: &Stack) -> impl Iterator<Item = (&str, &str, Duration)> {
    stack.functions.iter().flat_map(|function| {
        function.events.iter().filter_map(move |event| match event {
            EventSource::Sqs(source) => Some((
                source.queue.as_str(),
                function.logical_id.as_str(),
                function.timeout,
            )),
            _ => None,
        })
    })
}

/// The margin a batch keeps before a deadline `timeout` away ([`ripple_kit::batch::BatchDeadline`]).
pub fn batch_margin(timeout: Duration) -> Duration {
    DEADLINE_MARGIN.min(timeout / 5)
}

/// Where the compressed stack (with the functions' `environments`) breaks a ratio: a consumer
/// queue's visibility timeout under six times its function's timeout, receives that an
/// `outage` can use up, a retention that a message's receives can outlast, or an order
/// `deadline` not above what the outage takes to ride out (the template's rule; its own
/// deadline is [`DEADLINE_OVER_OUTAGE`] times that).
pub fn problems(
    stack: &Stack,
    environments: &Environments,
    outage: Option<Duration>,
    deadline: Option<Duration>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (queue_id, function_id, timeout) in consumers(stack) {
        let Some(queue) = stack.queue(queue_id) else {
            continue;
        };
        let visibility = Duration::from_secs(u64::from(queue.visibility_timeout.unwrap_or(30)));
        if visibility < timeout * VISIBILITY_FACTOR {
            problems.push(format!(
                "{}: visibility timeout {:.3} s is under {VISIBILITY_FACTOR} × the {:.3} s timeout of {function_id}",
                queue.name,
                visibility.as_secs_f64(),
                timeout.as_secs_f64(),
            ));
        }
        let backoff = match environments.get(function_id).map(backoff) {
            Some(Ok(backoff)) => backoff,
            Some(Err(err)) => {
                problems.push(format!("{function_id}: {err}"));
                continue;
            }
            None => continue,
        };
        let Some(redrive) = &queue.redrive else {
            continue;
        };
        // SQS moves a message on the receive after maxReceiveCount.
        let moved_at = redrive.max_receive_count + 1;
        if let Some(outage) = outage
            && backoff.shortest_wait_before(moved_at) < outage
        {
            problems.push(format!(
                "{}: {} receives can be used up in {:.0} s, within the {:.0} s outage",
                queue.name,
                redrive.max_receive_count,
                backoff.shortest_wait_before(moved_at).as_secs_f64(),
                outage.as_secs_f64()
            ));
        }
        let longest = backoff.longest_wait_before(moved_at) + timeout * redrive.max_receive_count;
        let retention = Duration::from_secs(u64::from(
            queue
                .message_retention_period
                .unwrap_or(DEFAULT_RETENTION_SECONDS),
        ));
        if retention <= longest {
            problems.push(format!(
                "{}: a message may still be received after {:.0} s, beyond its {:.0} s retention",
                queue.name,
                longest.as_secs_f64(),
                retention.as_secs_f64()
            ));
        }
        if let (Some(outage), Some(deadline)) = (outage, deadline) {
            let needed = ride_out(&backoff, outage);
            if deadline <= needed {
                problems.push(format!(
                    "the {:.0} s order deadline is not above the {:.0} s a message of {} may take through the {:.0} s outage",
                    deadline.as_secs_f64(),
                    needed.as_secs_f64(),
                    queue.name,
                    outage.as_secs_f64()
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests;
