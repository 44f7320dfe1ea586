//! [`SqsConsumer`]: a [`Consumer`] as the Lambda handler of an SQS event source mapping.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use tracing::Instrument;

use super::admission::{ReplayWindow, admit};
use super::{Consumer, Delivery, Handled};
use crate::batch::{QueueKind, process_sqs};
use crate::envelope::Envelope;
use crate::parse::envelope_from_sqs;
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
/// redelivered, then dead-lettered, with the reason logged and counted as `EventsRefused`.
///
/// Build it once per execution environment; [`handle`](Self::handle) serves every invocation.
pub struct SqsConsumer<C> {
    consumer: C,
    metrics: Metrics,
    concurrency: usize,
    producers: Option<Producers>,
    window: ReplayWindow,
    clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl<C: Consumer> SqsConsumer<C> {
    /// `consumer` behind a queue: 4 records at once on a standard queue, one at a time in
    /// order on a FIFO one; metrics in the [namespace](crate::telemetry::metrics_namespace) of
    /// the environment, with the service dimension `C::NAME`.
    pub fn new(consumer: C) -> Self {
        SqsConsumer {
            metrics: Metrics::new(&metrics_namespace(), C::NAME),
            consumer,
            concurrency: DEFAULT_CONCURRENCY,
            producers: None,
            window: ReplayWindow::default(),
            clock: Arc::new(SystemTime::now),
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

    /// The consumer.
    pub fn consumer(&self) -> &C {
        &self.consumer
    }

    /// Serves one invocation: the partial batch response names the records that failed. A batch
    /// in which every record failed is an error, so Lambda retries it whole and backs off.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let deadline = event.context.deadline();
        let kind = QueueKind::detect(&event.payload, self.concurrency);
        let response = process_sqs(event.payload, kind, |message| async move {
            self.handle_message(&message, deadline)
                .await
                .map(|_| ())
                .map_err(|err| error_chain(&err))
        })
        .await;
        self.metrics.flush();
        Ok(response?)
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

/// True when `err`, or one of its sources, is the event store refusing a taken dedupe marker.
fn is_marker_taken(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(StoreError::Duplicate { .. }) = err.downcast_ref::<StoreError>() {
            return true;
        }
        next = err.source();
    }
    false
}

#[cfg(test)]
mod tests;
