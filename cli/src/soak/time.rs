//! Time compression: every duration the template and the SDK set, divided by one factor, so that
//! redeliveries, timeouts and backoffs that take minutes on AWS take seconds here.
//!
//! One factor for all of them keeps every ratio the template reasons with: a visibility timeout
//! stays at least six times its function's timeout, a retention stays longer than
//! `maxReceiveCount` redeliveries. Queue attributes are whole seconds, so they are rounded up
//! (which only widens those margins); retentions keep SQS's 60-second floor. Durations the template
//! hands a function as variables named `*_SECONDS` are compressed too. [`ratio_problems`] checks the
//! compressed stack and the soak refuses to run a stack that breaks them.

use std::time::Duration;

use aws_smithy_types::retry::RetryConfig;
use serde::Serialize;

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
            changed.push(Compressed {
                resource: function.name.clone(),
                kind: "function timeout".to_owned(),
                template_s: before.as_secs_f64(),
                soak_s: function.timeout.as_secs_f64(),
            });
        }
        changed
    }

    /// Compresses the `*_SECONDS` variables of every function of `deployment` (after
    /// provisioning, when they are resolved); returns what changed.
    pub fn compress_environment(&self, deployment: &mut Deployment) -> Vec<Compressed> {
        let mut changed = Vec::new();
        for function in deployment.functions.values_mut() {
            for (name, value) in &mut function.environment {
                let Some(seconds) = name
                    .ends_with("_SECONDS")
                    .then(|| value.trim().parse::<u32>().ok())
                    .flatten()
                else {
                    continue;
                };
                let compressed = self.seconds(seconds);
                changed.push(Compressed {
                    resource: function.name.clone(),
                    kind: name.clone(),
                    template_s: f64::from(seconds),
                    soak_s: f64::from(compressed),
                });
                *value = compressed.to_string();
            }
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

/// Where the compressed stack breaks a ratio the template relies on: a consumed queue whose
/// visibility timeout is under six times its function's timeout, or whose retention does not
/// outlast `maxReceiveCount` visibility timeouts.
pub fn ratio_problems(stack: &Stack) -> Vec<String> {
    let mut problems = Vec::new();
    for function in &stack.functions {
        for event in &function.events {
            let EventSource::Sqs(source) = event else {
                continue;
            };
            let Some(queue) = stack.queue(&source.queue) else {
                continue;
            };
            let visibility = Duration::from_secs(u64::from(queue.visibility_timeout.unwrap_or(30)));
            if visibility < function.timeout * 6 {
                problems.push(format!(
                    "{}: visibility timeout {:.3} s is under 6 × the {:.3} s timeout of {}",
                    queue.name,
                    visibility.as_secs_f64(),
                    function.timeout.as_secs_f64(),
                    function.name
                ));
            }
            let retention = u64::from(queue.message_retention_period.unwrap_or(345_600));
            if let Some(redrive) = &queue.redrive {
                let redeliveries = u64::from(redrive.max_receive_count) * visibility.as_secs();
                if retention <= redeliveries {
                    problems.push(format!(
                        "{}: retention {retention} s does not outlast {} receives of {} s",
                        queue.name,
                        redrive.max_receive_count,
                        visibility.as_secs()
                    ));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{PseudoParameters, Template};

    fn stack() -> Stack {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
        Template::from_file(path)
            .unwrap()
            .stack(PseudoParameters::new("soak-t", "us-east-1"))
            .unwrap()
    }

    #[test]
    fn compression_keeps_every_ratio_of_the_template() {
        for factor in [1.0, 7.0, 10.0, 20.0, 60.0] {
            let mut stack = stack();
            assert!(ratio_problems(&stack).is_empty(), "the template itself");
            let changed = TimeScale::new(factor).compress_stack(&mut stack);
            assert!(!changed.is_empty());
            assert_eq!(
                ratio_problems(&stack),
                Vec::<String>::new(),
                "factor {factor}"
            );
        }
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
    fn a_visibility_timeout_too_short_for_its_function_is_reported() {
        let mut stack = stack();
        for queue in &mut stack.queues {
            queue.visibility_timeout = Some(30);
        }
        let problems = ratio_problems(&stack);
        assert!(
            problems.iter().any(|p| p.contains("under 6 ×")),
            "{problems:?}"
        );
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
