//! Time compression: every duration the template and the SDK set, divided by one factor, so that
//! redeliveries, timeouts and backoffs that take minutes on AWS take seconds here.
//!
//! One factor for all of them keeps every ratio the template reasons with: a visibility timeout
//! stays at least six times its function's timeout, a retention stays longer than
//! `maxReceiveCount` redeliveries. Queue attributes are whole seconds, so they are rounded up
//! (which only widens those margins); retentions keep SQS's 60-second floor. Durations the template
//! hands a function as variables named `*_SECONDS` (the redelivery backoff, the sweeper's settle
//! time) are compressed too, and so are schedules (the sweeper's rate). A batch's deadline margin
//! is a fifth of its function's timeout, so it follows the timeout. [`super::ratios`] checks the
//! compressed stack and the soak refuses to run a stack that breaks them.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_smithy_types::retry::RetryConfig;
use serde::Serialize;

use super::ratios::batch_margin;
use crate::provision::Deployment;
use crate::template::{EventSource, Stack};

/// SQS's shortest retention.
const MIN_RETENTION_SECONDS: u32 = 60;
/// SQS's longest retention (14 days).
const MAX_RETENTION_SECONDS: u32 = 1_209_600;

/// Durations divided by `factor` (1: real time).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimeScale {
    /// The divisor.
    pub factor: f64,
}

/// One compressed figure, for the report: what the template says and what the soak runs with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compressed {
    /// Which resource's, e.g. `ripple-soak-x-inventory`.
    pub resource: String,
    /// What it is, e.g. `visibility timeout`.
    pub kind: String,
    /// The template's value, in seconds.
    pub template_s: f64,
    /// The soak's, in seconds.
    pub soak_s: f64,
}

impl TimeScale {
    /// Compression by `factor` (at least 1).
    pub fn new(factor: f64) -> Self {
        TimeScale {
            factor: if factor.is_finite() {
                factor.max(1.0)
            } else {
                1.0
            },
        }
    }

    /// `duration`, compressed, rounded down to the nanosecond (so a compressed timeout never
    /// outgrows its compressed, rounded-up visibility timeout).
    pub fn of(&self, duration: Duration) -> Duration {
        let nanos = (duration.as_nanos() as f64 / self.factor).floor();
        Duration::from_nanos(nanos as u64)
    }

    /// Whole seconds, compressed and rounded up (at least 1 when there was any).
    fn seconds(&self, seconds: u32) -> u32 {
        if seconds == 0 {
            return 0;
        }
        let compressed = (f64::from(seconds) / self.factor).ceil();
        (compressed as u32).max(1)
    }

    /// Compresses the queues' timeouts, retentions and delays and the functions' timeouts of
    /// `stack` before it is provisioned; returns what changed.
    pub fn compress_stack(&self, stack: &mut Stack) -> Vec<Compressed> {
        let mut changed = Vec::new();
        for queue in &mut stack.queues {
            let mut compress = |what: &str, value: &mut Option<u32>, floor: u32, ceiling: u32| {
                if let Some(seconds) = value.as_mut() {
                    let before = *seconds;
                    *seconds = self.seconds(before).clamp(floor.min(before), ceiling);
                    changed.push(Compressed {
                        resource: queue.name.clone(),
                        kind: what.to_owned(),
                        template_s: f64::from(before),
                        soak_s: f64::from(*seconds),
                    });
                }
            };
            compress(
                "visibility timeout",
                &mut queue.visibility_timeout,
                0,
                u32::MAX,
            );
            compress(
                "retention",
                &mut queue.message_retention_period,
                MIN_RETENTION_SECONDS,
                MAX_RETENTION_SECONDS,
            );
            compress("delay", &mut queue.delay_seconds, 0, u32::MAX);
        }
        for function in &mut stack.functions {
            let before = function.timeout;
            function.timeout = self.of(before);
            let mut record = |kind: &str, before: Duration, after: Duration| {
                changed.push(Compressed {
                    resource: function.name.clone(),
                    kind: kind.to_owned(),
                    template_s: before.as_secs_f64(),
                    soak_s: after.as_secs_f64(),
                });
            };
            record("function timeout", before, function.timeout);
            record(
                "batch deadline margin",
                batch_margin(before),
                batch_margin(function.timeout),
            );
            for event in &mut function.events {
                if let EventSource::Schedule(schedule) = event {
                    let before = schedule.every;
                    schedule.every = self.of(before);
                    record("schedule rate", before, schedule.every);
                }
            }
        }
        changed
    }

    /// Compresses the `*_SECONDS` variables of every function of `deployment` (after
    /// provisioning, when they are resolved); returns what changed.
    pub fn compress_environment(&self, deployment: &mut Deployment) -> Vec<Compressed> {
        deployment
            .functions
            .values_mut()
            .flat_map(|function| self.compress_variables(&function.name, &mut function.environment))
            .collect()
    }

    /// Compresses the `*_SECONDS` variables of `variables`, a function's (`resource`).
    pub fn compress_variables(
        &self,
        resource: &str,
        variables: &mut BTreeMap<String, String>,
    ) -> Vec<Compressed> {
        let mut changed = Vec::new();
        for (name, value) in variables {
            let Some(seconds) = name
                .ends_with("_SECONDS")
                .then(|| value.trim().parse::<u32>().ok())
                .flatten()
            else {
                continue;
            };
            let compressed = self.seconds(seconds);
            changed.push(Compressed {
                resource: resource.to_owned(),
                kind: name.clone(),
                template_s: f64::from(seconds),
                soak_s: f64::from(compressed),
            });
            *value = compressed.to_string();
        }
        changed
    }

    /// What compressing `base` does to the SDK's backoffs, for the report.
    pub fn retry_figures(&self, base: Option<&RetryConfig>) -> Vec<Compressed> {
        let base = base.cloned().unwrap_or_else(RetryConfig::standard);
        let compressed = self.retry_config(Some(&base));
        [
            (
                "SDK initial backoff",
                base.initial_backoff(),
                compressed.initial_backoff(),
            ),
            (
                "SDK max backoff",
                base.max_backoff(),
                compressed.max_backoff(),
            ),
        ]
        .into_iter()
        .map(|(kind, before, after)| Compressed {
            resource: "every function".to_owned(),
            kind: kind.to_owned(),
            template_s: before.as_secs_f64(),
            soak_s: after.as_secs_f64(),
        })
        .collect()
    }

    /// The SDK's retry configuration with its backoffs compressed (attempts unchanged).
    pub fn retry_config(&self, base: Option<&RetryConfig>) -> RetryConfig {
        let base = base.cloned().unwrap_or_else(RetryConfig::standard);
        let (initial, max) = (base.initial_backoff(), base.max_backoff());
        base.with_initial_backoff(self.of(initial))
            .with_max_backoff(self.of(max))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::template::{PseudoParameters, Template};

    /// The project's template as one stack.
    pub(crate) fn stack() -> Stack {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
        Template::from_file(path)
            .unwrap()
            .stack(PseudoParameters::new("soak-t", "us-east-1"))
            .unwrap()
    }

    #[test]
    fn timeouts_divide_and_queue_seconds_round_up_within_sqs_limits() {
        let mut stack = stack();
        let inventory = stack.queue("InventoryQueue").unwrap().clone();
        TimeScale::new(7.0).compress_stack(&mut stack);
        let queue = stack.queue("InventoryQueue").unwrap();
        assert_eq!(
            queue.visibility_timeout,
            Some(9),
            "60 / 7 = 8.6, rounded up"
        );
        assert_eq!(
            queue.message_retention_period,
            Some(345_600_u32.div_ceil(7)),
            "{inventory:?}"
        );
        let function = stack.function("InventoryFunction").unwrap();
        assert_eq!(function.timeout, Duration::from_nanos(1_428_571_428));
        let mut tiny = stack.clone();
        TimeScale::new(1e7).compress_stack(&mut tiny);
        let queue = tiny.queue("InventoryQueue").unwrap();
        assert_eq!(queue.message_retention_period, Some(MIN_RETENTION_SECONDS));
        assert_eq!(queue.visibility_timeout, Some(1));
    }

    #[test]
    fn schedules_batch_margins_and_seconds_variables_are_compressed_by_the_one_factor() {
        let mut stack = stack();
        let changed = TimeScale::new(4.0).compress_stack(&mut stack);
        let sweeper = stack.function("SweeperFunction").unwrap();
        let every = sweeper.events.iter().find_map(|e| match e {
            EventSource::Schedule(s) => Some(s.every),
            _ => None,
        });
        assert_eq!(every, Some(Duration::from_secs(75)), "rate(5 minutes) / 4");
        let margin = changed
            .iter()
            .find(|c| c.resource.contains("nventory") && c.kind == "batch deadline margin")
            .unwrap();
        assert_eq!((margin.template_s, margin.soak_s), (2.0, 0.5));
        let mut variables = BTreeMap::from([
            ("REDELIVERY_BASE_SECONDS".to_owned(), "30".to_owned()),
            ("ORDER_DEADLINE_SECONDS".to_owned(), "7200".to_owned()),
            ("TOPIC_ARN".to_owned(), "arn:aws:sns:x:1:t".to_owned()),
        ]);
        let changed = TimeScale::new(4.0).compress_variables("f", &mut variables);
        assert_eq!(changed.len(), 2);
        assert_eq!(variables["REDELIVERY_BASE_SECONDS"], "8", "7.5 rounded up");
        assert_eq!(variables["ORDER_DEADLINE_SECONDS"], "1800");
        assert_eq!(variables["TOPIC_ARN"], "arn:aws:sns:x:1:t");
    }

    #[test]
    fn sdk_backoffs_are_compressed_and_attempts_kept() {
        let scaled = TimeScale::new(10.0).retry_config(None);
        assert_eq!(scaled.initial_backoff(), Duration::from_millis(100));
        assert_eq!(scaled.max_backoff(), Duration::from_secs(2));
        assert_eq!(
            scaled.max_attempts(),
            RetryConfig::standard().max_attempts()
        );
        assert_eq!(
            TimeScale::new(0.1).factor,
            1.0,
            "never slower than real time"
        );
    }
}
