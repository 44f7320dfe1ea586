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
//! The timeouts are [`RedeliveryBackoff`]'s; [`Redelivery::release`] is the other way round, for
//! a record that can never succeed: visible again at once, so that it reaches its DLQ quickly.
//!
//! The function needs `sqs:GetQueueUrl` and `sqs:ChangeMessageVisibility` on its queue.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;

use super::{BatchFailed, QueueKind, RedeliveryBackoff, process_sqs, receive_count};

/// SQS's limit on entries in one `ChangeMessageVisibilityBatch`.
const MAX_VISIBILITY_BATCH: usize = 10;

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
        let timed = failed
            .into_iter()
            .map(|record| (record, self.backoff.timeout_for(receive_count(record))));
        self.change_all(timed).await
    }

    /// Makes each record visible again at once (timeout 0): for a record that can never succeed,
    /// so that it uses up its receives and reaches its DLQ in seconds instead of hours of
    /// backoff. Never fails, like [`delay`](Self::delay).
    pub async fn release<'a>(
        &self,
        records: impl IntoIterator<Item = &'a SqsMessage>,
    ) -> RedeliveryReport {
        let timed = records.into_iter().map(|record| (record, Duration::ZERO));
        self.change_all(timed).await
    }

    async fn change_all<'a>(
        &self,
        records: impl Iterator<Item = (&'a SqsMessage, Duration)>,
    ) -> RedeliveryReport {
        let mut report = RedeliveryReport::default();
        // Grouped by queue, first-seen order kept; a batch normally has one queue.
        let mut queues: Vec<(String, Vec<Pending>)> = Vec::new();
        for (record, timeout) in records {
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
                timeout,
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
            tracing::warn!(message_id = %failure.message_id, reason = %failure.reason, "visibility timeout not changed; the record comes back at the queue's own timeout");
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

/// [`process_sqs`], then [`Redelivery::delay`] on the records that were not done: those that
/// failed, were abandoned at the deadline or never started (all of them when the whole batch
/// failed). A record that never ran still used up a receive, so it backs off like a failure:
/// released at once, it would be received again and again while a slow dependency keeps the
/// batch from reaching it, and end in its DLQ within minutes.
pub async fn process_sqs_with_backoff<F, Fut, E>(
    event: SqsEvent,
    kind: QueueKind,
    deadline: SystemTime,
    redelivery: &Redelivery,
    handler: F,
) -> Result<SqsBatchResponse, BatchFailed>
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let records = event.records.clone();
    let result = process_sqs(event, kind, deadline, handler).await;
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

    #[test]
    fn queue_arns_are_read_for_their_name_and_account() {
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
