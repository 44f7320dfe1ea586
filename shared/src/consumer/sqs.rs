//! [`SqsConsumer`]: a [`Consumer`] as the Lambda handler of an SQS event source mapping.

use std::collections::HashSet;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use tracing::Instrument;

use super::admission::{ReplayWindow, admit};
use super::{Consumer, Delivery, Handled};
use crate::batch::{BatchDeadline, QueueKind, process_records};
#[cfg(feature = "redelivery-sqs")]
use crate::batch::{Processed, Redelivery, RedeliveryBackoff};
use crate::envelope::{Envelope, EnvelopeError};
use crate::parse::{ParseError, envelope_from_sqs};
use crate::producers::Producers;
use crate::store::StoreError;
use crate::telemetry::{Metrics, error_chain, metrics_namespace};

/// Records of one standard-queue batch handled at once, unless set otherwise.
const DEFAULT_CONCURRENCY: usize = 4;

/// A consumer behind an SQS event source mapping (with `ReportBatchItemFailures`).
///
/// Before the consumer sees an event, it must be admitted: inside the [`ReplayWindow`] and, with
/// [`with_producers`](Self::with_producers), written by a producer the allowlist lets write it
/// (see [`admission`](super::admission)). A refused event fails like a poison message: it is
/// redelivered (at once, with a redelivery backoff: it can never pass), then dead-lettered, with
/// the reason logged and counted as `EventsRefused`.
///
/// Build it once per execution environment; [`handle`](Self::handle) serves every invocation.
/// With a [`Redelivery`](crate::batch::Redelivery) ([`with_redelivery`](Self::with_redelivery)),
/// every record that was not done backs off exponentially with its receive count, and a message
/// that can never be handled (not an envelope, or not an event the consumer can read) is made
/// visible again at once, so that it reaches its DLQ in seconds rather than after hours of
/// backoff.
pub struct SqsConsumer<C> {
    consumer: C,
    metrics: Metrics,
    concurrency: usize,
    producers: Option<Producers>,
    window: ReplayWindow,
    clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
    #[cfg(feature = "redelivery-sqs")]
    redelivery: Option<Redelivery>,
}

impl<C: Consumer> SqsConsumer<C> {
    /// `consumer` behind a queue: 4 records at once on a standard queue, one at a time in
    /// order on a FIFO one; metrics in the [namespace](crate::telemetry::metrics_namespace) of
    /// the environment, with the service dimension `C::NAME`; no redelivery backoff.
    pub fn new(consumer: C) -> Self {
        SqsConsumer {
            metrics: Metrics::new(&metrics_namespace(), C::NAME),
            consumer,
            concurrency: DEFAULT_CONCURRENCY,
            producers: None,
            window: ReplayWindow::default(),
            clock: Arc::new(SystemTime::now),
            #[cfg(feature = "redelivery-sqs")]
            redelivery: None,
        }
    }

    /// Acts only on events whose `source` may write them by `producers` (the system's allowlist).
    pub fn with_producers(mut self, producers: Producers) -> Self {
        self.producers = Some(producers);
        self
    }

    /// Reads the time the replay window is measured from with `clock` (for tests).
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Handles up to `concurrency` records of a standard-queue batch at once (at least one).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Puts the metrics in the CloudWatch namespace `namespace`.
    pub fn metrics_namespace(mut self, namespace: &str) -> Self {
        self.metrics = Metrics::new(namespace, C::NAME);
        self
    }

    /// Changes the visibility timeout of every record that was not done through `redelivery`
    /// (the function needs `sqs:GetQueueUrl` and `sqs:ChangeMessageVisibility` on its queue).
    #[cfg(feature = "redelivery-sqs")]
    pub fn with_redelivery(mut self, redelivery: Redelivery) -> Self {
        self.redelivery = Some(redelivery);
        self
    }

    /// [`with_redelivery`](Self::with_redelivery) with `backoff`, through an SQS client of `aws`.
    #[cfg(feature = "redelivery-sqs")]
    pub fn with_backoff(self, backoff: RedeliveryBackoff, aws: &aws_config::SdkConfig) -> Self {
        self.with_redelivery(Redelivery::new(crate::requests::sqs_client(aws), backoff))
    }

    /// The consumer.
    pub fn consumer(&self) -> &C {
        &self.consumer
    }

    /// Serves one invocation: the partial batch response names the records that failed, ran out
    /// of time or never started (see [`BatchDeadline`]). A batch in which no record was done is
    /// an error, so Lambda retries it whole and backs off.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let deadline = event.context.deadline();
        let cut_offs = BatchDeadline::of_invocation(deadline);
        let kind = QueueKind::detect(&event.payload, self.concurrency);
        let unusable = Mutex::new(HashSet::new());
        #[cfg(feature = "redelivery-sqs")]
        let records = self
            .redelivery
            .as_ref()
            .map(|_| event.payload.records.clone());
        let processed = process_records(event.payload.records, kind, &cut_offs, |message| {
            let unusable = &unusable;
            async move {
                self.handle_message(&message, deadline)
                    .await
                    .map(|_| ())
                    .map_err(|err| {
                        if is_unusable(&err)
                            && let Ok(mut ids) = unusable.lock()
                        {
                            ids.insert(message.message_id.clone().unwrap_or_default());
                        }
                        error_chain(&err)
                    })
            }
        })
        .await;
        #[cfg(feature = "redelivery-sqs")]
        if let (Some(redelivery), Some(records)) = (&self.redelivery, records) {
            let unusable = unusable.into_inner().unwrap_or_default();
            redeliver(redelivery, &records, &processed, &unusable).await;
        }
        self.metrics.flush();
        Ok(processed.response()?)
    }

    /// Handles one record: parses its event, consumes it, counts what that came to.
    pub async fn handle_message(
        &self,
        message: &SqsMessage,
        deadline: SystemTime,
    ) -> Result<Handled, C::Error> {
        let event = match envelope_from_sqs(message) {
            Ok(event) => event,
            Err(err) => {
                self.metrics.count("ConsumerFailures");
                return Err(err.into());
            }
        };
        if let Err(refused) = admit(
            &event,
            self.producers.as_ref(),
            &self.window,
            (self.clock)(),
        ) {
            tracing::error!(event_id = %event.id, source = %event.source, r#type = %event.event_type, aggregate_type = %event.aggregatetype, time = %event.time, reason = %error_chain(&refused), "event refused; not acted on");
            self.metrics.count("EventsRefused");
            self.metrics.count("ConsumerFailures");
            return Err(refused.into());
        }
        let span = tracing::info_span!("event", event_id = %event.id, r#type = %event.event_type, correlation_id = %event.correlationid);
        let delivery = Delivery {
            event: &event,
            deadline,
            metrics: &self.metrics,
        };
        // Boxed: the consumer's future nests the SDK's, and without this break a `main` over
        // the whole chain outgrows the compiler's default type-layout depth.
        let consumed: Pin<Box<dyn Future<Output = Result<Handled, C::Error>> + Send + '_>> =
            Box::pin(self.consumer.consume(&delivery));
        let outcome = consumed.instrument(span).await;
        self.record(&event, outcome)
    }

    /// Counts and logs what handling `event` came to. An error that is the event store refusing
    /// a taken dedupe marker (anywhere in its source chain) is a duplicate, not a failure.
    fn record(
        &self,
        event: &Envelope,
        outcome: Result<Handled, C::Error>,
    ) -> Result<Handled, C::Error> {
        let outcome = match outcome {
            Err(err) if is_marker_taken(&err) => Ok(Handled::Duplicate),
            other => other,
        };
        match &outcome {
            Ok(Handled::Applied(what)) => {
                self.metrics.count("EventsConsumed");
                tracing::info!(event_id = %event.id, outcome = what, "applied");
            }
            Ok(Handled::Duplicate) => {
                self.metrics.count("DuplicatesSkipped");
                tracing::info!(event_id = %event.id, "already handled; skipped");
            }
            Ok(Handled::Ignored) => {
                tracing::debug!(event_id = %event.id, "nothing to do");
            }
            Err(_) => self.metrics.count("ConsumerFailures"),
        }
        outcome
    }
}

/// Backs off every record that was not done, and releases at once those that can never be.
#[cfg(feature = "redelivery-sqs")]
async fn redeliver(
    redelivery: &Redelivery,
    records: &[SqsMessage],
    processed: &Processed,
    unusable: &HashSet<String>,
) {
    let not_done: HashSet<&str> = processed
        .unfinished
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    let (release, delay): (Vec<&SqsMessage>, Vec<&SqsMessage>) = records
        .iter()
        .filter(|r| not_done.contains(r.message_id.as_deref().unwrap_or_default()))
        .partition(|r| unusable.contains(r.message_id.as_deref().unwrap_or_default()));
    if !release.is_empty() {
        redelivery.release(release).await;
    }
    if !delay.is_empty() {
        redelivery.delay(delay).await;
    }
}

/// True when `err`, or one of its sources, is what `found` looks for.
fn in_chain(
    err: &(dyn StdError + 'static),
    found: impl Fn(&(dyn StdError + 'static)) -> bool,
) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if found(err) {
            return true;
        }
        next = err.source();
    }
    false
}

/// True when `err`, or one of its sources, is the event store refusing a taken dedupe marker.
fn is_marker_taken(err: &(dyn StdError + 'static)) -> bool {
    in_chain(err, |e| {
        matches!(
            e.downcast_ref::<StoreError>(),
            Some(StoreError::Duplicate { .. })
        )
    })
}

/// True when `err` says the message itself is unusable, however often it comes back: it is not
/// an envelope, or not an event the consumer can read ([`ParseError`] or [`EnvelopeError`]
/// anywhere in the chain).
fn is_unusable(err: &(dyn StdError + 'static)) -> bool {
    in_chain(err, |e| e.is::<ParseError>() || e.is::<EnvelopeError>())
}

#[cfg(test)]
mod tests;
