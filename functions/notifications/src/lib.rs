//! `notifications`: tells the customer how their order ended, once per outcome.
//!
//! `order.confirmed` / `order.cancelled` → one readable message (cancellations say why) to the
//! notifications topic. Sending is a side effect outside the event store, so it runs under the
//! idempotency utility ([`ripple_kit::idempotency`]) with the key `notifications` + order id + outcome:
//! a redelivered event finds the completed record and sends nothing. The one window left is a
//! send that succeeded just before the function died without recording it; the record then stays
//! in progress until the invocation's deadline and the redelivery after that sends again (at
//! least once, never lost).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod notifier;

use std::time::SystemTime;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use domain::order::OrderEvent;
use lambda_runtime::{Error, LambdaEvent};
use ripple_kit::consumer::handle_batch;
use ripple_kit::envelope::EnvelopeError;
use ripple_kit::idempotency::{
    DynamoIdempotencyStore, Idempotency, IdempotencyError, IdempotencyStore,
};
use ripple_kit::parse::{ParseError, envelope_from_sqs};
use ripple_kit::telemetry::Metrics;
use serde_json::json;

pub use notifier::{
    Delivery, Notification, Notifier, NotifyError, RecordingNotifier, SnsNotifier, compose,
};

/// The service name in metrics.
pub const CONSUMER: &str = "notifications";
/// Idempotency name of sent notifications (the key is this + `#` + a hash of order id and outcome).
pub const NOTIFY_KEY: &str = "notifications";
/// Records of one standard-queue batch handled at once.
const CONCURRENCY: usize = 4;

ripple_kit::settings! {
    /// Settings, from the variables template.yaml gives this function.
    pub struct Config {
        /// The topic customer messages are published to.
        topic_arn: "NOTIFICATIONS_TOPIC_ARN",
        /// The idempotency table guarding sends.
        idempotency_table: "IDEMPOTENCY_TABLE",
    }
}

/// Why a message could not be handled (it is retried, then dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum NotificationsError {
    /// The message is not an event envelope.
    #[error("unreadable message")]
    Parse(#[from] ParseError),
    /// The envelope is not an order event.
    #[error("unusable event")]
    Event(#[from] EnvelopeError),
    /// Sending failed, is running elsewhere, or its record is unusable.
    #[error("sending the notification")]
    Send(#[from] IdempotencyError<NotifyError>),
}

/// What handling one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The customer message was sent.
    Sent,
    /// It was sent before; nothing was sent now.
    Duplicate,
    /// Not an order outcome.
    Ignored,
}

/// The queue handler over a notifier and an idempotency store.
pub struct Handler<N = SnsNotifier, I = DynamoIdempotencyStore> {
    notifier: N,
    sends: Idempotency<I>,
    metrics: Metrics,
}

impl Handler {
    /// The handler publishing to the topic and recording sends in the table named in `config`.
    pub fn new(config: Config, aws: &aws_config::SdkConfig) -> Self {
        Self::with_ports(
            SnsNotifier::new(aws_sdk_sns::Client::new(aws), config.topic_arn),
            DynamoIdempotencyStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.idempotency_table,
            ),
        )
    }
}

impl<N: Notifier, I: IdempotencyStore> Handler<N, I> {
    /// The handler over any adapters (tests pass the recording notifier and an in-memory store).
    pub fn with_ports(notifier: N, idempotency: I) -> Self {
        Handler {
            notifier,
            sends: Idempotency::for_consumer(idempotency, NOTIFY_KEY),
            metrics: Metrics::new("Ripple", CONSUMER),
        }
    }

    /// The notifier messages go to.
    pub fn notifier(&self) -> &N {
        &self.notifier
    }

    /// Handles one queue message; `deadline` is the invocation's (it bounds how long an
    /// interrupted send blocks its redelivery).
    pub async fn handle_message(
        &self,
        message: &SqsMessage,
        deadline: SystemTime,
    ) -> Result<Outcome, NotificationsError> {
        let source = envelope_from_sqs(message)?;
        let event: OrderEvent = source.decode()?;
        let Some(notification) = compose(&event) else {
            return Ok(Outcome::Ignored);
        };
        let key = json!(format!(
            "{}#{}",
            notification.order_id, notification.outcome
        ));
        let sent = self
            .sends
            .execute(&key, &json!(notification), deadline, || {
                self.notifier.notify(&notification)
            })
            .await?;
        if sent.replayed {
            self.metrics.count("DuplicatesSkipped");
            tracing::info!(event_id = %source.id, order_id = %notification.order_id, "already notified; skipped");
            Ok(Outcome::Duplicate)
        } else {
            self.metrics.count("NotificationsSent");
            tracing::info!(event_id = %source.id, order_id = %notification.order_id, outcome = %notification.outcome, message_id = %sent.value.message_id, "customer notified");
            Ok(Outcome::Sent)
        }
    }

    /// Handles a batch from the queue; failed records are reported alone.
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
        let deadline = event.context.deadline();
        let handle_message = |message| async move { self.handle_message(&message, deadline).await };
        handle_batch(event.payload, CONCURRENCY, &self.metrics, handle_message).await
    }
}

#[cfg(test)]
mod tests;
