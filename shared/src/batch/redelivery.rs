//! Exponential redelivery backoff for failed SQS records.
//!
//! A record reported as a batch item failure comes back when its visibility timeout runs out:
//! by default the queue's fixed timeout, so a failing downstream is hammered at a constant rate
//! until `maxReceiveCount` sends the message to its DLQ. [`Redelivery::delay`] stretches the
//! timeout of each failed record with its `ApproximateReceiveCount` (`base`, `2·base`, `4·base`, …
//! up to `cap`), so a dependency that is down for minutes gets room to recover before the
//! message is dead-lettered. It is best effort: a record whose timeout cannot be changed simply
//! comes back at the queue's own timeout.
//!
//! The function needs `sqs:GetQueueUrl` and `sqs:ChangeMessageVisibility` on its queue.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;

use super::{BatchFailed, QueueKind, process_sqs};

/// SQS's longest visibility timeout: 12 hours.
pub const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// SQS's limit on entries in one `ChangeMessageVisibilityBatch`.
const MAX_VISIBILITY_BATCH: usize = 10;

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

/// The queue name and owner account in a queue ARN (`arn:aws:sqs:<region>:<account>:<name>`).
pub(crate) fn queue_of_arn(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.split(':');
    let (
        Some("arn"),
        Some(_partition),
        Some("sqs"),
        Some(_region),
        Some(account),
        Some(name),
        None,
    ) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    )
    else {
        return None;
    };
    (!name.is_empty()).then_some((name, account))
}

/// The records of `records` that `response` reports as failed, in their original order.
pub(crate) fn failed_records<'a>(
    records: &'a [SqsMessage],
    response: &SqsBatchResponse,
) -> Vec<&'a SqsMessage> {
    records
        .iter()
        .filter(|record| {
            response.batch_item_failures.iter().any(|failure| {
                Some(failure.item_identifier.as_str()) == record.message_id.as_deref()
            })
        })
        .collect()
}

/// A record whose visibility timeout was not changed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRedelivery {
    /// The record's message id.
    pub message_id: String,
    /// What went wrong.
    pub reason: String,
}

/// What [`Redelivery::delay`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedeliveryReport {
    /// Message ids whose timeout was changed, with the timeout given.
    pub delayed: Vec<(String, Duration)>,
    /// Records that keep the queue's own timeout.
    pub failed: Vec<FailedRedelivery>,
}

/// A failed record on its way to a new visibility timeout.
struct Pending {
    message_id: String,
    receipt_handle: String,
    timeout: Duration,
}

/// Changes the visibility timeout of failed records; keep one per execution environment (it
/// caches queue URLs).
#[derive(Debug)]
pub struct Redelivery {
    client: Client,
    backoff: RedeliveryBackoff,
    queue_urls: Mutex<HashMap<String, String>>,
}

impl Redelivery {
    /// Backoff `backoff` through `client`.
    pub fn new(client: Client, backoff: RedeliveryBackoff) -> Self {
        Redelivery {
            client,
            backoff,
            queue_urls: Mutex::new(HashMap::new()),
        }
    }

    /// The backoff in use.
    pub fn backoff(&self) -> &RedeliveryBackoff {
        &self.backoff
    }

    /// Gives each record a visibility timeout from its receive count. Never fails: what could not
    /// be changed is in the report (and logged), and those records return at the queue's timeout.
    pub async fn delay<'a>(
        &self,
        failed: impl IntoIterator<Item = &'a SqsMessage>,
    ) -> RedeliveryReport {
        let mut report = RedeliveryReport::default();
        // Grouped by queue, first-seen order kept; a batch normally has one queue.
        let mut queues: Vec<(String, Vec<Pending>)> = Vec::new();
        for record in failed {
            let message_id = record.message_id.clone().unwrap_or_default();
            let (Some(arn), Some(receipt)) = (&record.event_source_arn, &record.receipt_handle)
            else {
                report.failed.push(FailedRedelivery {
                    message_id,
                    reason: "record has no eventSourceARN or receiptHandle".into(),
                });
                continue;
            };
            let entry = Pending {
                message_id,
                receipt_handle: receipt.clone(),
                timeout: self.backoff.timeout_for(receive_count(record)),
            };
            match queues.iter_mut().find(|(queue, _)| queue == arn) {
                Some((_, entries)) => entries.push(entry),
                None => queues.push((arn.clone(), vec![entry])),
            }
        }
        for (arn, entries) in queues {
            let url = match self.queue_url(&arn).await {
                Ok(url) => url,
                Err(reason) => {
                    report
                        .failed
                        .extend(entries.into_iter().map(|pending| FailedRedelivery {
                            message_id: pending.message_id,
                            reason: reason.clone(),
                        }));
                    continue;
                }
            };
            for chunk in entries.chunks(MAX_VISIBILITY_BATCH) {
                self.change_visibility(&url, chunk, &mut report).await;
            }
        }
        for failure in &report.failed {
            tracing::warn!(message_id = %failure.message_id, reason = %failure.reason, "redelivery backoff not applied");
        }
        report
    }

    async fn queue_url(&self, arn: &str) -> Result<String, String> {
        if let Some(url) = self
            .queue_urls
            .lock()
            .ok()
            .and_then(|urls| urls.get(arn).cloned())
        {
            return Ok(url);
        }
        let (name, account) =
            queue_of_arn(arn).ok_or_else(|| format!("{arn:?} is not an SQS queue ARN"))?;
        let output = self
            .client
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|err| aws_sdk_sqs::error::DisplayErrorContext(&err).to_string())?;
        let url = output
            .queue_url()
            .ok_or_else(|| format!("GetQueueUrl returned no URL for {arn}"))?
            .to_owned();
        if let Ok(mut urls) = self.queue_urls.lock() {
            urls.insert(arn.to_owned(), url.clone());
        }
        Ok(url)
    }

    async fn change_visibility(&self, url: &str, chunk: &[Pending], report: &mut RedeliveryReport) {
        let fail_all = |report: &mut RedeliveryReport, reason: String| {
            report
                .failed
                .extend(chunk.iter().map(|pending| FailedRedelivery {
                    message_id: pending.message_id.clone(),
                    reason: reason.clone(),
                }));
        };
        // Entry ids are positions: message ids are not guaranteed to fit SQS's id alphabet.
        let entries: Result<Vec<_>, _> = chunk
            .iter()
            .enumerate()
            .map(|(i, pending)| {
                let seconds = i32::try_from(pending.timeout.as_secs()).unwrap_or(i32::MAX);
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&pending.receipt_handle)
                    .visibility_timeout(seconds)
                    .build()
            })
            .collect();
        let entries = match entries {
            Ok(entries) => entries,
            Err(err) => return fail_all(report, err.to_string()),
        };
        let sent = self
            .client
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await;
        match sent {
            Ok(output) => {
                for (i, pending) in chunk.iter().enumerate() {
                    let id = i.to_string();
                    match output.failed().iter().find(|f| f.id() == id) {
                        Some(failure) => report.failed.push(FailedRedelivery {
                            message_id: pending.message_id.clone(),
                            reason: format!(
                                "{}: {}",
                                failure.code(),
                                failure.message().unwrap_or_default()
                            ),
                        }),
                        None => report
                            .delayed
                            .push((pending.message_id.clone(), pending.timeout)),
                    }
                }
            }
            Err(err) => fail_all(
                report,
                aws_sdk_sqs::error::DisplayErrorContext(&err).to_string(),
            ),
        }
    }
}

/// [`process_sqs`], then [`Redelivery::delay`] on the records that failed (all of them when the
/// whole batch failed).
pub async fn process_sqs_with_backoff<F, Fut, E>(
    event: SqsEvent,
    kind: QueueKind,
    redelivery: &Redelivery,
    handler: F,
) -> Result<SqsBatchResponse, BatchFailed>
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let records = event.records.clone();
    let result = process_sqs(event, kind, handler).await;
    match &result {
        Ok(response) if !response.batch_item_failures.is_empty() => {
            redelivery.delay(failed_records(&records, response)).await;
        }
        Ok(_) => {}
        Err(_) => {
            redelivery.delay(&records).await;
        }
    }
    result
}

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
    fn receive_counts_and_queue_arns_are_read_from_the_record() {
        let mut record = SqsMessage::default();
        assert_eq!(receive_count(&record), 1);
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), "4".into());
        assert_eq!(receive_count(&record), 4);
        assert_eq!(
            queue_of_arn("arn:aws:sqs:eu-west-1:123456789012:ripple-inventory"),
            Some(("ripple-inventory", "123456789012"))
        );
        assert_eq!(queue_of_arn("arn:aws:sns:eu-west-1:1:topic"), None);
        assert_eq!(queue_of_arn("arn:aws:sqs:eu-west-1:1:"), None);
    }

    #[test]
    fn failed_records_follow_the_batch_response() {
        let record = |id: &str| {
            let mut m = SqsMessage::default();
            m.message_id = Some(id.into());
            m
        };
        let records = vec![record("a"), record("b"), record("c")];
        let mut response = SqsBatchResponse::default();
        response.set_failures(vec!["c".to_owned(), "a".to_owned()]);
        let failed: Vec<_> = failed_records(&records, &response)
            .iter()
            .map(|r| r.message_id.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(failed, vec!["a", "c"]);
    }
}

#[cfg(test)]
mod sdk_tests;
