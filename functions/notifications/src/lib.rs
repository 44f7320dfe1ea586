//! `notifications`: tells the customer how their order ended, once per outcome.
//!
//! `order.confirmed` / `order.cancelled` → one readable message (cancellations say why) to the
//! notifications topic. Sending is a side effect outside the event store, so it runs under the
//! idempotency utility ([`ripple_kit::idempotency`]) with the key `notifications` + order id + outcome:
//! a redelivered event finds the completed record and sends nothing.
//!
//! A send whose run died before recording it is sent again once its claim expires, with the same
//! identity: every message carries its order id and outcome (`order_id`, `type`), which is what a
//! channel deduplicates on, the way payments relies on the gateway's idempotency key. Sending at
//! most once instead would lose messages and still not prevent copies: a publish whose answer
//! was lost is retried by the SDK, and a run cut during its publish cannot tell whether it went
//! out. A subscription that cannot deduplicate (plain e-mail) shows such a copy, rarely; a lost
//! "your order is confirmed" is worse. A send that failed is released and retried as usual.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod notifier;

use domain::order::Order;
use ripple_kit::Aggregate;
use ripple_kit::batch::RedeliveryBackoff;
use ripple_kit::config::{ConfigError, Env};
use ripple_kit::consumer::{Delivery, Handled};
use ripple_kit::envelope::EnvelopeError;
use ripple_kit::idempotency::{
    DynamoIdempotencyStore, Idempotency, IdempotencyError, IdempotencyStore,
};
use ripple_kit::{Consumer, ConsumerError, SqsConsumer};
use serde_json::json;

pub use notifier::{
    Notification, Notifier, NotifyError, RecordingNotifier, Sent, SnsNotifier, compose,
};

/// Idempotency name of sent notifications (the key is this + `#` + a hash of order id and outcome).
pub const NOTIFY_KEY: &str = "notifications";

/// Settings, from the variables template.yaml gives this function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The topic customer messages are published to (`NOTIFICATIONS_TOPIC_ARN`).
    pub topic_arn: String,
    /// The idempotency table guarding sends (`IDEMPOTENCY_TABLE`).
    pub idempotency_table: String,
    /// How failed messages back off (`REDELIVERY_BASE_SECONDS`, `REDELIVERY_CAP_SECONDS`).
    pub redelivery: RedeliveryBackoff,
}

impl Config {
    /// From any lookup: `ripple_kit::config::process_env` in Lambda, the template's variables in
    /// the local runner.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        Ok(Config {
            topic_arn: env.required("NOTIFICATIONS_TOPIC_ARN")?,
            idempotency_table: env.required("IDEMPOTENCY_TABLE")?,
            redelivery: RedeliveryBackoff::from_env(&env)?,
        })
    }
}

/// What notifying fails with: sending failed, is running elsewhere, or its record is unusable.
pub type NotificationsError = ConsumerError<IdempotencyError<NotifyError>>;

/// The notifications function: [`Notifications`] behind its queue.
pub type Handler<N = SnsNotifier, I = DynamoIdempotencyStore> = SqsConsumer<Notifications<N, I>>;

/// The handler publishing to the topic and recording sends in the table named in `config`.
pub fn handler(config: Config, aws: &aws_config::SdkConfig) -> Handler {
    handler_with(
        SnsNotifier::new(ripple_kit::requests::sns_client(aws), config.topic_arn),
        DynamoIdempotencyStore::new(
            ripple_kit::requests::dynamodb_client(aws),
            config.idempotency_table,
        ),
    )
    .with_backoff(config.redelivery, aws)
}

/// The handler over any adapters (tests pass the recording notifier and an in-memory store).
pub fn handler_with<N: Notifier, I: IdempotencyStore>(
    notifier: N,
    idempotency: I,
) -> Handler<N, I> {
    SqsConsumer::new(Notifications::new(notifier, idempotency)).with_producers(domain::producers())
}

/// Sends one customer message per order outcome.
pub struct Notifications<N, I> {
    notifier: N,
    sends: Idempotency<I>,
}

impl<N: Notifier, I: IdempotencyStore> Notifications<N, I> {
    /// Notifications through `notifier`, each send recorded in `idempotency`.
    pub fn new(notifier: N, idempotency: I) -> Self {
        Notifications {
            notifier,
            sends: Idempotency::for_consumer(idempotency, NOTIFY_KEY),
        }
    }

    /// Reads the time its records expire by from `clock` (for tests of a send whose run died).
    pub fn with_clock(
        mut self,
        clock: impl Fn() -> std::time::SystemTime + Send + Sync + 'static,
    ) -> Self {
        self.sends = self.sends.with_clock(clock);
        self
    }
}

impl<N, I> Notifications<N, I> {
    /// The notifier messages go to.
    pub fn notifier(&self) -> &N {
        &self.notifier
    }
}

impl<N: Notifier, I: IdempotencyStore> Consumer for Notifications<N, I> {
    const NAME: &'static str = "notifications";
    type Error = NotificationsError;

    async fn consume(&self, delivery: &Delivery<'_>) -> Result<Handled, NotificationsError> {
        if delivery.event.aggregatetype != Order::TYPE {
            return Err(EnvelopeError::UnknownType(delivery.event.event_type.clone()).into());
        }
        let event = delivery.event.decode_for::<Order>()?;
        let Some(notification) = compose(&event) else {
            return Ok(Handled::Ignored);
        };
        let key = json!(format!(
            "{}#{}",
            notification.order_id, notification.outcome
        ));
        let sent = self
            .sends
            .run(&key, &json!(notification), delivery.deadline, || {
                self.notifier.notify(&notification)
            })
            .await
            .map_err(ConsumerError::Own)?;
        if sent.replayed {
            return Ok(Handled::Duplicate);
        }
        delivery.metrics.count("NotificationsSent");
        tracing::info!(order_id = %notification.order_id, outcome = %notification.outcome, message_id = %sent.value.message_id, "customer notified");
        Ok(Handled::Applied("notification.sent"))
    }
}

#[cfg(test)]
mod tests;
